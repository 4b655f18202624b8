"""A consumer's handler refused by the database: its retries, its dead-lettering and the
dead letter's ``dlq_error`` header name the error, never the row the database quotes
(ADR 0005, 3 Dec 2026).

The handlers write as the services' hot paths do, straight on asyncpg
(``DriverStatement``): asyncpg's error text holds PostgreSQL's DETAIL
(``Key (name)=(...) already exists``, ``Failing row contains (...)``), and the runner
logged it, and put it into the dead letter, as ``f"{type}: {error}"``. A data exception
(through SQLAlchemy) quotes the value in its message, which ``repr`` kept.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common import observability
from dibao_common.db import DriverStatement, driver_connection
from dibao_common.messaging.consumer import ConsumerRunner
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.kafka_fixtures import TopicFactory, read_records, wait_for_records
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

NAME = "上官测试"
SECRET = "假的低保备注"
NOTE = f"{SECRET}\nDETAIL:  forged\n[SQL: forged]"
VALUES = (NAME, SECRET, "forged")

_TABLE = """
CREATE TABLE IF NOT EXISTS test_resident (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT test_resident_name_key UNIQUE,
    note text NOT NULL CONSTRAINT test_resident_note_short CHECK (length(note) < 8)
)
"""
_INSERT = DriverStatement("INSERT INTO test_resident (name, note) VALUES (:name, :note)")


@pytest_asyncio.fixture(loop_scope="session")
async def residents(engine: AsyncEngine) -> AsyncIterator[None]:
    """The table the handlers write, holding one resident, ``NAME``."""
    async with engine.begin() as conn:
        await conn.execute(text(_TABLE))
        await conn.execute(text("TRUNCATE test_resident"))
        await conn.execute(
            text("INSERT INTO test_resident (name, note) VALUES (:name, 'ok')"), {"name": NAME}
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE test_resident"))


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The kit's log pipeline (DEBUG), written to a buffer for the test."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("DEBUG", service_name="kit-test", stream=stream, force=True)
    try:
        yield stream
    finally:
        root = logging.getLogger()
        if observability._handler is not None:
            root.removeHandler(observability._handler)
        observability._configured, observability._handler = previous
        if previous[1] is not None:
            root.addHandler(previous[1])


async def _unique(session: AsyncSession, envelope: Envelope, message: Message) -> None:
    """A second resident of the name (DETAIL: Key (name)=(NAME) already exists.)."""
    await _INSERT.execute(await driver_connection(session), {"name": NAME, "note": "ok"})


async def _check(session: AsyncSession, envelope: Envelope, message: Message) -> None:
    """A note too long (DETAIL: Failing row contains (2, <key>, <NOTE on three lines>))."""
    await _INSERT.execute(
        await driver_connection(session), {"name": f"{envelope.key}", "note": NOTE}
    )


async def _data(session: AsyncSession, envelope: Envelope, message: Message) -> None:
    """A value the server cannot take (invalid input syntax for type integer: "NAME")."""
    await session.execute(text("SELECT CAST(CAST(:name AS text) AS integer)"), {"name": NAME})


_HANDLERS = {"unique": _unique, "check": _check, "data": _data}
_NAMED = {
    "unique": ("UniqueViolationError", "SQLSTATE 23505", "constraint test_resident_name_key"),
    "check": (
        "CheckViolationError",
        "SQLSTATE 23514",
        "table public.test_resident",
        "constraint test_resident_note_short",
    ),
    # SQLAlchemy's DBAPIError around asyncpg's InvalidTextRepresentationError.
    "data": ("DBAPIError", "SQLSTATE 22P02", "invalid input syntax for type integer"),
}


@pytest.mark.parametrize("what", ["unique", "check", "data"])
async def test_a_handler_refused_by_the_database_is_logged_and_dead_lettered_without_the_row(
    stack: TestStack,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
    residents: None,
    log_stream: io.StringIO,
    what: str,
) -> None:
    topic = await kafka_topics(partitions=1)
    dlq = await kafka_topics(partitions=1)
    runner = ConsumerRunner(
        f"logged-errors-{uuid.uuid4().hex[:8]}",
        [topic],
        _HANDLERS[what],
        sessionmaker,
        stack.kafka_bootstrap,
        registry=EventRegistry([ApplicationAccepted]),
        dlq_topic=dlq,
        max_attempts=3,
        backoff_s=0.02,
    )
    # The key is a name too: the check's failing row quotes it.
    envelope = build_envelope(
        ApplicationAccepted(household_id="h-1", application_id="a-1"),
        key=f"{NAME}之子",
        source="test",
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, envelope.payload, key=envelope.key.encode(), headers=envelope.to_headers()
        )
    finally:
        await producer.stop()
    await runner.start()
    try:
        [letter] = await wait_for_records(stack, dlq, 1)
    finally:
        await runner.stop()
    assert len(await read_records(stack, dlq)) == 1
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    retried = [line for line in lines if line["event"] == "handler failed, event retried"]
    [dead] = [line for line in lines if line["event"] == "event dead-lettered"]
    header = letter.header("dlq_error") or ""
    assert len(retried) == 1
    logged = json.dumps(lines, ensure_ascii=False)
    assert [value for value in VALUES if value in logged] == [], logged
    assert [value for value in VALUES if value in header] == [], header
    for error in (retried[0]["error"], dead["error"], header):
        for named in _NAMED[what]:
            assert named in error, (named, error)
