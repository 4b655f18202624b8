"""Timeline entries written a fetch at a time: known applications only (the others
counted), each event once."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.message import Message
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dibao.assessment.v1 import events_pb2 as assessment
from dibao_common.clock import FrozenClock
from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.outbox import build_envelope
from dibao_intake.adapters.records import TimelineRecord
from dibao_intake.adapters.repositories import applications as repo
from dibao_intake.service_layer import timeline
from dibao_intake.service_layer.timeline import timeline_batch_handler
from dibao_intake.testing import IntakeClient

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OPENED = "dibao.assessment.CaseOpened.v1"


def _entry(summary: str) -> TimelineRecord:
    return TimelineRecord(
        ce_id=uuid.uuid4(),
        ce_type="dibao.assessment.v1.CaseOpened",
        ce_source="dibao/assessment",
        occurred_at=AT,
        actor="someone-else",
        summary=summary,
        details={"case_id": summary},
    )


async def test_entries_of_a_fetch_are_written_with_one_statement(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    response = await intake.submit(await intake.complete_application_body(household))
    known = uuid.UUID(response.json()["id"])
    first, second, foreign = _entry("case-1"), _entry("case-2"), _entry("elsewhere")
    async with AsyncSession(intake_engine) as session, session.begin():
        written = await repo.add_timeline_entries_if_known(
            session,
            [(known, first), (uuid.uuid4(), foreign), (known, second), (known, first)],
            at=AT,
        )
        assert written == 2  # not the unknown application's, not the repeated event
        assert await repo.add_timeline_entries_if_known(session, [], at=AT) == 0
    async with AsyncSession(intake_engine) as session, session.begin():
        assert await repo.add_timeline_entries_if_known(session, [(known, first)], at=AT) == 0
        assert await repo.add_timeline_entry_if_known(session, known, second, at=AT) is False
    async with intake_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT summary, details FROM timeline_entry WHERE ce_id = ANY(:ids)"),
            {"ids": [first.ce_id, second.ce_id, foreign.ce_id]},
        )
        found = sorted((r.summary, r.details["case_id"]) for r in rows)
    assert found == [("case-1", "case-1"), ("case-2", "case-2")]


async def test_an_event_about_an_unknown_application_is_counted_not_silently_skipped(
    intake: IntakeClient, intake_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The event about an application intake does not have is counted once and logged
    with its ids; the known one's, and the same events seen again, are not.

    The counter is the process's: the package's app (``intake_app``) runs its timeline
    consumer in this process and event loop, and counts and logs under the same label
    each CaseOpened it finds unknown (``test_timeline_groups`` publishes some on every
    partition), at any await of this handler. So what the counter gains is matched with
    the warnings logged meanwhile, whoever logged them (each is logged, then counted,
    with no await between), and this handler's are told by their event ids."""
    household = await intake.register()
    response = await intake.submit(await intake.complete_application_body(household))
    known = response.json()["id"]
    stranger = str(uuid.uuid4())

    def opened(application_id: str, case_id: str) -> tuple[Envelope, Message]:
        message = assessment.CaseOpened(
            household_id=household.id, application_id=application_id, case_id=case_id
        )
        envelope = build_envelope(message, key=household.id, source="dibao/assessment")
        return envelope, message

    def unknown() -> float:
        return (
            REGISTRY.get_sample_value(
                "dibao_intake_timeline_unknown_applications_total", {"ce_type": OPENED}
            )
            or 0.0
        )

    def noted() -> list[dict[str, Any]]:
        """The timeline handlers' warnings about an unknown application's CaseOpened."""
        return [
            r.msg
            for r in caplog.records
            if isinstance(r.msg, dict)
            and r.msg.get("event") == "event about an unknown application"
            and r.msg.get("ce_type") == OPENED
        ]

    handle = timeline_batch_handler(FrozenClock(AT))
    events = [opened(known, "case-known"), opened(stranger, "case-stranger")]
    ours = {str(e.ce_id) for e, _ in events}

    async def counted_and_noted(batch: list[tuple[Envelope, Message]]) -> list[tuple[str, str]]:
        """``batch`` handled: this handler's warnings (application and event ids), once
        the counter is found to have gained one for each warning logged meanwhile."""
        before, already = unknown(), len(noted())
        async with AsyncSession(intake_engine) as session, session.begin():
            await handle(session, batch)
        meanwhile = noted()[already:]
        assert unknown() - before == len(meanwhile)
        return [(n["application_id"], n["ce_id"]) for n in meanwhile if n["ce_id"] in ours]

    with caplog.at_level(logging.WARNING, logger=timeline.__name__):
        assert await counted_and_noted(events) == [(stranger, str(events[1][0].ce_id))]
        # Seen again (its entry there now, nothing unknown): nothing more to count.
        assert await counted_and_noted(events[:1]) == []
    async with intake_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT application_id FROM timeline_entry WHERE ce_id = ANY(:ids)"),
            {"ids": [e.ce_id for e, _ in events]},
        )
        assert [str(r.application_id) for r in rows] == [known]
