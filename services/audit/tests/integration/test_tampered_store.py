"""The log refuses to sign a tree that does not extend its last checkpoint."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy as sa

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.entry import RecordedEvent
from dibao_audit.merkle import verify_consistency
from dibao_audit.testing import AuditDb, recorded_event

pytestmark = [pytest.mark.postgres]


def _withdrawn(i: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=i, key="hh-1")


async def test_a_frontier_changed_behind_the_logs_back_is_not_signed_over(
    audit_db: AuditDb,
) -> None:
    """The appender rebuilds its frontier from merkle_node after a restart. With one of
    those subtrees changed (only a superuser gets past the trigger), it signed roots that
    extend no earlier checkpoint: a fork, signed by the log itself. It now appends the
    entries and refuses the checkpoint (logged) until the stored tree extends the last one."""
    events = [_withdrawn(i) for i in range(60)]
    await audit_db.appender(checkpoint_every=40).append(events[:40])
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        # At 40 the frontier is [0, 32) and [32, 40): change the second.
        await conn.execute(
            "UPDATE merkle_node SET hash = sha256(hash) WHERE level = 3 AND index = 4"
        )
    finally:
        await conn.close()
    restarted = audit_db.appender(checkpoint_every=10)  # a new process: frontier from the table
    result = await restarted.append(events[40:50])
    assert (result.appended, result.tree_size) == (10, 50)
    assert result.checkpoint_size is None
    assert await restarted.checkpoint_if_grown() is None
    async with audit_db.sessions() as session:
        sizes = [c.tree_size for c in await repo.checkpoints_up_to(session, 100)]
        assert sizes == [40]
        outbox = await session.scalar(sa.text("SELECT count(*) FROM outbox_message"))
    assert outbox == 1  # the announcement of 40 alone


async def test_an_intact_tree_is_signed_and_extends_the_last_checkpoint(
    audit_db: AuditDb,
) -> None:
    events = [_withdrawn(i) for i in range(60)]
    await audit_db.appender(checkpoint_every=40).append(events[:40])
    restarted = audit_db.appender(checkpoint_every=10)
    assert (await restarted.append(events[40:50])).checkpoint_size == 50
    await restarted.append(events[50:53])
    assert await restarted.checkpoint_if_grown() == 53
    async with audit_db.sessions() as session:
        cps = await repo.checkpoints_up_to(session, 100)
        assert [c.tree_size for c in cps] == [40, 50, 53]
        for old, new in ((cps[0], cps[1]), (cps[1], cps[2])):
            proof = await service.consistency_proof(session, old.tree_size, new.tree_size)
            verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
