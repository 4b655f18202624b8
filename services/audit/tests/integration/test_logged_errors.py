"""The log's own loops, refused by the database, log the error without the row it quotes
(ADR 0005, 3 Dec 2026), and so does uvicorn while a test serves the app.

The consumer's append, the projector and the checkpoint ticker retry a failing database
without end, logging each failure; they logged ``repr(exc)``. The kit's net cuts a
DETAIL line out of a string field, but a data exception (SQLSTATE class 22) quotes the
value in its message: ``invalid input syntax for type integer: "<the value>"``, and the
whole row when the value is the row. Here a trigger makes every insert into the table a
path writes fail that way on the row it inserts (``to_jsonb(NEW)``: the entry's
household, the view's decoded event, the checkpoint's note), a real error of the real
server through each loop's own code.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from httpx import AsyncClient

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.api import CheckpointSchedule
from dibao_audit.consumer import LogConsumer
from dibao_audit.main import _checkpoint_ticker
from dibao_audit.projector import EntryProjector
from dibao_audit.testing import AuditDb, recorded_event, serving
from dibao_common import observability
from dibao_common.logged_errors import WITHHELD
from dibao_common.messaging.envelope import Envelope, ce_type_of
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

NAME = "上官测试之家"
"""What the events carry where a household's id goes: a name, as far as the log knows."""

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def kit_log() -> Iterator[Lines]:
    """The kit's log pipeline (DEBUG) written to a buffer; a reader of its JSON lines."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("DEBUG", service_name="audit-test", stream=stream, force=True)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root = logging.getLogger()
        if observability._handler is not None:
            root.removeHandler(observability._handler)
        observability._configured, observability._handler = previous
        if previous[1] is not None:
            root.addHandler(previous[1])


Refuse = Callable[[str], Awaitable[None]]


@pytest_asyncio.fixture(loop_scope="session")
async def refuse_inserts(audit_db: AuditDb) -> AsyncIterator[Refuse]:
    """``await refuse_inserts(table)``: from then on, every insert into ``table`` fails
    with a data exception quoting the inserted row."""
    async with audit_db.owner.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE FUNCTION test_quote_row() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN PERFORM CAST(to_jsonb(NEW)::text AS integer); RETURN NEW; END $$"
            )
        )

    async def refuse(table: str) -> None:
        async with audit_db.owner.begin() as conn:
            await conn.execute(
                sa.text(
                    f"CREATE TRIGGER test_quote_row BEFORE INSERT ON {table}"
                    " FOR EACH ROW EXECUTE FUNCTION test_quote_row()"
                )
            )

    yield refuse


def _event(offset: int) -> intake_pb2.ApplicationWithdrawn:
    return intake_pb2.ApplicationWithdrawn(
        household_id=NAME,
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{offset}",
    )


async def _failure(lines: Lines, event: str) -> dict[str, Any]:
    """The first line of ``event``, once logged."""

    async def logged() -> bool:
        return any(line["event"] == event for line in lines())

    await eventually(logged, timeout_s=60, what=event)
    return next(line for line in lines() if line["event"] == event)


def _assert_named_not_quoted(
    lines: Lines, failure: dict[str, Any], column: str, *, raised: str
) -> None:
    error = failure["error"]
    assert isinstance(error, str)
    # What failed, for the operator: the error, its SQLSTATE, the server's message line...
    assert error.startswith(f"{raised}: "), error
    assert "SQLSTATE 22P02" in error, error
    assert "invalid input syntax for type integer" in error, error
    # ... not the row it quotes (its JSON: a column's name, the household's "name").
    assert WITHHELD in error, error
    assert f'"{column}"' not in error, error
    logged = json.dumps(lines(), ensure_ascii=False)
    assert NAME not in logged, logged


async def test_an_append_refused_by_the_database_is_logged_without_the_row(
    audit_db: AuditDb, refuse_inserts: Refuse, kit_log: Lines
) -> None:
    """The consumer's append (audit_append_failed), the records from a real topic."""
    bootstrap = audit_db.stack.kafka_bootstrap
    topic = f"dibao.t{uuid.uuid4().hex[:10]}.v1"
    await create_topic(bootstrap, topic, partitions=1)
    await refuse_inserts("log_entry")
    message = _event(0)
    envelope = Envelope(
        ce_id=uuid.uuid4(),
        ce_type=ce_type_of(message),
        ce_source="dibao/intake",
        ce_time=datetime(2026, 11, 1, tzinfo=UTC),
        ce_subject=None,
        key=NAME,
        payload=message.SerializeToString(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, envelope.payload, key=envelope.key.encode(), headers=envelope.to_headers()
        )
    finally:
        await producer.stop()
    consumer = LogConsumer(
        audit_db.appender(),
        bootstrap,
        group=f"audit-{topic}",
        pattern=f"^{topic.replace('.', '[.]')}$",
    )
    await consumer.start()
    try:
        failure = await _failure(kit_log, "audit_append_failed")
    finally:
        await consumer.stop()
        await delete_topics(bootstrap, [topic])
    assert consumer.appended == 0
    # asyncpg's own error: the entries go by COPY on the driver's connection.
    _assert_named_not_quoted(
        kit_log, failure, "household_id", raised="InvalidTextRepresentationError"
    )


async def test_a_projection_refused_by_the_database_is_logged_without_the_row(
    audit_db: AuditDb, refuse_inserts: Refuse, kit_log: Lines
) -> None:
    """The projector (audit_projection_failed): the view holds the decoded event."""
    await audit_db.appender().append([recorded_event(_event(0), offset=0, key=NAME)])
    await refuse_inserts("entry_view")
    projector = EntryProjector(audit_db.sessions, poll_interval_s=0.05)
    task = asyncio.create_task(projector.run_forever())
    try:
        failure = await _failure(kit_log, "audit_projection_failed")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    _assert_named_not_quoted(kit_log, failure, "decoded", raised="InvalidTextRepresentationError")


async def test_a_checkpoint_refused_by_the_database_is_logged_without_the_row(
    audit_db: AuditDb, refuse_inserts: Refuse, kit_log: Lines
) -> None:
    """The checkpoint ticker (audit_checkpoint_failed): the row holds the signed note."""
    appender = audit_db.appender()
    await appender.append([recorded_event(_event(0), offset=0, key=NAME)])
    await refuse_inserts("checkpoint")
    task = asyncio.create_task(_checkpoint_ticker(appender, 0.05, CheckpointSchedule()))
    try:
        failure = await _failure(kit_log, "audit_checkpoint_failed")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # SQLAlchemy's, around asyncpg's: the checkpoint is written by the ORM.
    _assert_named_not_quoted(kit_log, failure, "signed_note", raised="DBAPIError")


async def test_an_error_uvicorn_logs_while_a_test_serves_the_app_goes_through_the_kits_log(
    audit_stack: TestStack, kit_log: Lines, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serving`` built its ``uvicorn.Config`` after the app had configured the kit's
    logging, and the config put uvicorn's plain-text handlers back: an exception out of
    the app (uvicorn logs it, "Exception in ASGI application") was printed on stderr,
    the value a data exception quotes in it, and not in the kit's log at all."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        conn = await asyncpg.connect(audit_stack.pg_admin_dsn)
        try:
            await conn.fetchval("SELECT CAST($1::text AS integer)", NAME)
        finally:
            await conn.close()

    async with serving(app) as url, AsyncClient(base_url=url) as client:
        response = await client.get("/")
    assert response.status_code == 500
    [line] = [line for line in kit_log() if line.get("logger") == "uvicorn.error"]
    assert line["event"].strip() == "Exception in ASGI application"
    assert "InvalidTextRepresentationError" in line["exception"]
    assert "SQLSTATE 22P02" in line["exception"]
    assert NAME not in json.dumps(kit_log(), ensure_ascii=False)
    assert NAME not in capsys.readouterr().err
