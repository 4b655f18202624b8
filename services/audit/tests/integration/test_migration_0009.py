"""Migration 0009 on a live log, up and down: it waits for a long reader, and the log goes
on meanwhile.

A database check (``verify_cli --database-url``: one repeatable-read transaction over the
whole log) or an export reads for minutes on a large log. The migration's trigger was
set up with ``DROP TRIGGER`` (an ACCESS EXCLUSIVE lock on ``log_entry``, queued behind the
reader: every append and read stalled behind it for the 5 s lock timeout, and then the
migration failed), and ``CREATE INDEX CONCURRENTLY`` waits for every transaction older
than its snapshot, which the same lock timeout turned into a failure. The downgrade's
plain ``DROP INDEX`` queued ACCESS EXCLUSIVE behind the reader likewise: appends stalled,
then it failed. Against the real database.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit.entry import RecordedEvent
from dibao_audit.testing import AuditDb, as_superuser, recorded_event

pytestmark = [pytest.mark.postgres]

VILLAGE, SEARCHED = "620102001001", "620104000000"


def _events(lo: int, hi: int) -> list[RecordedEvent]:
    """Withdrawals in Chengguan, every third a search naming Anning too."""
    out = []
    for n in range(lo, hi):
        if n % 3 == 0:
            search = access_pb2.PersonalDataAccessed(
                region=types_pb2.RegionCode(code=VILLAGE),
                regions=[types_pb2.RegionCode(code=c) for c in (VILLAGE, SEARCHED)],
                actor=types_pb2.Actor(subject="clerk-of-two"),
                service="intake",
                record_type=access_pb2.RECORD_TYPE_LIST,
                record_id=f"households?page={n}",
                operation="GET /households",
            )
            out.append(recorded_event(search, offset=n, key=""))
        else:
            withdrawn = intake_pb2.ApplicationWithdrawn(
                household_id="hh-1",
                region=types_pb2.RegionCode(code=VILLAGE),
                application_id=f"app-{n}",
            )
            out.append(recorded_event(withdrawn, offset=n, key="hh-1"))
    return out


async def _until_it_waits_for_the_reader(dsn: str, task: asyncio.Task[None], what: str) -> None:
    """Until a backend of the database waits on a lock (``task``'s, for the reader: nothing
    else runs), at most 60 s. The appends after it are then sure to be made while it waits:
    on a slow machine alembic (its own event loop in a thread) could spend much of the 8 s
    starting, and the appends then proved less."""
    watcher = await asyncpg.connect(dsn)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        waiting = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while not await watcher.fetchval(waiting):
            if task.done():
                raise AssertionError(f"the {what} ended before it waited: {task.exception()!r}")
            assert loop.time() < deadline, f"the {what} never waited for the reader"
            await asyncio.sleep(0.1)
    finally:
        await watcher.close()


async def test_the_migration_waits_for_a_long_reader_while_the_log_goes_on(
    audit_db: AuditDb,
) -> None:
    """A reader's repeatable-read transaction open for 8 s (a database check, an export):
    the migration waits for it (it failed at 5 s, 'canceling statement due to lock
    timeout'), entries are appended meanwhile (not held up behind the migration's locks),
    and then every index is valid and every search, whenever appended, has its prefixes."""
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.downgrade("audit", "0008")
    appender = audit_db.appender()
    await appender.append(_events(0, 30))
    reader = await asyncpg.connect(audit_db.dsn)
    try:
        transaction = reader.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        assert await reader.fetchval("SELECT count(*) FROM log_entry") == 30
        migration = asyncio.create_task(audit_db.stack.migrate("audit"))
        await _until_it_waits_for_the_reader(audit_db.dsn, migration, "migration")
        appended = 30
        for _ in range(8):  # the log goes on: each append within a second
            await asyncio.sleep(1)
            assert not migration.done() or migration.exception() is None, str(migration.exception())
            await asyncio.wait_for(appender.append(_events(appended, appended + 3)), 1.5)
            appended += 3
        assert not migration.done(), "the migration did not wait for the reader"
        await transaction.commit()
    finally:
        await reader.close()
    await asyncio.wait_for(migration, 60)
    await appender.append(_events(appended, appended + 3))
    appended += 3

    conn = await asyncpg.connect(audit_db.dsn)
    try:
        indexes = await conn.fetch(
            "SELECT c.relname, i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname LIKE 'ix_log_entry_region_%' OR c.relname = 'ix_log_entry_no_region'"
        )
        names = [f"ix_log_entry_region_{n}" for n in (2, 4, 6, 9, 12)]
        assert {(r[0], r[1]) for r in indexes} == {
            (name, True) for name in (*names, "ix_log_entry_no_region")
        }
        searched = await conn.fetch(
            "SELECT leaf_index FROM entry_region_prefix WHERE prefix = $1 ORDER BY 1", SEARCHED
        )
    finally:
        await conn.close()
    assert [r[0] for r in searched] == list(range(0, appended, 3))
    async with audit_db.sessions() as session:
        flt = repo.EntryFilter(region_prefixes=("620104",))
        found = await repo.find_entries(session, flt, after=None, limit=1000)
    assert [e.leaf_index for e, _ in found] == list(range(0, appended, 3))


async def test_the_downgrade_waits_for_a_long_reader_while_the_log_goes_on(
    audit_db: AuditDb,
) -> None:
    """Down to 0008 with a reader's transaction open for 8 s: the indexes are dropped
    without holding up appends and after the reader ends, then the trigger and the table;
    entries appended meanwhile are kept, and up again every search has its prefixes."""
    appender = audit_db.appender()
    await appender.append(_events(0, 30))
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    reader = await asyncpg.connect(audit_db.dsn)
    try:
        transaction = reader.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        assert await reader.fetchval("SELECT count(*) FROM log_entry") == 30
        downgrade = asyncio.create_task(audit_db.stack.downgrade("audit", "0008"))
        await _until_it_waits_for_the_reader(audit_db.dsn, downgrade, "downgrade")
        appended = 30
        for _ in range(8):
            await asyncio.sleep(1)
            assert not downgrade.done() or downgrade.exception() is None, str(downgrade.exception())
            await asyncio.wait_for(appender.append(_events(appended, appended + 3)), 1.5)
            appended += 3
        await transaction.commit()
    finally:
        await reader.close()
    await asyncio.wait_for(downgrade, 60)
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'ix_log_entry_region_%'"
            " OR relname IN ('ix_log_entry_no_region', 'entry_region_prefix')"
        )
        assert left == 0
        assert await conn.fetchval("SELECT count(*) FROM log_entry") == appended
    finally:
        await conn.close()
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.migrate("audit")
    async with audit_db.sessions() as session:
        flt = repo.EntryFilter(region_prefixes=("620104",))
        found = await repo.find_entries(session, flt, after=None, limit=1000)
    assert [e.leaf_index for e, _ in found] == list(range(0, appended, 3))


async def test_a_run_stopped_half_way_is_run_again(audit_db: AuditDb) -> None:
    """As a run killed half way leaves it (the trigger and part of the backfill committed,
    an index's build failed: invalid, alembic still at 0008), with entries appended since:
    run again, every search has its prefixes and the failed index is built again as it should be."""
    appender = audit_db.appender()
    await appender.append(_events(0, 30))
    await as_superuser(
        audit_db,
        "DELETE FROM entry_region_prefix WHERE leaf_index >= 12",
        "DROP INDEX ix_log_entry_region_6",
    )
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):  # a build that failed: invalid
            await conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY ix_log_entry_region_6 ON log_entry"
                " (left(region, 6))"
            )
        await conn.execute("UPDATE alembic_version SET version_num = '0008'")
    finally:
        await conn.close()
    await appender.append(_events(30, 45))  # the trigger writes these
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.migrate("audit")
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        assert await conn.fetchval(
            "SELECT i.indisvalid AND NOT i.indisunique FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'ix_log_entry_region_6'"
        )
        definition = await conn.fetchval(
            "SELECT pg_get_indexdef('ix_log_entry_region_6'::regclass)"
        )
    finally:
        await conn.close()
    assert definition.endswith('("left"(region, 6), leaf_index)'), definition
    async with audit_db.sessions() as session:
        flt = repo.EntryFilter(region_prefixes=("620104",))
        found = await repo.find_entries(session, flt, after=None, limit=1000)
    assert [e.leaf_index for e, _ in found] == list(range(0, 45, 3))
