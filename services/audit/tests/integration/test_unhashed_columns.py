"""What no hash covers (query columns, decoded views, appended_at) is checked against what
does: ``verify_cli --database-url`` makes every column and view again from the record."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import verify_cli
from dibao_audit.appender import LogAppender
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.entry import RecordedEvent
from dibao_audit.projector import EntryProjector
from dibao_audit.testing import TEST_ORIGIN, TEST_SEED, AuditDb, as_superuser, recorded_event

pytestmark = [pytest.mark.postgres]

LANZHOU = "620102001001"
VKEY = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()


def _withdrawn(i: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id=f"hh-{i % 3}",
        region=types_pb2.RegionCode(code=LANZHOU),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=i, key=f"hh-{i % 3}", actor="clerk-1")


async def _check(db: AuditDb, *extra: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    args = verify_cli._parse_args(["--database-url", db.url, "--vkey", VKEY, *extra])
    code = await asyncio.to_thread(verify_cli.run, args, out)
    return code, json.loads(out.getvalue())


async def _append(db: AuditDb, lo: int, hi: int) -> None:
    """Entries [lo, hi) in batches of 10: checkpoints at 10 and 20."""
    appender = db.appender(checkpoint_every=10)
    for at in range(lo, hi, 10):
        await appender.append([_withdrawn(i) for i in range(at, min(hi, at + 10))])


async def test_an_intact_log_passes_the_database_check(audit_db: AuditDb) -> None:
    await _append(audit_db, 0, 25)
    assert await EntryProjector(audit_db.sessions).catch_up() == 25
    code, report = await _check(audit_db)
    assert code == 0, report
    assert report["log_size"] == 25
    assert (report["columns_checked"], report["views_checked"]) == (25, 25)
    assert report["appended_at_checked"] == 25
    assert report["tree_size"] == 20


async def test_edited_columns_a_false_view_and_a_moved_appended_at_are_reported(
    audit_db: AuditDb,
) -> None:
    """Every proof still verifies after these edits: the columns, views and appended_at are
    hashed by nothing. The region edit hides entry 4 from its region's auditors; the
    runtime role itself writes the next view (it may: it is the projector) with other
    content."""
    await _append(audit_db, 0, 25)
    assert await EntryProjector(audit_db.sessions).catch_up() == 25
    await _append(audit_db, 25, 27)
    await as_superuser(
        audit_db,
        "UPDATE log_entry SET region = '110101001001' WHERE leaf_index = 4",
        "UPDATE log_entry SET household_id = 'hh-other', actor = NULL WHERE leaf_index = 7",
        "UPDATE log_entry SET ce_time = ce_time + interval '1 day' WHERE leaf_index = 9",
        "UPDATE log_entry SET appended_at = appended_at + interval '1 day' WHERE leaf_index = 12",
    )
    conn = await asyncpg.connect(audit_db.runtime_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "INSERT INTO entry_view (leaf_index, decoded) VALUES "
            """(25, '{"household_id": "hh-1", "application_id": "app-never"}')"""
        )
    finally:
        await conn.close()
    code, report = await _check(audit_db)
    assert code == 1
    assert report["first_bad_index"] == 4
    assert report["contradicted_columns"] == {
        "region": 1,
        "household_id": 1,
        "actor": 1,
        "ce_time": 1,
    }
    problems = "\n".join(report["problems"])
    assert "entry 4: stored region '110101001001' is not its record's ('620102001001')" in problems
    assert "entry 7: stored household_id 'hh-other'" in problems
    assert "entry 9: stored ce_time" in problems
    assert "entry 12: appended_at" in problems
    assert "checkpoint 20" in problems
    assert "entry 25: the stored decoded view is not its payload's" in problems
    assert report["suspect_range"] is None  # the tree itself is intact


def _search(i: int) -> RecordedEvent:
    """A search's access record naming two counties (``PersonalDataAccessed.regions``)."""
    message = access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code=COUNTIES[0]),
        regions=[types_pb2.RegionCode(code=c) for c in COUNTIES],
        operation="GET /households",
    )
    return recorded_event(message, offset=i, key="", actor="clerk-1")


COUNTIES = ("620102000000", "620103000000")


async def test_the_regions_of_entries_logged_before_the_column_are_filled_from_the_record(
    audit_db: AuditDb,
) -> None:
    """Migration 0008 fills ``regions`` of the entries already logged from their payloads,
    as the append does: the database check then finds nothing contradicted, and the log
    is append-only again afterwards."""
    await audit_db.appender(checkpoint_every=10).append([_withdrawn(0), _search(1), _withdrawn(2)])
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.downgrade("audit", "0007")
    await audit_db.stack.migrate("audit")
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        rows = await conn.fetch("SELECT leaf_index, regions FROM log_entry ORDER BY leaf_index")
        assert [(r[0], r[1]) for r in rows] == [(0, None), (1, list(COUNTIES)), (2, None)]
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE log_entry SET regions = NULL WHERE leaf_index = 1")
    finally:
        await conn.close()
    code, report = await _check(audit_db)
    assert code == 0, report
    assert report["columns_checked"] == 3


async def test_an_edit_of_a_searchs_regions_is_reported(audit_db: AuditDb) -> None:
    await audit_db.appender(checkpoint_every=10).append([_withdrawn(0), _search(1)])
    await as_superuser(
        audit_db, "UPDATE log_entry SET regions = '{620102000000}' WHERE leaf_index = 1"
    )
    code, report = await _check(audit_db)
    assert code == 1
    assert report["contradicted_columns"] == {"regions": 1}
    assert report["first_bad_index"] == 1


async def test_a_checkpoint_kept_from_before_shows_a_rolled_back_database(
    audit_db: AuditDb, tmp_path: Path
) -> None:
    """A database put back to an older state (a backup restored, or the tail deleted by a
    superuser: entries from 10 on, their tree nodes and checkpoint 20) is a smaller log
    that proves itself: only a checkpoint kept from before shows it. ``--checkpoint`` was
    read and then ignored with ``--database-url`` (exit 0); it is checked as with an
    export: a kept checkpoint larger than the log, or whose root the entries do not give,
    fails; one they give is counted."""
    await _append(audit_db, 0, 25)
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        rows = await conn.fetch("SELECT tree_size, signed_note FROM checkpoint")
        notes = {int(r[0]): str(r[1]) for r in rows}
    finally:
        await conn.close()
    (tmp_path / "cp10").write_text(notes[10])
    (tmp_path / "cp20").write_text(notes[20])
    code, report = await _check(audit_db, "--checkpoint", str(tmp_path / "cp10"))
    assert code == 0, report
    assert report["kept_checkpoints_checked"] == 1
    await as_superuser(
        audit_db,
        "DELETE FROM entry_view WHERE leaf_index >= 10",
        "DELETE FROM log_entry WHERE leaf_index >= 10",
        "DELETE FROM merkle_node WHERE (index + 1) * (1::bigint << level) > 10",
        "DELETE FROM checkpoint WHERE tree_size > 10",
    )
    # Each day's last leaf (migration 0014) still names the deleted tail: named.
    code, report = await _check(audit_db)
    assert code == 1, report
    assert report["problems"], report
    assert all(
        p.startswith("day ") and "as its last, its entries' last is 9" in p
        for p in report["problems"]
    ), report["problems"]
    await as_superuser(  # as a careful superuser would make them again
        audit_db,
        "UPDATE entry_time_day d SET last_leaf = (SELECT max(leaf_index) FROM log_entry e"
        " WHERE (e.ce_time AT TIME ZONE 'UTC')::date = d.day)",
    )
    code, report = await _check(audit_db)
    assert code == 0, report  # the smaller log proves itself
    code, report = await _check(
        audit_db, "--checkpoint", str(tmp_path / "cp10"), "--checkpoint", str(tmp_path / "cp20")
    )
    assert code == 1, report
    assert report["kept_checkpoints_checked"] == 1
    assert report["problems"] == [
        "the log holds 10 entries, fewer than the checkpoint you kept (20): it was rolled "
        "back or truncated"
    ]


async def _announce(db: AuditDb, appender: LogAppender, offset: int) -> int:
    """Append the checkpoint announcements the log's outbox holds and it has not logged
    yet, as the consumer would once the relay published them; the next offset."""
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = await conn.fetch(
            "SELECT payload FROM outbox_message WHERE topic = 'dibao.audit.v1' ORDER BY id"
        )
    finally:
        await conn.close()
    events = []
    for row in rows[offset:]:
        message = audit_pb2.CheckpointPublished.FromString(bytes(row[0]))
        events.append(recorded_event(message, offset=offset, key=TEST_ORIGIN))
        offset += 1
    await appender.append(events)
    return offset


async def test_checkpoints_deleted_from_the_table_are_named_by_the_logs_own_announcements(
    audit_db: AuditDb,
) -> None:
    """Each signed checkpoint is announced (``CheckpointPublished``) and the announcement
    is appended to the log. A superuser deleting the later checkpoints left a smaller set
    that proved itself (exit 0 unless the auditor kept one); the entries announcing them
    now name them, and so do they a checkpoint deleted in the middle."""
    appender = audit_db.appender(checkpoint_every=10)
    for at in (0, 10):
        await appender.append([_withdrawn(i) for i in range(at, at + 10)])
    announced = await _announce(audit_db, appender, 0)  # entries 20, 21: checkpoints 10, 20
    await appender.append([_withdrawn(i) for i in range(22, 32)])  # checkpoint 32
    assert await _announce(audit_db, appender, announced) == 3  # entry 32
    code, report = await _check(audit_db)
    assert code == 0, report
    assert report["checkpoint_announcements_checked"] == 3

    await as_superuser(audit_db, "DELETE FROM checkpoint WHERE tree_size = 20")
    code, report = await _check(audit_db)
    assert code == 1, report
    assert report["problems"] == [
        "entry 21 announces checkpoint 20, which is not stored: it was deleted"
    ]

    await as_superuser(audit_db, "DELETE FROM checkpoint WHERE tree_size = 32")
    code, report = await _check(audit_db)
    assert code == 1, report
    assert report["tree_size"] == 10
    assert report["problems"] == [
        "the latest stored checkpoint (10) is older than checkpoint 32, which the log "
        "announced at entry 32: 2 announced checkpoint(s) after it were deleted"
    ]


async def test_an_appended_at_that_goes_back_along_the_log_is_reported(
    audit_db: AuditDb,
) -> None:
    """One appender stamps its batches in log order; several may go back by a lock wait,
    so a decrease within ``--clock-skew`` passes. Entries 10-14 moved 30 s later, all
    still within the signed times of checkpoints 10 and 20 (20 signed 60 s later), passed
    every check: entry 15, appended after them, is now 30 s before them. The database check
    reads every entry; --url's listing goes through the same bounds (``AppendedAtBounds``)."""
    shift = [timedelta(0)]
    appender = LogAppender(
        audit_db.sessions,
        CheckpointSigner(TEST_SEED, TEST_ORIGIN),
        checkpoint_every=10,
        now=lambda: datetime.now(UTC) + shift[0],
    )
    await appender.append([_withdrawn(i) for i in range(10)])
    shift[0] = timedelta(seconds=60)
    await appender.append([_withdrawn(i) for i in range(10, 20)])
    await as_superuser(
        audit_db,
        "UPDATE log_entry SET appended_at = appended_at + interval '3 seconds' "
        "WHERE leaf_index = 5",
    )
    code, report = await _check(audit_db)
    assert code == 0, report  # 3 s back at entry 6: within the skew
    await as_superuser(
        audit_db,
        "UPDATE log_entry SET appended_at = appended_at + interval '30 seconds' "
        "WHERE leaf_index BETWEEN 10 AND 14",
    )
    code, report = await _check(audit_db)
    assert code == 1, report
    assert report["first_bad_index"] == 15
    (problem,) = report["problems"]
    assert problem.startswith("entry 15: appended_at ")
    assert "is more than 5 s before entry 10's" in problem  # 10-14: one batch, one time
