"""Migration 0014 (each day's last leaf) on a live log, and the database check on a schema
an upgrade has not finished (ADR 0011, 3 Dec 2026).

Against the real database: the upgrade waits for an append in flight and then every
day's first and last leaf are its entries' (logged before, during and after it), up and
down again; appends cannot commit out of leaf order, so the table's upserts see them in
order; and ``verify_cli --database-url`` on a database at 0008, 0012 and 0013 says what it
could not check and why, instead of failing on a missing table.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import verify_cli
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.entry import RecordedEvent
from dibao_audit.testing import TEST_ORIGIN, TEST_SEED, AuditDb, as_superuser, recorded_event

pytestmark = [pytest.mark.postgres]

VILLAGE = "620102001001"
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _events(lo: int, hi: int) -> list[RecordedEvent]:
    """Withdrawals ``lo ..`` over three days out of leaf order (``n * 11 % 72`` hours)."""
    return [
        recorded_event(
            intake_pb2.ApplicationWithdrawn(
                household_id="hh-1",
                region=types_pb2.RegionCode(code=VILLAGE),
                application_id=f"app-{n}",
            ),
            offset=n,
            key="hh-1",
            at=BASE_TIME + timedelta(hours=n * 11 % 72),
        )
        for n in range(lo, hi)
    ]


async def _days(db: AuditDb) -> tuple[dict[date, tuple[int, int]], dict[date, tuple[Any, ...]]]:
    """Each day's (first, last) leaf made from the entries, and the rows stored."""
    conn = await asyncpg.connect(db.dsn)
    try:
        made = await conn.fetch(
            "SELECT (ce_time AT TIME ZONE 'UTC')::date, min(leaf_index), max(leaf_index)"
            " FROM log_entry GROUP BY 1"
        )
        stored = await conn.fetch("SELECT * FROM entry_time_day")
    finally:
        await conn.close()
    return {r[0]: (r[1], r[2]) for r in made}, {r[0]: tuple(r[1:]) for r in stored}


async def _until_it_waits(dsn: str, task: asyncio.Task[None], what: str = "migration") -> None:
    """Until a backend of the database waits on a lock (``task``'s: nothing else runs),
    at most 60 s."""
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
            assert loop.time() < deadline, f"the {what} never waited"
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()


async def _dispose(db: AuditDb) -> None:
    await db.owner.dispose()
    await db.runtime.dispose()


async def test_the_upgrade_waits_for_an_append_in_flight_and_gives_every_day_its_last_leaf(
    audit_db: AuditDb,
) -> None:
    """At 0013, 120 entries over three days out of leaf order; an append of 30 more in
    flight (its transaction open) when the upgrade starts: the upgrade waits for it (its
    SHARE lock on ``log_entry``), the column not added meanwhile; once it commits, the
    upgrade fills every day's last leaf, those entries' included; entries appended after
    it are the trigger's. Every day's row is then its entries' first and last leaf, and
    the database check finds nothing. Down to 0013 and up again, the same."""
    await _dispose(audit_db)
    await audit_db.stack.downgrade("audit", "0013")
    await audit_db.appender().append(_events(0, 120))
    held = audit_db.appender()
    async with audit_db.sessions() as session, session.begin():
        await held._append_in(session, held.project(_events(120, 150)))
        migration = asyncio.create_task(audit_db.stack.migrate("audit"))
        await _until_it_waits(audit_db.dsn, migration)
        await asyncio.sleep(0.5)
        assert not migration.done()
        conn = await asyncpg.connect(audit_db.dsn)
        try:
            columns = await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'entry_time_day'::regclass"
                " AND attnum > 0 AND NOT attisdropped"
            )
        finally:
            await conn.close()
        assert {r[0] for r in columns} == {"day", "first_leaf"}
    await asyncio.wait_for(migration, 60)
    await audit_db.appender().append(_events(150, 200))
    made, stored = await _days(audit_db)
    assert len(made) == 3
    assert stored == made
    code, report = await _db_check(audit_db.url)
    assert code == 0, report
    assert (report["schema"], report["not_checked"]) == ("0015", {})

    await _dispose(audit_db)
    await audit_db.stack.downgrade("audit", "0013")
    await audit_db.appender().append(_events(200, 230))
    await _dispose(audit_db)
    await audit_db.stack.migrate("audit")
    await audit_db.appender().append(_events(230, 240))
    made, stored = await _days(audit_db)
    assert stored == made
    async with audit_db.sessions() as session:  # a window up to the second day, exact
        end = BASE_TIME + timedelta(days=2)
        flt = repo.EntryFilter(region_prefixes=("62",), time_to=end)
        found = await repo.find_entries(session, flt, after=None, limit=1000)
    assert [e.leaf_index for e, _ in found] == [
        n for n in range(240) if BASE_TIME + timedelta(hours=n * 11 % 72) < end
    ]


async def test_appends_cannot_commit_out_of_leaf_order(audit_db: AuditDb) -> None:
    """Why ``entry_time_day``'s trigger never sees two appends commit out of order (ADR 0011,
    3 Dec 2026): with an append of leaves 10-19 in flight, another transaction (even
    without the appender's advisory lock) can write neither the leaves after them (0007's
    trigger: the next entry it sees is 10) nor the same leaves (the primary key waits for
    the first, then refuses them). So a day's row is written by the appends in leaf order,
    and each upsert compares with the row as the last committed one left it."""
    appender = audit_db.appender()
    await appender.append(_events(0, 10))
    rows = appender.project(_events(20, 30))
    async with audit_db.sessions() as first, audit_db.sessions() as second:
        async with first.begin():
            await appender._append_in(first, appender.project(_events(10, 20)))
            with pytest.raises(asyncpg.CheckViolationError, match="the next entry is 10"):
                async with second.begin():
                    await repo.insert_entries(second, 20, rows)

            async def same_leaves() -> None:
                async with second.begin():
                    await repo.insert_entries(second, 10, rows[:10])

            waiting = asyncio.create_task(same_leaves())
            # Behind the first's uncommitted leaves: it waits on their lock (seen, not
            # supposed after a second, which on a loaded machine could pass before the
            # second had even sent its insert), and goes on waiting.
            await _until_it_waits(audit_db.dsn, waiting, "append of the same leaves")
            assert not waiting.done()
        with pytest.raises(
            asyncpg.UniqueViolationError, match=r"duplicate key .* \"pk_log_entry\""
        ):
            await asyncio.wait_for(waiting, 10)
    made, stored = await _days(audit_db)
    assert stored == made


async def _db_check(url: str) -> tuple[int, dict[str, Any]]:
    """``verify_cli --database-url``'s exit code and report."""
    out: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            out.append(text)

    vkey = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
    args = verify_cli._parse_args(["--database-url", url, "--vkey", vkey])
    code = await asyncio.to_thread(verify_cli.run, args, Out())  # type: ignore[arg-type]
    return code, json.loads("".join(out))


async def test_the_database_check_of_a_schema_not_yet_migrated_says_what_it_left_out(
    audit_db: AuditDb, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator mid-upgrade runs the check. At 0008 (before the tables its queries
    read) it does not run: exit 2, saying the schema's revision, the one it needs and to
    run the migrations first (before: a missing table, 'is it the audit log's
    database?'). At 0012 (0013's fill may be under way: the version is 0012 until it
    ends) it checks the log and leaves the table of days out, saying so; at 0013 it checks
    each day's first leaf (a tampered one is named) and leaves the last out; at head
    nothing is left out."""
    await _dispose(audit_db)
    await audit_db.stack.downgrade("audit", "0012")
    await audit_db.appender().append(_events(0, 40))
    code, report = await _db_check(audit_db.url)
    assert code == 0, report
    assert report["schema"] == "0012"
    assert list(report["not_checked"]) == ["checkpoint_cosignature", "entry_time_day"]
    assert "migration 0013 adds" in report["not_checked"]["entry_time_day"]
    assert report["columns_checked"] == 40

    await _dispose(audit_db)
    await audit_db.stack.migrate("audit", "0013")
    await as_superuser(audit_db, "UPDATE entry_time_day SET first_leaf = first_leaf + 1")
    code, report = await _db_check(audit_db.url)
    assert code == 1, report
    assert list(report["not_checked"]) == ["checkpoint_cosignature", "entry_time_day.last_leaf"]
    assert len(report["problems"]) == 3
    assert all("as its first" in p for p in report["problems"]), report["problems"]

    # 0014's fill lowers a first leaf too (least), as 0013's did.
    await _dispose(audit_db)
    await audit_db.stack.migrate("audit")
    code, report = await _db_check(audit_db.url)
    assert code == 0, report
    assert (report["schema"], report["not_checked"]) == ("0015", {})
    # The runtime login may not read alembic_version: judged by the tables, and said so.
    code, report = await _db_check(audit_db.runtime_url)
    assert code == 0, report
    assert report["schema"] == "0015 (judged by its tables)"
    assert list(report["not_checked"]) == ["schema"]

    await _dispose(audit_db)
    await audit_db.stack.downgrade("audit", "0008")
    vkey = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
    argv = ["--database-url", audit_db.url, "--vkey", vkey]
    capsys.readouterr()
    assert await asyncio.to_thread(verify_cli.main, argv) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert "the audit database's schema is at 0008; this check needs at least 0009" in said.err
    assert "run the audit service's migrations first" in said.err
    assert "UndefinedTable" not in said.err
