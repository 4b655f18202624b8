"""The timeline of an application, built from every service's events about it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.assessment.v1 import events_pb2 as assessment
from dibao.audit.v1 import events_pb2 as audit
from dibao_common.auth import Role
from dibao_common.messaging.envelope import topic_of
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, wait_for_events

APPROVED = "dibao.assessment.BenefitApproved.v1"

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _publish(stack: TestStack, message: Message, *, key: str, source: str) -> None:
    """Another service's event, as its relay would put it on its topic."""
    envelope = build_envelope(message, key=key, source=source, actor="someone-else")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_of(message),
            envelope.payload,
            key=key.encode(),
            headers=envelope.to_headers(),
        )
    finally:
        await producer.stop()


async def _timeline(intake: IntakeClient, application_id: str) -> list[dict[str, Any]]:
    response = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(Role.AUDITOR, ["62"])
    )
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["timeline"]
    return entries


async def test_the_timeline_gathers_intake_assessment_and_audit_events(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    response = await intake.submit(await intake.complete_application_body(household))
    application_id = response.json()["id"]

    async def has(count: int) -> bool:
        return len(await _timeline(intake, application_id)) >= count

    assert await has(2), "intake's own events are in the timeline at once"
    await _publish(
        intake_stack,
        assessment.CaseOpened(
            household_id=household.id, application_id=application_id, case_id="case-1"
        ),
        key=household.id,
        source="dibao/assessment",
    )
    await _publish(
        intake_stack,
        audit.AnomalyDetected(
            household_id=household.id,
            rule="deadline_overrun",
            severity=audit.SEVERITY_WARNING,
            subject=audit.Subject(kind="application", id=application_id),
            details="investigation not started in 3 working days",
        ),
        key=household.id,
        source="dibao/audit",
    )
    await eventually(lambda: has(4), what="other services' events in the timeline")
    entries = await _timeline(intake, application_id)
    assert [e["type"] for e in entries] == [
        "dibao.intake.ApplicationSubmitted.v1",
        "dibao.intake.ApplicationAccepted.v1",
        "dibao.assessment.CaseOpened.v1",
        "dibao.audit.AnomalyDetected.v1",
    ]
    assert entries[0]["summary"] == "Application submitted"
    assert entries[0]["actor"] == "test-clerk"
    assert entries[2]["details"]["case_id"] == "case-1"
    assert entries[3]["details"] == {"rule": "deadline_overrun", "severity": "warning"}


async def test_a_decided_application_can_no_longer_be_withdrawn(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    application_id = (
        await intake.submit(await intake.complete_application_body(household))
    ).json()["id"]
    await _publish(
        intake_stack,
        assessment.BenefitApproved(household_id=household.id, application_id=application_id),
        key=household.id,
        source="dibao/assessment",
    )

    async def decided() -> bool:
        types = [e["type"] for e in await _timeline(intake, application_id)]
        return "dibao.assessment.BenefitApproved.v1" in types

    await eventually(decided, what="the decision in the timeline")
    response = await intake.http.post(
        f"/applications/{application_id}/withdrawal",
        json={"reason": "too late"},
        headers=intake.headers(),
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/application-decided")
    # Decided, it is no longer open: the household may apply for that kind again.
    again = await intake.submit(await intake.complete_application_body(household))
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "submitted"


async def test_a_decision_after_the_withdrawal_is_entered_as_such_and_decides_nothing(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A decision that reaches an application already withdrawn enters its timeline as
    arrived after the withdrawal (summary and detail, and the limited view's summary):
    the application stays withdrawn and is not marked decided."""
    household = await intake.register()
    application_id = (
        await intake.submit(await intake.complete_application_body(household))
    ).json()["id"]
    withdrawn = await intake.http.post(
        f"/applications/{application_id}/withdrawal",
        json={"reason": "找到稳定工作"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    counted = ("dibao_intake_decisions_after_withdrawal_total", {"ce_type": APPROVED})
    before = REGISTRY.get_sample_value(*counted) or 0
    await _publish(
        intake_stack,
        assessment.BenefitApproved(household_id=household.id, application_id=application_id),
        key=household.id,
        source="dibao/assessment",
    )

    async def decisions() -> list[dict[str, Any]]:
        entries = await _timeline(intake, application_id)
        return [e for e in entries if e["type"] == "dibao.assessment.BenefitApproved.v1"]

    async def arrived() -> bool:
        return bool(await decisions())

    await eventually(arrived, what="the decision in the timeline")
    [decision] = await decisions()
    assert decision["summary"] == "Benefit approved (arrived after the withdrawal)"
    assert decision["details"]["after_withdrawal"] is True
    # Counted for the operators (the consumer runs in this test's app, in this process).
    assert REGISTRY.get_sample_value(*counted) == before + 1
    read = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(Role.AUDITOR, ["62"])
    )
    assert read.json()["status"] == "withdrawn"
    # Nor does it show as the application's decision (ADR 0023), nor list as decided.
    assert read.json()["decision"] is None
    listed = await intake.http.get(
        "/applications",
        params={"household_id": household.id, "state": "decided"},
        headers=intake.headers(Role.AUDITOR, ["62"]),
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    # The limited view (a finance officer's) names the event alone, no details: it still
    # says the decision came after the withdrawal (it read "Benefit approved" on a
    # withdrawn application, the one reader who pays).
    limited = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(Role.FINANCE_OFFICER, ["62"])
    )
    assert limited.json()["view"] == "limited"
    assert [
        (e["summary"], e["details"])
        for e in limited.json()["timeline"]
        if e["type"] == "dibao.assessment.BenefitApproved.v1"
    ] == [("Benefit approved (arrived after the withdrawal)", None)]
    async with intake_engine.connect() as conn:
        decided_at = await conn.scalar(
            text("SELECT decided_at FROM application WHERE id = :id"), {"id": application_id}
        )
    assert decided_at is None


async def test_a_household_change_enters_no_decided_nor_returned_application(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A household change enters the timelines of the household's undecided applications
    only: an application assessment has decided (decided_at, set by the timeline consumer
    from the decision) and a returned one (the applicant applies afresh) get no entry; the
    open one submitted after the decision does."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    body = await intake.complete_application_body(household)
    decided = (await intake.submit(body)).json()["id"]
    await _publish(
        intake_stack,
        assessment.BenefitApproved(household_id=household.id, application_id=decided),
        key=household.id,
        source="dibao/assessment",
    )

    async def household_entries(application_id: str) -> list[str]:
        return [
            e["summary"]
            for e in await _timeline(intake, application_id)
            if e["type"] == "dibao.intake.HouseholdUpdated.v1"
        ]

    async def is_decided() -> bool:
        types = [e["type"] for e in await _timeline(intake, decided)]
        return "dibao.assessment.BenefitApproved.v1" in types

    await eventually(is_decided, what="the decision in the timeline")
    returned = await intake.submit({**body, "document_ids": []})
    assert returned.status_code == 201, returned.text
    assert returned.json()["status"] == "returned"
    opened = await intake.submit(body)
    assert opened.status_code == 201, opened.text
    assert opened.json()["status"] == "submitted"
    death = await intake.http.post(
        f"/households/{household.id}/changes",
        json={"kind": "death", "person_id": mother, "date_of_death": "2026-02-20"},
        headers=intake.headers(),
    )
    assert death.status_code == 201, death.text
    assert await household_entries(opened.json()["id"]) == ["Household updated: death"]
    assert await household_entries(decided) == []
    assert await household_entries(returned.json()["id"]) == []


async def test_intakes_own_events_are_in_the_timeline_when_the_request_returns(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """No consumer in between: each event intake publishes about an application enters its
    timeline in the transaction that publishes it, under the event's own id."""
    household = await intake.register()
    accepted = await intake.submit(
        await intake.complete_application_body(household), idempotency_key=str(uuid.uuid4())
    )
    application_id = accepted.json()["id"]
    assert [e["summary"] for e in await _timeline(intake, application_id)] == [
        "Application submitted",
        "Application accepted",
    ]
    withdrawn = await intake.http.post(
        f"/applications/{application_id}/withdrawal",
        json={"reason": "moved away"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    entries = withdrawn.json()["timeline"]
    assert [e["type"] for e in entries][-1] == "dibao.intake.ApplicationWithdrawn.v1"
    # The reason in words is the application's, not its timeline's (ADR 0009).
    assert "reason" not in entries[-1]["details"]
    assert withdrawn.json()["withdrawal_reason"] == "moved away"

    body = await intake.complete_application_body(household)
    body["document_ids"] = []
    returned = (await intake.submit(body)).json()
    [entry] = await _timeline(intake, returned["id"])
    assert entry["type"] == "dibao.intake.ApplicationReturned.v1"
    assert entry["summary"].startswith("Application returned")

    published = await wait_for_events(intake_stack, "dibao.intake.v1", 3, subject=application_id)
    assert [str(e.ce_id) for e in published] == [e["ce_id"] for e in entries]


async def test_a_returned_applications_entry_gives_each_missing_items_code(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The ApplicationReturned entry listed the missing items' descriptions alone, though
    the answer and the event name each by code (febdd74): a portal reading the timeline had
    to parse English to word them. The entry keeps the descriptions and gives the codes
    beside them, in the same order, as the answer's missing_items have them; stored so in
    the timeline's row, and withheld with every detail in the limited view."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    answer = await intake.submit(body | {"document_ids": [], "incomes": []})
    assert answer.status_code == 201, answer.text
    returned = answer.json()
    assert returned["status"] == "returned"
    missing = returned["missing_items"]
    assert len(missing) >= 5
    [entry] = await _timeline(intake, returned["id"])
    assert entry["type"] == "dibao.intake.ApplicationReturned.v1"
    assert entry["summary"] == f"Application returned: {len(missing)} item(s) missing"
    assert entry["details"] == {
        "missing_items": [m["description"] for m in missing],
        "missing_item_codes": [m["code"] for m in missing],
    }
    assert entry["details"]["missing_item_codes"][:3] == [
        "application_form",
        "household_register",
        "verification_authorisation",
    ]
    async with intake_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT details FROM timeline_entry WHERE application_id = :id"),
                {"id": returned["id"]},
            )
        ).scalar_one()
    assert stored == entry["details"]
    limited = await intake.http.get(
        f"/applications/{returned['id']}",
        headers=intake.headers(Role.PUBLICITY_OFFICER, [household.plan.region_code]),
    )
    assert limited.status_code == 200, limited.text
    assert [e["details"] for e in limited.json()["timeline"]] == [None]
