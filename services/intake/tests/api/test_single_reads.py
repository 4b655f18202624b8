"""One household change and one roster entry are read alone (3 Dec 2026): the URL a 201
names in its Location. Until then no route read either, and Location named the household
or the whole roster (ADR 0010, 3 Dec 2026)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.crypto import PersonHasher, mask_name
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import (
    IntakeClient,
    access_records,
    pii_settings_for_tests,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

VILLAGE = "620123101203"
TOWNSHIP = "620102022000"  # 嘉峪关路街道: this module's roster entries, no other test's
OTHER_TOWNSHIP = "620102023000"


async def _birth(intake: IntakeClient, household_id: str) -> dict[str, object]:
    response = await intake.http.post(
        f"/households/{household_id}/changes",
        json={"kind": "birth", "member": intake.newborn(), "note": "出生医学证明已核验"},
        headers=intake.headers(Role.INTAKE_CLERK, [VILLAGE]),
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == (
        f"/households/{household_id}/changes/{response.json()['change_id']}"
    )
    answer: dict[str, object] = response.json()
    return answer


async def test_a_change_is_read_alone_as_the_household_shows_it(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The change's Location answers the entry the household's read shows among its
    changes, and says its view; the read is recorded naming whom the change names."""
    household = await intake.register(intake.plan(VILLAGE, shape="single_parent"))
    recorded = await _birth(intake, household.id)
    change_id = str(recorded["change_id"])
    url = f"/households/{household.id}/changes/{change_id}"
    reader = f"approver-{uuid.uuid4()}"
    read = await intake.http.get(
        url, headers=intake.headers(Role.COUNTY_APPROVER, ["620123"], subject=reader)
    )
    assert read.status_code == 200, read.text
    whole = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(Role.AUDITOR, ["620123"])
    )
    [entry] = [c for c in whole.json()["changes"] if c["id"] == change_id]
    assert read.json() == entry | {"view": "case"}
    assert read.json()["note"] == "出生医学证明已核验"
    [newborn] = read.json()["details"]["joined_person_ids"]
    [record] = await access_records(intake_stack, f"change:{change_id}", reader)
    assert (record.outcome, record.action, record.record_type) == (
        access.ACCESS_OUTCOME_GRANTED,
        access.ACCESS_ACTION_VIEW,
        access.RECORD_TYPE_HOUSEHOLD,
    )
    assert (record.household_id, record.region.code) == (household.id, VILLAGE)
    assert list(record.fields) == ["change", "notes"]
    assert [p.person_id for p in record.persons] == [newborn]
    [person] = record.persons
    assert person.masked_name == mask_name("马小宝")
    assert person.keyed_hash
    assert person.masked_id


async def test_a_change_read_in_the_limited_view_withholds_what_the_household_read_does(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A publicity officer reads the change as the limited view of the household shows it:
    no note, no documents; the access record names the limited fields."""
    household = await intake.register(intake.plan(VILLAGE, shape="single_parent"))
    change_id = str((await _birth(intake, household.id))["change_id"])
    reader = f"publicity-{uuid.uuid4()}"
    headers = intake.headers(Role.PUBLICITY_OFFICER, [VILLAGE], subject=reader)
    read = await intake.http.get(f"/households/{household.id}/changes/{change_id}", headers=headers)
    assert read.status_code == 200, read.text
    whole = await intake.http.get(f"/households/{household.id}", headers=headers)
    [entry] = [c for c in whole.json()["changes"] if c["id"] == change_id]
    assert read.json() == entry | {"view": "limited"}
    assert read.json()["note"] is None
    assert "document_ids" not in read.json()["details"]
    [record] = await access_records(intake_stack, f"change:{change_id}", reader)
    assert list(record.fields) == ["change_limited"]


async def test_a_change_unknown_or_of_another_household_is_404_and_leaves_no_record(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """No such change, or one of another household (both readable), answers 404 and
    writes nothing: nothing was read. Another region's reader is answered 404 too, the
    refusal recorded DENIED naming no one, and nothing else written."""
    first = await intake.register(intake.plan(VILLAGE, shape="single_parent"))
    second = await intake.register(intake.plan(VILLAGE, shape="elderly_alone"))
    change_id = str((await _birth(intake, first.id))["change_id"])
    reader = f"auditor-{uuid.uuid4()}"
    headers = intake.headers(Role.AUDITOR, ["620123"], subject=reader)
    before = await row_counts(intake_engine)
    for household_id, changed in ((second.id, change_id), (first.id, str(uuid.uuid4()))):
        answer = await intake.http.get(
            f"/households/{household_id}/changes/{changed}", headers=headers
        )
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert await row_counts(intake_engine) == before
    assert await access_records(intake_stack, f"change:{change_id}", reader, timeout_s=1) == []
    prober = f"prober-{uuid.uuid4()}"
    refused = await intake.http.get(
        f"/households/{first.id}/changes/{change_id}",
        headers=intake.headers(Role.AUDITOR, ["620102"], subject=prober),
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["detail"] == answer.json()["detail"]
    after = await row_counts(intake_engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [attempt] = await access_records(intake_stack, f"change:{change_id}", prober)
    assert attempt.outcome == access.ACCESS_OUTCOME_DENIED
    assert list(attempt.persons) == list(attempt.fields) == []


async def _add(intake: IntakeClient, township: str, body: dict[str, object]) -> dict[str, object]:
    response = await intake.http.post(
        f"/townships/{township}/staff",
        json=body,
        headers=intake.headers(Role.POLICY_ADMIN, ["620102"]),
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/townships/{township}/staff/{response.json()['id']}"
    answer: dict[str, object] = response.json()
    return answer


async def test_a_roster_entry_is_read_alone_as_the_roster_shows_it(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The entry's Location answers it as the roster shows it (numbers masked), to the
    roles that read the roster; the read names the member and their relatives by keyed
    hash, as the roster's read does."""
    plan = intake.plan(VILLAGE, shape="elderly_couple")
    own, relative = plan.members[0].id_number, plan.members[1].id_number
    added = await _add(
        intake,
        TOWNSHIP,
        {
            "name": "孙立",
            "role": "dibao_staff",
            "id_number": own,
            "relatives": [{"name": "赵梅", "id_number": relative, "relation": "spouse"}],
        },
    )
    url = f"/townships/{TOWNSHIP}/staff/{added['id']}"
    reader = f"reviewer-{uuid.uuid4()}"
    read = await intake.http.get(
        url, headers=intake.headers(Role.TOWNSHIP_REVIEWER, [TOWNSHIP[:9]], subject=reader)
    )
    assert read.status_code == 200, read.text
    assert read.json() == added
    roster = await intake.http.get(
        f"/townships/{TOWNSHIP}/staff", headers=intake.headers(Role.AUDITOR, ["620102"])
    )
    assert [e for e in roster.json() if e["id"] == added["id"]] == [read.json()]
    assert own not in read.text
    assert relative not in read.text
    [record] = await access_records(intake_stack, f"staff:{added['id']}", reader)
    assert (record.outcome, record.record_type) == (
        access.ACCESS_OUTCOME_GRANTED,
        access.RECORD_TYPE_OTHER,
    )
    assert (record.household_id, record.region.code) == ("", TOWNSHIP)
    assert list(record.fields) == ["staff_name", "relative_name", "id_number_masked"]
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    assert [(p.keyed_hash, p.masked_name) for p in record.persons] == [
        (hasher.hash_id_number(own), mask_name("孙立")),
        (hasher.hash_id_number(relative), mask_name("赵梅")),
    ]
    clerk = await intake.http.get(url, headers=intake.headers(Role.INTAKE_CLERK, ["620102"]))
    assert clerk.status_code == 403, clerk.text


async def test_a_roster_entry_unknown_or_of_another_township_is_404_and_leaves_no_record(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """No such entry, or one on another township's roster, answers 404 and writes nothing;
    a township outside the reader's regions 404 too, recorded DENIED naming no one."""
    added = await _add(intake, TOWNSHIP, {"name": "钱进", "role": "dibao_staff"})
    reader = f"auditor-{uuid.uuid4()}"
    headers = intake.headers(Role.AUDITOR, ["620102"], subject=reader)
    before = await row_counts(intake_engine)
    for township, staff_id in ((OTHER_TOWNSHIP, added["id"]), (TOWNSHIP, uuid.uuid4())):
        answer = await intake.http.get(f"/townships/{township}/staff/{staff_id}", headers=headers)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert await row_counts(intake_engine) == before
    assert await access_records(intake_stack, f"staff:{added['id']}", reader, timeout_s=1) == []
    prober = f"prober-{uuid.uuid4()}"
    refused = await intake.http.get(
        f"/townships/{TOWNSHIP}/staff/{added['id']}",
        headers=intake.headers(Role.AUDITOR, ["620123"], subject=prober),
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["detail"] == answer.json()["detail"]
    after = await row_counts(intake_engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [attempt] = await access_records(intake_stack, f"staff:{added['id']}", prober)
    assert attempt.outcome == access.ACCESS_OUTCOME_DENIED
    assert list(attempt.persons) == list(attempt.fields) == []
