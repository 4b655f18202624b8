"""An application sent again names the returned application it completes (ADR 0009,
3 Dec 2026): stored, shown in both timelines, published in ApplicationSubmitted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, row_counts, wait_for_events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()


async def _submitted(intake: IntakeClient, body: dict[str, Any], status: str) -> str:
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == status, response.text
    return str(response.json()["id"])


async def test_the_application_sent_again_names_the_returned_one_it_completes(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """Returned for its documents, the application is sent again complete, naming the
    returned one: the new one shows it (GET, its ApplicationSubmitted entry), the returned
    one's timeline says by which application it was completed, and ApplicationSubmitted
    decoded from the broker carries it (field 22)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    returned = await _submitted(intake, body | {"document_ids": []}, "returned")
    again = await _submitted(intake, body | {"completes_application_id": returned}, "submitted")
    read = await intake.read_application(again)
    assert read["completes_application_id"] == returned
    [submitted] = [
        e for e in read["timeline"] if e["type"] == "dibao.intake.ApplicationSubmitted.v1"
    ]
    assert submitted["details"]["completes_application_id"] == returned
    first = await intake.read_application(returned)
    assert first["completes_application_id"] is None
    assert first["status"] == "returned"
    assert (first["timeline"][-1]["summary"], first["timeline"][-1]["details"]) == (
        "Completed by an application sent again",
        {"completed_by_application_id": again, "outcome": "submitted"},
    )
    published = await wait_for_events(intake_stack, "dibao.intake.v1", 2, subject=again)
    [message] = [
        m for m in (REGISTRY.decode(e) for e in published) if isinstance(m, ev.ApplicationSubmitted)
    ]
    assert message.completes_application_id == returned


async def test_only_a_returned_application_of_the_household_not_completed_yet_is_named(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Naming one completed already, one withdrawn (never returned), another household's
    returned one, or none that exists: 422 at completes_application_id, nothing written."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    returned = await _submitted(intake, body | {"document_ids": []}, "returned")
    again = await _submitted(intake, body | {"completes_application_id": returned}, "submitted")
    withdrawal = await intake.http.post(
        f"/applications/{again}/withdrawal", json={"reason": "搬走了"}, headers=intake.headers()
    )
    assert withdrawal.status_code == 201, withdrawal.text
    neighbour = await intake.register()
    theirs = await _submitted(
        intake,
        (await intake.complete_application_body(neighbour)) | {"document_ids": []},
        "returned",
    )
    for named, says in (
        (returned, "completed already"),
        (again, "is withdrawn"),
        (theirs, "no application of this household"),
        (str(uuid.uuid4()), "no application of this household"),
    ):
        before = await row_counts(intake_engine)
        response = await intake.submit(body | {"completes_application_id": named})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["pointer"] == "/body/completes_application_id"
        assert says in error["detail"]
        assert await row_counts(intake_engine) == before


async def test_a_returned_application_is_completed_by_one_of_its_own_kind(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A returned dibao application named as completed by a heating (one-off) application
    was taken: the heating application was stored and published as the dibao application
    sent again, and the dibao one counted as completed, so the dibao application itself
    could no longer be sent again naming it. Now 422 at completes_application_id naming
    both kinds, nothing written; the dibao application completes it as before."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    returned = await _submitted(intake, body | {"document_ids": []}, "returned")
    before = await row_counts(intake_engine)
    response = await intake.submit(
        body
        | {
            "kind": "heating",
            "requested_amount_fen": 50000,
            "reason": "冬季取暖困难",
            "completes_application_id": returned,
        }
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://dibao.gov.cn/problems/validation-failed"
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/completes_application_id"
    assert error["detail"] == (
        "is a dibao application: only an application of its kind completes it (this one is heating)"
    )
    assert await row_counts(intake_engine) == before
    again = await _submitted(intake, body | {"completes_application_id": returned}, "submitted")
    assert (await intake.read_application(again))["completes_application_id"] == returned
