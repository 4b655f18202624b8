"""An application assessment has decided shows its decision (ADR 0023): the read and the
list give the outcome, when, and the amount granted, from the decision's event as the
timeline consumer reads it off the broker; the list can be filtered to the open cases or
the decided ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from dibao.assessment.v1 import events_pb2 as assessment
from dibao.common.v1 import types_pb2 as common
from dibao_common.auth import Role
from dibao_common.messaging.envelope import topic_of
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

DECIDED_AT = datetime(2026, 3, 20, 7, 30, tzinfo=UTC)


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _publish(stack: TestStack, message: Message, *, key: str) -> None:
    """Assessment's event, as its relay would put it on its topic."""
    envelope = build_envelope(message, key=key, source="dibao/assessment", actor="approver-1")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_of(message), envelope.payload, key=key.encode(), headers=envelope.to_headers()
        )
    finally:
        await producer.stop()


async def _read(
    intake: IntakeClient, application_id: str, role: Role = Role.INTAKE_CLERK
) -> dict[str, Any]:
    response = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(role, ["62"])
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _decided(intake: IntakeClient, application_id: str) -> dict[str, Any]:
    """The application once the consumer has applied its decision."""

    async def there() -> bool:
        return (await _read(intake, application_id))["decision"] is not None

    await eventually(there, what="the decision on the application")
    return await _read(intake, application_id)


async def _listed(
    intake: IntakeClient,
    household: RegisteredHousehold,
    role: Role = Role.INTAKE_CLERK,
    **params: str,
) -> list[dict[str, Any]]:
    response = await intake.http.get(
        "/applications",
        params={"household_id": household.id, **params},
        headers=intake.headers(role, ["62"]),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_approval_shows_in_the_read_and_the_list_and_the_list_tells_open_from_decided(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """BenefitApproved on the broker: the read and the list say approved, when (the
    event's occurred_at) and the monthly amount; the status stays submitted. The household
    applies again: state=open lists that one, state=decided the approved one, and no state
    every application as before (the returned one too)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    approved = (await intake.submit(body)).json()["id"]
    assert (await _read(intake, approved))["decision"] is None
    assert [i["decision"] for i in await _listed(intake, household)] == [None]
    await _publish(
        intake_stack,
        assessment.BenefitApproved(
            household_id=household.id,
            application_id=approved,
            occurred_at=_at(DECIDED_AT),
            decided_on=common.LocalDate(year=2026, month=3, day=20),
            amount=common.Money(fen=52000),
            first_payable_month=common.Month(year=2026, month=4),
        ),
        key=household.id,
    )
    read = await _decided(intake, approved)
    decision = {"outcome": "approved", "decided_at": "2026-03-20T07:30:00Z", "amount_fen": 52000}
    assert read["decision"] == decision
    assert read["status"] == "submitted"
    # The public list shows a dibao allowance's amount: the limited view does too.
    limited = await _read(intake, approved, Role.FINANCE_OFFICER)
    assert (limited["view"], limited["decision"]) == ("limited", decision)

    returned = (await intake.submit({**body, "document_ids": []})).json()
    assert returned["status"] == "returned"
    reopened = (await intake.submit(body)).json()
    assert reopened["status"] == "submitted", reopened
    everything = await _listed(intake, household)
    assert [(i["id"], i["status"], i["decision"]) for i in everything] == [
        (reopened["id"], "submitted", None),
        (returned["id"], "returned", None),
        (approved, "submitted", decision),
    ]
    assert [i["id"] for i in await _listed(intake, household, state="open")] == [reopened["id"]]
    assert [i["id"] for i in await _listed(intake, household, state="decided")] == [approved]
    assert [
        i["id"] for i in await _listed(intake, household, status="submitted", state="open")
    ] == [reopened["id"]]
    assert [i["id"] for i in await _listed(intake, household, status="submitted")] == [
        reopened["id"],
        approved,
    ]
    [listed] = await _listed(intake, household, Role.FINANCE_OFFICER, state="decided")
    assert listed["decision"] == decision


async def test_a_rejection_and_a_one_off_grant_show_their_outcomes(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """ApplicationRejected reads rejected with no amount; OneOffAssistanceApproved reads
    one_off_approved with its amount, withheld in the limited view (the amount tells the
    kind, as the amount asked for does)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    rejected = (await intake.submit(body)).json()["id"]
    festival = (
        await intake.submit(
            body
            | {"kind": "festival", "incomes": [], "requested_amount_fen": 50000, "reason": "春节"}
        )
    ).json()
    assert festival["status"] == "submitted", festival
    await _publish(
        intake_stack,
        assessment.ApplicationRejected(
            household_id=household.id,
            application_id=rejected,
            occurred_at=_at(DECIDED_AT),
            near_dibao=True,
        ),
        key=household.id,
    )
    await _publish(
        intake_stack,
        assessment.OneOffAssistanceApproved(
            household_id=household.id,
            application_id=festival["id"],
            occurred_at=_at(DECIDED_AT),
            amount=common.Money(fen=30000),
            reason="春节慰问",
        ),
        key=household.id,
    )
    assert (await _decided(intake, rejected))["decision"] == {
        "outcome": "rejected",
        "decided_at": "2026-03-20T07:30:00Z",
        "amount_fen": None,
    }
    granted = {"outcome": "one_off_approved", "decided_at": "2026-03-20T07:30:00Z"}
    assert (await _decided(intake, festival["id"]))["decision"] == granted | {"amount_fen": 30000}
    limited = await _read(intake, festival["id"], Role.PUBLICITY_OFFICER)
    assert (limited["kind"], limited["decision"]) == (None, granted | {"amount_fen": None})
    assert {
        i["id"]: i["decision"] for i in await _listed(intake, household, Role.PUBLICITY_OFFICER)
    } == {
        rejected: {"outcome": "rejected", "decided_at": "2026-03-20T07:30:00Z", "amount_fen": None},
        festival["id"]: granted | {"amount_fen": None},
    }
    assert await _listed(intake, household, state="open") == []


async def test_a_state_with_a_closed_status_is_refused_and_a_cursor_keeps_its_state(
    intake: IntakeClient, intake_engine: Any
) -> None:
    """state with status returned or withdrawn would find nothing: 422 at the state,
    problem+json, nothing written nor recorded. A cursor of a search without state still
    continues it (state not given is no criterion), and continues no search with one."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    first = (await intake.submit({**body, "document_ids": []})).json()
    second = (await intake.submit(body)).json()
    before = await row_counts(intake_engine)
    refused = await intake.http.get(
        "/applications",
        params={"household_id": household.id, "state": "open", "status": "returned"},
        headers=intake.headers(),
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    [error] = refused.json()["errors"]
    assert error["pointer"] == "/query/state"
    assert "open applications are submitted ones, never returned" in error["detail"]
    assert await row_counts(intake_engine) == before

    page = await intake.http.get(
        "/applications",
        params={"household_id": household.id, "limit": "1"},
        headers=intake.headers(),
    )
    assert [i["id"] for i in page.json()["items"]] == [second["id"]]
    cursor = page.json()["next_cursor"]
    more = await intake.http.get(
        "/applications",
        params={"household_id": household.id, "limit": "1", "cursor": cursor},
        headers=intake.headers(),
    )
    assert [i["id"] for i in more.json()["items"]] == [first["id"]]
    other = await intake.http.get(
        "/applications",
        params={"household_id": household.id, "state": "open", "cursor": cursor},
        headers=intake.headers(),
    )
    assert other.status_code == 400, other.text
    assert other.json()["type"].endswith("/invalid-cursor")
