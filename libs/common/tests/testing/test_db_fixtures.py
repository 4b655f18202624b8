"""The rollback-per-test database fixtures: what a test writes, even committed, is gone."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dibao_common.testing.db_fixtures import (
    ServiceEngines,
    db_session_for,
    db_sessionmaker_for,
    rolled_back,
)
from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.postgres

db_session = db_session_for("intake")
payments_sessions = db_sessionmaker_for("payments", name="payments_sessions")

CE_ID = uuid.UUID("0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00")
INSERT = text(
    'INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset") '
    "VALUES ('fixture-test', :ce_id, 'test', 'test', 0, 0)"
)
COUNT = text("SELECT count(*) FROM inbox_message WHERE ce_id = :ce_id")


async def committed_rows(stack: TestStack, service: str) -> int:
    """Rows visible to an independent connection, i.e. really committed."""
    conn = await asyncpg.connect(stack.dsn(service))
    try:
        found = await conn.fetchval("SELECT count(*) FROM inbox_message WHERE ce_id = $1", CE_ID)
    finally:
        await conn.close()
    assert isinstance(found, int)
    return found


async def test_1_a_test_inserts_and_commits(db_session: AsyncSession, stack: TestStack) -> None:
    await db_session.execute(INSERT, {"ce_id": CE_ID})
    await db_session.commit()  # what code under test does at its boundary
    assert (await db_session.scalar(COUNT, {"ce_id": CE_ID})) == 1
    assert await committed_rows(stack, "intake") == 0


async def test_2_the_next_test_does_not_see_it(db_session: AsyncSession, stack: TestStack) -> None:
    assert (await db_session.scalar(COUNT, {"ce_id": CE_ID})) == 0
    assert await committed_rows(stack, "intake") == 0


async def test_a_failed_statement_rolls_back_to_the_savepoint(db_session: AsyncSession) -> None:
    await db_session.execute(INSERT, {"ce_id": CE_ID})
    await db_session.commit()
    with pytest.raises(IntegrityError):
        await db_session.execute(INSERT, {"ce_id": CE_ID})
    await db_session.rollback()
    # The committed row survives the inner rollback; the session is usable again.
    assert (await db_session.scalar(COUNT, {"ce_id": CE_ID})) == 1


async def test_sessions_of_one_maker_share_the_test_transaction(
    payments_sessions: async_sessionmaker[AsyncSession], stack: TestStack
) -> None:
    async with payments_sessions() as writer:
        await writer.execute(INSERT, {"ce_id": CE_ID})
        await writer.commit()
    async with payments_sessions() as reader:
        assert (await reader.scalar(COUNT, {"ce_id": CE_ID})) == 1
    assert await committed_rows(stack, "payments") == 0


async def test_rolled_back_leaves_nothing(
    service_engines: ServiceEngines, stack: TestStack
) -> None:
    engine = service_engines.engine("intake")
    async with rolled_back(engine) as maker, maker() as session:
        await session.execute(INSERT, {"ce_id": CE_ID})
        await session.commit()
        assert (await session.scalar(COUNT, {"ce_id": CE_ID})) == 1
    assert await committed_rows(stack, "intake") == 0
    async with rolled_back(engine) as maker, maker() as session:
        assert (await session.scalar(COUNT, {"ce_id": CE_ID})) == 0


def test_unknown_services_are_refused(stack: TestStack) -> None:
    with pytest.raises(ValueError, match="unknown service"):
        ServiceEngines(stack).engine("billing")
