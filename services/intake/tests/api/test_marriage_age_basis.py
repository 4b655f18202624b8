"""A marriage lawful under an autonomous area's adapted ages (变通规定: 20 for a man, 18
for a woman) is recorded when the clerk says so, ``marriage_age_basis``
``autonomous_adaptation``; the Civil Code's 22 and 20 stay the default, and nobody is
married younger than 20 and 18 whatever is said (ADR 0016, 3 Dec 2026, helper hBB).
Before, such a marriage could not be recorded at all, and the household's register and
application were blocked (the field was an unknown one: 422)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.intake.v1 import types_pb2 as intake_types
from dibao_common.auth import Role
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    household_updated,
    refused_change,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

ADAPTED = {"marriage_age_basis": "autonomous_adaptation"}
ON = "2026-02-14"


def _pointers(problem: dict[str, Any]) -> dict[str, str]:
    return {e["pointer"]: e["detail"] for e in problem["errors"]}


def _born(intake: IntakeClient, sex: Sex, born: date, relationship: str) -> dict[str, Any]:
    return {
        "name": intake.synthesizer.name(sex),
        "id_number": intake.synthesizer.id_number(born, sex),
        "relationship": relationship,
        "employment_status": "unemployed",
    }


async def _a_man_of(intake: IntakeClient, age: int) -> RegisteredHousehold:
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (age, age), EmploymentStatus.UNEMPLOYED
    )
    return await intake.register(plan)


async def _read_change(
    intake: IntakeClient, household: RegisteredHousehold, change_id: str, role: Role
) -> dict[str, Any]:
    response = await intake.http.get(
        f"/households/{household.id}/changes/{change_id}",
        headers=intake.headers(role, [household.plan.region_code]),
    )
    assert response.status_code == 200, response.text
    read: dict[str, Any] = response.json()
    return read


async def test_a_husband_of_21_married_under_an_autonomous_adaptation_is_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A man of 21 marrying a bride of 19 who joins: refused under the Civil Code's ages
    (both named, at person_id and spouse/id_number), recorded (201) with the basis said;
    the change's details and its single read carry it, the limited view leaves it out
    (it hints at ethnicity), and HouseholdUpdated's marriage carries it."""
    household = await _a_man_of(intake, 21)
    [groom] = household.person_ids
    bride = _born(intake, Sex.FEMALE, date(2007, 2, 14), "spouse")  # 19 that day
    marriage = {"kind": "marriage", "person_id": groom, "married_on": ON, "spouse": bride}
    problem = await refused_change(intake, intake_engine, household, marriage)
    assert set(_pointers(problem)) == {"/body/person_id", "/body/spouse/id_number"}, problem
    said = {**marriage, **ADAPTED, "note": "依自治区变通规定登记结婚"}
    married = await intake.change(household, said)
    details = married["household"]["changes"][-1]["details"]
    assert details["marriage_age_basis"] == "autonomous_adaptation", details
    read = await _read_change(intake, household, married["change_id"], Role.INTAKE_CLERK)
    assert read["details"]["marriage_age_basis"] == "autonomous_adaptation", read
    limited = await _read_change(intake, household, married["change_id"], Role.PUBLICITY_OFFICER)
    assert limited["view"] == "limited"
    assert "marriage_age_basis" not in limited["details"], limited
    message = await household_updated(intake_stack, married)
    assert message.marriage.person_id == groom
    assert (
        message.marriage.marriage_age_basis == intake_types.MARRIAGE_AGE_BASIS_AUTONOMOUS_ADAPTATION
    )
    # Said explicitly, the Civil Code's ages are the default's: a lodger of 19 marrying
    # the head (two members) is refused; with the adaptation she is recorded.
    older = await _a_man_of(intake, 30)
    [head] = older.person_ids
    lodger_body = _born(intake, Sex.FEMALE, date(2007, 1, 2), "other")
    joined = await intake.change(
        older, {"kind": "move_in", "moved_on": "2026-01-05", "member": lodger_body}
    )
    [lodger] = [m["person_id"] for m in joined["household"]["members"] if m["person_id"] != head]
    members = {"kind": "marriage", "person_id": head, "spouse_person_id": lodger, "married_on": ON}
    problem = await refused_change(
        intake, intake_engine, older, members | {"marriage_age_basis": "civil_code"}
    )
    assert list(_pointers(problem)) == ["/body/spouse_person_id"], problem
    married = await intake.change(older, members | ADAPTED)
    assert married["household"]["changes"][-1]["details"]["marriage_age_basis"] == (
        "autonomous_adaptation"
    )
    message = await household_updated(intake_stack, married)
    assert (
        message.marriage.marriage_age_basis == intake_types.MARRIAGE_AGE_BASIS_AUTONOMOUS_ADAPTATION
    )


async def test_nobody_is_married_under_20_and_18_whatever_is_said(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The adaptation lowers the floor to 20 and 18, never below: a man of 19 marrying
    is refused with it (at person_id, naming the adapted age, never a name or ID number),
    and so is a bride of 17 joining a man of age (at spouse/id_number). A value not of the
    vocabulary is 422 at the field, and the basis given on the marriage's spouse rather
    than on the marriage is 422 there; nothing is written."""
    young = await _a_man_of(intake, 19)
    [groom] = young.person_ids
    bride = _born(intake, Sex.FEMALE, date(2007, 2, 14), "spouse")
    marriage = {"kind": "marriage", "person_id": groom, "married_on": ON, "spouse": bride}
    problem = await refused_change(intake, intake_engine, young, marriage | ADAPTED)
    pointers = _pointers(problem)
    assert list(pointers) == ["/body/person_id"], problem
    assert pointers["/body/person_id"].startswith(
        "the member is under 20 on 2026-02-14, the marriage's day, even by an autonomous"
        " area's adapted ages"
    ), problem
    assert bride["name"] not in str(problem)
    assert bride["id_number"] not in str(problem)
    older = await _a_man_of(intake, 30)
    [man] = older.person_ids
    girl = _born(intake, Sex.FEMALE, date(2008, 2, 15), "spouse")  # 17 that day
    problem = await refused_change(
        intake, intake_engine, older, marriage | ADAPTED | {"person_id": man, "spouse": girl}
    )
    pointers = _pointers(problem)
    assert list(pointers) == ["/body/spouse/id_number"], problem
    assert pointers["/body/spouse/id_number"].startswith("the spouse is under 18 on 2026-02-14")
    unknown = await refused_change(
        intake, intake_engine, older, marriage | {"person_id": man, "marriage_age_basis": "tibet"}
    )
    assert "/body/marriage_age_basis" in _pointers(unknown), unknown
    on_the_spouse = await refused_change(
        intake, intake_engine, older, marriage | {"person_id": man, "spouse": bride | ADAPTED}
    )
    assert list(_pointers(on_the_spouse)) == ["/body/spouse/marriage_age_basis"], on_the_spouse


async def test_a_couple_registered_or_moving_in_under_an_adaptation(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A head of 21 registered with a wife of 19, and a wife of 19 moving in as the head's
    spouse, are recorded when the spouse's marriage_age_basis says autonomous_adaptation:
    the member read shows it (null for the others, and in the limited view), the move in's
    details and its event's member carry it. Their divorce is not bound by 22 and 20
    either: on the registration day, the man 21, it is recorded. The basis given for a
    member who is not the head's spouse is 422 at that member's field."""
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (21, 21), EmploymentStatus.UNEMPLOYED
    )
    payload = plan.payload()
    wife = _born(intake, Sex.FEMALE, date(2007, 2, 14), "spouse")
    headers = intake.headers(regions=[plan.region_code])
    before = await row_counts(intake_engine)
    for refused, pointer in (
        ([*payload["members"], wife], "/body/members/1/relationship"),
        ([payload["members"][0] | ADAPTED, wife], "/body/members/0/marriage_age_basis"),
        ([*payload["members"], wife | {"marriage_age_basis": "xinjiang"}], None),
    ):
        response = await intake.http.post(
            "/households", json=payload | {"members": refused}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        pointers = {e["pointer"] for e in response.json()["errors"]}
        assert pointers == {pointer or "/body/members/1/marriage_age_basis"}, response.text
    assert await row_counts(intake_engine) == before
    response = await intake.http.post(
        "/households",
        json=payload | {"members": [*payload["members"], wife | ADAPTED]},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    registered = response.json()
    by_relationship = {m["relationship"]: m for m in registered["members"]}
    assert by_relationship["spouse"]["marriage_age_basis"] == "autonomous_adaptation"
    assert by_relationship["head"]["marriage_age_basis"] is None
    limited = await intake.http.get(
        f"/households/{registered['id']}",
        headers=intake.headers(Role.PUBLICITY_OFFICER, [plan.region_code]),
    )
    assert limited.status_code == 200, limited.text
    assert {m["marriage_age_basis"] for m in limited.json()["members"]} == {None}
    couple = RegisteredHousehold(registered["id"], plan, [], registered)
    divorced = await intake.change(
        couple,
        {
            "kind": "divorce",
            "person_id": by_relationship["head"]["person_id"],
            "spouse_person_id": by_relationship["spouse"]["person_id"],
            "divorced_on": "2026-03-02",
        },
    )
    assert divorced["household"]["changes"][-1]["kind"] == "divorce"
    # Moving in as the head's spouse.
    household = await _a_man_of(intake, 21)
    wife = _born(intake, Sex.FEMALE, date(2007, 2, 14), "spouse")  # another, of the same age
    moving = {"kind": "move_in", "moved_on": ON, "member": wife}
    problem = await refused_change(intake, intake_engine, household, moving)
    assert list(_pointers(problem)) == ["/body/member/relationship"], problem
    moved = await intake.change(household, moving | {"member": wife | ADAPTED})
    assert moved["household"]["changes"][-1]["details"]["marriage_age_basis"] == (
        "autonomous_adaptation"
    )
    spouse = next(m for m in moved["household"]["members"] if m["relationship"] == "spouse")
    assert spouse["marriage_age_basis"] == "autonomous_adaptation"
    message = await household_updated(intake_stack, moved)
    assert (
        message.move_in.member.marriage_age_basis
        == intake_types.MARRIAGE_AGE_BASIS_AUTONOMOUS_ADAPTATION
    )
    # A lodger of 19 is no spouse: the basis is refused for her.
    lodger = _born(intake, Sex.FEMALE, date(2006, 5, 5), "other") | ADAPTED
    problem = await refused_change(intake, intake_engine, household, {**moving, "member": lodger})
    assert list(_pointers(problem)) == ["/body/member/marriage_age_basis"], problem
