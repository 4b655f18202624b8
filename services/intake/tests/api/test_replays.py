"""A stored idempotent answer that shows personal data, sent again, is a read: recorded on
dibao.access.v1 (action REPLAY) and refused to a caller whose regions no longer cover it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.crypto import PersonHasher
from dibao_common.testing.stack import TestStack
from dibao_intake.synthetic import pdf_bytes
from dibao_intake.testing import (
    IntakeClient,
    access_records,
    pii_settings_for_tests,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

VILLAGE = "620123101203"
ELSEWHERE = "620102"
HOUSEHOLD_FIELDS = [
    "name",
    "id_number_masked",
    "birth_date",
    "sex",
    "relationship",
    "disability_grade",
    "serious_illness",
    "employment_status",
    "student",
    "counted",
    "exclusion_reason",
    "address",
    "notes",
    "bank_account_masked",
    "account_holder_name",
    "custody",
]

Send = Callable[[dict[str, str]], Awaitable[httpx.Response]]


async def _replayed_and_refused(
    intake: IntakeClient,
    intake_stack: TestStack,
    intake_engine: AsyncEngine,
    send: Send,
    *,
    subject: str,
    refused_status: int,
    earlier: int = 0,
    role: Role = Role.INTAKE_CLERK,
    home: str = VILLAGE,
    record_prefix: str = "",
) -> tuple[dict[str, Any], access.PersonalDataAccessed, access.PersonalDataAccessed]:
    """Send once, then the same key and body again: the replay is recorded; then again
    with a token of the same subject no longer covering the region: refused, recorded.
    ``earlier``: the records the first answer leaves (a change's or a submission's answer
    is a read)."""
    key = str(uuid.uuid4())
    first = await send(intake.headers(role, [home], subject=subject, idempotency_key=key))
    assert first.status_code == 201, first.text
    answer: dict[str, Any] = first.json()
    again = await send(intake.headers(role, ["62"], subject=subject, idempotency_key=key))
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    before = await row_counts(intake_engine)
    moved = await send(intake.headers(role, [ELSEWHERE], subject=subject, idempotency_key=key))
    assert moved.status_code == refused_status, moved.text
    assert "idempotent-replayed" not in moved.headers
    assert moved.headers["content-type"] == "application/problem+json"
    after = await row_counts(intake_engine)
    # Nothing but the refusal's record was written.
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    record_id = record_prefix + (
        answer["household"]["id"] if "change_id" in answer else answer["id"]
    )
    records = await access_records(intake_stack, record_id, subject, count=2 + earlier)
    replays = [r for r in records if r.action == access.ACCESS_ACTION_REPLAY]
    assert len(replays) == 2, records
    # A record of no household is keyed by its own id: the two may come in either order.
    granted, denied = sorted(replays, key=lambda r: r.outcome)
    assert granted.outcome == access.ACCESS_OUTCOME_GRANTED
    assert denied.outcome == access.ACCESS_OUTCOME_DENIED
    assert list(denied.persons) == list(denied.fields) == []
    for record in replays:
        assert record.actor.subject == subject
        assert record.record_id == record_id
        assert record.correlation_id
    return answer, granted, denied


def _hashes_of(*numbers: str) -> list[str]:
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    return sorted(hasher.hash_id_number(n) for n in numbers)


async def test_a_replayed_registration_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    plan = intake.plan(VILLAGE, shape="three_generations")
    payload = plan.payload()

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post("/households", json=payload, headers=headers)

    answer, granted, denied = await _replayed_and_refused(
        intake,
        intake_stack,
        intake_engine,
        send,
        subject=f"clerk-{uuid.uuid4()}",
        refused_status=403,
    )
    assert granted.record_type == access.RECORD_TYPE_HOUSEHOLD
    assert granted.household_id == answer["id"]
    assert granted.region.code == VILLAGE
    assert sorted(p.keyed_hash for p in granted.persons) == _hashes_of(
        *(m.id_number for m in plan.members)
    )
    assert sorted(p.person_id for p in granted.persons) == sorted(
        m["person_id"] for m in answer["members"]
    )
    assert list(granted.fields) == HOUSEHOLD_FIELDS
    assert granted.operation == "POST /households"
    assert denied.region.code == VILLAGE


async def test_a_replayed_change_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="single_parent"))
    change = {"kind": "birth", "member": intake.newborn()}

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(
            f"/households/{household.id}/changes", json=change, headers=headers
        )

    subject = f"clerk-{uuid.uuid4()}"
    answer, granted, _ = await _replayed_and_refused(
        intake, intake_stack, intake_engine, send, subject=subject, refused_status=404, earlier=1
    )
    assert granted.household_id == household.id
    assert sorted(p.person_id for p in granted.persons) == sorted(
        m["person_id"] for m in answer["household"]["members"]
    )
    assert list(granted.fields) == HOUSEHOLD_FIELDS
    # The first answer was recorded as the read it is (action view), once.
    records = await access_records(intake_stack, household.id, subject, count=3)
    assert [r.action for r in records].count(access.ACCESS_ACTION_VIEW) == 1


async def test_a_replayed_submission_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_couple"))
    body = await intake.complete_application_body(household)

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post("/applications", json=body, headers=headers)

    answer, granted, _ = await _replayed_and_refused(
        intake,
        intake_stack,
        intake_engine,
        send,
        subject=f"clerk-{uuid.uuid4()}",
        refused_status=404,
        earlier=1,
    )
    assert granted.record_type == access.RECORD_TYPE_APPLICATION
    assert granted.household_id == household.id
    assert sorted(p.keyed_hash for p in granted.persons) == _hashes_of(
        *(m.id_number for m in household.plan.members)
    )
    assert "incomes" in granted.fields
    assert "bank_account_masked" in granted.fields
    assert answer["status"] == "submitted"


async def test_a_replayed_withdrawal_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_alone"))
    submitted = await intake.submit(await intake.complete_application_body(household))
    application_id = submitted.json()["id"]

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(
            f"/applications/{application_id}/withdrawal",
            json={"reason": "家中情况好转"},
            headers=headers,
        )

    answer, granted, _ = await _replayed_and_refused(
        intake,
        intake_stack,
        intake_engine,
        send,
        subject=f"clerk-{uuid.uuid4()}",
        refused_status=404,
        earlier=1,
    )
    assert answer["status"] == "withdrawn"
    assert granted.record_type == access.RECORD_TYPE_APPLICATION


async def test_a_replayed_upload_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_couple"))
    content = pdf_bytes(f"disability certificate {uuid.uuid4()}")
    form = {
        "household_id": household.id,
        "document_type": "disability_certificate",
        "person_id": household.person_ids[1],
    }

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(
            "/documents",
            data=form,
            files={"file": ("certificate.pdf", content, "application/pdf")},
            headers=headers,
        )

    _, granted, _ = await _replayed_and_refused(
        intake,
        intake_stack,
        intake_engine,
        send,
        subject=f"clerk-{uuid.uuid4()}",
        refused_status=404,
    )
    assert granted.record_type == access.RECORD_TYPE_DOCUMENT
    assert granted.region.code == VILLAGE
    assert [p.person_id for p in granted.persons] == [household.person_ids[1]]
    assert list(granted.fields) == ["document:disability_certificate"]


async def test_a_replayed_roster_entry_is_recorded_and_rechecks_the_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    township = "620123104000"
    relative = intake.plan("620123104201", shape="elderly_alone").members[0]
    staff = {
        "name": "何小军",
        "role": "dibao_staff",
        "relatives": [{"name": relative.name, "id_number": relative.id_number, "relation": "son"}],
    }

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(f"/townships/{township}/staff", json=staff, headers=headers)

    answer, granted, _ = await _replayed_and_refused(
        intake,
        intake_stack,
        intake_engine,
        send,
        subject=f"admin-{uuid.uuid4()}",
        refused_status=403,
        role=Role.POLICY_ADMIN,
        home="620123",
        record_prefix="staff:",
    )
    assert granted.record_id == f"staff:{answer['id']}"
    assert [p.keyed_hash for p in granted.persons] == ["", *_hashes_of(relative.id_number)]
    assert list(granted.fields) == ["staff_name", "relative_name", "id_number_masked"]
