"""Households through the API: registration rules, the one-household rule, changes."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.auth import Principal, Role
from dibao_common.crypto import PersonHasher, mask_name
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.api import schemas as s
from dibao_intake.api.households import member_input
from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.domain.resident_id import age_on
from dibao_intake.domain.working_age import working_age_ends_at_the_latest
from dibao_intake.service_layer import households as households_service
from dibao_intake.service_layer.runtime import Caller, ConstraintViolatedError, Runtime
from dibao_intake.synthetic import PlannedHousehold
from dibao_intake.testing import (
    RURAL_VILLAGE,
    URBAN_VILLAGE,
    IntakeClient,
    RegisteredHousehold,
    access_records,
    moves_in,
    pii_settings_for_tests,
    refused_change,
    row_counts,
    wait_for_events,
)

# A Postal Savings Bank card: the account of most changes here.
POSTAL_CARD = {
    "account_number": "6217001234567890123",
    "bank_code": "403",
    "bank_name": "中国邮政储蓄银行",
}

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()


async def test_registration_validates_and_publishes_a_masked_snapshot(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    body = household.body
    assert body["region_name"] == "甘肃省兰州市榆中县夏官营镇夏官营村委会"
    assert body["status"] == "active"
    assert body["version"] == 1
    head = body["members"][0]
    planned = household.plan.members[0]
    assert head["relationship"] == "head"
    assert head["birth_date"] == planned.birth_date.isoformat()
    assert head["sex"] == planned.sex.value
    assert head["id_number_masked"] == planned.id_number[:6] + "*" * 8 + planned.id_number[-4:]
    assert body["head_person_id"] == head["person_id"]
    assert body["bank_account"]["masked_number"].endswith(household.plan.account_number[-4:])
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=household.id)
    assert [e.ce_type for e in found] == ["dibao.intake.HouseholdRegistered.v1"]
    message = REGISTRY.decode(found[0])
    assert isinstance(message, ev.HouseholdRegistered)
    assert message.household.head_person_id == head["person_id"]
    assert message.bank_account.token_id == body["bank_account"]["token_id"]
    for member in household.plan.members:
        assert member.id_number.encode() not in found[0].payload
    assert household.plan.account_number.encode() not in found[0].payload


async def test_reading_a_household_is_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    response = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(Role.VILLAGE_COMMITTEE, ["620123101"])
    )
    assert response.status_code == 200
    assert response.json()["members"] == household.body["members"]
    found = await wait_for_events(intake_stack, "dibao.access.v1", 1, subject=household.id)
    assert len(found) == 1
    record = REGISTRY.decode(found[0])
    assert len(record.persons) == len(household.plan.members)  # type: ignore[attr-defined]


def _with_member_id(payload: dict[str, Any], index: int, id_number: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    changed["members"][index]["id_number"] = id_number
    return changed


async def _refused(
    intake: IntakeClient, engine: AsyncEngine, payload: dict[str, Any] | bytes, status: int
) -> dict[str, Any]:
    before = await row_counts(engine)
    if isinstance(payload, bytes):
        response = await intake.http.post(
            "/households",
            content=payload,
            headers=intake.headers() | {"content-type": "application/json"},
        )
    else:
        response = await intake.http.post("/households", json=payload, headers=intake.headers())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before
    body: dict[str, Any] = response.json()
    return body


async def test_an_id_number_in_the_address_or_a_note_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    plan = intake.plan()
    payload = copy.deepcopy(plan.payload())
    payload["address"] = f"三社12号 户主{plan.members[0].id_number}"
    payload["members"][0]["exclusion_note"] = "身份证 62012319800101001X"
    problem = await _refused(intake, intake_engine, payload, 422)
    assert sorted(e["pointer"] for e in problem["errors"]) == [
        "/body/address",
        "/body/members/0/exclusion_note",
    ]


async def test_a_nul_in_free_text_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """PostgreSQL text holds no NUL: one in a name, the address or the bank's name was a
    500 from the database, after the row's first statements."""
    payload = copy.deepcopy(intake.plan().payload())
    payload["address"] = "三社\x0012号"
    payload["members"][0]["name"] = "马\x00建国"
    payload["bank_account"]["bank_name"] = "\x00"
    problem = await _refused(intake, intake_engine, payload, 422)
    assert sorted(e["pointer"] for e in problem["errors"]) == [
        "/body/address",
        "/body/bank_account/bank_name",
        "/body/members/0/name",
    ]


async def test_a_wrong_check_digit_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    plan = intake.plan()
    good = plan.members[0].id_number
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    problem = await _refused(intake, intake_engine, _with_member_id(plan.payload(), 0, wrong), 422)
    assert problem["errors"] == [
        {
            "pointer": "/body/members/0/id_number",
            "detail": "the check digit does not match (GB 11643, MOD 11-2)",
            "code": "rule",
        }
    ]
    assert wrong not in str(problem)  # the number is never echoed


async def test_an_unknown_region_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    payload = intake.plan().payload() | {"region_code": "620123101299"}
    problem = await _refused(intake, intake_engine, payload, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/region_code"]


async def test_malformed_json_and_missing_fields(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    problem = await _refused(intake, intake_engine, b'{"region_code": "6201', 400)
    assert problem["type"] == "https://dibao.gov.cn/problems/malformed-body"
    payload = intake.plan().payload()
    del payload["members"][0]["employment_status"]
    problem = await _refused(intake, intake_engine, payload, 422)
    assert problem["errors"][0]["pointer"] == "/body/members/0/employment_status"


async def test_flags_and_indexes_of_another_type_are_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # "yes", "no", 0 or "1" for a flag, "0" for an index: a client sending those has the
    # contract wrong, and whatever was meant is guessed, not known.
    for pointer, value in (
        ("/members/0/seriously_ill", "yes"),
        ("/members/0/student", 0),
        ("/members/0/counted", "false"),
        ("/bank_account/holder_member_index", "0"),
    ):
        payload = intake.plan().payload()
        *path, name = pointer.strip("/").split("/")
        target: Any = payload
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[name] = value
        problem = await _refused(intake, intake_engine, payload, 422)
        assert [e["pointer"] for e in problem["errors"]] == ["/body" + pointer]


async def test_an_account_holder_who_is_no_member_is_refused_where_the_body_names_it(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # The pointer is the request's own field: a portal highlights it (it was
    # /body/bank_account_holder_index, a field no request has).
    payload = intake.plan().payload()
    assert payload["bank_account"] is not None
    payload["bank_account"]["holder_member_index"] = len(payload["members"])
    problem = await _refused(intake, intake_engine, payload, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/bank_account/holder_member_index"]
    assert f"members has {len(payload['members'])}" in problem["errors"][0]["detail"]


async def test_a_person_in_another_household_is_a_409_with_a_masked_reference(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """The 409 names the other household by a masked reference only; and it tells the
    caller that the person is an active member of a household of that county, which a
    lookup by ID number records: so is the 409 (action search, the person by keyed hash,
    the other household named), else a clerk could learn it of any ID number unrecorded
    by registering (or moving in) a household with it. Nothing else is written."""
    first = await intake.register()
    plan = intake.plan("620102001002")
    number = first.plan.members[0].id_number
    payload = _with_member_id(plan.payload(), 0, number.lower())
    # The head alone: with another head's ID number (and so birth date), the planned
    # parents or children could break the age rules first (a 422, not the 409).
    payload["members"] = payload["members"][:1]
    # And with that head's status: the planned one may not fit its age (ADR 0021).
    payload["members"][0]["employment_status"] = first.plan.members[0].employment_status.value
    payload["members"][0]["student"] = first.plan.members[0].student
    prober = f"clerk-{uuid.uuid4()}"
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(subject=prober)
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://dibao.gov.cn/problems/person-in-household"
    [conflict] = problem["conflicts"]
    assert conflict["pointer"] == "/body/members/0"
    assert conflict["household_ref"] == f"620123-****-{uuid.UUID(first.id).hex[-4:]}"
    assert first.id not in str(problem)
    # Nothing but the answer's access record.
    assert await row_counts(intake_engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
    }
    [record] = await access_records(intake_stack, first.id, prober)
    assert (record.action, record.outcome) == (
        access.ACCESS_ACTION_SEARCH,
        access.ACCESS_OUTCOME_GRANTED,
    )
    assert record.record_type == access.RECORD_TYPE_HOUSEHOLD
    assert record.household_id == first.id
    assert record.region.code == first.plan.region_code
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    assert [p.keyed_hash for p in record.persons] == [hasher.hash_id_number(number)]
    assert list(record.fields) == ["household_ref"]
    assert record.operation == "POST /households"


async def test_clerks_register_only_in_their_regions(intake: IntakeClient) -> None:
    response = await intake.http.post(
        "/households",
        json=intake.plan().payload(),
        headers=intake.headers(regions=["620102"]),
    )
    assert response.status_code == 403
    assert response.json()["type"].endswith("/region-out-of-scope")


async def test_an_id_number_in_a_change_note_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    mother = household.plan.members[0].id_number
    birth = {"kind": "birth", "member": intake.newborn(), "note": f"母亲身份证 {mother}"}
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=birth, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/note"]
    assert await row_counts(intake_engine) == before


async def test_no_id_number_in_a_name_or_a_custodian_of_a_change(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # These are stored in clear and published as typed (a bank's name and the custodian in
    # HouseholdUpdated): an ID number there would escape encryption and masking.
    household = await intake.register()
    head_number = household.plan.members[0].id_number
    document = (await intake.upload(household.id, "custody_agreement")).json()["id"]
    custody = {
        "kind": "bank_account_change",
        "account": {
            **POSTAL_CARD,
            "holder_person_id": household.person_ids[0],
        },
        "custody_agreement": True,
        "custody_document_id": document,
        "custodian_subject": head_number,
        "document_ids": [document],
    }
    assert await _refused_change(intake, intake_engine, household, custody) == [
        "/body/custodian_subject"
    ]
    card = custody | {
        "custodian_subject": "cw-xiaguanying-01",
        "account": custody["account"] | {"bank_name": f"邮储 {head_number}"},
    }
    assert await _refused_change(intake, intake_engine, household, card) == [
        "/body/account/bank_name"
    ]
    birth = {"kind": "birth", "member": intake.newborn() | {"name": f"马{head_number}"}}
    assert await _refused_change(intake, intake_engine, household, birth) == ["/body/member/name"]


async def test_each_change_is_one_household_updated_event(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(shape="single_parent"))
    kinds = []
    born = await intake.change(household, {"kind": "birth", "member": intake.newborn()})
    assert born["kind"] == "birth"
    assert len(born["household"]["members"]) == len(household.plan.members) + 1
    kinds.append("birth")
    account = await intake.change(
        household,
        {
            "kind": "bank_account_change",
            "account": {
                **POSTAL_CARD,
                "holder_person_id": household.person_ids[0],
            },
        },
    )
    assert account["household"]["bank_account"]["masked_number"] == "6217 **** **** 0123"
    kinds.append("bank_account_change")
    heir = born["household"]["members"][-1]["person_id"]
    died = await intake.change(
        household,
        {
            "kind": "death",
            "person_id": household.person_ids[0],
            "date_of_death": "2026-02-20",
            "new_head_person_id": heir,
        },
    )
    kinds.append("death")
    after = died["household"]
    assert after["version"] == 4
    dead = next(m for m in after["members"] if m["person_id"] == household.person_ids[0])
    assert dead["active"] is False
    assert dead["left_reason"] == "death"
    assert dead["left_on"] == "2026-02-20"
    assert after["head_person_id"] != household.person_ids[0]
    assert [c["kind"] for c in after["changes"]] == kinds
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 4, key=household.id)
    updates = [REGISTRY.decode(e) for e in found if e.ce_type.endswith("HouseholdUpdated.v1")]
    assert [u.WhichOneof("change") for u in updates] == kinds
    # Each snapshot carries the version it shows: 1 registered, then one more per change.
    snapshots = [u.household for u in updates if isinstance(u, ev.HouseholdUpdated)]
    assert [(s.version, s.dissolved) for s in snapshots] == [
        (2, False),
        (3, False),
        (4, False),
    ]
    last = updates[-1]
    assert isinstance(last, ev.HouseholdUpdated)
    assert last.death.date_of_death.day == 20
    assert household.person_ids[0] not in [m.person.person_id for m in last.household.members]


async def test_a_change_answers_the_household_and_records_that_read(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    # The answer shows every member (names, health, the account), as a GET does: a change
    # must not be a way to read a household without an access record.
    household = await intake.register()
    changed = await intake.http.post(
        f"/households/{household.id}/changes",
        json={"kind": "birth", "member": intake.newborn()},
        headers=intake.headers(subject="clerk-changing"),
    )
    assert changed.status_code == 201, changed.text
    read = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(subject="clerk-reading")
    )
    assert read.json()["members"] == changed.json()["household"]["members"]
    [as_read] = await access_records(intake_stack, household.id, "clerk-reading")
    [record] = await access_records(intake_stack, household.id, "clerk-changing")
    assert record.outcome == access.ACCESS_OUTCOME_GRANTED
    assert record.record_type == access.RECORD_TYPE_HOUSEHOLD
    assert record.operation == "POST /households/{household_id}/changes"
    assert list(record.fields) == list(as_read.fields)
    assert {p.person_id for p in record.persons} == {
        m["person_id"] for m in changed.json()["household"]["members"]
    }


async def test_a_change_of_another_regions_household_is_refused_as_its_read_is(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The change's answer is the household's read: a clerk of another region posting a
    change to it is answered 404 as a GET is, and the attempt is recorded DENIED as a
    GET's is (an audit query for probes of the household finds it); nothing else is
    written."""
    household = await intake.register()
    prober = f"prober-{uuid.uuid4()}"
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json={"kind": "birth", "member": intake.newborn()},
        headers=intake.headers(regions=["620102"], subject=prober),
    )
    assert response.status_code == 404, response.text
    after = await row_counts(intake_engine)
    # The access record's outbox row, and nothing else.
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [refusal] = await access_records(intake_stack, household.id, prober)
    assert (refusal.outcome, refusal.record_type) == (
        access.ACCESS_OUTCOME_DENIED,
        access.RECORD_TYPE_HOUSEHOLD,
    )
    assert refusal.operation == "POST /households/{household_id}/changes"
    assert list(refusal.persons) == list(refusal.fields) == []
    read = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(regions=["620102"], subject=prober)
    )
    assert read.status_code == 404
    assert response.json()["detail"] == read.json()["detail"]


async def test_another_regions_clerk_is_refused_without_waiting_on_the_households_lock(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The region is checked before the household is locked: while a change of the
    household is in progress (its row held FOR UPDATE), a clerk of another region is
    answered 404 at once, recorded DENIED, neither waiting on the lock nor holding it."""
    household = await intake.register()
    prober = f"prober-{uuid.uuid4()}"
    async with intake_engine.connect() as conn:
        await conn.execute(
            text("SELECT id FROM household WHERE id = :id FOR UPDATE"), {"id": household.id}
        )
        change = asyncio.create_task(
            intake.http.post(
                f"/households/{household.id}/changes",
                json={"kind": "birth", "member": intake.newborn()},
                headers=intake.headers(regions=["620102"], subject=prober),
            )
        )
        deadline = asyncio.get_running_loop().time() + 30
        while not change.done():
            assert not await _waiting_on_a_lock(intake_engine), "it waits on the lock"
            assert asyncio.get_running_loop().time() < deadline, "no answer in 30 s"
            await asyncio.sleep(0.02)
        await conn.rollback()
    response = await change
    assert response.status_code == 404, response.text
    [refusal] = await access_records(intake_stack, household.id, prober)
    assert (refusal.outcome, refusal.operation) == (
        access.ACCESS_OUTCOME_DENIED,
        "POST /households/{household_id}/changes",
    )


async def test_a_change_waiting_on_a_move_out_of_the_clerks_region_is_refused(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A clerk's change waits on a change in progress that moves the household to
    another county; once that commits, the household is no longer the clerk's: 404,
    recorded DENIED in the household's new region, and nothing changed."""
    household = await intake.register()
    clerk = f"clerk-{uuid.uuid4()}"
    async with intake_engine.connect() as conn:
        await conn.execute(
            text("SELECT id FROM household WHERE id = :id FOR UPDATE"), {"id": household.id}
        )
        await conn.execute(
            text("UPDATE household SET region_code = :region WHERE id = :id"),
            {"id": household.id, "region": URBAN_VILLAGE},
        )
        change = asyncio.create_task(
            intake.http.post(
                f"/households/{household.id}/changes",
                json={"kind": "birth", "member": intake.newborn()},
                headers=intake.headers(regions=[RURAL_VILLAGE[:6]], subject=clerk),
            )
        )
        deadline = asyncio.get_running_loop().time() + 30
        while not change.done() and not await _waiting_on_a_lock(intake_engine):
            assert asyncio.get_running_loop().time() < deadline, "it never waited on the lock"
            await asyncio.sleep(0.02)
        assert not change.done(), change.result().text
        await conn.commit()
    response = await change
    assert response.status_code == 404, response.text
    [refusal] = await access_records(intake_stack, household.id, clerk)
    assert refusal.outcome == access.ACCESS_OUTCOME_DENIED
    assert refusal.region.code == URBAN_VILLAGE
    read = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(regions=[URBAN_VILLAGE[:6]])
    )
    assert read.json()["version"] == household.body["version"]


async def test_a_birth_is_effective_on_the_day_of_birth(intake: IntakeClient) -> None:
    # As a death, a marriage or a move is effective on its day: not on the day recorded.
    household = await intake.register(intake.plan(shape="single_parent"))
    child = intake.newborn()
    born = await intake.change(household, {"kind": "birth", "member": child})
    [newborn] = [m for m in born["household"]["members"] if m["name"] == child["name"]]
    [change] = born["household"]["changes"]
    assert newborn["joined_on"] == newborn["birth_date"] == "2026-01-15"
    assert change["effective_on"] == "2026-01-15"


async def test_a_birth_registers_a_child_under_18_however_late(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A "newborn" of 35 or more (younger than the head) was recorded as born into the
    household (201), joining it decades back. A birth registers a minor (ADR 0016, 3 Dec 2026,
    helper hAH): from 18 it is refused, 422 at the member's ID number, with the change's
    other errors at once, nothing written; a child of 17 registered late is recorded, on
    the day of birth."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head_born = household.plan.members[0].birth_date
    today = intake.synthesizer.today
    old = date(head_born.year + 2, 1, 10)  # the head of 38 to 50 is older
    adult = {
        "name": "马大宝",
        "id_number": intake.synthesizer.id_number(old, Sex.MALE),
        "relationship": "child",
        "employment_status": "unemployed",
    }
    problem = await refused_change(
        intake, intake_engine, household, {"kind": "birth", "member": adult}
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/member/id_number"]
    assert f"a person of {age_on(old, today)} on {today}" in problem["errors"][0]["detail"]
    assert "马" not in problem["errors"][0]["detail"]
    sibling = adult | {"relationship": "sibling"}
    problem = await refused_change(
        intake, intake_engine, household, {"kind": "birth", "member": sibling}
    )
    assert {e["pointer"] for e in problem["errors"]} == {
        "/body/member/id_number",
        "/body/member/relationship",
    }
    seventeen = date(today.year - 18, today.month, today.day) + timedelta(days=1)
    late = {
        "name": "马小宝",
        "id_number": intake.synthesizer.id_number(seventeen, Sex.FEMALE),
        "relationship": "grandchild",
        "employment_status": "unemployed",
    }
    born = await intake.change(household, {"kind": "birth", "member": late})
    [child] = [m for m in born["household"]["members"] if m["name"] == "马小宝"]
    assert child["joined_on"] == child["birth_date"] == seventeen.isoformat()


async def test_a_custody_agreement_needs_its_signed_document(intake: IntakeClient) -> None:
    household = await intake.register()
    change = {
        "kind": "bank_account_change",
        "account": {
            "account_number": "6228480402564890099",
            "bank_code": "103",
            "bank_name": "中国农业银行",
            "holder_name": "村委会代管",
        },
        "custody_agreement": True,
        "custodian_subject": "cw-xiaguanying-01",
    }
    refused = await intake.http.post(
        f"/households/{household.id}/changes", json=change, headers=intake.headers()
    )
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/body/custody_document_id"]
    document = (await intake.upload(household.id, "custody_agreement")).json()["id"]
    accepted = await intake.change(
        household, change | {"custody_document_id": document, "document_ids": [document]}
    )
    assert accepted["household"]["bank_account"]["custody_agreement"] is True


async def test_a_bank_account_change_must_change_something(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # The same account, holder and custody again would supersede the token that payments
    # resolves for the bank file, and tell it the account changed, for nothing.
    household = await intake.register(intake.plan(shape="elderly_couple"))
    plan = household.plan
    same = {
        "kind": "bank_account_change",
        "account": {
            "account_number": plan.account_number,
            "bank_code": plan.bank_code,
            "bank_name": plan.bank_name,
            "holder_person_id": household.person_ids[0],
        },
    }
    assert await _refused_change(intake, intake_engine, household, same) == [
        "/body/account/account_number"
    ]
    # The same card, now kept by staff under a signed custody agreement: a change.
    document = (await intake.upload(household.id, "custody_agreement")).json()["id"]
    custody = {
        "custody_agreement": True,
        "custody_document_id": document,
        "custodian_subject": "cw-xiaguanying-01",
        "document_ids": [document],
    }
    changed = await intake.change(household, same | custody)
    account = changed["household"]["bank_account"]
    assert (account["masked_number"], account["custody_agreement"]) == (
        household.body["bank_account"]["masked_number"],
        True,
    )
    assert account["token_id"] != household.body["bank_account"]["token_id"]


async def test_an_account_is_held_by_a_member_or_by_someone_named_not_both(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # The name given was dropped silently for the member's: the card recorded as the
    # head's when the clerk had typed the custodian's name on it.
    household = await intake.register()
    change = {
        "kind": "bank_account_change",
        "account": {
            **POSTAL_CARD,
            "holder_person_id": household.person_ids[0],
            "holder_name": "村委会代管",
        },
    }
    assert await _refused_change(intake, intake_engine, household, change) == [
        "/body/account/holder_name"
    ]


async def test_an_account_naming_no_holder_is_told_which_fields_name_one(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A new account with no holder was refused at holder_name with "name the holder when
    not a household member": a clerk whose holder is the head, a member, was not told of
    holder_person_id (a registration's account defaults to the head)."""
    household = await intake.register()
    change = {
        "kind": "bank_account_change",
        "account": {
            **POSTAL_CARD,
        },
    }
    problem = await refused_change(intake, intake_engine, household, change)
    [error] = problem["errors"]
    assert error["pointer"] == "/body/account/holder_person_id"
    assert "holder_person_id for a member of the household" in error["detail"]
    assert "holder_name for anyone else" in error["detail"]


async def test_moving_in_someone_active_elsewhere_is_a_409(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    elsewhere = await intake.register(intake.plan(shape="elderly_couple"))
    household = await intake.register()
    mover = elsewhere.plan.members[0]
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json={
            "kind": "move_in",
            "moved_on": "2026-02-01",
            "member": mover.payload() | {"relationship": "other_dependant"},
        },
        headers=intake.headers(),
    )
    assert response.status_code == 409
    assert response.json()["conflicts"][0]["pointer"] == "/body/member"
    # Once moved out there, the same person may move in here, keeping their person id.
    heir = elsewhere.person_ids[1]
    moved = await intake.http.post(
        f"/households/{elsewhere.id}/changes",
        json={
            "kind": "move_out",
            "person_id": elsewhere.person_ids[0],
            "moved_on": "2026-02-01",
            "new_head_person_id": heir,
            "to_region_code": RURAL_VILLAGE,
        },
        headers=intake.headers(),
    )
    assert moved.status_code == 201, moved.text
    joined = await intake.change(
        household,
        {
            "kind": "move_in",
            "moved_on": "2026-02-02",
            "member": mover.payload() | {"relationship": "other_dependant"},
        },
    )
    assert elsewhere.person_ids[0] in [m["person_id"] for m in joined["household"]["members"]]
    # The event names the household they came from, as its contract says when intake knows.
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 2, key=household.id)
    [move_in] = [REGISTRY.decode(e) for e in found if e.ce_subject == joined["change_id"]]
    assert isinstance(move_in, ev.HouseholdUpdated)
    assert move_in.move_in.from_household_id == elsewhere.id


async def test_a_marriage_brings_the_spouse_in(intake: IntakeClient) -> None:
    household = await intake.register(intake.plan(shape="unemployed_single"))
    head = household.plan.members[0]
    born = date(head.birth_date.year + 2, 5, 5)
    spouse_sex = Sex.FEMALE if head.sex is Sex.MALE else Sex.MALE
    spouse = {
        "name": "杨秀兰",
        # Drawn by the synthesizer, which knows the numbers the session issued: a number
        # composed here could be a member's of another test's household (409; seen once in
        # 1,002 seeded runs).
        "id_number": intake.synthesizer.id_number(born, spouse_sex, "620123"),
        "relationship": "spouse",
        "employment_status": "flexible",
    }
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": household.person_ids[0],
            "married_on": "2026-02-14",
            "spouse": spouse,
        },
    )
    assert len(married["household"]["members"]) == len(household.plan.members) + 1


async def test_a_co_resident_who_marries_the_head_becomes_the_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A widower and the woman living with the household as other marry: she is a member
    already, so the marriage names her (spouse_person_id) and she becomes the head's
    spouse; the event carries her as now recorded. A second spouse, the head themself, or
    a spouse both named and given are refused."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    head = household.person_ids[0]
    born = household.plan.members[0].birth_date
    sex = Sex.FEMALE if household.plan.members[0].sex is Sex.MALE else Sex.MALE
    lodger = _person(intake, date(born.year + 1, 3, 3), sex, "other")
    joined = await intake.change(
        household, {"kind": "move_in", "moved_on": "2026-01-10", "member": lodger}
    )
    [partner] = [m["person_id"] for m in joined["household"]["members"] if m["person_id"] != head]
    marriage = {
        "kind": "marriage",
        "person_id": head,
        "married_on": "2026-02-14",
        "spouse_person_id": partner,
    }
    assert await _refused_change(
        intake, intake_engine, household, marriage | {"spouse_person_id": head}
    ) == ["/body/spouse_person_id"]
    assert await _refused_change(
        intake, intake_engine, household, marriage | {"spouse": lodger | {"relationship": "spouse"}}
    ) == ["/body/spouse"]
    married = await intake.change(household, marriage)
    relationships = {m["person_id"]: m["relationship"] for m in married["household"]["members"]}
    assert relationships == {head: "head", partner: "spouse"}
    assert married["household"]["changes"][-1]["details"] == {
        "person_id": head,
        "spouse_person_id": partner,
        "relationships": {partner: "spouse"},
        "document_ids": [],
    }
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=married["change_id"])
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.marriage.person_id == head
    assert update.marriage.spouse.person.person_id == partner
    assert update.marriage.spouse.relationship == enums.RELATIONSHIP_SPOUSE
    assert await _refused_change(intake, intake_engine, household, marriage) == [
        "/body/spouse_person_id"
    ]


async def test_two_members_other_than_the_head_marry(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """The head's widowed mother marries the lodger living with the household: he becomes
    the head's step-father (parent), published as the marriage's spouse; two co-residents
    marry and stay as recorded. Two relatives of the head, the head's spouse, or a member
    married already are refused at the field, writing nothing."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, _kid = household.person_ids
    head_born = household.plan.members[0].birth_date
    mother_born = household.plan.members[2].birth_date
    joining = {
        "lodger": _person(intake, date(mother_born.year - 2, 3, 3), Sex.MALE, "other"),
        "boarder": _person(intake, date(head_born.year + 5, 3, 3), Sex.MALE, "other"),
        "tenant": _person(intake, date(head_born.year + 6, 4, 4), Sex.FEMALE, "other_dependant"),
        "brother": _person(intake, date(head_born.year + 2, 5, 5), Sex.MALE, "sibling"),
    }
    ids: dict[str, str] = {}
    for who, member in joining.items():
        known = set(household.person_ids) | set(ids.values())
        joined = await intake.change(
            household, {"kind": "move_in", "moved_on": "2026-01-05", "member": member}
        )
        [ids[who]] = [
            m["person_id"] for m in joined["household"]["members"] if m["person_id"] not in known
        ]
    lodger, boarder, tenant, brother = ids["lodger"], ids["boarder"], ids["tenant"], ids["brother"]

    def marriage(person: str, partner: str) -> dict[str, Any]:
        return {
            "kind": "marriage",
            "person_id": person,
            "married_on": "2026-02-14",
            "spouse_person_id": partner,
        }

    # Two relatives of the head (the head's mother and brother): nothing tells them free.
    assert await _refused_change(intake, intake_engine, household, marriage(mother, brother)) == [
        "/body/spouse_person_id"
    ]
    # The head's wife is married to the head.
    assert await _refused_change(intake, intake_engine, household, marriage(wife, brother)) == [
        "/body/person_id"
    ]
    married = await intake.change(household, marriage(mother, lodger))
    relationships = {m["person_id"]: m["relationship"] for m in married["household"]["members"]}
    assert (relationships[head], relationships[mother], relationships[lodger]) == (
        "head",
        "parent",
        "parent",
    )
    assert married["household"]["changes"][-1]["details"] == {
        "person_id": mother,
        "spouse_person_id": lodger,
        "relationships": {lodger: "parent"},
        "document_ids": [],
    }
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=married["change_id"])
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.marriage.person_id == mother
    assert update.marriage.spouse.person.person_id == lodger
    assert update.marriage.spouse.relationship == enums.RELATIONSHIP_PARENT

    co_residents = await intake.change(household, marriage(boarder, tenant))
    relationships = {
        m["person_id"]: m["relationship"] for m in co_residents["household"]["members"]
    }
    assert (relationships[boarder], relationships[tenant]) == ("other", "other_dependant")
    assert co_residents["household"]["changes"][-1]["details"]["relationships"] == {}
    # Married to a member still here: the tenant cannot marry the brother.
    assert await _refused_change(intake, intake_engine, household, marriage(tenant, brother)) == [
        "/body/person_id"
    ]


async def _refused_date(
    intake: IntakeClient,
    engine: AsyncEngine,
    household: RegisteredHousehold,
    body: dict[str, Any],
    pointer: str,
) -> str:
    """The change is refused (422) at one ``pointer``, writes nothing (no change row, no
    outbox row, nothing else), and says why (the detail)."""
    before = await row_counts(engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=body, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == pointer
    assert await row_counts(engine) == before
    detail: str = error["detail"]
    return detail


async def test_a_remarriage_is_dated_on_or_after_the_end_of_the_last_marriage(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's wife died on 1 Feb (recorded): a marriage of the head dated before it
    is refused at married_on naming the day, whether the spouse joins (spouse) or is a
    member already (spouse_person_id), and writes nothing; on the day it is recorded.
    When the head dies and the widow heads the household, her marriage is bound so too."""
    household = await intake.register(intake.plan(shape="elderly_couple"))
    head, wife = household.person_ids
    born = household.plan.members[0].birth_date
    sex = Sex.FEMALE if household.plan.members[0].sex is Sex.MALE else Sex.MALE
    await intake.change(
        household, {"kind": "death", "person_id": wife, "date_of_death": "2026-02-01"}
    )
    bride = _person(intake, date(born.year + 2, 3, 3), sex, "spouse")
    marriage = {"kind": "marriage", "person_id": head, "married_on": "2026-01-10"}
    detail = await _refused_date(
        intake, intake_engine, household, marriage | {"spouse": bride}, "/body/married_on"
    )
    assert "2026-02-01" in detail
    lodger = _person(intake, date(born.year + 1, 3, 3), sex, "other")
    joined = await intake.change(
        household, {"kind": "move_in", "moved_on": "2026-01-05", "member": lodger}
    )
    [partner] = [
        m["person_id"] for m in joined["household"]["members"] if m["relationship"] == "other"
    ]
    in_household = marriage | {"spouse_person_id": partner}
    detail = await _refused_date(intake, intake_engine, household, in_household, "/body/married_on")
    assert "2026-02-01" in detail
    married = await intake.change(household, in_household | {"married_on": "2026-02-01"})
    relationships = {m["person_id"]: m["relationship"] for m in married["household"]["members"]}
    assert (relationships[head], relationships[partner]) == ("head", "spouse")

    widowed = await intake.register(intake.plan(shape="elderly_couple"))
    husband, widow = widowed.person_ids
    died = await intake.change(
        widowed,
        {
            "kind": "death",
            "person_id": husband,
            "date_of_death": "2026-02-01",
            "new_head_person_id": widow,
        },
    )
    assert died["household"]["changes"][-1]["details"]["spouse_person_id"] == widow
    groom = _person(intake, date(born.year - 1, 3, 3), widowed.plan.members[0].sex, "spouse")
    remarriage = {"kind": "marriage", "person_id": widow, "spouse": groom}
    detail = await _refused_date(
        intake,
        intake_engine,
        widowed,
        remarriage | {"married_on": "2026-01-20"},
        "/body/married_on",
    )
    assert "2026-02-01" in detail
    await intake.change(widowed, remarriage | {"married_on": "2026-02-10"})


async def _refused_change(
    intake: IntakeClient,
    engine: AsyncEngine,
    household: RegisteredHousehold,
    body: dict[str, Any],
    status: int = 422,
) -> list[str]:
    """The change is refused with a problem, writes nothing, and says where (pointers)."""
    problem = await refused_change(intake, engine, household, body, status)
    return [e["pointer"] for e in problem.get("errors", [])]


async def _told_of(
    intake: IntakeClient,
    engine: AsyncEngine,
    stack: TestStack,
    url: str,
    body: dict[str, Any],
    id_number: str,
    told: dict[str, list[str]],
    *,
    regions: Sequence[str] = ("62",),
) -> list[dict[str, Any]]:
    """``body`` posted to ``url`` by a clerk of ``regions`` is refused (422) with an answer
    that tells something of ``id_number``'s holder (that the number is on file, whether
    the name is the recorded one, when they left ...): recorded as a lookup by ID number
    is, one record per household told of (``told``: its id and the fields), action
    search, granted, the person by keyed hash; nothing else written. The errors."""
    prober = f"clerk-{uuid.uuid4()}"
    before = await row_counts(engine)
    response = await intake.http.post(
        url, json=body, headers=intake.headers(regions=regions, subject=prober)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + len(told)
    }
    hashed = PersonHasher.from_settings(pii_settings_for_tests()).hash_id_number(id_number)
    for household_id, fields in told.items():
        [record] = await access_records(stack, household_id, prober)
        assert (
            record.action,
            record.outcome,
            record.record_type,
            record.household_id,
            list(record.fields),
            [p.keyed_hash for p in record.persons],
        ) == (
            access.ACCESS_ACTION_SEARCH,
            access.ACCESS_OUTCOME_GRANTED,
            access.RECORD_TYPE_HOUSEHOLD,
            household_id,
            fields,
            [hashed],
        )
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


def _person(intake: IntakeClient, born: date, sex: Sex, relationship: str) -> dict[str, Any]:
    return {
        "name": "杨秀兰",
        "id_number": intake.synthesizer.id_number(born, sex),
        "relationship": relationship,
        # Of working age, out of work; past it (ADR 0021, 3 Dec 2026), not of working age.
        "employment_status": (
            "unemployed"
            if intake.synthesizer.today < working_age_ends_at_the_latest(born, sex)
            else "not_of_working_age"
        ),
    }


async def test_when_the_head_dies_every_member_is_recorded_against_the_new_head(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, kid = household.person_ids
    nephew = _person(intake, date(2021, 5, 1), Sex.MALE, "grandchild")
    joined = await intake.change(
        household,
        {
            "kind": "move_in",
            "moved_on": "2026-02-02",
            "member": nephew | {"employment_status": "not_of_working_age"},
        },
    )
    [grandchild] = [
        m["person_id"] for m in joined["household"]["members"] if m["relationship"] == "grandchild"
    ]
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": kid,
    }
    # The old head's grandchild may be the new head's child or a nephew: not derived.
    assert await _refused_change(intake, intake_engine, household, death) == [
        f"/body/relationships/{grandchild}"
    ]
    died = await intake.change(
        household, death | {"relationships": {grandchild: "other_dependant"}}
    )
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {
        kid: "head",
        wife: "parent",
        mother: "grandparent",
        grandchild: "other_dependant",
    }


async def test_marriages_in_an_impossible_order_are_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, kid = household.person_ids
    # The head's mother remarries: her husband is not the head's spouse (a second one).
    husband = _person(intake, household.plan.members[2].birth_date, Sex.MALE, "spouse")
    marriage = {"kind": "marriage", "person_id": mother, "married_on": "2026-02-01"}
    assert await _refused_change(
        intake, intake_engine, household, marriage | {"spouse": husband}
    ) == ["/body/spouse/relationship"]
    # A child of school age (at the member's own pointer, ADR 0016, 3 Dec 2026, helper
    # hAX), or a marriage before the member was born.
    assert await _refused_change(
        intake, intake_engine, household, marriage | {"person_id": kid}
    ) == ["/body/person_id"]
    assert await _refused_change(
        intake, intake_engine, household, marriage | {"person_id": kid, "married_on": "1990-05-01"}
    ) == ["/body/married_on"]
    # The head and the head's spouse are married to each other already.
    for married in (head, wife):
        assert await _refused_change(
            intake, intake_engine, household, marriage | {"person_id": married}
        ) == ["/body/person_id"]


async def test_moves_and_deaths_before_joining_are_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    newcomer = _person(intake, date(2005, 6, 1), Sex.MALE, "other_dependant")
    move_in = {"kind": "move_in", "moved_on": "2001-01-01", "member": newcomer}
    assert await _refused_change(intake, intake_engine, household, move_in) == ["/body/moved_on"]
    moved = await intake.change(household, move_in | {"moved_on": "2026-02-01"})
    [person_id] = [
        m["person_id"] for m in moved["household"]["members"] if m["joined_on"] == "2026-02-01"
    ]
    death = {"kind": "death", "person_id": person_id, "date_of_death": "2026-01-15"}
    assert await _refused_change(intake, intake_engine, household, death) == ["/body/date_of_death"]
    move_out = {"kind": "move_out", "person_id": person_id, "moved_on": "2026-01-15"}
    assert await _refused_change(intake, intake_engine, household, move_out) == ["/body/moved_on"]
    # A member registered with the household may have left before it was registered.
    await intake.change(household, death | {"date_of_death": "2026-02-20"})


async def test_a_new_head_who_joined_after_the_head_left_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A lodger moved in on 1 Feb; the head's death or move out dated 15 Jan naming the
    lodger new head is refused at new_head_person_id naming the day the lodger joined:
    nothing written (no change, no HouseholdUpdated in the outbox), the household as it
    was. The wife, registered with it, may be named. A head living alone until a carer
    came: the record shows nobody there on 15 Jan, and the true day of his death (which
    stops the allowance) is recorded with the carer named head, the naming forced."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, kid = household.person_ids
    lodger = await moves_in(
        intake, household, _person(intake, date(1980, 3, 3), Sex.MALE, "other"), "2026-02-01"
    )
    read = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    # Every relationship to the lodger given: the day is the only thing wrong.
    to_lodger = {wife: "other", mother: "other", kid: "other"}
    for body in (
        {"kind": "death", "date_of_death": "2026-01-15"},
        {"kind": "move_out", "moved_on": "2026-01-15"},
    ):
        problem = await refused_change(
            intake,
            intake_engine,
            household,
            body | {"person_id": head, "new_head_person_id": lodger, "relationships": to_lodger},
        )
        [error] = problem["errors"]
        assert error["pointer"] == "/body/new_head_person_id"
        assert "joined the household on 2026-02-01, after 2026-01-15" in error["detail"]
    unchanged = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    assert unchanged.json() == read.json()
    died = await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-01-15",
            "new_head_person_id": wife,
            "relationships": {lodger: "other"},
        },
    )
    assert died["household"]["head_person_id"] == wife

    alone = await intake.register(intake.plan(shape="elderly_alone"))
    [widower] = alone.person_ids
    carer = await moves_in(
        intake, alone, _person(intake, date(1975, 5, 5), Sex.FEMALE, "other"), "2026-02-01"
    )
    died_alone = await intake.change(
        alone,
        {
            "kind": "death",
            "person_id": widower,
            "date_of_death": "2026-01-15",
            "new_head_person_id": carer,
        },
    )
    assert died_alone["household"]["head_person_id"] == carer


async def test_a_death_is_recorded_with_the_certificate_of_the_person_who_died(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, wife, mother, _kid = household.person_ids
    mothers = (await intake.upload(household.id, "death_certificate", mother)).json()["id"]
    wifes = (await intake.upload(household.id, "death_certificate", wife)).json()["id"]
    death = {"kind": "death", "person_id": wife, "date_of_death": "2026-02-20"}
    # The mother's certificate is no evidence of the wife's death.
    assert await _refused_change(
        intake, intake_engine, household, death | {"document_ids": [wifes, mothers]}
    ) == ["/body/document_ids/1"]
    died = await intake.change(household, death | {"document_ids": [wifes]})
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 2, key=household.id)
    [update] = [REGISTRY.decode(e) for e in found if e.ce_subject == died["change_id"]]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.death.death_certificate.document_id == wifes


async def test_a_person_joins_once_alive_and_after_leaving_elsewhere(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, kid = household.person_ids
    child = household.plan.members[3].payload()
    changes = f"/households/{household.id}/changes"

    async def told(body: dict[str, Any], fields: list[str]) -> list[str]:
        # Each answer tells, for an ID number alone, that it is on file (a member here,
        # registered, when they left): recorded as a lookup is, nothing else written.
        errors = await _told_of(
            intake, intake_engine, intake_stack, changes, body, child["id_number"],
            {household.id: fields},
        )  # fmt: skip
        return [e["pointer"] for e in errors]

    # Born again into the household they are in: not "another household".
    birth = {"kind": "birth", "member": child}
    assert await told(birth, ["member"]) == ["/body/member/id_number"]
    await intake.change(household, {"kind": "move_out", "person_id": kid, "moved_on": "2026-02-20"})
    # Moved out, then born again; or moved back in before having moved out.
    assert await told(birth, ["registered"]) == ["/body/member/id_number"]
    back = {"kind": "move_in", "moved_on": "2026-02-10", "member": child}
    assert await told(back, ["left_on"]) == ["/body/moved_on"]
    await intake.change(household, back | {"moved_on": "2026-02-25"})
    # The dead neither move in nor are registered again.
    await intake.change(
        household, {"kind": "death", "person_id": mother, "date_of_death": "2026-02-21"}
    )
    dead = household.plan.members[2].payload() | {"relationship": "other_dependant"}
    other = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_alone"))
    payload = _with_member_id(
        intake.plan(URBAN_VILLAGE, shape="elderly_alone").payload(), 0, dead["id_number"]
    )
    # The answer tells of a death recorded in another county, for an ID number alone: it
    # is recorded as a lookup is (as the 409 of a person active elsewhere), and nothing
    # else is written.
    prober = f"clerk-{uuid.uuid4()}"
    headers = intake.headers(subject=prober)
    for url, body, pointer in (
        (
            f"/households/{other.id}/changes",
            {"kind": "move_in", "moved_on": "2026-02-25", "member": dead},
            "/body/member/id_number",
        ),
        ("/households", payload, "/body/members/0/id_number"),
    ):
        before = await row_counts(intake_engine)
        response = await intake.http.post(url, json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert [e["pointer"] for e in response.json()["errors"]] == [pointer]
        assert await row_counts(intake_engine) == before | {
            "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
        }
    records = await access_records(intake_stack, household.id, prober, count=2)
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    assert [
        (r.action, r.outcome, list(r.fields), [p.keyed_hash for p in r.persons]) for r in records
    ] == [
        (
            access.ACCESS_ACTION_SEARCH,
            access.ACCESS_OUTCOME_GRANTED,
            ["deceased"],
            [hasher.hash_id_number(dead["id_number"])],
        )
    ] * 2


async def test_a_join_dated_before_leaving_another_region_does_not_say_when(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A move_in dated before the person left their last household is refused at
    moved_on, naming the day they left: of a household in another county too, which told
    a clerk who holds nothing but an ID number when its holder left a household they may
    not read (nothing recorded, as a refused request writes nothing). The day is named
    to a clerk whose regions hold that household, and not to others; and the answer,
    which tells either that the holder left a household after that day, is recorded as
    a lookup of the person (field left_on), nothing else written."""
    household = await intake.register(intake.plan(RURAL_VILLAGE, shape="three_generations"))
    kid = household.person_ids[3]
    member = household.plan.members[3].payload() | {"relationship": "other_dependant"}
    await intake.change(household, {"kind": "move_out", "person_id": kid, "moved_on": "2026-02-20"})
    elsewhere = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_alone"))
    body = {"kind": "move_in", "moved_on": "2026-02-10", "member": member}
    details: dict[str, str] = {}
    for regions in (["620102"], ["62"]):
        [error] = await _told_of(
            intake,
            intake_engine,
            intake_stack,
            f"/households/{elsewhere.id}/changes",
            body,
            member["id_number"],
            {household.id: ["left_on"]},
            regions=regions,
        )
        assert error["pointer"] == "/body/moved_on"
        details[regions[0]] = error["detail"]
    assert "2026-02-20" not in details["620102"]
    assert "2026-02-20" in details["62"]


async def test_a_spouse_joins_by_marriage_only_after_leaving_elsewhere(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    # A widower's new wife left her former household on 20 February: joining his on the
    # day of a marriage in January would make her a member of two households at once.
    # She divorced there first: else the registry shows her married to her former
    # household's head, and no marriage of hers elsewhere is recorded (ADR 0016, 3 Dec 2026).
    former = await intake.register(intake.plan(shape="elderly_couple"))
    await intake.change(
        former,
        {
            "kind": "divorce",
            "person_id": former.person_ids[0],
            "spouse_person_id": former.person_ids[1],
            "divorced_on": "2025-12-01",
        },
    )
    await intake.change(
        former,
        {"kind": "move_out", "person_id": former.person_ids[1], "moved_on": "2026-02-20"},
    )
    plans = (intake.plan(shape="elderly_alone") for _ in range(50))
    widower = await intake.register(next(p for p in plans if p.members[0].sex is Sex.MALE))
    marriage = {
        "kind": "marriage",
        "person_id": widower.person_ids[0],
        "married_on": "2026-01-10",
        "spouse": former.plan.members[1].payload() | {"relationship": "spouse"},
    }
    [error] = await _told_of(
        intake,
        intake_engine,
        intake_stack,
        f"/households/{widower.id}/changes",
        marriage,
        former.plan.members[1].id_number,
        {former.id: ["left_on"]},
    )
    assert error["pointer"] == "/body/married_on"
    married = await intake.change(widower, marriage | {"married_on": "2026-02-25"})
    [wife] = [m for m in married["household"]["members"] if m["relationship"] == "spouse"]
    assert wife["person_id"] == former.person_ids[1]
    assert wife["joined_on"] == "2026-02-25"


async def test_a_known_id_number_under_another_name_is_refused_and_a_name_is_corrected(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A person is their ID number: a move in or a registration giving a known number with
    another name (a typing error) is refused at the name, without telling the recorded
    one, and renames nobody. The refusal tells, for an ID number alone, that it is on file
    under another name: recorded as a lookup is (field name, the person's household
    named), nothing else written. A recorded name that is wrong is corrected by a member
    change of a current member: the person's, so their former household shows it too."""
    former = await intake.register(intake.plan(shape="elderly_couple"))
    person = former.person_ids[1]
    recorded = former.plan.members[1].name
    await intake.change(former, {"kind": "move_out", "person_id": person, "moved_on": "2026-02-20"})
    other = await intake.register(intake.plan(shape="elderly_alone"))
    member = former.plan.members[1].payload() | {"relationship": "other_dependant"}
    mistyped = {"kind": "move_in", "moved_on": "2026-02-25", "member": member | {"name": "王秀芝"}}
    response = await intake.http.post(
        f"/households/{other.id}/changes", json=mistyped, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    assert recorded not in response.text
    number = former.plan.members[1].id_number
    for url, body, pointer in (
        (f"/households/{other.id}/changes", mistyped, "/body/member/name"),
        (
            "/households",
            _with_member_id(intake.plan(shape="elderly_alone").payload(), 0, number),
            "/body/members/0/name",
        ),
    ):
        errors = await _told_of(
            intake, intake_engine, intake_stack, url, body, number, {former.id: ["name"]}
        )
        assert [e["pointer"] for e in errors] == [pointer]

    async def name_in(household: RegisteredHousehold) -> str:
        read = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
        [found] = [m["name"] for m in read.json()["members"] if m["person_id"] == person]
        return str(found)

    assert await name_in(former) == recorded
    joined = await intake.change(other, {**mistyped, "member": member})
    assert person in [m["person_id"] for m in joined["household"]["members"]]
    correction = {
        "kind": "member_change",
        "person_id": person,
        "effective_on": "2026-02-27",
        "name": "王秀芝",
    }
    corrected = await intake.change(other, correction)
    # A change's details hold ids, dates and flags, never a name.
    assert corrected["household"]["changes"][-1]["details"] == {
        "person_id": person,
        "changed": {},
        "name_corrected": True,
        "document_ids": [],
    }
    assert (await name_in(other), await name_in(former)) == ("王秀芝", "王秀芝")
    assert await _refused_change(intake, intake_engine, other, correction) == ["/body/name"]


async def _former_member_named(
    intake: IntakeClient, name: str
) -> tuple[PlannedHousehold, str, str]:
    """An elderly couple registered with the second member typed as ``name``, who then
    moved out (2026-02-20): the plan, that member's person id and their name as stored."""
    plan = intake.plan(shape="elderly_couple")
    payload = plan.payload()
    payload["members"][1]["name"] = name
    registered = await intake.http.post("/households", json=payload, headers=intake.headers())
    assert registered.status_code == 201, registered.text
    [(person, stored)] = [
        (m["person_id"], m["name"])
        for m in registered.json()["members"]
        if m["id_number_masked"][-4:] == plan.members[1].id_number[-4:]
    ]
    former = RegisteredHousehold(registered.json()["id"], plan, [], registered.json())
    await intake.change(former, {"kind": "move_out", "person_id": person, "moved_on": "2026-02-20"})
    return plan, person, stored


async def test_a_name_typed_with_another_dot_or_width_is_the_same_name(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A minority citizen's name is typed with its separator in several code points
    (U+30FB, U+FF0E, U+2027...) and padded or full-width: it is stored in one spelling
    (U+00B7), and the same person joining under another spelling is not refused as
    another name. A name of separators alone is refused, writing nothing."""
    plan, person, stored = await _former_member_named(intake, " 阿依古丽・买买提\u3000")
    assert stored == "阿依古丽·买买提"  # U+30FB and the padding gone
    other = await intake.register(intake.plan(shape="elderly_alone"))
    member = plan.members[1].payload() | {"relationship": "other_dependant"}
    moving = {"kind": "move_in", "moved_on": "2026-02-25", "member": member}
    assert await _refused_change(
        intake, intake_engine, other, moving | {"member": member | {"name": " ·\u200b "}}
    ) == ["/body/member/name"]
    joined = await intake.change(other, moving | {"member": member | {"name": "阿依古丽．买买提"}})
    [again] = [m for m in joined["household"]["members"] if m["person_id"] == person]
    assert again["name"] == "阿依古丽·买买提"


async def test_a_name_padded_for_alignment_is_the_same_name(intake: IntakeClient) -> None:
    """A two-character name padded to three with an ideographic space (王　芳, as a
    register or spreadsheet aligns it) is the name its ID card prints: stored without
    the space, and the same person joining as 王芳 is not refused as another name."""
    plan, person, stored = await _former_member_named(intake, "王\u3000芳")
    assert stored == "王芳"
    other = await intake.register(intake.plan(shape="elderly_alone"))
    member = plan.members[1].payload() | {"relationship": "other_dependant", "name": "王芳"}
    joined = await intake.change(
        other, {"kind": "move_in", "moved_on": "2026-02-25", "member": member}
    )
    assert person in [m["person_id"] for m in joined["household"]["members"]]


async def test_a_household_dissolved_by_a_death_closes_its_open_applications_only(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The death of a household's last member dissolves it: its application still being
    decided is closed as withdrawn (household_dissolved), ApplicationWithdrawn of cause
    HOUSEHOLD_DISSOLVED published and in its timeline after the death, in the change's
    transaction. Its returned application stays returned, another household's open one
    stays open, and the applicant cannot withdraw the closed one again."""
    alone = await intake.register(intake.plan(shape="elderly_alone"))
    body = await intake.complete_application_body(alone)
    returned = await intake.submit({**body, "document_ids": []})
    assert returned.json()["status"] == "returned", returned.text
    opened = await intake.submit(body)
    assert opened.json()["status"] == "submitted", opened.text
    neighbour = await intake.register()
    other = await intake.submit(await intake.complete_application_body(neighbour))
    assert other.json()["status"] == "submitted", other.text
    died = await intake.change(
        alone,
        {"kind": "death", "person_id": alone.person_ids[0], "date_of_death": "2026-02-20"},
    )
    assert died["household"]["status"] == "dissolved"

    async def application(response: Any) -> dict[str, Any]:
        read = await intake.http.get(
            f"/applications/{response.json()['id']}", headers=intake.headers()
        )
        assert read.status_code == 200, read.text
        found: dict[str, Any] = read.json()
        return found

    closed = await application(opened)
    # The cause in a column of its own, no words in the reason (as its event has none).
    assert (closed["status"], closed["withdrawal_cause"], closed["withdrawal_reason"]) == (
        "withdrawn",
        "household_dissolved",
        None,
    )
    assert closed["withdrawn_at"] is not None
    assert [(e["type"].split(".")[2], e["summary"]) for e in closed["timeline"][-2:]] == [
        ("HouseholdUpdated", "Household updated: death"),
        ("ApplicationWithdrawn", "Application withdrawn"),
    ]
    assert closed["timeline"][-1]["details"] == {"cause": "household_dissolved"}
    assert (await application(returned))["status"] == "returned"
    still = await application(other)
    assert (still["status"], still["withdrawn_at"]) == ("submitted", None)
    assert "dibao.intake.ApplicationWithdrawn.v1" not in [e["type"] for e in still["timeline"]]
    published = await wait_for_events(
        intake_stack, "dibao.intake.v1", 3, subject=opened.json()["id"]
    )
    message = REGISTRY.decode(published[-1])
    assert isinstance(message, ev.ApplicationWithdrawn)
    assert (message.cause, message.reason) == (ev.WITHDRAWAL_CAUSE_HOUSEHOLD_DISSOLVED, "")
    assert message.actor.subject == published[-1].actor
    again = await intake.http.post(
        f"/applications/{opened.json()['id']}/withdrawal",
        json={"reason": "moved away"},
        headers=intake.headers(),
    )
    assert again.status_code == 409, again.text


async def test_a_former_member_joining_corrects_their_recorded_name_with_their_id_card(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A former member recorded under a wrong name joins under the right one with
    name_correction and their ID card among the change's documents: the join records the
    correction as a member_change would (the person's name everywhere, name_corrected in
    the details, the event's member as now recorded). Without the card, with the recorded
    name, at a registration: refused, nothing written."""
    former = await intake.register(intake.plan(shape="elderly_couple"))
    person = former.person_ids[1]
    await intake.change(former, {"kind": "move_out", "person_id": person, "moved_on": "2026-02-20"})
    other = await intake.register(intake.plan(shape="elderly_alone"))
    member = former.plan.members[1].payload() | {"relationship": "other_dependant"}
    correcting = {
        "kind": "move_in",
        "moved_on": "2026-02-25",
        "member": member | {"name": "王秀芝", "name_correction": True},
    }
    # Either refusal tells whether the name is the one recorded for a number on file:
    # recorded as a lookup is (field name), nothing else written.
    as_recorded = correcting | {"member": member | {"name_correction": True}}
    for body, pointer in (
        (correcting, "/body/document_ids"),
        (as_recorded, "/body/member/name_correction"),
    ):
        errors = await _told_of(
            intake,
            intake_engine,
            intake_stack,
            f"/households/{other.id}/changes",
            body,
            member["id_number"],
            {former.id: ["name"]},
        )
        assert [e["pointer"] for e in errors] == [pointer]
    payload = _with_member_id(
        intake.plan(shape="elderly_alone").payload(), 0, former.plan.members[1].id_number
    )
    payload["members"][0] |= {"name": "王秀芝", "name_correction": True}
    problem = await _refused(intake, intake_engine, payload, 422)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/members/0/name_correction"]
    card = await intake.upload(other.id, "id_card")
    assert card.status_code == 201, card.text
    joined = await intake.change(other, correcting | {"document_ids": [card.json()["id"]]})
    [again] = [m for m in joined["household"]["members"] if m["person_id"] == person]
    assert again["name"] == "王秀芝"
    details = joined["household"]["changes"][-1]["details"]
    assert (details["name_corrected"], details["joined_person_ids"]) == (True, [person])
    assert "王秀芝" not in str(details)
    read = await intake.http.get(f"/households/{former.id}", headers=intake.headers())
    assert [m["name"] for m in read.json()["members"] if m["person_id"] == person] == ["王秀芝"]
    [event] = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=joined["change_id"])
    update = REGISTRY.decode(event)
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.move_in.member.person.masked_name == mask_name("王秀芝")


async def test_two_registrations_of_a_couple_in_either_order_do_not_deadlock(
    intake: IntakeClient, intake_app: FastAPI, intake_engine: AsyncEngine
) -> None:
    # Two clerks register the same couple at once, each naming the other spouse the head.
    first = intake.plan(shape="elderly_couple").payload()
    husband, wife = first["members"]
    second = copy.deepcopy(first) | {
        "members": [wife | {"relationship": "head"}, husband | {"relationship": "spouse"}]
    }
    pii = intake_app.state.runtime.pii
    before = await row_counts(intake_engine)
    async with intake_engine.connect() as blocker, intake_engine.connect() as watcher:
        # A transaction inserting both persons first holds the two registrations at their
        # first person; when it rolls back they go on together, as if arriving at once.
        held = await blocker.begin()
        for member in (husband, wife):
            await blocker.execute(
                text(
                    "INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id,"
                    " name, birth_date, sex, created_at) VALUES (:id, :hash, 'k1', '\\x00',"
                    " 'masked', 'name', '1950-01-01', 'male', now())"
                ),
                {"id": uuid.uuid4(), "hash": pii.hash_id_number(member["id_number"])},
            )
        posts = [
            asyncio.create_task(
                intake.http.post("/households", json=payload, headers=intake.headers())
            )
            for payload in (first, second)
        ]
        waiting = 0
        for _ in range(200):
            waiting = (
                await watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                )
            ).scalar_one()
            if waiting == 2:
                break
            await asyncio.sleep(0.05)
        assert waiting == 2
        await held.rollback()
        responses = await asyncio.gather(*posts)
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    # The loser is told where the persons are, as a request checked after the winner is.
    [lost] = [r.json() for r in responses if r.status_code == 409]
    assert lost["type"].endswith("/person-in-household")
    assert [c["pointer"] for c in lost["conflicts"]] == ["/body/members/0", "/body/members/1"]
    assert len({c["household_ref"] for c in lost["conflicts"]}) == 1
    after = await row_counts(intake_engine)
    assert after["household"] == before["household"] + 1
    assert after["person"] == before["person"] + 2


CASE_ROLES = {
    Role.INTAKE_CLERK,
    Role.INVESTIGATOR,
    Role.VILLAGE_COMMITTEE,
    Role.TOWNSHIP_REVIEWER,
    Role.COUNTY_APPROVER,
    Role.AUDITOR,
}


@pytest.mark.parametrize("role", list(Role))
async def test_a_household_is_found_by_a_member_id_number(
    intake: IntakeClient, intake_stack: TestStack, role: Role
) -> None:
    """A clerk facing an applicant with an ID card had no way to find the household the
    person is registered in (only registering them again, to be refused with a masked
    reference). POST /households/lookup finds it by the number's keyed hash, for the roles
    that work or audit cases, within their regions, and records the lookup."""
    household = await intake.register(intake.plan(shape="single_parent"))
    member = household.plan.members[1]
    reader = f"looker-{role.value}"
    found = await intake.http.post(
        "/households/lookup",
        json={"id_number": member.id_number},
        headers=intake.headers(role, ["620123101"], subject=reader),
    )
    if role not in CASE_ROLES:
        assert found.status_code == 403, found.text
        assert found.json()["type"].endswith("/missing-role")
        return
    assert found.status_code == 200, found.text
    assert found.json() == {
        "household_id": household.id,
        "region_code": household.plan.region_code,
        "region_name": household.body["region_name"],
        "person_id": household.person_ids[1],
        "id_number_masked": member.id_number[:6] + "********" + member.id_number[-4:],
        "relationship": member.relationship.value,
    }
    assert member.id_number not in found.text
    [record] = await access_records(intake_stack, household.id, reader)
    assert record.action == access.ACCESS_ACTION_SEARCH
    assert record.outcome == access.ACCESS_OUTCOME_GRANTED
    assert [p.person_id for p in record.persons] == [household.person_ids[1]]
    assert list(record.fields) == ["id_number_masked", "relationship"]


async def test_a_lookup_finds_only_an_active_member_in_the_callers_regions(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(shape="single_parent"))
    parent, child = household.plan.members[0], household.plan.members[1]

    async def look_up(id_number: str, regions: list[str], subject: str) -> Any:
        return await intake.http.post(
            "/households/lookup",
            json={"id_number": id_number},
            headers=intake.headers(Role.INVESTIGATOR, regions, subject=subject),
        )

    # Another region's household answers as no household does; the refusal is recorded.
    foreign = await look_up(parent.id_number, ["620102"], "lookup-prober")
    # A number nobody holds: drawn by the synthesizer, so no other test's household has it.
    unheld = intake.synthesizer.id_number(date(1925, 3, 4), Sex.MALE, "620123")
    nobody = await look_up(unheld, ["62"], "lookup-prober")
    assert foreign.status_code == nobody.status_code == 404
    assert foreign.json()["detail"] == nobody.json()["detail"]
    [refusal] = await access_records(intake_stack, household.id, "lookup-prober")
    assert refusal.outcome == access.ACCESS_OUTCOME_DENIED
    assert list(refusal.persons) == list(refusal.fields) == []
    # A bad check digit is named, and nothing is looked up.
    wrong = parent.id_number[:-1] + ("0" if parent.id_number[-1] != "0" else "1")
    refused = await look_up(wrong, ["62"], "lookup-typo")
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/body/id_number"]
    # Once the child's parent has died, the parent is no household's active member.
    born = await intake.change(household, {"kind": "birth", "member": intake.newborn()})
    heir = born["household"]["members"][-1]["person_id"]
    await intake.change(
        household,
        {
            "kind": "death",
            "person_id": household.person_ids[0],
            "date_of_death": "2026-02-20",
            "new_head_person_id": heir,
        },
    )
    assert (await look_up(parent.id_number, ["62"], "lookup-after")).status_code == 404
    assert (await look_up(child.id_number, ["62"], "lookup-after")).status_code == 200


async def test_households_are_listed_by_region_a_page_at_a_time(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A village's households, newest first, a page at a time: each with its head's
    masked name and its size, to the case roles within their regions; the page is
    recorded. Every registered household is listed, not only recipients: more than the
    public lists show, so publicity and finance officers and policy admins get 403."""
    village = "620123102202"  # 高崖镇关门口村: this test's village
    registered = [await intake.register(intake.plan(village)) for _ in range(3)]
    reader = f"village-lister-{uuid.uuid4()}"  # its records alone, run after run

    async def pages(role: Role, regions: list[str], subject: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"region": village, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await intake.http.get(
                "/households", params=params, headers=intake.headers(role, regions, subject=subject)
            )
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items

    listed = await pages(Role.VILLAGE_COMMITTEE, ["620123102"], reader)
    ids = [item["id"] for item in listed]
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids, reverse=True)  # uuid7: newest first
    mine = {h.id: h for h in registered}
    assert set(mine) <= set(ids)
    for item in listed:
        if item["id"] in mine:
            h = mine[item["id"]]
            assert item["head_masked_name"] == mask_name(h.plan.members[0].name)
            assert item["active_members"] == len(h.plan.members)
            assert (item["region_code"], item["status"]) == (village, "active")
    # An auditor of the county sees the same; another region sees none of them.
    auditor = await pages(Role.AUDITOR, ["620123"], "village-auditor")
    assert [i["id"] for i in auditor] == ids
    # Another region's committee is told the village is outside its regions (403), not
    # shown an empty page as if the village had no households.
    foreign = await intake.http.get(
        "/households",
        params={"region": village},
        headers=intake.headers(Role.VILLAGE_COMMITTEE, ["620102"], subject="village-foreigner"),
    )
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["type"].endswith("/region-out-of-scope")
    for role in (Role.PUBLICITY_OFFICER, Role.FINANCE_OFFICER, Role.POLICY_ADMIN):
        refused = await intake.http.get(
            "/households", params={"region": village}, headers=intake.headers(role, ["620123"])
        )
        assert refused.status_code == 403, (role, refused.text)
        assert refused.json()["type"].endswith("/missing-role")
    [record] = await access_records(intake_stack, f"households?region_prefix={village}", reader)
    assert record.action == access.ACCESS_ACTION_SEARCH
    assert list(record.fields) == ["head_name_masked", "region", "status", "size"]
    # The first page: the two newest, this test's last two.
    assert {p.person_id for p in record.persons} == {h.person_ids[0] for h in registered[1:]}


async def test_a_lookup_is_answered_afresh_whatever_its_idempotency_key(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A lookup is a read: it took an Idempotency-Key, stored its answer and a plain sha256
    of its body (the ID number alone, which ADR 0005 says a plain hash does not protect),
    and a retry with the key got that answer back without the region check or a record:
    the same staff member's token for another region, or a person who had since left the
    household, still found it. The key is now ignored and each lookup checked and
    recorded."""
    household = await intake.register(intake.plan(shape="single_parent"))
    parent = household.plan.members[0]
    subject = "lookup-retrier"
    key = f"lookup-{household.id}"

    async def look_up(regions: list[str]) -> Any:
        return await intake.http.post(
            "/households/lookup",
            json={"id_number": parent.id_number},
            headers=intake.headers(
                Role.INVESTIGATOR, regions, subject=subject, idempotency_key=key
            ),
        )

    first = await look_up(["620123"])
    assert first.status_code == 200, first.text
    async with intake_engine.connect() as connection:
        stored = await connection.scalar(
            text("SELECT count(*) FROM idempotency_record WHERE key = :key"), {"key": key}
        )
    assert stored == 0
    # The same staff member, now for another county: the household is not in their regions.
    moved = await look_up(["620102"])
    assert moved.status_code == 404, moved.text
    assert "Idempotent-Replayed" not in moved.headers
    records = await access_records(intake_stack, household.id, subject, count=2)
    assert [r.outcome for r in records] == [
        access.ACCESS_OUTCOME_GRANTED,
        access.ACCESS_OUTCOME_DENIED,
    ]


async def test_a_change_enters_the_timeline_of_each_open_application(
    intake: IntakeClient,
) -> None:
    """A member's death recorded while an application is being investigated changes the
    case (fewer members, another income per head): it shows in the timeline of each of the
    household's undecided applications, as the kind of change, who and when. A withdrawn
    application's timeline is closed. In the limited view the entry gives the event's name
    alone."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    body = await intake.complete_application_body(household)
    withdrawn = (await intake.submit(body)).json()["id"]
    response = await intake.http.post(
        f"/applications/{withdrawn}/withdrawal",
        json={"reason": "重新申请"},
        headers=intake.headers(),
    )
    assert response.status_code == 201, response.text
    submitted = await intake.submit(body)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "submitted"
    open_one = submitted.json()["id"]
    await intake.change(
        household, {"kind": "death", "person_id": mother, "date_of_death": "2026-02-20"}
    )

    async def timeline(application_id: str, role: Role = Role.INTAKE_CLERK) -> list[Any]:
        read = await intake.http.get(
            f"/applications/{application_id}", headers=intake.headers(role, ["620123"])
        )
        assert read.status_code == 200, read.text
        return [
            (e["summary"], e["details"])
            for e in read.json()["timeline"]
            if e["type"] == "dibao.intake.HouseholdUpdated.v1"
        ]

    assert await timeline(open_one) == [
        (
            "Household updated: death",
            {"change": "death", "person_id": mother, "date_of_death": "2026-02-20"},
        )
    ]
    assert await timeline(withdrawn) == []
    assert await timeline(open_one, Role.PUBLICITY_OFFICER) == [("Household updated", None)]


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting or 0) > 0


_ENDING = {
    "withdrawn": [
        "SELECT id FROM application WHERE id = :id FOR UPDATE",
        "UPDATE application SET status = 'withdrawn', withdrawn_at = now(),"
        " withdrawal_reason = '撤回', withdrawal_cause = 'applicant_request' WHERE id = :id",
    ],
    "decided": ["UPDATE application SET decided_at = now(), decision = 'rejected' WHERE id = :id"],
}
"""What a withdrawal (withdraw_application) and a decision (the timeline consumer's
mark_decided) do to the application row."""


@pytest.mark.parametrize("ending", list(_ENDING))
async def test_an_application_withdrawn_or_decided_during_a_change_gets_no_entry(
    intake: IntakeClient, intake_engine: AsyncEngine, ending: str
) -> None:
    """A change reads the household's open applications while one is being withdrawn or
    decided: the read waits for that to commit and then leaves the application out, so
    the change does not enter the timeline of an application closed before it was
    recorded."""
    household = await intake.register(intake.plan(shape="three_generations"))
    mother = household.person_ids[2]
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    application = submitted.json()["id"]
    death = {"kind": "death", "person_id": mother, "date_of_death": "2026-02-20"}
    async with intake_engine.connect() as conn:
        for statement in _ENDING[ending]:
            await conn.execute(text(statement), {"id": application})
        change = asyncio.create_task(
            intake.http.post(
                f"/households/{household.id}/changes", json=death, headers=intake.headers()
            )
        )
        # Until it waits on the held row (at most 30 s, else a failure): 200 looks (5 to
        # 10 s) could run out unnoticed on a slow machine, the commit below then coming
        # first and the test no longer about the race it is for.
        deadline = asyncio.get_running_loop().time() + 30
        while not change.done() and not await _waiting_on_a_lock(intake_engine):
            assert asyncio.get_running_loop().time() < deadline, "it never waited on the lock"
            await asyncio.sleep(0.02)
        assert not change.done(), change.result().text
        await conn.commit()
    response = await change
    assert response.status_code == 201, response.text
    async with intake_engine.connect() as conn:
        entries = await conn.scalar(
            text(
                "SELECT count(*) FROM timeline_entry WHERE application_id = :id"
                " AND ce_type = 'dibao.intake.HouseholdUpdated.v1'"
            ),
            {"id": application},
        )
    assert entries == 0


# --- the whole household moves ---------------------------------------------------------------


async def test_a_household_moving_within_its_township_is_recorded_published_and_in_the_timeline(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The whole household moves to another village of its township: the household's
    region, area type and address change, HouseholdUpdated says where from (its region
    is the new one), and the open application's timeline shows the move by division
    codes. The application stays with its township."""
    household = await intake.register(intake.plan(shape="three_generations"))
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    move = {
        "kind": "address_change",
        "moved_on": "2026-02-15",
        "address": "榆中县夏官营镇红柳沟村二社8号",
        "region_code": "620123101204",
    }
    moved = await intake.change(household, move)
    after = moved["household"]
    assert (after["region_code"], after["area_type"], after["address"], after["version"]) == (
        "620123101204",
        "rural",
        "榆中县夏官营镇红柳沟村二社8号",
        2,
    )
    [change] = after["changes"]
    assert (change["kind"], change["effective_on"]) == ("address_change", "2026-02-15")
    assert change["details"] == {
        "region_code": "620123101204",
        "previous_region_code": RURAL_VILLAGE,
        "area_type": "rural",
        "document_ids": [],
    }
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=moved["change_id"])
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.WhichOneof("change") == "address_change"
    assert update.address_change.previous_region.code == RURAL_VILLAGE
    assert update.address_change.area_type == enums.AREA_TYPE_RURAL
    moved_on = update.address_change.moved_on  # from when the new region's standard applies
    assert (moved_on.year, moved_on.month, moved_on.day) == (2026, 2, 15)
    assert (update.region.code, update.household.region.code) == ("620123101204",) * 2
    assert "红柳沟村二社".encode() not in found[0].payload  # the address is not published
    read = await intake.http.get(
        f"/applications/{submitted.json()['id']}", headers=intake.headers()
    )
    assert [
        (e["summary"], e["details"])
        for e in read.json()["timeline"]
        if e["type"] == "dibao.intake.HouseholdUpdated.v1"
    ] == [
        (
            "Household updated: address change",
            {
                "change": "address_change",
                "previous_region": RURAL_VILLAGE,
                "region": "620123101204",
                "moved_on": "2026-02-15",
            },
        )
    ]
    # A new address in the same village needs no region.
    await intake.change(household, {**move, "address": "红柳沟村三社1号", "region_code": None})


async def test_an_address_change_that_breaks_a_rule_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    move = {"kind": "address_change", "moved_on": "2026-02-15", "address": "测试地址1号"}

    async def refused(body: dict[str, Any], status: int = 422) -> list[str]:
        return await _refused_change(intake, intake_engine, household, move | body, status)

    # Nothing moves; a region not in the table, or a township; a day to come; an ID number.
    assert await refused({}) == ["/body/address"]
    assert await refused({"region_code": RURAL_VILLAGE, "area_type": "rural"}) == ["/body/address"]
    assert await refused({"region_code": "620123101299"}) == ["/body/region_code"]
    assert await refused({"region_code": "620123101000"}) == ["/body/region_code"]
    assert await refused({"address": "新地址", "moved_on": "2026-03-03"}) == ["/body/moved_on"]
    number = household.plan.members[0].id_number
    assert await refused({"address": f"新地址 {number}"}) == ["/body/address"]
    # A clerk of the township moves households within it only.
    before = await row_counts(intake_engine)
    elsewhere = move | {"address": "砂河村一社2号", "region_code": "620123102201"}
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json=elsewhere,
        headers=intake.headers(regions=["620123101"]),
    )
    assert response.status_code == 403, response.text
    assert response.json()["type"].endswith("/region-out-of-scope")
    assert await row_counts(intake_engine) == before
    # An application being decided stays with its township: no move to another one.
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=elsewhere, headers=intake.headers()
    )
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/open-application-in-township")
    assert await row_counts(intake_engine) == before
    withdrawn = await intake.http.post(
        f"/applications/{submitted.json()['id']}/withdrawal",
        json={"reason": "迁往高崖镇"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    moved = await intake.change(household, elsewhere)
    assert moved["household"]["region_code"] == "620123102201"


async def test_a_move_dated_before_the_latest_recorded_move_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The record holds where the household lives now: a move dated before the latest
    recorded one, learned of later, would pass for the current address while the later
    move holds (a household that moved to 红柳沟村 on 20 February put back in 夏官营村 by a
    move of 10 February). Refused at moved_on naming the later move's date, nothing
    written; the same day is allowed."""
    household = await intake.register(intake.plan(shape="three_generations"))
    move = {
        "kind": "address_change",
        "moved_on": "2026-02-20",
        "address": "榆中县夏官营镇红柳沟村二社8号",
        "region_code": "620123101204",
    }
    await intake.change(household, move)
    earlier = {
        "kind": "address_change",
        "moved_on": "2026-02-10",
        "address": "夏官营村四社1号",
        "region_code": RURAL_VILLAGE,
    }
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=earlier, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/moved_on"
    assert "2026-02-20" in error["detail"]
    assert await row_counts(intake_engine) == before
    read = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    assert (read.json()["region_code"], read.json()["address"]) == (
        "620123101204",
        "榆中县夏官营镇红柳沟村二社8号",
    )
    same_day = await intake.change(household, earlier | {"moved_on": "2026-02-20"})
    assert same_day["household"]["region_code"] == RURAL_VILLAGE


# --- a member's own details ----------------------------------------------------------------


async def test_a_disability_grade_change_is_recorded_published_and_in_the_timeline(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """What a clerk records most often in an annual review: the member's own record
    changes (here a disability certificate issued), nothing else; HouseholdUpdated carries
    the member as now recorded and the household after it, and an open application's
    timeline names whose details changed, not which nor to what."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, wife, _mother, _kid = household.person_ids
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    certificate = (await intake.upload(household.id, "disability_certificate", wife)).json()["id"]
    changed = await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": wife,
            "effective_on": "2026-02-10",
            "disability_grade": "2",
            "document_ids": [certificate],
        },
    )
    assert changed["kind"] == "member_change"
    after = changed["household"]
    assert after["version"] == 2
    members = {m["person_id"]: m for m in after["members"]}
    assert members[wife]["disability_grade"] == "2"
    before = {m["person_id"]: m for m in household.body["members"]}
    assert members[wife] | {"disability_grade": before[wife]["disability_grade"]} == before[wife]
    assert {p: m for p, m in members.items() if p != wife} == {
        p: m for p, m in before.items() if p != wife
    }
    [change] = after["changes"]
    assert (change["kind"], change["effective_on"]) == ("member_change", "2026-02-10")
    assert change["details"] == {
        "person_id": wife,
        "changed": {"disability_grade": "2"},
        "document_ids": [certificate],
    }
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=changed["change_id"])
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.WhichOneof("change") == "member_change"
    member = update.member_change.member
    assert member.person.person_id == wife
    effective_on = update.member_change.effective_on
    assert (effective_on.year, effective_on.month, effective_on.day) == (2026, 2, 10)
    assert member.disability_grade == enums.DISABILITY_GRADE_2
    assert (update.household.version, update.household.dissolved) == (2, False)
    [in_snapshot] = [m for m in update.household.members if m.person.person_id == wife]
    assert in_snapshot == member
    assert [d.document_id for d in update.documents] == [certificate]
    timeline = await intake.http.get(
        f"/applications/{submitted.json()['id']}", headers=intake.headers()
    )
    assert [
        (e["summary"], e["details"])
        for e in timeline.json()["timeline"]
        if e["type"] == "dibao.intake.HouseholdUpdated.v1"
    ] == [
        (
            "Household updated: member change",
            {"change": "member_change", "person_id": wife, "effective_on": "2026-02-10"},
        )
    ]


async def test_a_member_no_longer_counted_has_a_reason_until_counted_again(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    head = household.person_ids[0]
    jailed = await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": head,
            "effective_on": "2026-01-05",
            "counted": False,
            "exclusion_reason": "imprisoned",
            "employment_status": "unable_to_work",
        },
    )
    [member] = [m for m in jailed["household"]["members"] if m["person_id"] == head]
    assert (member["counted"], member["exclusion_reason"], member["employment_status"]) == (
        False,
        "imprisoned",
        "unable_to_work",
    )
    assert jailed["household"]["changes"][-1]["details"]["changed"] == {
        "counted": False,
        "exclusion_reason": "imprisoned",
        "employment_status": "unable_to_work",
    }
    released = await intake.change(
        household,
        {"kind": "member_change", "person_id": head, "effective_on": "2026-02-27", "counted": True},
    )
    [member] = [m for m in released["household"]["members"] if m["person_id"] == head]
    assert (member["counted"], member["exclusion_reason"], member["exclusion_note"]) == (
        True,
        None,
        None,
    )
    assert released["household"]["changes"][-1]["details"]["changed"] == {
        "counted": True,
        "exclusion_reason": None,
    }
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 3, key=household.id)
    updates = [REGISTRY.decode(e) for e in found if e.ce_type.endswith("HouseholdUpdated.v1")]
    members = [u.member_change.member for u in updates if isinstance(u, ev.HouseholdUpdated)]
    assert [(m.counted, m.exclusion_reason) for m in members] == [
        (False, enums.EXCLUSION_REASON_IMPRISONED),
        (True, enums.EXCLUSION_REASON_UNSPECIFIED),
    ]


async def test_a_member_change_that_breaks_a_rule_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, wife, mother, kid = household.person_ids
    recorded = {m["person_id"]: m for m in household.body["members"]}
    change = {"kind": "member_change", "person_id": wife, "effective_on": "2026-02-10"}

    async def refused(body: dict[str, Any]) -> list[str]:
        return await _refused_change(intake, intake_engine, household, change | body)

    assert await refused({"person_id": str(uuid.uuid4()), "student": True}) == ["/body/person_id"]
    assert await refused({"effective_on": "2026-03-03", "student": True}) == ["/body/effective_on"]
    # Nothing changes: no detail given, or each as recorded.
    assert await refused({}) == ["/body"]
    assert await refused({"disability_grade": recorded[wife]["disability_grade"]}) == [
        "/body/disability_grade"
    ]
    assert await refused({"seriously_ill": True, "person_id": mother}) == ["/body/seriously_ill"]
    # Not counted without a reason; a reason for a member still counted.
    assert await refused({"counted": False}) == ["/body/exclusion_reason"]
    assert await refused({"counted": True, "exclusion_reason": "imprisoned"}) == [
        "/body/exclusion_reason"
    ]
    assert await refused({"exclusion_reason": "military_service"}) == ["/body/exclusion_reason"]
    assert await refused(
        {
            "counted": False,
            "exclusion_reason": "provincial_other",
            "exclusion_note": f"省规定 {household.plan.members[0].id_number}",
        }
    ) == ["/body/exclusion_note"]
    assert await refused({"counted": False, "exclusion_reason": "provincial_other"}) == [
        "/body/exclusion_note"
    ]
    # A child of school age takes no job; a flag is a JSON boolean.
    assert await refused({"person_id": kid, "employment_status": "employed"}) == [
        "/body/employment_status"
    ]
    assert await refused({"seriously_ill": "true"}) == ["/body/seriously_ill"]
    # The mother's diagnosis is no evidence of the wife's; another household's document none.
    diagnosis = (await intake.upload(household.id, "medical_record", mother)).json()["id"]
    other = await intake.register(intake.plan(shape="elderly_alone"))
    elsewhere = (await intake.upload(other.id, "disability_certificate")).json()["id"]
    assert await refused({"seriously_ill": True, "document_ids": [diagnosis, elsewhere]}) == [
        "/body/document_ids/1"
    ]
    assert await refused({"seriously_ill": True, "document_ids": [diagnosis]}) == [
        "/body/document_ids/0"
    ]
    # A member who died is no longer a member whose details change.
    await intake.change(
        household, {"kind": "death", "person_id": mother, "date_of_death": "2026-02-20"}
    )
    assert await refused({"person_id": mother, "seriously_ill": False}) == ["/body/person_id"]


async def test_a_relationship_recorded_wrongly_is_corrected(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A granddaughter registered as the head's child-in-law (a data-entry error): a
    member_change giving relationship records her as a grandchild, with the note saying
    why; the change's details give the code (no detail changed), and HouseholdUpdated's
    member and snapshot show her as now recorded. The field did not exist (422)."""
    plan = intake.plan(shape="elderly_couple")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.CHILD_IN_LAW, Sex.FEMALE, (18, 25), EmploymentStatus.UNEMPLOYED
        )
    )
    household = await intake.register(plan)
    granddaughter = household.person_ids[2]
    note = "登记时与户主关系录入有误：系孙女，非儿媳（见户口簿）"
    corrected = await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": granddaughter,
            "effective_on": "2026-02-27",
            "relationship": "grandchild",
            "note": note,
        },
    )
    members = {m["person_id"]: m for m in corrected["household"]["members"]}
    assert members[granddaughter]["relationship"] == "grandchild"
    [change] = corrected["household"]["changes"]
    assert (change["kind"], change["note"]) == ("member_change", note)
    assert change["details"] == {
        "person_id": granddaughter,
        "changed": {},
        "relationships": {granddaughter: "grandchild"},
        "document_ids": [],
    }
    found = await wait_for_events(
        intake_stack, "dibao.intake.v1", 1, subject=corrected["change_id"]
    )
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.WhichOneof("change") == "member_change"
    member = update.member_change.member
    assert member.person.person_id == granddaughter
    assert member.relationship == enums.RELATIONSHIP_GRANDCHILD
    [in_snapshot] = [m for m in update.household.members if m.person.person_id == granddaughter]
    assert in_snapshot == member
    assert update.note == note


async def test_a_relationship_correction_that_breaks_a_rule_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Refused at relationship, writing nothing, what a registration refuses of the
    member (the head, the head's own, as recorded, a second spouse of the head, one of
    the head's sex, a child not younger or a parent not older than the head) and what the
    record's marriages refuse (the head's spouse married here to another member); at note,
    a correction that does not say why."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(
        intake.synthesizer.member(Relationship.OTHER, Sex.MALE, (62, 68), EmploymentStatus.RETIRED)
    )
    household = await intake.register(plan)
    head, wife, mother, kid, lodger = household.person_ids
    change = {"kind": "member_change", "effective_on": "2026-02-27", "note": "录入有误"}

    async def refused(person_id: str, relationship: str, **body: Any) -> list[str]:
        correction = change | {"person_id": person_id, "relationship": relationship} | body
        problem = await refused_change(intake, intake_engine, household, correction)
        # Refused by a rule, not as a field the schema does not know.
        assert all(e.get("code") != "extra_forbidden" for e in problem["errors"]), problem
        return [e["pointer"] for e in problem["errors"]]

    at_relationship = ["/body/relationship"]
    assert await refused(wife, "head") == at_relationship
    assert await refused(head, "child") == at_relationship
    assert await refused(kid, "child") == at_relationship
    assert await refused(mother, "spouse") == at_relationship
    assert await refused(kid, "parent") == at_relationship
    assert await refused(mother, "grandchild") == at_relationship
    assert await refused(kid, "cousin") == at_relationship
    assert await refused(kid, "grandchild", note=None) == ["/body/note"]
    # The wife dies: the lodger is a man as the head is.
    await intake.change(
        household, {"kind": "death", "person_id": wife, "date_of_death": "2026-02-10"}
    )
    assert await refused(lodger, "spouse") == at_relationship
    # The mother marries the lodger: she is no head's wife by a correction.
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": mother,
            "spouse_person_id": lodger,
            "married_on": "2026-02-14",
        },
    )
    assert married["household"]["changes"][-1]["kind"] == "marriage"
    assert await refused(mother, "spouse") == at_relationship


async def test_a_relationship_correction_to_the_spouse_of_one_married_elsewhere_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A lodger married a man living elsewhere, and so did the head a woman: the lodger
    corrected to the head's spouse is refused at relationship, writing nothing, naming
    whose marriage (the member's, the head's), its day and what ends it (a divorce, or
    spouse_death); the record showed her with two husbands. Her husband's death recorded,
    the head's marriage alone refuses it. A woman who moved in after the head's marriage
    may be the wife who lived elsewhere: corrected to the spouse, she is recorded so."""
    plan = intake.plan(shape="unemployed_single")
    head_sex = plan.members[0].sex
    other_sex = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
    plan.members.append(
        intake.synthesizer.member(
            Relationship.OTHER, other_sex, (30, 45), EmploymentStatus.UNEMPLOYED
        )
    )
    household = await intake.register(plan)
    head, lodger = household.person_ids
    correction = {
        "kind": "member_change",
        "person_id": lodger,
        "effective_on": "2026-02-27",
        "relationship": "spouse",
        "note": "录入有误",
    }

    async def refusals() -> list[str]:
        problem = await refused_change(intake, intake_engine, household, correction)
        assert {e["pointer"] for e in problem["errors"]} == {"/body/relationship"}, problem
        return [e["detail"] for e in problem["errors"]]

    await intake.change(
        household, {"kind": "marriage", "person_id": lodger, "married_on": "2026-01-10"}
    )
    [refusal] = await refusals()
    assert "the member married to a spouse living elsewhere" in refusal
    assert "2026-01-10" in refusal
    assert "a divorce" in refusal
    assert "spouse_death" in refusal
    await intake.change(
        household, {"kind": "marriage", "person_id": head, "married_on": "2026-01-12"}
    )
    member, of_head = await refusals()
    assert "the member" in member
    assert "the head married to a spouse living elsewhere" in of_head
    assert "2026-01-12" in of_head
    await intake.change(
        household, {"kind": "spouse_death", "person_id": lodger, "date_of_death": "2026-02-01"}
    )
    [refusal] = await refusals()
    assert "the head married to a spouse living elsewhere" in refusal
    wife = _person(intake, date(1975, 5, 5), other_sex, "other")
    joined = await intake.change(
        household, {"kind": "move_in", "moved_on": "2026-02-03", "member": wife}
    )
    [wife_id] = [
        m["person_id"]
        for m in joined["household"]["members"]
        if m["person_id"] not in (head, lodger)
    ]
    corrected = await intake.change(household, correction | {"person_id": wife_id})
    members = {m["person_id"]: m["relationship"] for m in corrected["household"]["members"]}
    assert members[wife_id] == "spouse"


async def test_a_relationship_correction_to_the_spouse_is_of_marriageable_age_from_the_start(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A correction says the relationship was wrong from the start, so the member is read
    as registered, or moved in, as the head's spouse: both of marriageable age on that day,
    as a registration or a move in as the spouse refuses (ADR 0016). A lodger of 19
    registered today, and one of 21 today who moved in at 19, corrected to the head's
    spouse: 422 at relationship naming the day, nothing written (both were recorded, 201,
    before hB). One 20 the day she moved in is corrected. The head is a man, the lodgers
    women: since 3 Dec 2026 (helper hAX) a woman marries at 20, a man at 22
    (``test_change_dates.py``)."""
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (30, 50), EmploymentStatus.UNEMPLOYED
    )
    other_sex = Sex.FEMALE
    lodger = intake.synthesizer.member(
        Relationship.OTHER, other_sex, (19, 19), EmploymentStatus.UNEMPLOYED
    )
    lodger.birth_date = date(2006, 3, 3)  # 20 the day after the registration (2 March)
    lodger.id_number = intake.synthesizer.id_number(lodger.birth_date, other_sex)
    plan.members.append(lodger)
    household = await intake.register(plan)
    _head, registered = household.person_ids
    correction = {
        "kind": "member_change",
        "effective_on": "2026-03-02",
        "relationship": "spouse",
        "note": "登记时与户主关系录入有误：系户主之妻",
    }

    async def refusal(person_id: str) -> str:
        problem = await refused_change(
            intake, intake_engine, household, correction | {"person_id": person_id}
        )
        [error] = problem["errors"]
        assert error["pointer"] == "/body/relationship", problem
        return str(error["detail"])

    detail = await refusal(registered)
    assert detail.startswith("the member is under 20 on 2026-03-02, when the household"), detail
    assert "kind marriage" in detail
    young = await moves_in(
        intake, household, _person(intake, date(2005, 2, 1), other_sex, "other"), "2025-01-05"
    )
    detail = await refusal(young)
    assert detail.startswith("the member is under 20 on 2025-01-05, when the member joined")
    of_age = await moves_in(
        intake, household, _person(intake, date(2004, 12, 1), other_sex, "other"), "2025-01-05"
    )
    corrected = await intake.change(household, correction | {"person_id": of_age})
    members = {m["person_id"]: m["relationship"] for m in corrected["household"]["members"]}
    assert members[of_age] == "spouse"


async def test_a_member_change_dated_before_a_later_recorded_one_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A job lost in January learned of after a disability certificate of February was
    recorded: dated January, it would become the member's current details over February's.
    It is refused at effective_on, naming the later change's date; dated on or after it,
    it is recorded. Another member's changes are no bound, nor is a name correction."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, _kid = household.person_ids
    change = {"kind": "member_change", "person_id": wife}
    await intake.change(household, change | {"effective_on": "2026-02-10", "disability_grade": "2"})
    late = change | {"effective_on": "2026-01-05", "employment_status": "unable_to_work"}
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=late, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/effective_on"
    assert "2026-02-10" in error["detail"]
    assert await _refused_change(intake, intake_engine, household, late) == ["/body/effective_on"]
    await intake.change(household, change | {"effective_on": "2026-01-05", "name": "王秀芝"})
    await intake.change(
        household,
        change | {"person_id": head, "effective_on": "2026-01-05", "seriously_ill": True},
    )
    recorded = await intake.change(household, late | {"effective_on": "2026-02-10"})
    [member] = [m for m in recorded["household"]["members"] if m["person_id"] == wife]
    assert (member["disability_grade"], member["employment_status"]) == ("2", "unable_to_work")


async def test_the_limited_view_shows_whose_details_changed_not_what(
    intake: IntakeClient,
) -> None:
    """Which details changed and to what (a disability grade, an illness, employment, why
    not counted) are health and exclusion: the limited roles see the person id alone; the
    case roles the change whole."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head = household.person_ids[0]
    certificate = (await intake.upload(household.id, "disability_certificate", head)).json()["id"]
    await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": head,
            "effective_on": "2026-02-10",
            "disability_grade": "1",
            "seriously_ill": True,
            "employment_status": "unable_to_work",
            "counted": False,
            "exclusion_reason": "provincial_other",
            "exclusion_note": "省规定：长期住院",
            "note": "年审",
            "document_ids": [certificate],
        },
    )

    async def change_as(role: Role) -> dict[str, Any]:
        read = await intake.http.get(
            f"/households/{household.id}", headers=intake.headers(role, ["620123"])
        )
        assert read.status_code == 200, read.text
        [change] = read.json()["changes"]
        assert change["kind"] == "member_change"
        return dict(change)

    for role in (Role.PUBLICITY_OFFICER, Role.FINANCE_OFFICER, Role.POLICY_ADMIN):
        change = await change_as(role)
        assert (change["details"], change["note"]) == ({"person_id": head}, None), role
    whole = {
        "person_id": head,
        "changed": {
            "disability_grade": "1",
            "seriously_ill": True,
            "employment_status": "unable_to_work",
            "counted": False,
            "exclusion_reason": "provincial_other",
            "exclusion_note": "省规定：长期住院",
        },
        "document_ids": [certificate],
    }
    for role in (Role.INTAKE_CLERK, Role.VILLAGE_COMMITTEE, Role.AUDITOR):
        change = await change_as(role)
        assert (change["details"], change["note"]) == (whole, "年审"), role


async def test_only_the_active_membership_index_answers_person_in_household(
    intake: IntakeClient, intake_app: FastAPI, intake_engine: AsyncEngine
) -> None:
    """_insert_memberships read a violation as a lost race (409 person-in-household) when
    the error's text held the active-membership index's name: a constraint named after it
    (uq_household_member_active_person_..., say a later migration's) or a failing row
    quoting it was a 409 "already in a household" that no household explains. It reads the
    name the database gives now (runtime.constraint_of, as add_staff does): any other is
    raised. A CHECK so named is added inside the test's transaction (PostgreSQL DDL is
    transactional) and rolled back with it: a real violation by the database."""
    runtime = intake_app.state.runtime
    assert isinstance(runtime, Runtime)
    plan = intake.plan()
    payload = s.HouseholdIn.model_validate({**plan.payload(), "bank_account": None})
    command = households_service.RegisterHousehold(
        region_code=payload.region_code,
        area_type=payload.area_type,
        address=payload.address,
        members=[member_input(m) for m in payload.members],
    )
    caller = Caller(Principal("clerk-shadow", frozenset({Role.INTAKE_CLERK}), (plan.region_code,)))
    named = "uq_household_member_active_person_shadow"
    async with intake_engine.connect() as conn:
        await conn.begin()
        await conn.execute(
            text(f"ALTER TABLE household_member ADD CONSTRAINT {named} CHECK (false) NOT VALID")
        )
        session = AsyncSession(bind=conn)
        with pytest.raises(ConstraintViolatedError, match=f"constraint {named}$"):
            await households_service.register_household(session, runtime, caller, command)
        await conn.rollback()
