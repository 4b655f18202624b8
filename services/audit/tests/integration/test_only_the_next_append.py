"""The runtime role's INSERT right admits only the next append (migration 0007): no entry,
node, checkpoint or view ahead of the log, none that is not the log's own."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit.entry import RecordedEvent, canonical_bytes, header_block
from dibao_audit.merkle import leaf_hash
from dibao_audit.projector import EntryProjector
from dibao_audit.testing import AuditDb, recorded_event

pytestmark = [pytest.mark.postgres]


def _event(i: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=i, key="hh-1")


@pytest_asyncio.fixture(loop_scope="session")
async def runtime(audit_db: AuditDb) -> AsyncIterator[asyncpg.Connection]:
    """A connection logged in as the runtime role, as the running service's are."""
    dsn = make_url(audit_db.runtime_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    assert await conn.fetchval("SELECT current_user") == audit_db.role
    try:
        yield conn
    finally:
        await conn.close()


async def _insert_entry(conn: asyncpg.Connection, index: int, event: RecordedEvent) -> None:
    await conn.execute(
        """INSERT INTO log_entry (leaf_index, ce_id, ce_type, topic, partition, "offset",
               record_key, header_block, payload)
           VALUES ($1, $2, 'dibao.intake.ApplicationWithdrawn.v1', $3, 0, $4, $5, $6, $7)""",
        index,
        uuid.uuid4(),
        event.topic,
        event.offset,
        event.key,
        header_block(event.headers),
        event.payload,
    )


async def _entry_with_leaf(
    conn: asyncpg.Connection, index: int, event: RecordedEvent, leaf: bytes | None
) -> None:
    """The entry and (unless None) a leaf in one transaction, committed."""
    async with conn.transaction():
        await _insert_entry(conn, index, event)
        if leaf is not None:
            await conn.execute(
                "INSERT INTO merkle_node (level, index, hash) VALUES ($1, $2, $3)", 0, index, leaf
            )


async def _refused(conn: asyncpg.Connection, statements: str, *args: object) -> str:
    """Run ``statements`` in a transaction; the message of the check that refuses them."""
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with conn.transaction():
            await conn.execute(statements, *args)
    return str(refused.value)


async def test_the_runtime_role_cannot_write_ahead_of_the_appender(
    audit_db: AuditDb, runtime: asyncpg.Connection
) -> None:
    appender = audit_db.appender(checkpoint_every=3)
    await appender.append([_event(i) for i in range(3)])  # entries 0..2, checkpoint 3
    await appender.append([_event(i) for i in range(3, 5)])  # entries 3, 4
    await EntryProjector(audit_db.sessions).catch_up()  # views 0..4
    late = _event(5)

    # An entry ahead of the log, or the next one alone (no leaf: the appender's frontier
    # would lack it for good).
    with pytest.raises(asyncpg.CheckViolationError, match="the next entry is 5"):
        await _insert_entry(runtime, 9, late)
    with pytest.raises(asyncpg.CheckViolationError, match="entry 5 refused: its leaf"):
        await _entry_with_leaf(runtime, 5, late, None)
    # The next entry with a leaf that is not its hash, or with its leaf but without the
    # subtrees it completes (entry 5 closes level 1 index 2).
    true_leaf = leaf_hash(canonical_bytes(late))
    for leaf, message in (
        (hashlib.sha256(b"planted").digest(), r"node \(level 0, index 5\) refused"),
        (true_leaf, "entry 5 refused: its leaf or a subtree it completes is missing"),
    ):
        with pytest.raises(asyncpg.CheckViolationError, match=message):
            await _entry_with_leaf(runtime, 5, late, leaf)
    # Nodes over leaves not there yet, or not the hash of their children.
    assert "level 0, index 6" in await _refused(
        runtime, "INSERT INTO merkle_node (level, index, hash) VALUES (0, 6, $1)", true_leaf
    )
    assert "level 3, index 0" in await _refused(
        runtime, "INSERT INTO merkle_node (level, index, hash) VALUES (3, 0, $1)", true_leaf
    )
    # A view of an entry the log does not hold, or ahead of the projector.
    assert "the next view is of entry 5" in await _refused(
        runtime, "INSERT INTO entry_view (leaf_index, decoded) VALUES (7, '{}')"
    )
    assert "the log has 5 entries" in await _refused(
        runtime, "INSERT INTO entry_view (leaf_index, decoded) VALUES (5, '{}')"
    )
    # A checkpoint beyond the log, out of order, or over another root.
    checkpoint = """INSERT INTO checkpoint (tree_size, checkpoint_id, root_hash, signed_note,
                        key_id, signed_at, previous_tree_size)
                    VALUES ($1, gen_random_uuid(), $2, 'note', 'k', now(), $3)"""
    async with audit_db.sessions() as session:
        last = await repo.latest_checkpoint(session)
    assert last is not None
    assert last.tree_size == 3
    for size, previous, where in (
        (99, 3, "the log has 5 entries"),
        (2, None, "the last is 3"),
        (5, None, "checkpoint 5 (previous <NULL>) refused: the last is 3"),
    ):
        assert where in await _refused(runtime, checkpoint, size, b"\x01" * 32, previous)
    assert "not the root of the stored tree" in await _refused(
        runtime, checkpoint, 5, b"\x01" * 32, 3
    )

    # The appender and the projector go on: the next batch, its checkpoint, their views.
    result = await appender.append([_event(i) for i in range(5, 12)])
    assert (result.appended, result.tree_size, result.checkpoint_size) == (7, 12, 12)
    assert await EntryProjector(audit_db.sessions).catch_up() == 7
    assert await runtime.fetchval("SELECT count(*) FROM entry_view") == 12
