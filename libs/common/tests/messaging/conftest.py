"""A scratch database with the kit's outbox and inbox as the kit describes them now (what
its code queries; tests/infra/test_schema_drift.py holds the migrations to the same)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.db import make_engine, make_sessionmaker
from dibao_common.messaging.outbox import OutgoingEvent, enqueue_many
from dibao_common.messaging.schema import inbox_message, metadata, outbox_message
from dibao_common.testing.stack import TestStack

# What the test handlers change: a running total per key and the log of applied events.
_EFFECT_TABLES = """
CREATE TABLE test_total (key text PRIMARY KEY, total bigint NOT NULL);
CREATE TABLE test_applied (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer text NOT NULL,
    ce_id uuid NOT NULL,
    key text NOT NULL
);
"""


def _create_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[outbox_message, inbox_message])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def messaging_db(stack: TestStack) -> AsyncIterator[str]:
    """SQLAlchemy URL of a database holding only the messaging tables and the test effects."""
    name = f"{stack.db_prefix}_messaging_kit"
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = stack.database_url("intake").rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await conn.run_sync(_create_tables)
        for statement in _EFFECT_TABLES.split(";"):
            if statement.strip():
                await conn.execute(text(statement))
    await engine.dispose()
    yield url
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def engine(messaging_db: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the scratch database, its tables emptied before the test. Twelve
    connections: up to three relays at once (four each, ADR 0014)."""
    db = make_engine(messaging_db, pool_size=12)
    async with db.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE outbox_message, inbox_message, test_total, test_applied RESTART IDENTITY"
            )
        )
    try:
        yield db
    finally:
        await db.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


def accepted(key: str, n: int) -> ApplicationAccepted:
    return ApplicationAccepted(household_id=key, application_id=f"{key}/{n}")


CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]


@pytest.fixture
def commit_events(sessionmaker: async_sessionmaker[AsyncSession]) -> CommitEvents:
    """``await commit_events(topic, events=1000, keys=20)``: outbox rows committed in small
    transactions, keys interleaved; returns each key's ce_ids in commit order."""

    async def commit(
        topic: str, *, events: int, keys: int, per_transaction: int = 50
    ) -> dict[str, list[str]]:
        order: dict[str, list[str]] = defaultdict(list)
        batch: list[OutgoingEvent] = []
        for n in range(events):
            key = f"household-{n % keys:04d}"
            batch.append(OutgoingEvent(accepted(key, n), key=key, topic=topic))
            if len(batch) == per_transaction or n == events - 1:
                async with sessionmaker() as session, session.begin():
                    for envelope in await enqueue_many(session, batch, source="dibao/test"):
                        order[envelope.key].append(str(envelope.ce_id))
                batch = []
        return dict(order)

    return commit


@pytest.fixture
def pending(engine: AsyncEngine) -> Callable[[], Awaitable[int]]:
    """``await pending()``: outbox rows not yet marked published."""

    async def count() -> int:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM outbox_message WHERE published_at IS NULL")
            )
            return int(found.scalar_one())

    return count
