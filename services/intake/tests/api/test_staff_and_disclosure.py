"""The staff roster flags relatives and assigns caseworkers; numbers are disclosed on record."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Awaitable
from datetime import datetime

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.auth import Principal, Role
from dibao_common.crypto import PersonHasher, mask_name
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import StaffRole
from dibao_intake.service_layer import staff
from dibao_intake.service_layer.runtime import Caller, ConstraintViolatedError, Runtime
from dibao_intake.testing import (
    CLOUDEVENTS_HEADERS,
    TEST_NOW,
    URBAN_VILLAGE,
    IntakeClient,
    access_records,
    events,
    pii_settings_for_tests,
    row_counts,
    wait_for_events,
    waiting_on_a_lock,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOWNSHIP = "620123102000"  # 高崖镇: this module's township
VILLAGE = "620123102203"
INTAKE_TOPIC = "dibao.intake.v1"
ROSTER_CHANGED = "dibao.intake.StaffRosterChanged.v1"


async def _add_staff(intake: IntakeClient, body: dict[str, object]) -> dict[str, object]:
    response = await intake.http.post(
        f"/townships/{TOWNSHIP}/staff",
        json=body,
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert response.status_code == 201, response.text
    out: dict[str, object] = response.json()
    return out


async def test_relatives_of_staff_are_flagged_and_the_caseworker_is_assigned(
    intake: IntakeClient,
) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_couple"))
    wife = household.plan.members[1]
    caseworkers = intake.plan(VILLAGE, shape="elderly_couple").members
    first = await _add_staff(
        intake,
        {
            "name": "李明",
            "role": "caseworker",
            "subject": "cw-gaoya-1",
            "responsible_caseworker": True,
            "id_number": caseworkers[0].id_number,
        },
    )
    committee = await _add_staff(
        intake,
        {
            "name": "赵志强",
            "role": "village_committee",
            "relatives": [{"name": wife.name, "id_number": wife.id_number, "relation": "sister"}],
        },
    )
    successor = await _add_staff(
        intake,
        {
            "name": "王丽",
            "role": "caseworker",
            "subject": "cw-gaoya-2",
            "responsible_caseworker": True,
            "id_number": caseworkers[1].id_number,
        },
    )
    response = await intake.submit(await intake.complete_application_body(household))
    out = response.json()
    assert out["staff_related"] is True
    assert out["staff_relation_note"] == (
        f"{mask_name(wife.name)} is the sister of 赵*强 (village committee, 高崖镇)"
    )
    assert wife.id_number not in out["staff_relation_note"]
    assert out["assigned_caseworker"] == "cw-gaoya-2"
    roster = await intake.http.get(
        f"/townships/{TOWNSHIP}/staff", headers=intake.headers(Role.COUNTY_APPROVER, ["620123"])
    )
    assert roster.status_code == 200
    # By the entries this test added (the township's roster keeps those of earlier runs,
    # deactivated or replaced, under the same subjects).
    by_id = {s["id"]: s for s in roster.json()}
    assert by_id[successor["id"]]["responsible_caseworker"] is True
    assert by_id[first["id"]]["responsible_caseworker"] is False
    [relative] = by_id[committee["id"]]["relatives"]
    assert relative["masked_id"] == wife.id_number[:6] + "********" + wife.id_number[-4:]
    deactivated = await intake.http.post(
        f"/staff/{successor['id']}/deactivation",
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert deactivated.status_code == 204
    clerks_roster = await intake.http.get(f"/townships/{TOWNSHIP}/staff", headers=intake.headers())
    assert clerks_roster.status_code == 403


async def test_a_caseworker_is_never_assigned_a_case_of_their_own_household_or_family(
    intake: IntakeClient,
) -> None:
    """The township's responsible caseworker whose relative applies, or who applies with
    their own household, would investigate their own case: the application is flagged and
    left unassigned (the county must visit, and assigns it), never given to them. Another
    household of the township still gets them."""
    township, village = "620123105000", "620123105201"
    related = await intake.register(intake.plan(village, shape="elderly_couple"))
    own = await intake.register(intake.plan(village, shape="elderly_alone"))
    other = await intake.register(intake.plan(village, shape="elderly_alone"))
    sister = related.plan.members[1]
    added = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "杜海燕",
            "role": "caseworker",
            "subject": "cw-gancaodian",
            "responsible_caseworker": True,
            "id_number": own.plan.members[0].id_number,
            "relatives": [
                {"name": sister.name, "id_number": sister.id_number, "relation": "sister"}
            ],
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert added.status_code == 201, added.text
    for household, flagged in ((related, True), (own, True), (other, False)):
        response = await intake.submit(await intake.complete_application_body(household))
        assert response.status_code == 201, response.text
        out = response.json()
        assert out["status"] == "submitted"
        assert out["staff_related"] is flagged
        assert out["assigned_caseworker"] == (None if flagged else "cw-gancaodian")
        assert out["unassigned_reason"] == ("caseworker_related" if flagged else None)


async def test_a_caseworker_whose_own_id_number_is_not_on_file_is_assigned_no_case(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A responsible caseworker on file without their own ID number (named before
    e0bcebe required it) cannot be matched to their own household, so they would be
    assigned their own family's case unseen. No application of the township is assigned
    to them: each is left for the county, and the answer, the GET, the ApplicationSubmitted
    and its timeline entry say why (caseworker_not_identified). Named again with their
    number (the new entry takes over), they are assigned again, and their own household's
    application is flagged and left unassigned as such (caseworker_related)."""
    township, community = "620102008000", "620102008001"  # 皋兰路街道: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620102"])
    own = await intake.register(intake.plan(community, shape="elderly_alone"))
    other = await intake.register(intake.plan(community, shape="elderly_alone"))
    caseworker = own.plan.members[0]
    added = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": caseworker.name,
            "role": "caseworker",
            "subject": "cw-gaolanlu",
            "responsible_caseworker": True,
            "id_number": caseworker.id_number,
        },
        headers=admin,
    )
    assert added.status_code == 201, added.text
    # As an entry made before e0bcebe: no number on file.
    async with intake_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE staff_member SET id_hash = NULL, id_number_cipher = NULL,"
                " masked_id = NULL WHERE id = :id"
            ),
            {"id": added.json()["id"]},
        )

    submitted = await intake.submit(await intake.complete_application_body(own))
    assert submitted.status_code == 201, submitted.text
    out = submitted.json()
    assert (out["status"], out["staff_related"], out["assigned_caseworker"]) == (
        "submitted",
        False,
        None,
    )
    assert out["unassigned_reason"] == "caseworker_not_identified"
    read = await intake.http.get(f"/applications/{out['id']}", headers=intake.headers())
    assert (read.json()["assigned_caseworker"], read.json()["unassigned_reason"]) == (
        None,
        "caseworker_not_identified",
    )
    [entry] = [
        e for e in read.json()["timeline"] if e["type"] == "dibao.intake.ApplicationSubmitted.v1"
    ]
    assert entry["details"]["unassigned_reason"] == "caseworker_not_identified"
    assert "assigned_caseworker" not in entry["details"]
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 2, subject=out["id"])
    message = EventRegistry.default().decode(found[0])
    assert isinstance(message, ev.ApplicationSubmitted)
    assert (message.assigned_caseworker, message.unassigned_reason) == (
        "",
        ev.UNASSIGNED_REASON_CASEWORKER_NOT_IDENTIFIED,
    )

    # The remedy (ADR 0009): named again with the number, the new entry takes over.
    again = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": caseworker.name,
            "role": "caseworker",
            "subject": "cw-gaolanlu-2",
            "responsible_caseworker": True,
            "id_number": caseworker.id_number,
        },
        headers=admin,
    )
    assert again.status_code == 201, again.text
    assigned = (await intake.submit(await intake.complete_application_body(other))).json()
    assert (assigned["assigned_caseworker"], assigned["unassigned_reason"]) == (
        "cw-gaolanlu-2",
        None,
    )
    withdrawn = await intake.http.post(
        f"/applications/{out['id']}/withdrawal",
        json={"reason": "重新申请"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    flagged = (await intake.submit(await intake.complete_application_body(own))).json()
    assert (flagged["staff_related"], flagged["assigned_caseworker"]) == (True, None)
    assert flagged["unassigned_reason"] == "caseworker_related"


async def test_an_invalid_relative_id_is_refused(intake: IntakeClient) -> None:
    response = await intake.http.post(
        f"/townships/{TOWNSHIP}/staff",
        json={
            "name": "孙鹏",
            "role": "dibao_staff",
            "relatives": [
                {"name": "孙芳", "id_number": "620123197001010000", "relation": "sister"}
            ],
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/relatives/0/id_number"]
    unknown = await intake.http.post(
        "/townships/620123199000/staff",
        json={"name": "孙鹏", "role": "dibao_staff"},
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert unknown.status_code == 404


async def test_identity_and_account_are_disclosed_for_a_purpose_and_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    head = household.plan.members[0]
    identity = await intake.http.get(
        f"/persons/{household.person_ids[0]}/identity",
        params={"purpose": "investigation", "purpose_note": "民政核对"},
        headers=intake.headers(Role.INVESTIGATOR, ["620123"]),
    )
    assert identity.status_code == 200
    assert identity.json()["id_number"] == head.id_number
    token = household.body["bank_account"]["token_id"]
    account = await intake.http.get(
        f"/bank-accounts/{token}",
        params={"purpose": "payment"},
        headers=intake.headers(Role.FINANCE_OFFICER, ["620123"]),
    )
    assert account.status_code == 200
    assert account.json()["account_number"] == household.plan.account_number
    assert account.json()["current"] is True
    found = await wait_for_events(
        intake_stack, "dibao.access.v1", 1, subject=household.person_ids[0]
    )
    record = EventRegistry.default().decode(found[0])
    assert isinstance(record, access.PersonalDataAccessed)
    assert record.action == access.ACCESS_ACTION_DECRYPT
    assert record.purpose == access.PURPOSE_INVESTIGATION
    assert record.purpose_note == "民政核对"
    assert head.id_number.encode() not in found[0].payload
    refused = await intake.http.get(
        f"/persons/{household.person_ids[0]}/identity",
        params={"purpose": "investigation"},
        headers=intake.headers(Role.INTAKE_CLERK, ["620123"]),
    )
    assert refused.status_code == 403
    # The purpose note goes to the audit log as typed: no ID number in it.
    noted = await intake.http.get(
        f"/persons/{household.person_ids[0]}/identity",
        params={"purpose": "investigation", "purpose_note": f"核对 {head.id_number}"},
        headers=intake.headers(Role.INVESTIGATOR, ["620123"]),
    )
    assert noted.status_code == 422
    assert [e["pointer"] for e in noted.json()["errors"]] == ["/query/purpose_note"]
    assert head.id_number not in noted.text
    foreign = await intake.http.get(
        f"/bank-accounts/{token}",
        params={"purpose": "payment"},
        headers=intake.headers(Role.FINANCE_OFFICER, ["620102"]),
    )
    assert foreign.status_code == 404


async def test_the_division_table_is_browsable(intake: IntakeClient) -> None:
    response = await intake.http.get("/divisions/620123000000", headers=intake.headers())
    assert response.status_code == 200
    body = response.json()
    assert body["full_name"] == "甘肃省兰州市榆中县"
    assert body["parent_code"] == "620100000000"
    assert {"code": "620123101000", "name": "夏官营镇", "level": 4} in body["children"]
    missing = await intake.http.get("/divisions/620123199000", headers=intake.headers())
    assert missing.status_code == 404
    assert (await intake.http.get("/divisions/620123")).status_code == 401


async def test_an_account_disclosure_names_the_holder_on_the_access_record(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The account number and holder's name revealed are the holder's personal data: the
    access record lists the holder among the persons read, as an identity disclosure
    does, so "who looked at this person's data" finds it."""
    household = await intake.register()
    account = household.body["bank_account"]
    holder = account["holder_person_id"]
    assert holder is not None
    revealed = await intake.http.get(
        f"/bank-accounts/{account['token_id']}",
        params={"purpose": "payment"},
        headers=intake.headers(Role.FINANCE_OFFICER, ["620123"]),
    )
    assert revealed.status_code == 200, revealed.text
    [found] = await wait_for_events(intake_stack, "dibao.access.v1", 1, subject=account["token_id"])
    record = EventRegistry.default().decode(found)
    assert isinstance(record, access.PersonalDataAccessed)
    assert record.action == access.ACCESS_ACTION_DECRYPT
    assert [p.person_id for p in record.persons] == [holder]
    assert record.persons[0].masked_name == mask_name(revealed.json()["holder_name"])
    assert household.plan.account_number.encode() not in found.payload


async def test_a_disclosure_for_other_or_support_needs_its_note(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The access record's contract: purpose_note is required for PURPOSE_OTHER and
    PURPOSE_SUPPORT. Without one (or with only blanks) nothing is decrypted or recorded."""
    household = await intake.register()
    token = household.body["bank_account"]["token_id"]
    reads = (
        (f"/persons/{household.person_ids[0]}/identity", Role.INVESTIGATOR),
        (f"/bank-accounts/{token}", Role.FINANCE_OFFICER),
    )
    before = await row_counts(intake_engine)
    for url, role in reads:
        for purpose in ("other", "support"):
            for note in ({}, {"purpose_note": ""}, {"purpose_note": "   "}):
                response = await intake.http.get(
                    url, params={"purpose": purpose, **note}, headers=intake.headers(role)
                )
                assert response.status_code == 422, (url, purpose, note, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert [e["pointer"] for e in response.json()["errors"]] == ["/query/purpose_note"]
    assert await row_counts(intake_engine) == before
    for url, role in reads:
        noted = await intake.http.get(
            url,
            params={"purpose": "support", "purpose_note": "工单 2026-0117 核对姓名"},
            headers=intake.headers(role),
        )
        assert noted.status_code == 200, noted.text


async def test_another_regions_disclosure_is_refused_before_its_note_is_checked(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A caller of another region asking with purpose other and no note is answered as
    without it: 404, recorded DENIED (a probe of another region's person or account),
    not told about the missing note."""
    household = await intake.register()
    token = household.body["bank_account"]["token_id"]
    reads = (
        (
            f"/persons/{household.person_ids[0]}/identity",
            Role.INVESTIGATOR,
            household.person_ids[0],
        ),
        (f"/bank-accounts/{token}", Role.FINANCE_OFFICER, token),
    )
    for url, role, record_id in reads:
        prober = f"prober-{role.value}-{record_id}"
        response = await intake.http.get(
            url,
            params={"purpose": "other"},
            headers=intake.headers(role, ["620102"], subject=prober),
        )
        assert response.status_code == 404, (url, response.text)
        [record] = await access_records(intake_stack, record_id, prober)
        assert record.outcome == access.ACCESS_OUTCOME_DENIED


async def test_a_relation_with_an_id_number_in_it_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A relation is free text copied as typed into the staff relation note, which
    travels in ApplicationSubmitted: an ID number typed into it would escape the
    encryption and masking made for ID numbers (ADR 0005, 0007)."""
    number = "620123197203080221"
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/townships/{TOWNSHIP}/staff",
        json={
            "name": "钱伟",
            "role": "village_committee",
            "relatives": [
                {"name": "钱红", "id_number": number, "relation": "sister"},
                {"name": "钱军", "id_number": number, "relation": f"brother {number}"},
            ],
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/relatives/1/relation"]
    assert number not in response.text
    assert await row_counts(intake_engine) == before


async def test_a_staff_subject_with_an_id_number_in_it_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A staff member's token subject is published as typed (StaffRosterChanged's
    staff_subject, an application's assigned caseworker in ApplicationSubmitted): an ID
    number typed into it (a subject made of the staff member's own number) would reach
    Kafka and the audit log raw, as the custodian's subject of an account change would,
    which has refused one since bd3bbc1 (ADR 0005, 0007)."""
    number = "62012319790512003X"
    before = await row_counts(intake_engine)
    for subject in (number, f"cw-{number.lower()}", "cw-６２０１２３１９７９０５１２００３Ｘ"):
        response = await intake.http.post(
            f"/townships/{TOWNSHIP}/staff",
            json={"name": "李明", "role": "caseworker", "subject": subject},
            headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
        )
        assert response.status_code == 422, (subject, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["pointer"] for e in response.json()["errors"]] == ["/body/subject"]
        assert number not in response.text.upper()
    assert await row_counts(intake_engine) == before


async def test_a_roster_read_names_the_people_it_shows_by_keyed_hash(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A roster shows staff and their relatives by name and masked number; its access
    record names each of them by keyed hash (as every other read does), so that "who
    looked at this person's data" finds a roster read too, and it never passes a roster
    row's id off as a person id."""
    township = "620123106000"  # 青城镇: this test's own, so its roster reads are its own
    plan = intake.plan("620123106201", shape="elderly_couple")
    own, relative = plan.members[0].id_number, plan.members[1].id_number
    added = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "周涛",
            "role": "dibao_staff",
            "id_number": own,
            "relatives": [{"name": "吴芳", "id_number": relative, "relation": "spouse"}],
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert added.status_code == 201, added.text
    reader = f"auditor-{uuid.uuid4()}"  # this run's read (the roster's earlier reads are not)
    roster = await intake.http.get(
        f"/townships/{township}/staff",
        headers=intake.headers(Role.AUDITOR, ["620123"], subject=reader),
    )
    assert roster.status_code == 200
    [record] = await access_records(intake_stack, f"staff-roster:{township}", reader)
    [found] = [
        e
        for e in await events(intake_stack, "dibao.access.v1", subject=f"staff-roster:{township}")
        if EventRegistry.default().decode(e) == record
    ]
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    # Everyone the roster shows, and no one else: the entry this test added, and any an
    # earlier run of it left on the township's roster.
    shown = [
        (person["masked_id"] or "", mask_name(person["name"]))
        for entry in roster.json()
        for person in (entry, *entry["relatives"])
    ]
    assert sorted((p.masked_id, p.masked_name) for p in record.persons) == sorted(shown)
    named = {(p.keyed_hash, p.masked_name) for p in record.persons}
    assert {
        (hasher.hash_id_number(own), mask_name("周涛")),
        (hasher.hash_id_number(relative), mask_name("吴芳")),
    } <= named
    assert len(named) == len(shown)
    assert {p.hash_key_id for p in record.persons} == {hasher.key_id}
    assert {p.person_id for p in record.persons} == {""}
    assert own.encode() not in found.payload
    assert relative.encode() not in found.payload


async def test_a_deactivation_of_another_regions_staff_is_refused_and_recorded(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A policy administrator of another county taking a township's staff member off its
    roster gets 404, as for no such member, and the attempt is recorded DENIED (as a
    probe of another region's household is); the member stays on the roster."""
    township = "620123107000"
    admin = intake.headers(Role.POLICY_ADMIN, ["620123"], subject="admin-dingyuan")
    added = await intake.http.post(
        f"/townships/{township}/staff", json={"name": "卫东", "role": "dibao_staff"}, headers=admin
    )
    assert added.status_code == 201, added.text
    staff_id = added.json()["id"]
    prober = f"prober-{uuid.uuid4()}"
    before = await row_counts(intake_engine)
    refused = await intake.http.post(
        f"/staff/{staff_id}/deactivation",
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"], subject=prober),
    )
    assert refused.status_code == 404, refused.text
    after = await row_counts(intake_engine)
    # The access record's outbox row, and nothing else.
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [attempt] = await access_records(intake_stack, f"staff:{staff_id}", prober)
    assert (attempt.outcome, attempt.record_type) == (
        access.ACCESS_OUTCOME_DENIED,
        access.RECORD_TYPE_OTHER,
    )
    assert list(attempt.persons) == list(attempt.fields) == []
    missing = await intake.http.post(
        f"/staff/{uuid.uuid4()}/deactivation",
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"], subject=prober),
    )
    assert (missing.status_code, missing.json()["detail"]) == (404, refused.json()["detail"])
    roster = await intake.http.get(f"/townships/{township}/staff", headers=admin)
    [still] = [s for s in roster.json() if s["id"] == staff_id]
    assert still["deactivated_at"] is None


async def test_another_regions_deactivation_does_not_wait_on_the_entrys_lock(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The township is checked before the roster entry is locked: while the entry is held
    (a deactivation in progress), another county's administrator is answered 404 at
    once, recorded DENIED, neither waiting on the lock nor holding it."""
    added = await intake.http.post(
        "/townships/620102020000/staff",  # 渭源路街道: this test's own
        json={"name": "马强", "role": "dibao_staff"},
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"]),
    )
    assert added.status_code == 201, added.text
    staff_id = added.json()["id"]
    prober = f"prober-{uuid.uuid4()}"
    async with intake_engine.connect() as conn:
        await conn.execute(
            text("SELECT id FROM staff_member WHERE id = :id FOR UPDATE"), {"id": staff_id}
        )
        refused = asyncio.create_task(
            intake.http.post(
                f"/staff/{staff_id}/deactivation",
                headers=intake.headers(Role.POLICY_ADMIN, ["620123"], subject=prober),
            )
        )
        deadline = asyncio.get_running_loop().time() + 30
        while not refused.done():
            assert not await waiting_on_a_lock(intake_engine), "it waits on the lock"
            assert asyncio.get_running_loop().time() < deadline, "no answer in 30 s"
            await asyncio.sleep(0.02)
        await conn.rollback()
    assert (await refused).status_code == 404
    [attempt] = await access_records(intake_stack, f"staff:{staff_id}", prober)
    assert attempt.outcome == access.ACCESS_OUTCOME_DENIED


async def test_a_deactivation_records_who_and_when_and_the_roster_keeps_the_member(
    intake: IntakeClient,
) -> None:
    """Taking someone off the roster says who did it and when; the member stays on the
    roster read, inactive, with their relatives, so that the roster's history can be
    read. A second deactivation changes nothing of the first's record."""
    township = "620123107000"  # 定远镇: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620123"], subject="admin-dingyuan")
    plan = intake.plan("620123107201", shape="elderly_couple")
    bodies = [
        {
            "name": "郑强",
            "role": "village_committee",
            "relatives": [
                {"name": "郑芳", "id_number": plan.members[1].id_number, "relation": "sister"}
            ],
        },
        {"name": "冯敏", "role": "dibao_staff"},
    ]
    added = []
    for body in bodies:
        response = await intake.http.post(f"/townships/{township}/staff", json=body, headers=admin)
        assert response.status_code == 201, response.text
        added.append(response.json())
    assert added[0]["deactivated_at"] is None
    assert added[0]["deactivated_by"] is None
    gone = await intake.http.post(f"/staff/{added[0]['id']}/deactivation", headers=admin)
    assert gone.status_code == 204
    again = await intake.http.post(
        f"/staff/{added[0]['id']}/deactivation",
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"], subject="admin-other"),
    )
    assert again.status_code == 204
    roster = await intake.http.get(
        f"/townships/{township}/staff", headers=intake.headers(Role.AUDITOR, ["620123"])
    )
    assert roster.status_code == 200
    by_id = {s["id"]: s for s in roster.json()}  # the entries this run added
    former, current = by_id[added[0]["id"]], by_id[added[1]["id"]]
    assert former["active"] is False
    assert former["deactivated_by"] == "admin-dingyuan"
    assert datetime.fromisoformat(former["deactivated_at"]) == TEST_NOW
    assert [r["name"] for r in former["relatives"]] == ["郑芳"]
    assert (current["active"], current["deactivated_at"], current["deactivated_by"]) == (
        True,
        None,
        None,
    )


async def test_a_refused_roster_read_is_recorded_all_the_same(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """Another region's roster answers 404, and the attempt leaves an access record with
    outcome DENIED naming the roster and no one on it, as a household's does."""
    prober = f"roster-prober-620102-{uuid.uuid4()}"  # this run's attempt, not an earlier run's
    answer = await intake.http.get(
        f"/townships/{TOWNSHIP}/staff",
        headers=intake.headers(Role.AUDITOR, ["620102"], subject=prober),
    )
    assert answer.status_code == 404
    subject = f"staff-roster:{TOWNSHIP}"
    mine: list[access.PersonalDataAccessed] = []
    for _ in range(50):
        found = await events(intake_stack, "dibao.access.v1", subject=subject)
        decoded = [EventRegistry.default().decode(e) for e in found]
        mine = [
            r
            for r in decoded
            if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == prober
        ]
        if mine:
            break
        await asyncio.sleep(0.2)
    [record] = mine
    assert record.outcome == access.ACCESS_OUTCOME_DENIED
    assert (record.record_type, record.record_id) == (access.RECORD_TYPE_OTHER, subject)
    assert (record.household_id, record.region.code) == ("", TOWNSHIP)
    assert list(record.persons) == list(record.fields) == []


async def _roster_events(stack: TestStack, township: str, count: int) -> list[Envelope]:
    return await wait_for_events(stack, INTAKE_TOPIC, count, key=township)


async def test_every_roster_change_is_published_once_for_the_audit_log(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """Who put whom on a township's roster, or took them off, and when, is one
    StaffRosterChanged on intake's topic per change (CloudEvents headers, keyed by the
    township), naming the staff member and their relatives by keyed hash and masked name,
    never by ID number. A refused change and a second deactivation publish nothing."""
    township = "620123108000"  # 连搭镇: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620123"], subject="admin-lianda")
    # What the township's key held before (an earlier run's changes, each awaited there):
    # this run's are the ones after them.
    earlier = len(await events(intake_stack, INTAKE_TOPIC, key=township))
    plan = intake.plan("620123107201", shape="elderly_couple")
    own, relative = plan.members[0].id_number, plan.members[1].id_number
    # Refused: an invalid relative's number (422), another county's admin (403).
    bad = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "陈刚",
            "role": "dibao_staff",
            "relatives": [{"name": "陈芳", "id_number": "620123", "relation": "sister"}],
        },
        headers=admin,
    )
    assert bad.status_code == 422
    elsewhere = await intake.http.post(
        f"/townships/{township}/staff",
        json={"name": "陈刚", "role": "dibao_staff"},
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"], subject="admin-elsewhere"),
    )
    assert elsewhere.status_code == 403
    first = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "孙伟",
            "role": "caseworker",
            "subject": "cw-lianda-1",
            "responsible_caseworker": True,
            "id_number": own,
            "relatives": [{"name": "李娟", "id_number": relative, "relation": "spouse"}],
        },
        headers=admin,
    )
    assert first.status_code == 201, first.text
    second = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "赵磊",
            "role": "caseworker",
            "subject": "cw-lianda-2",
            "responsible_caseworker": True,
            "id_number": intake.plan("620123107201", shape="elderly_alone").members[0].id_number,
        },
        headers=admin,
    )
    assert second.status_code == 201, second.text
    first_id, second_id = first.json()["id"], second.json()["id"]
    gone = await intake.http.post(f"/staff/{second_id}/deactivation", headers=admin)
    assert gone.status_code == 204
    again = await intake.http.post(f"/staff/{second_id}/deactivation", headers=admin)
    assert again.status_code == 204
    missing = await intake.http.post(f"/staff/{uuid.uuid4()}/deactivation", headers=admin)
    assert missing.status_code == 404
    # The three changes are published in order, and nothing else before a fourth change
    # made last: the relay publishes a key's events in order, so anything the repeated or
    # refused deactivation had published would come before it. (A fixed second's wait for
    # "nothing more" was no proof on a slow machine, where a stray event came later.)
    last = await intake.http.post(
        f"/townships/{township}/staff", json={"name": "陈刚", "role": "dibao_staff"}, headers=admin
    )
    assert last.status_code == 201, last.text
    *found, after = (await _roster_events(intake_stack, township, earlier + 4))[earlier:]
    assert [e.ce_type for e in (*found, after)] == [ROSTER_CHANGED] * 4
    assert [e.ce_subject for e in (*found, after)] == [
        first_id,
        second_id,
        second_id,
        last.json()["id"],
    ]
    decoded = [EventRegistry.default().decode(e) for e in found]
    assert all(isinstance(m, ev.StaffRosterChanged) for m in decoded)
    added, replacing, deactivated = (m for m in decoded if isinstance(m, ev.StaffRosterChanged))
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    assert added.change == ev.STAFF_ROSTER_CHANGE_ADDED
    assert (added.region.code, added.staff_id, added.actor.subject) == (
        township,
        first_id,
        "admin-lianda",
    )
    assert added.occurred_at.ToDatetime(tzinfo=TEST_NOW.tzinfo) == TEST_NOW
    assert (added.role, added.staff_subject, added.responsible_caseworker) == (
        ev.STAFF_ROLE_CASEWORKER,
        "cw-lianda-1",
        True,
    )
    assert (added.staff.keyed_hash, added.staff.hash_key_id, added.staff.masked_name) == (
        hasher.hash_id_number(own),
        hasher.key_id,
        mask_name("孙伟"),
    )
    assert added.staff.person_id == ""
    assert added.replaced_caseworker_staff_id == ""
    [kin] = added.relatives
    assert (kin.relation, kin.person.keyed_hash, kin.person.masked_name) == (
        "spouse",
        hasher.hash_id_number(relative),
        mask_name("李娟"),
    )
    assert replacing.replaced_caseworker_staff_id == first_id
    assert replacing.staff.masked_name == mask_name("赵磊")
    assert deactivated.change == ev.STAFF_ROSTER_CHANGE_DEACTIVATED
    assert (deactivated.staff_id, deactivated.responsible_caseworker) == (second_id, True)
    assert list(deactivated.relatives) == []
    for envelope in found:
        assert envelope.ce_source == "dibao/intake"
        assert envelope.content_type == "application/protobuf"
        assert envelope.actor == "admin-lianda"
        assert envelope.correlation_id
        for number in (own, relative):
            assert number.encode() not in envelope.payload
        for name in ("孙伟", "李娟", "赵磊"):
            assert name.encode() not in envelope.payload
    records = [
        r
        for r in await read_topic(intake_stack.kafka_bootstrap, INTAKE_TOPIC)
        if r.key == township.encode()
    ][earlier:]
    assert len(records) == 4
    for record in records:
        assert {name for name, _ in record.headers} >= CLOUDEVENTS_HEADERS


async def test_a_responsible_caseworker_needs_their_own_id_number(intake: IntakeClient) -> None:
    """The responsible caseworker's own household is found by their own ID number alone (its
    applications are left unassigned, for the county): naming one without it is refused
    and writes nothing; anyone else may still be listed without it."""
    township = "620123100000"  # 城关镇: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620123"])
    auditor = intake.headers(Role.AUDITOR, ["620123"])
    # The roster as found (an earlier run's entry stays on it): the refusal adds nothing.
    before = await intake.http.get(f"/townships/{township}/staff", headers=auditor)
    assert before.status_code == 200, before.text
    refused = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "钱军",
            "role": "caseworker",
            "subject": "cw-chengguan-1",
            "responsible_caseworker": True,
        },
        headers=admin,
    )
    assert refused.status_code == 422, refused.text
    assert [e["pointer"] for e in refused.json()["errors"]] == ["/body/id_number"]
    roster = await intake.http.get(f"/townships/{township}/staff", headers=auditor)
    assert roster.json() == before.json()
    listed = await intake.http.post(
        f"/townships/{township}/staff",
        json={"name": "钱军", "role": "caseworker", "subject": "cw-chengguan-1"},
        headers=admin,
    )
    assert listed.status_code == 201, listed.text
    after = await intake.http.get(f"/townships/{township}/staff", headers=auditor)
    assert sorted(after.json(), key=str) == sorted([*before.json(), listed.json()], key=str)


async def test_one_person_is_the_responsible_caseworker_of_one_township(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A responsible caseworker is a township's own staff (one person, one township): the
    same person named for a second township, by token subject or by ID number, is a 409
    that writes nothing, naming the other township to an administrator who sees it. Once
    off the first township's roster they may be named for the second."""
    first, second = "620102015000", "620102016000"  # 东岗街道, 团结新村街道: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620102"])
    person = intake.plan("620102015001", shape="elderly_alone").members[0]
    subject = f"cw-donggang-{uuid.uuid4()}"
    caseworker = {
        "name": "周敏",
        "role": "caseworker",
        "subject": subject,
        "responsible_caseworker": True,
        "id_number": person.id_number,
    }
    named = await intake.http.post(f"/townships/{first}/staff", json=caseworker, headers=admin)
    assert named.status_code == 201, named.text
    before = await row_counts(intake_engine)
    other_number = intake.plan("620102016001", shape="elderly_alone").members[0].id_number
    for body, headers, shown in (
        (caseworker, admin, True),
        (caseworker | {"subject": f"cw-tuanjie-{uuid.uuid4()}"}, admin, True),
        (caseworker | {"id_number": other_number}, admin, True),
        # An administrator of the second township's district only is not told the first's.
        (caseworker, intake.headers(Role.POLICY_ADMIN, [second[:9]]), False),
    ):
        refused = await intake.http.post(f"/townships/{second}/staff", json=body, headers=headers)
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/caseworker-of-another-township")
        assert (first in problem["detail"]) is shown
        assert person.id_number not in refused.text
    assert await row_counts(intake_engine) == before
    # Named again in their own township, the new entry takes over: no conflict there.
    again = await intake.http.post(f"/townships/{first}/staff", json=caseworker, headers=admin)
    assert again.status_code == 201, again.text
    gone = await intake.http.post(f"/staff/{again.json()['id']}/deactivation", headers=admin)
    assert gone.status_code == 204
    moved = await intake.http.post(f"/townships/{second}/staff", json=caseworker, headers=admin)
    assert moved.status_code == 201, moved.text
    assert moved.json()["responsible_caseworker"] is True


@pytest.mark.parametrize("same", ["subject", "id_hash"])
async def test_the_database_refuses_a_caseworker_of_two_townships(
    intake: IntakeClient, intake_engine: AsyncEngine, same: str
) -> None:
    """Two namings at the same time, in two townships, each pass the service's check: the
    database's unique indexes (migration 0013) refuse the second, by subject or ID hash."""
    first = "620102017000"  # 东岗西路街道: this test's own
    named = await intake.http.post(
        f"/townships/{first}/staff",
        json={
            "name": "吴刚",
            "role": "caseworker",
            "subject": f"cw-dgxl-{uuid.uuid4()}",
            "responsible_caseworker": True,
            "id_number": intake.plan("620102017001", shape="elderly_alone").members[0].id_number,
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"]),
    )
    assert named.status_code == 201, named.text
    copy = (
        "INSERT INTO staff_member (id, township_code, name, role, subject,"
        " responsible_caseworker, id_hash, active, created_at, created_by)"
        " SELECT :id, :township, name, role,"
        " CASE WHEN :same = 'subject' THEN subject ELSE :other END, true,"
        " CASE WHEN :same = 'id_hash' THEN id_hash ELSE :other END, true, created_at,"
        " created_by FROM staff_member WHERE id = :named"
    )
    with pytest.raises(IntegrityError, match=f"uq_staff_member_caseworker_{same}"):
        async with intake_engine.begin() as conn:
            await conn.execute(
                text(copy),
                {
                    "id": uuid.uuid4(),
                    "named": named.json()["id"],
                    "same": same,
                    # 铁路东村街道, 铁路西村街道: each case's own second township
                    "township": {"subject": "620102018000", "id_hash": "620102019000"}[same],
                    "other": str(uuid.uuid4()),
                },
            )


async def test_a_former_households_region_sees_the_number_masked_only(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The full ID number is disclosed to the region of the person's current household,
    or of the household of an open application of theirs named by application_id; once
    they moved to another county, the region they left is refused (403, recorded DENIED)
    and reads them masked, as a region that never held them is refused 404. Closed, the
    application no longer discloses."""
    former = await intake.register(intake.plan(shape="elderly_couple"))
    person = former.person_ids[1]
    number = former.plan.members[1].id_number
    submitted = await intake.submit(await intake.complete_application_body(former))
    assert submitted.status_code == 201, submitted.text
    application = submitted.json()["id"]
    await intake.change(former, {"kind": "move_out", "person_id": person, "moved_on": "2026-02-20"})
    current = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_alone"))
    member = former.plan.members[1].payload() | {"relationship": "other_dependant"}
    await intake.change(current, {"kind": "move_in", "moved_on": "2026-02-25", "member": member})

    def asked(
        regions: list[str], subject: str, application_id: str | None = None
    ) -> Awaitable[httpx.Response]:
        params = {"purpose": "investigation"}
        if application_id is not None:
            params["application_id"] = application_id
        return intake.http.get(
            f"/persons/{person}/identity",
            params=params,
            headers=intake.headers(Role.INVESTIGATOR, regions, subject=subject),
        )

    left = f"investigator-left-{uuid.uuid4()}"
    refused = await asked(["620123"], left)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/identity-of-a-former-member")
    assert number not in refused.text
    [record] = await access_records(intake_stack, person, left)
    assert (record.outcome, record.action, record.record_type) == (
        access.ACCESS_OUTCOME_DENIED,
        access.ACCESS_ACTION_DECRYPT,
        access.RECORD_TYPE_MEMBER,
    )
    assert (record.household_id, record.region.code) == (former.id, former.plan.region_code)
    assert list(record.persons) == list(record.fields) == []
    # The region they left reads them in its household, masked.
    read = await intake.http.get(
        f"/households/{former.id}", headers=intake.headers(Role.INVESTIGATOR, ["620123"])
    )
    [shown] = [m for m in read.json()["members"] if m["person_id"] == person]
    assert (shown["active"], shown["id_number_masked"]) == (
        False,
        number[:6] + "********" + number[-4:],
    )
    never = await asked(["620104"], f"investigator-never-{uuid.uuid4()}")
    assert never.status_code == 404, never.text

    # The current household's region has it; the former's, while its open application
    # (in which they were a member) is worked on and named.
    # The disclosure's record names the household it was made for and, when an application
    # justified it, that application (an audit query for the case finds it).
    for regions, application_id, household in (
        (["620102"], None, current.id),
        (["620123"], application, former.id),
    ):
        subject = f"investigator-{uuid.uuid4()}"
        revealed = await asked(regions, subject, application_id)
        assert revealed.status_code == 200, revealed.text
        assert revealed.json()["id_number"] == number
        [record] = await access_records(intake_stack, person, subject)
        assert (record.outcome, record.household_id, record.application_id) == (
            access.ACCESS_OUTCOME_GRANTED,
            household,
            application_id or "",
        )
    # Named by the current household's region, the application justified nothing: unnamed.
    subject = f"investigator-{uuid.uuid4()}"
    assert (await asked(["620102"], subject, application)).status_code == 200
    [record] = await access_records(intake_stack, person, subject)
    assert (record.household_id, record.application_id) == (current.id, "")
    # Another household's application discloses nothing of them.
    other = await intake.register(intake.plan(shape="elderly_alone"))
    elsewhere = await intake.submit(await intake.complete_application_body(other))
    assert elsewhere.status_code == 201, elsewhere.text
    unrelated = await asked(["620123"], left, elsewhere.json()["id"])
    assert unrelated.status_code == 403, unrelated.text
    withdrawn = await intake.http.post(
        f"/applications/{application}/withdrawal",
        json={"reason": "迁出"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    closed = await asked(["620123"], left, application)
    assert closed.status_code == 403, closed.text


def _logged_as_a_500(error: BaseException) -> str:
    """The traceback of ``error`` as the service's log writes a 500's
    (``UnexpectedErrorMiddleware``: ``exc_info``, the kit's handler and formatter)."""
    root = logging.getLogger()
    [formatter] = [
        h.formatter
        for h in root.handlers
        if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)
    ]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    try:
        structlog.get_logger("dibao_common.errors").error(
            "unhandled exception", exc_info=(type(error), error, error.__traceback__)
        )
    finally:
        root.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    logged = json.loads(line)["exception"]
    assert isinstance(logged, str)
    return logged


async def test_only_the_caseworker_indexes_answer_a_caseworker_conflict(
    intake: IntakeClient, intake_app: FastAPI, intake_engine: AsyncEngine
) -> None:
    """add_staff answered every IntegrityError 409 caseworker-conflict "try again": a
    CHECK or another unique violation would send the clerk retrying what can never pass.
    Now only the township's caseworker index is that 409 (two namings in one township at
    the same time, shown first), the other townships' indexes are caseworker-of-another-
    township, and any other violation is a 500, logged by table and constraint alone
    (runtime.ConstraintViolatedError: the driver's DETAIL quoted the failing row, the
    relative's name in it, into the log). No constraint the API can reach is violated by
    a valid request today, so a CHECK is added to staff_relative inside the test's own
    transaction (PostgreSQL DDL is transactional) and rolled back with it: a real
    violation by the database."""
    township = "620102012000"  # 草场街街道: this test's own
    admin = intake.headers(Role.POLICY_ADMIN, ["620102"])
    async with intake_engine.connect() as holder:
        await holder.begin()
        # Another responsible caseworker of the township, inserted and not yet committed,
        # taking over, as a naming does, from the one an earlier run of this test left.
        await holder.execute(
            text(
                "UPDATE staff_member SET responsible_caseworker = false"
                " WHERE township_code = :township AND responsible_caseworker AND active"
            ),
            {"township": township},
        )
        await holder.execute(
            text(
                "INSERT INTO staff_member (id, township_code, name, role, subject,"
                " responsible_caseworker, id_hash, active, created_at, created_by)"
                " VALUES (:id, :township, '李明', 'caseworker', :subject, true, :hash, true,"
                " now(), 'test')"
            ),
            {
                "id": uuid.uuid4(),
                "township": township,
                "subject": f"cw-ccj-{uuid.uuid4()}",
                "hash": str(uuid.uuid4()),
            },
        )
        naming = asyncio.create_task(
            intake.http.post(
                f"/townships/{township}/staff",
                json={
                    "name": "吴刚",
                    "role": "caseworker",
                    "subject": f"cw-ccj-{uuid.uuid4()}",
                    "responsible_caseworker": True,
                    "id_number": intake.plan("620102012001", shape="elderly_alone")
                    .members[0]
                    .id_number,
                },
                headers=admin,
            )
        )
        for _ in range(100):
            if await waiting_on_a_lock(intake_engine):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the naming never waited on the uncommitted caseworker")
        await holder.commit()
    lost = await naming
    assert lost.status_code == 409, lost.text
    assert lost.json()["type"].endswith("/caseworker-conflict"), lost.text

    runtime = intake_app.state.runtime
    assert isinstance(runtime, Runtime)
    caller = Caller(Principal("admin-ccj", frozenset({Role.POLICY_ADMIN}), ("620102",)))
    relative = intake.plan("620102012001", shape="elderly_alone").members[0]
    command = staff.AddStaff(
        name="赵敏",
        role=StaffRole.DIBAO_STAFF,
        id_number=None,
        subject=None,
        responsible_caseworker=False,
        relatives=[
            staff.RelativeInput(name=relative.name, id_number=relative.id_number, relation="x")
        ],
    )
    async with intake_engine.connect() as conn:
        await conn.begin()
        await conn.execute(
            text(
                "ALTER TABLE staff_relative"
                " ADD CONSTRAINT test_relation_named CHECK (relation <> 'x')"
            )
        )
        session = AsyncSession(bind=conn)
        with pytest.raises(ConstraintViolatedError) as raised:
            await staff.add_staff(session, runtime, caller, township, command)
        await conn.rollback()
    # Logged as a 500 is: by table and constraint, and the driver's error it is raised
    # from (type, SQLSTATE, frames), without the row the database quotes (DETAIL): the
    # relative's name and masked number stay out of the 500's log. The log, not the
    # exception's own traceback, which holds the chained error's DETAIL.
    logged = _logged_as_a_500(raised.value)
    assert "table staff_relative, constraint test_relation_named" in logged
    assert "The above exception was the direct cause of the following exception" in logged
    assert "SQLSTATE 23514" in logged
    assert relative.name not in logged
    assert mask_name(relative.name) not in logged
    assert "Failing row contains" not in logged
