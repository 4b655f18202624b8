"""An unexpected database error is logged without the personal data its statement carried,
and without the row the database quotes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.logged_errors import WITHHELD
from dibao_intake.synthetic import application_payload
from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.fixture(params=["person", "household"])
async def refused_table(
    intake_engine: AsyncEngine, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """Every insert into the table fails in the database, as an unforeseen error would:
    the persons' (names) or the household's (address)."""
    table = request.param
    async with intake_engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'refused by test_logged_errors'; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER test_refuse_insert BEFORE INSERT ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION test_refuse_insert()"
            )
        )
    try:
        yield table
    finally:
        async with intake_engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER test_refuse_insert ON {table}"))
            await conn.execute(text("DROP FUNCTION test_refuse_insert()"))


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the service's log handler writes during the test: its formatter, with the
    kit's processors (the ID-number mask among them)."""
    root = logging.getLogger()
    [formatter] = [
        h.formatter
        for h in root.handlers
        if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
    ]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_a_failed_statement_is_logged_without_its_parameters(
    intake: IntakeClient,
    intake_engine: AsyncEngine,
    refused_table: str,
    log_lines: io.StringIO,
) -> None:
    """SQLAlchemy writes a failed statement's parameters into its exception's text, and
    the 500's log line carries the exception: the household's address and the members'
    names went to the log store in clear (ADR 0005: no full name or address in logs; the
    mask catches ID numbers only). The engine now keeps them out of the exception: the
    persons' insert failing (names), or the household's (address)."""
    plan = intake.plan()
    payload = plan.payload()
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 500, response.text
    assert response.json()["type"].endswith("/internal-error")
    assert await row_counts(intake_engine) == before
    # The lines as the log store reads them (JSON escapes non-ASCII text).
    logged = "\n".join(str(json.loads(line)) for line in log_lines.getvalue().splitlines() if line)
    assert "refused by test_logged_errors" in logged  # the error itself is logged
    shown = [payload["address"], *(m["name"] for m in payload["members"])]
    assert [value for value in shown if value in logged] == [], refused_table


STATEMENT = "丈夫上官某长期住院，家中无劳动力"
"""An applicant's statement: what a failing application row quotes in its DETAIL."""


@pytest.fixture
async def refused_statement(intake_engine: AsyncEngine) -> AsyncIterator[str]:
    """A constraint the application's row breaks when it has a statement, as a constraint
    added since (or a bug) would: none the API explains with a 409. NOT VALID, so the
    applications already there keep theirs."""
    named = "test_application_without_statement"
    async with intake_engine.begin() as conn:
        await conn.execute(
            text(
                f"ALTER TABLE application ADD CONSTRAINT {named}"
                " CHECK (statement IS NULL) NOT VALID"
            )
        )
    try:
        yield named
    finally:
        async with intake_engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE application DROP CONSTRAINT {named}"))


async def test_a_constraint_no_race_explains_is_logged_with_the_drivers_error_not_its_row(
    intake: IntakeClient,
    intake_engine: AsyncEngine,
    refused_statement: str,
    log_lines: io.StringIO,
) -> None:
    """A submission (one statement, on asyncpg) breaking a constraint no race explains is
    a 500, runtime.ConstraintViolatedError naming table and constraint. It was raised
    from None, so that the driver's error, whose DETAIL quotes the failing row (the
    applicant's statement, the members' ids), stayed out of the log, and with it what the
    operator needs: the driver's type, SQLSTATE and frames. It is raised from that error
    now; the kit's logging withholds its DETAIL (ADR 0005, 3 Dec 2026)."""
    household = await intake.register()
    documents = await intake.documents_for(household)
    body = application_payload(
        household.id, household.person_ids, household.plan, documents, statement=STATEMENT
    )
    before = await row_counts(intake_engine)
    response = await intake.submit(body)
    assert response.status_code == 500, response.text
    assert response.json()["type"].endswith("/internal-error")
    # Nothing written: the one statement failed whole (the outbox ids it drew from the
    # sequence are spent, as a sequence's are).
    after = await row_counts(intake_engine)
    for counts in (before, after):
        del counts["outbox_message_ids_issued"]
    assert after == before
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line]
    [failed] = [line for line in lines if line["event"] == "unhandled exception"]
    logged = failed["exception"]
    assert f"table application, constraint {refused_statement}" in logged
    # The driver's error, chained, as the kit renders it: named, its DETAIL withheld.
    assert "The above exception was the direct cause of the following exception" in logged
    assert "asyncpg.exceptions.CheckViolationError" in logged
    assert "SQLSTATE 23514" in logged
    assert f"DETAIL {WITHHELD}" in logged
    everything = json.dumps(lines, ensure_ascii=False)
    shown = [STATEMENT, household.plan.address, *(m.name for m in household.plan.members)]
    assert [value for value in shown if value in everything] == []
    assert "Failing row contains" not in everything
