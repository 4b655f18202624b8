"""A record with the ce_id of an entry but other content is kept and reported, not dropped."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit.entry import RecordedEvent, canonical_bytes
from dibao_audit.merkle import leaf_hash
from dibao_audit.models import LogEntry
from dibao_audit.testing import AuditDb, recorded_event

pytestmark = [pytest.mark.postgres]


def _withdrawn(i: int, offset: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=offset, key="hh-1")


def _other_content(event: RecordedEvent, offset: int) -> RecordedEvent:
    """The same ce_id (headers unchanged), another application, a later offset."""
    message = intake_pb2.ApplicationWithdrawn.FromString(event.payload)
    message.application_id = "app-someone-elses"
    return dataclasses.replace(event, offset=offset, payload=message.SerializeToString())


async def _anomalies(db: AuditDb) -> list[audit_pb2.AnomalyDetected]:
    async with db.owner.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT payload FROM outbox_message "
                "WHERE ce_type = 'dibao.audit.AnomalyDetected.v1' ORDER BY id"
            )
        )
        return [audit_pb2.AnomalyDetected.FromString(bytes(r[0])) for r in rows]


async def test_an_event_id_with_other_content_is_kept_and_reported(audit_db: AuditDb) -> None:
    """The log's ce_id is its inbox: a record whose id it holds was skipped as a redelivery
    whatever it held, so a second version of an event (a faulty producer, or someone
    writing to the topic) left no trace at all. The same event sent again (a new offset,
    the same content) is still appended once."""
    events = [_withdrawn(i, offset=i) for i in range(6)]
    appender = audit_db.appender()
    await appender.append(events[:4])
    second = _other_content(events[2], offset=50)
    result = await appender.append(
        [
            events[4],
            second,
            dataclasses.replace(events[2], offset=51),  # sent again: the same event
            dataclasses.replace(second, offset=52),  # the second version sent again
        ]
    )
    assert (result.appended, result.duplicates) == (2, 2)
    assert result.reused_ids == 1
    # Inside one batch too, and once more after a restart (nothing in memory).
    in_batch = _other_content(events[5], offset=60)
    result = await audit_db.appender().append([events[5], in_batch, second])
    assert (result.appended, result.duplicates, result.reused_ids) == (2, 1, 1)
    assert result.tree_size == 8

    async with audit_db.sessions() as session:
        entries = list(await session.scalars(sa.select(LogEntry).order_by(LogEntry.leaf_index)))
        stored = await repo.subtree_hashes(session, {(0, i) for i in range(8)})
    kept = [*events[:5], second, events[5], in_batch]
    assert [stored[(0, i)] for i in range(8)] == [leaf_hash(canonical_bytes(e)) for e in kept]
    assert entries[5].payload == second.payload
    assert entries[5].application_id == "app-someone-elses"
    assert str(entries[5].ce_id) != str(entries[2].ce_id)
    assert dict(second.headers)["ce_id"] == str(entries[2].ce_id).encode()  # in the leaf

    anomalies = await _anomalies(audit_db)
    assert [(a.rule, list(a.event_ids), list(a.log_indices)) for a in anomalies] == [
        ("event_id_reused", [str(entries[2].ce_id)], [2, 5]),
        ("event_id_reused", [str(entries[6].ce_id)], [6, 7]),
    ]
    assert anomalies[0].severity == audit_pb2.SEVERITY_WARNING
    assert anomalies[0].region.code == "000000000000"
    assert not anomalies[0].household_id  # the log's own: every auditor reads it
