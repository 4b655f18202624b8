"""``python -m dibao_audit.repair_tree`` rebuilds a damaged merkle_node from the entries,
checked against the signed checkpoints, and writes nothing when the entries disagree."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import asyncpg
import pytest

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repair_tree
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.entry import RecordedEvent
from dibao_audit.testing import TEST_ORIGIN, TEST_SEED, AuditDb, as_superuser, recorded_event

pytestmark = [pytest.mark.postgres]

VKEY = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()


def _withdrawn(i: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=i, key="hh-1")


async def _repair(db: AuditDb, *extra: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    args = repair_tree._parse_args(["--database-url", db.url, "--vkey", VKEY, *extra])
    code = await asyncio.to_thread(repair_tree.run, args, out)
    return code, json.loads(out.getvalue())


async def _nodes(db: AuditDb) -> list[tuple[int, int, bytes]]:
    conn = await asyncpg.connect(db.dsn)
    try:
        rows = await conn.fetch("SELECT level, index, hash FROM merkle_node ORDER BY 1, 2")
    finally:
        await conn.close()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


async def test_a_damaged_tree_is_rebuilt_and_the_log_signs_again(audit_db: AuditDb) -> None:
    """A subtree of the frontier changed and one deleted: the restarted appender appends but
    refuses every checkpoint. The repair rewrites what differs (the changed node and
    those the refused batches built on it), inserts the missing one, and the same appender
    signs again at its next batch, no restart."""
    events = [_withdrawn(i) for i in range(70)]
    await audit_db.appender(checkpoint_every=40).append(events[:40])
    intact = await _nodes(audit_db)
    await as_superuser(
        audit_db,
        "UPDATE merkle_node SET hash = sha256(hash) WHERE level = 3 AND index = 4",
        "DELETE FROM merkle_node WHERE level = 1 AND index = 3",
    )
    code, report = await _repair(audit_db, "--dry-run")
    assert code == 0, report
    assert (report["rewritten"], report["inserted"], report["written"]) == (
        [[3, 4]],
        [[1, 3]],
        False,
    )
    restarted = audit_db.appender(checkpoint_every=10)
    assert (await restarted.append(events[40:50])).checkpoint_size is None  # refused

    code, report = await _repair(audit_db)
    assert code == 0, report
    assert report["written"] is True
    assert report["latest_checkpoint"] == 40
    assert report["unsigned_entries"] == 10
    assert [3, 4] in report["rewritten"]
    assert [4, 2] in report["rewritten"]  # [32, 48), built on the changed node at 48
    assert report["inserted"] == [[1, 3]]
    assert report["deleted"] == []
    assert {n for n in await _nodes(audit_db) if n[:2] in {k[:2] for k in intact}} == set(intact)

    assert (await restarted.append(events[50:60])).checkpoint_size == 60
    code, report = await _repair(audit_db)
    assert code == 0
    assert (report["rewritten_count"], report["inserted_count"], report["written"]) == (
        0,
        0,
        False,
    )


async def test_nothing_is_written_when_the_entries_do_not_give_the_signed_root(
    audit_db: AuditDb,
) -> None:
    """An entry's content changed: the rebuilt tree would not be the signed one, so the
    damage is not the tree's. The repair says which checkpoint disagrees, exits 1 and
    writes nothing."""
    await audit_db.appender(checkpoint_every=16).append([_withdrawn(i) for i in range(20)])
    await as_superuser(
        audit_db,
        "UPDATE merkle_node SET hash = sha256(hash) WHERE level = 4 AND index = 0",
        "UPDATE log_entry SET payload = payload || '\\x00'::bytea WHERE leaf_index = 3",
    )
    before = await _nodes(audit_db)
    code, report = await _repair(audit_db)
    assert code == 1
    assert report["written"] is False
    assert "the entries do not give the signed root of checkpoint 20" in report["refused"][0]
    assert await _nodes(audit_db) == before


async def test_an_entry_missing_or_a_node_ahead(audit_db: AuditDb) -> None:
    """A node ahead of the log (it blocked the next append's COPY) is deleted; a missing
    entry cannot be rebuilt from, and nothing is written."""
    await audit_db.appender(checkpoint_every=8).append([_withdrawn(i) for i in range(8)])
    await as_superuser(
        audit_db, "INSERT INTO merkle_node (level, index, hash) VALUES (0, 9, sha256('x'))"
    )
    code, report = await _repair(audit_db)
    assert code == 0, report
    assert report["deleted"] == [[0, 9]]
    assert report["written"] is True
    assert (await audit_db.appender().append([_withdrawn(8)])).tree_size == 9
    await as_superuser(audit_db, "DELETE FROM log_entry WHERE leaf_index = 2")
    before = await _nodes(audit_db)
    code, report = await _repair(audit_db)
    assert code == 1
    assert report["refused"] == ["entry 2 is missing: the log cannot be rebuilt"]
    assert await _nodes(audit_db) == before
