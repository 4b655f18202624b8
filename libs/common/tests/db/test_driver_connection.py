"""``driver_connection``: statements sent straight to asyncpg belong to the session's
transaction, even when they are its first."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import DriverStatement, driver_connection, make_engine, make_sessionmaker
from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.postgres

INSERT = (
    'INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")'
    " VALUES ('driver-test', $1, 'test', 'test', 0, 0)"
)


async def _committed(stack: TestStack, ce_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM inbox_message WHERE ce_id = $1", ce_id)
        )
    finally:
        await conn.close()


async def test_a_first_statement_on_the_driver_is_rolled_back_with_the_session(
    stack: TestStack, engine: AsyncEngine
) -> None:
    ce_id = uuid.uuid4()
    async with make_sessionmaker(engine)() as session, session.begin():
        driver = await driver_connection(session)
        assert driver.is_in_transaction()
        await driver.execute(INSERT, ce_id)
        assert await _committed(stack, ce_id) == 0
        await session.rollback()
    assert await _committed(stack, ce_id) == 0


async def test_driver_and_session_statements_commit_together(
    stack: TestStack, engine: AsyncEngine
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with make_sessionmaker(engine)() as session, session.begin():
        driver = await driver_connection(session)
        await driver.execute(INSERT, first)
        await session.execute(
            text(
                'INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")'
                " VALUES ('driver-test', :ce_id, 'test', 'test', 0, 1)"
            ),
            {"ce_id": second},
        )
        assert await driver_connection(session) is driver
        assert await _committed(stack, first) == 0
    assert await _committed(stack, first) == 1
    assert await _committed(stack, second) == 1


def test_named_parameters_are_numbered_once_each_and_casts_are_left_alone() -> None:
    statement = DriverStatement(
        "SELECT :a::text, CAST(:b AS uuid[]), :a || 'x:y', :b_2 FROM t WHERE c = :a"
    )
    assert (
        statement.sql == "SELECT $1::text, CAST($2 AS uuid[]), $1 || 'x:y', $3 FROM t WHERE c = $1"
    )
    assert statement.names == ("a", "b", "b_2")
    assert statement.args({"b_2": 3, "a": 1, "b": 2, "unused": 4}) == [1, 2, 3]


async def test_a_driver_statement_runs_in_the_session_transaction(
    stack: TestStack, engine: AsyncEngine
) -> None:
    ce_id = uuid.uuid4()
    insert = DriverStatement(
        'INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")'
        " VALUES ('driver-test', :ce_id, 'test', 'test', 0, :offset)"
    )
    async with make_sessionmaker(engine)() as session, session.begin():
        driver = await driver_connection(session)
        await insert.execute(driver, {"ce_id": ce_id, "offset": 7})
        row = await DriverStatement(
            'SELECT "offset" FROM inbox_message WHERE ce_id = :ce_id'
        ).fetchrow(driver, {"ce_id": ce_id})
        assert row is not None
        assert row["offset"] == 7
        await session.rollback()
    assert await _committed(stack, ce_id) == 0


async def _connection_of(engine: AsyncEngine) -> tuple[int, asyncpg.Connection]:
    """The backend and the driver's connection a session of ``engine`` is handed."""
    async with make_sessionmaker(engine)() as session:
        driver = await driver_connection(session)
        pid = int(await driver.fetchval("SELECT pg_backend_pid()"))
        await session.rollback()
    return pid, driver


async def _backend_of(engine: AsyncEngine) -> int:
    return (await _connection_of(engine))[0]


@pytest.mark.parametrize("pre_ping", [False, True], ids=["no-ping", "ping"])
async def test_a_connection_the_server_closed_is_not_handed_out_again(
    stack: TestStack, pre_ping: bool
) -> None:
    # One pooled connection, its backend terminated as a restart or failover would.
    engine = make_engine(stack.database_url("intake"), pool_size=1, pre_ping=pre_ping)
    try:
        first, pooled = await _connection_of(engine)
        admin = await asyncpg.connect(stack.dsn("intake"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        # Terminating only signals the backend: wait until the pooled connection's socket
        # has seen it close. A fixed 0.1 s after the backend had left pg_stat_activity
        # was a guess: on a loaded machine the socket may not have seen it yet, and the
        # connection handed out (alive as far as the client knew) failed the test.
        for _ in range(200):
            if pooled.is_closed():
                break
            await asyncio.sleep(0.05)
        assert pooled.is_closed(), "the pooled connection never saw its backend go"
        # The statements that bypass SQLAlchemy get a live connection, not the dead one.
        for _ in range(3):
            assert await _backend_of(engine) != first
    finally:
        await engine.dispose()
