"""The database check verifies the log's B-tree indexes against their tables (amcheck,
migration 0012): an index that lost entries makes a listing through it silently miss them,
and no hash covers an index."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import verify_cli
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.dbcheck import LOG_TABLES, check_database
from dibao_audit.entry import RecordedEvent
from dibao_audit.projector import EntryProjector
from dibao_audit.testing import TEST_ORIGIN, TEST_SEED, AuditDb, as_superuser, recorded_event

pytestmark = [pytest.mark.postgres]

VKEY = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _withdrawn(i: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id=f"hh-{i % 3}",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(
        message, offset=i, key=f"hh-{i % 3}", actor="clerk-1", at=DAY + timedelta(hours=i)
    )


async def _append(db: AuditDb, lo: int, hi: int) -> None:
    appender = db.appender(checkpoint_every=10)
    for at in range(lo, hi, 10):
        await appender.append([_withdrawn(i) for i in range(at, min(hi, at + 10))])


async def _check(url: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    args = verify_cli._parse_args(["--database-url", url, "--vkey", VKEY])
    code = await asyncio.to_thread(verify_cli.run, args, out)
    return code, json.loads(out.getvalue())


async def _btree_indexes(db: AuditDb) -> set[str]:
    """The B-tree indexes of the log's tables, as the catalog lists them."""
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY($1::text[]) AND indexdef LIKE '% USING btree %'",
            list(LOG_TABLES),
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}


async def test_every_index_of_a_healthy_log_is_checked_and_passes(audit_db: AuditDb) -> None:
    await _append(audit_db, 0, 25)
    assert await EntryProjector(audit_db.sessions).catch_up() == 25
    code, report = await _check(audit_db.url)
    assert code == 0, report
    assert report["index_check"] == "bt_index_check, heapallindexed"
    assert report["indexes_not_checked"] == {}
    indexes = await _btree_indexes(audit_db)
    # The scope indexes (0009), the hand-overs' (0010), the primary keys of all five.
    assert {"ix_log_entry_time", "ix_log_entry_region_12", "ix_checkpoint_handover"} <= indexes
    assert {"pk_entry_view", "pk_entry_region_prefix", "pk_merkle_node"} <= indexes
    assert report["indexes_checked"] == len(indexes)
    checked = await check_database(audit_db.url, CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier)
    assert set(checked.indexes_checked) == indexes


async def test_an_index_missing_entries_is_reported(audit_db: AuditDb) -> None:
    """Entries appended while ``ix_log_entry_time`` was not maintained (a superuser's
    catalog edit: the controlled stand-in for a lost index page) are in the table, not in
    the index: a time-window listing through it misses them, every proof still verifies,
    and only the index check finds it (exit 1, naming the index)."""
    await _append(audit_db, 0, 20)
    not_ready = (
        "UPDATE pg_index SET indisready = {} WHERE indexrelid = 'ix_log_entry_time'::regclass"
    )
    await as_superuser(audit_db, not_ready.format("false"))
    await _append(audit_db, 20, 30)
    await as_superuser(audit_db, not_ready.format("true"))
    since = DAY + timedelta(hours=15)
    # statement_cache_size=0: each count is planned under the settings of its time.
    conn = await asyncpg.connect(audit_db.dsn, statement_cache_size=0)
    try:
        count = "SELECT count(*) FROM log_entry WHERE ce_time >= $1"
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        assert "ix_log_entry_time" in await conn.fetchval(f"EXPLAIN (FORMAT JSON) {count}", since)
        assert await conn.fetchval(count, since) == 5
        await conn.execute("RESET ALL")
        await conn.execute("SET enable_indexscan = off")
        await conn.execute("SET enable_indexonlyscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        assert "Seq Scan" in await conn.fetchval(f"EXPLAIN (FORMAT JSON) {count}", since)
        assert await conn.fetchval(count, since) == 15
    finally:
        await conn.close()

    code, report = await _check(audit_db.url)
    assert code == 1, report
    assert report["index_check"] == "bt_index_check, heapallindexed"
    problems = [p for p in report["problems"] if p.startswith("index ")]
    assert len(problems) == 1, report["problems"]
    assert problems[0].startswith("index ix_log_entry_time of log_entry is corrupt:")
    assert "lacks matching index tuple" in problems[0]
    assert report["problems"] == problems  # the entries, leaves and roots are intact
    assert report["indexes_checked"] == len(await _btree_indexes(audit_db))


async def test_without_amcheck_or_the_right_to_run_it_the_report_says_so(
    audit_db: AuditDb,
) -> None:
    """The runtime role may read the log but not execute amcheck; without the extension
    nobody can: the rest of the check runs, and the report says the indexes were not
    checked and why. Down to 0011 and up again (the migration creates it), it runs."""
    await _append(audit_db, 0, 12)
    code, report = await _check(audit_db.runtime_url)
    assert code == 0, report
    assert report["index_check"].startswith("unavailable: this login may not execute ")
    assert "bt_index_check(regclass,boolean)" in report["index_check"]
    assert report["indexes_checked"] == 0
    assert report["columns_checked"] == 12

    # Down to 0011 the migration drops the extension; up again it creates it.
    await audit_db.stack.downgrade("audit", "0011")
    amcheck = "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'"
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        assert await conn.fetchval(amcheck) == 0
        await audit_db.stack.migrate("audit", "head")
        assert await conn.fetchval(amcheck) == 1
    finally:
        await conn.close()
    code, report = await _check(audit_db.url)
    assert code == 0, report
    assert report["index_check"] == "bt_index_check, heapallindexed"
    assert report["indexes_checked"] == len(await _btree_indexes(audit_db))

    await as_superuser(audit_db, "DROP EXTENSION amcheck")
    code, report = await _check(audit_db.url)
    assert code == 0, report
    assert report["index_check"].startswith(
        "unavailable: the amcheck extension is not created in this database"
    )
    assert report["indexes_checked"] == 0
