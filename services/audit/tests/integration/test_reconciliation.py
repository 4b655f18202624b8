"""Reconciliation the log checks from intake's events alone: every acceptance follows its
submission (published in one transaction, in that order, on one topic and key)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.entry import RecordedEvent
from dibao_audit.testing import AuditDb, published_anomalies, recorded_event

pytestmark = [pytest.mark.postgres]

VILLAGE = "620123101203"


def _pair(household: str, offset: int = 0) -> tuple[RecordedEvent, RecordedEvent]:
    """An application's ApplicationSubmitted and ApplicationAccepted, as intake's relay
    puts them on its topic (the household the key)."""
    application = str(uuid.uuid4())
    region = types_pb2.RegionCode(code=VILLAGE)
    submitted = intake_pb2.ApplicationSubmitted(
        household_id=household, region=region, application_id=application
    )
    accepted = intake_pb2.ApplicationAccepted(
        household_id=household, region=region, application_id=application
    )
    return (
        recorded_event(submitted, offset=offset, key=household),
        recorded_event(accepted, offset=offset + 1, key=household),
    )


def _ce_id(event: RecordedEvent) -> str:
    return dict(event.headers)["ce_id"].decode()


async def test_an_acceptance_after_its_submission_is_no_anomaly(audit_db: AuditDb) -> None:
    """Submissions and acceptances as intake publishes them, in one batch or two, an
    acceptance delivered again: nothing to report."""
    household = str(uuid.uuid4())
    appender = audit_db.appender()
    submitted, accepted = _pair(household)
    await appender.append([submitted])
    await appender.append([accepted])
    await appender.append(list(_pair(household, offset=2)))
    await appender.append([dataclasses.replace(accepted, offset=9)])
    assert await published_anomalies(audit_db) == []


async def test_an_acceptance_without_its_submission_is_reported_about_its_application(
    audit_db: AuditDb,
) -> None:
    """An acceptance the log holds no submission of before it (none at all; one after it
    in the same batch; one on another key, where the order is no longer the topic's) is
    reported once, about the application: subject ``application``, its household (the
    Kafka key) and region, the acceptance's id and index."""
    household = str(uuid.uuid4())
    appender = audit_db.appender()
    _, alone = _pair(household)
    late_submitted, late_accepted = _pair(household, offset=2)
    keyed_submitted, keyed_accepted = _pair(household, offset=4)
    keyed_submitted = dataclasses.replace(keyed_submitted, key=b"another-key")
    await appender.append([alone])  # entry 0
    await appender.append([late_accepted, late_submitted])  # entries 1, 2
    await appender.append([keyed_submitted, keyed_accepted])  # entries 3, 4
    await appender.append([dataclasses.replace(alone, offset=9)])  # sent again: nothing

    found = await published_anomalies(audit_db)
    assert [(list(a.event_ids), list(a.log_indices)) for _, _, a in found] == [
        ([_ce_id(alone)], [0]),
        ([_ce_id(late_accepted)], [1]),
        ([_ce_id(keyed_accepted)], [4]),
    ]
    key, subject, anomaly = found[0]
    application = intake_pb2.ApplicationAccepted.FromString(alone.payload).application_id
    assert anomaly.rule == "accepted_without_submission"
    assert anomaly.severity == audit_pb2.SEVERITY_WARNING
    assert (anomaly.subject.kind, anomaly.subject.id) == ("application", application)
    assert (anomaly.household_id, anomaly.region.code) == (household, VILLAGE)
    assert (key, subject) == (household, f"application/{application}")
