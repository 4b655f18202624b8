"""``dibao_common.db.held``: writes held and sent as the CTEs of one statement."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import (
    DriverStatement,
    driver_connection,
    driver_session,
    make_sessionmaker,
)
from dibao_common.db.held import HeldWrite, held_writes, holding, one_statement, renumber, write

INBOX = DriverStatement(
    'INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")'
    " VALUES ('held-test', :ce_id, :ce_type, 'test', 0, 0)"
)


def test_a_dollar_number_that_is_text_is_not_renumbered() -> None:
    # In a literal, a quoted identifier, a dollar-quoted string or a comment, "$1" is
    # text; only the parameters around it move.
    assert renumber("SELECT $1, 'costs $1', $2", 2) == "SELECT $3, 'costs $1', $4"
    assert renumber("SELECT 'it''s $1', $1", 1) == "SELECT 'it''s $1', $2"
    assert renumber('SELECT "col$1", $1', 1) == 'SELECT "col$1", $2'
    assert renumber("SELECT $$ $1 $$, $tag$ $2 $tag$, $1", 5) == (
        "SELECT $$ $1 $$, $tag$ $2 $tag$, $6"
    )
    assert renumber("SELECT $1 -- not $2\n, $2 /* nor $3 */", 1) == (
        "SELECT $2 -- not $2\n, $3 /* nor $3 */"
    )
    assert renumber("SELECT $1::text, $12", 1) == "SELECT $2::text, $13"


def test_parameters_are_numbered_through_the_statement() -> None:
    assert renumber("SELECT $1, $2, $10", 3) == "SELECT $4, $5, $13"
    assert renumber("SELECT $1", 0) == "SELECT $1"
    sql, args = one_statement(
        [HeldWrite("INSERT INTO a VALUES ($1, $2)", (1, 2)), HeldWrite("DELETE FROM b", ())],
        HeldWrite("INSERT INTO c VALUES ($2, $1)", ("x", "y")),
    )
    assert sql == (
        "WITH w0 AS (\nINSERT INTO a VALUES ($1, $2)\n),\nw1 AS (\nDELETE FROM b\n)\n"
        "INSERT INTO c VALUES ($4, $3)"
    )
    assert args == [1, 2, "x", "y"]


def test_the_last_write_is_the_statement_itself() -> None:
    assert one_statement([HeldWrite("DELETE FROM b WHERE id = $1", (7,))]) == (
        "DELETE FROM b WHERE id = $1",
        [7],
    )
    with pytest.raises(ValueError, match="nothing"):
        one_statement([])


async def _count(engine: AsyncEngine, ce_ids: list[uuid.UUID]) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM inbox_message WHERE ce_id = ANY(:ids)"), {"ids": ce_ids}
        )
        return int(found.scalar_one())


@pytest.mark.postgres
async def test_writes_outside_a_hold_go_at_once_as_one_statement(engine: AsyncEngine) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    async with make_sessionmaker(engine)() as session, session.begin():
        assert not holding(session)
        await write(session, *((INBOX, {"ce_id": i, "ce_type": "t"}) for i in ids))
        assert (await driver_connection(session)).is_in_transaction()
    assert await _count(engine, ids) == 2


@pytest.mark.postgres
async def test_held_writes_wait_for_the_holder_and_go_all_or_nothing(engine: AsyncEngine) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    async with driver_session(engine) as session:
        with held_writes(session) as held:
            assert holding(session)
            for i in ids:
                await write(session, (INBOX, {"ce_id": i, "ce_type": "t"}))
            # The second repeats the first's key: the statement fails as a whole.
            await write(session, (INBOX, {"ce_id": ids[0], "ce_type": "again"}))
        assert not holding(session)
        assert len(held) == 3
        assert await _count(engine, ids) == 0
        driver = await driver_connection(session)
        assert not driver.is_in_transaction()  # autocommit: no BEGIN was sent
        sql, args = one_statement(held)
        with pytest.raises(asyncpg.UniqueViolationError):
            await driver.execute(sql, *args)
        assert await _count(engine, ids) == 0
        sql, args = one_statement(held[:2])
        await driver.execute(sql, *args)
    assert await _count(engine, ids) == 2


@pytest.mark.postgres
async def test_a_driver_session_has_no_sqlalchemy_connection_to_write_through(
    engine: AsyncEngine,
) -> None:
    """Its statements go to the pinned driver connection; one sent through SQLAlchemy
    fails rather than committing on its own beside the held writes."""
    async with driver_session(engine) as session:
        driver = await driver_connection(session)
        assert await driver.fetchval("SELECT 1") == 1
        assert not driver.is_in_transaction()
        with pytest.raises(UnboundExecutionError):
            await session.execute(text("SELECT 1"))
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
