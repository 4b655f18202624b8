"""An unexpected database error is logged without the personal data its statement carried."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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
