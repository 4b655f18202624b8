"""A change's day against the member's recorded history (ADR 0016, 3 Dec 2026): a death
or a move out not before the member's own acts recorded here, a marriage of members not
before they joined."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    moves_in,
    refused_change,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


def _pointers(problem: dict[str, Any]) -> dict[str, str]:
    return {e["pointer"]: e["detail"] for e in problem["errors"]}


def _person(
    intake: IntakeClient, relationship: Relationship, sex: Sex, ages: tuple[int, int]
) -> dict[str, Any]:
    return intake.synthesizer.member(relationship, sex, ages, EmploymentStatus.UNEMPLOYED).payload()


async def _a_man_living_alone(intake: IntakeClient) -> RegisteredHousehold:
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (30, 35), EmploymentStatus.UNEMPLOYED
    )
    return await intake.register(plan)


async def test_a_death_or_move_out_before_the_members_change_of_details_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's mother's disability certificate was recorded as of 20 February; her
    death dated the 10th was recorded (201), the record then showing a dead woman's grade
    changed. So was the wife's move out dated before her own change of details. Now both
    are refused at the date, with the change's other errors at once, nothing written; on
    or after the day they are recorded. A declaration of missing (no act of hers) dated
    after the death does not bound it."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, kid = household.person_ids
    for person, grade in ((mother, "2"), (wife, "3")):
        await intake.change(
            household,
            {
                "kind": "member_change",
                "person_id": person,
                "effective_on": "2026-02-20",
                "disability_grade": grade,
            },
        )
    death = {"kind": "death", "person_id": mother, "date_of_death": "2026-02-10"}
    problem = await refused_change(
        intake, intake_engine, household, death | {"new_head_person_id": wife}
    )
    pointers = _pointers(problem)
    assert set(pointers) == {"/body/date_of_death", "/body/new_head_person_id"}, problem
    assert "2026-02-20" in pointers["/body/date_of_death"], problem
    move_out = {"kind": "move_out", "person_id": wife, "moved_on": "2026-02-10"}
    problem = await refused_change(
        intake, intake_engine, household, move_out | {"to_region_code": "999999999999"}
    )
    assert set(_pointers(problem)) == {"/body/moved_on", "/body/to_region_code"}, problem
    assert "member_change" in _pointers(problem)["/body/moved_on"], problem
    await intake.change(household, move_out | {"moved_on": "2026-02-20"})
    # Declared missing on the 25th; found to have died on the 22nd: recorded.
    await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": mother,
            "effective_on": "2026-02-25",
            "counted": False,
            "exclusion_reason": "declared_missing",
        },
    )
    died = await intake.change(household, death | {"date_of_death": "2026-02-22"})
    assert died["household"]["changes"][-1]["effective_on"] == "2026-02-22"
    assert {m["person_id"] for m in died["household"]["members"] if m["active"]} == {
        head,
        kid,
    }


async def test_a_move_out_before_the_members_marriage_or_divorce_here_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head married the woman lodging with him on 14 February (recorded); her move
    out dated the 10th was recorded (201): the record showed a marriage of two members, one
    of whom had left. Now refused, as a death is, and so is one dated before their divorce
    on the 25th; on the divorce's day it is recorded."""
    household = await _a_man_living_alone(intake)
    [head] = household.person_ids
    lodger = await moves_in(
        intake, household, _person(intake, Relationship.OTHER, Sex.FEMALE, (28, 32)), "2026-01-05"
    )
    couple = {"person_id": head, "spouse_person_id": lodger}
    await intake.change(household, {"kind": "marriage", "married_on": "2026-02-14"} | couple)
    move_out = {"kind": "move_out", "person_id": lodger, "moved_on": "2026-02-10"}
    problem = await refused_change(intake, intake_engine, household, move_out)
    assert list(_pointers(problem)) == ["/body/moved_on"], problem
    assert "2026-02-14" in _pointers(problem)["/body/moved_on"], problem
    await intake.change(household, {"kind": "divorce", "divorced_on": "2026-02-25"} | couple)
    problem = await refused_change(
        intake, intake_engine, household, move_out | {"moved_on": "2026-02-20"}
    )
    assert "2026-02-25" in _pointers(problem)["/body/moved_on"], problem
    await intake.change(household, move_out | {"moved_on": "2026-02-25"})


async def test_a_marriage_before_the_member_joined_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A woman moved in with the head on 1 February; their marriage dated 20 January was
    recorded (201), the record showing her marry a member of the household and move in as
    a lodger after. So was a marriage dated before the member moved in with a spouse
    joining, who then joined a household before the member they married into it. Both
    refused at ``/married_on`` with the change's other errors, nothing written; on the
    day of joining they are recorded."""
    household = await _a_man_living_alone(intake)
    [head] = household.person_ids
    lodger = await moves_in(
        intake, household, _person(intake, Relationship.OTHER, Sex.FEMALE, (28, 32)), "2026-02-01"
    )
    lodger_man = await moves_in(
        intake, household, _person(intake, Relationship.OTHER, Sex.MALE, (28, 32)), "2026-02-01"
    )
    marriage = {
        "kind": "marriage",
        "person_id": head,
        "spouse_person_id": lodger,
        "married_on": "2026-01-20",
    }
    problem = await refused_change(intake, intake_engine, household, marriage)
    assert list(_pointers(problem)) == ["/body/married_on"], problem
    assert "2026-02-01" in _pointers(problem)["/body/married_on"], problem
    groom = {
        "kind": "marriage",
        "person_id": lodger_man,
        "married_on": "2026-01-20",
        "spouse": _person(intake, Relationship.OTHER, Sex.MALE, (28, 32)),
    }
    problem = await refused_change(intake, intake_engine, household, groom)
    assert set(_pointers(problem)) == {"/body/married_on", "/body/spouse/id_number"}, problem
    married = await intake.change(household, marriage | {"married_on": "2026-02-01"})
    assert married["household"]["changes"][-1]["details"]["relationships"] == {lodger: "spouse"}


def _born(intake: IntakeClient, sex: Sex, born: date, relationship: str) -> dict[str, Any]:
    return {
        "name": intake.synthesizer.name(sex),
        "id_number": intake.synthesizer.id_number(born, sex),
        "relationship": relationship,
        "employment_status": "unemployed",
    }


async def test_a_man_under_22_or_a_woman_under_20_is_married_by_no_change(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The legal marriage age is 22 for a man and 20 for a woman (Civil Code art. 1047;
    ADR 0016, 3 Dec 2026, helper hAX). A man of 21 marrying (a bride of 20 joining), a
    woman of 20 moving in as his spouse, a bride of 19 joining a man of age, and a lodger
    of 19 marrying the head were recorded (201 each: the floor was 20 and 18). Now each is
    refused, 422 naming the member by their pointer (person_id, spouse/id_number,
    spouse_person_id; member/relationship for the move in), never by name or ID number,
    nothing written; a bride on her 20th birthday is of age and recorded."""
    on = "2026-02-14"
    bride = _born(intake, Sex.FEMALE, date(2006, 2, 14), "spouse")  # 20 that day
    # Registered as a couple, the man of 21 as head: refused at the spouse's relationship.
    couple = intake.plan(shape="unemployed_single")
    couple.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (21, 21), EmploymentStatus.UNEMPLOYED
    )
    payload = couple.payload()
    payload["members"].append(bride)
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[couple.region_code])
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/members/1/relationship"]
    assert "the head is under 22 on 2026-03-02" in response.text
    assert await row_counts(intake_engine) == before
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (21, 21), EmploymentStatus.UNEMPLOYED
    )
    household = await intake.register(plan)
    [groom] = household.person_ids
    marriage = {"kind": "marriage", "person_id": groom, "married_on": on}
    problem = await refused_change(intake, intake_engine, household, marriage | {"spouse": bride})
    pointers = _pointers(problem)
    assert list(pointers) == ["/body/person_id"], problem
    assert pointers["/body/person_id"].startswith(
        "the member is under 22 on 2026-02-14, the marriage's day: nobody younger may marry"
    ), problem
    move_in = {"kind": "move_in", "moved_on": on, "member": bride}
    problem = await refused_change(intake, intake_engine, household, move_in)
    assert list(_pointers(problem)) == ["/body/member/relationship"], problem
    assert "the head is under 22 on 2026-02-14" in problem["errors"][0]["detail"], problem
    plan = intake.plan(shape="unemployed_single")
    plan.members[0] = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (23, 26), EmploymentStatus.UNEMPLOYED
    )
    older = await intake.register(plan)
    [man] = older.person_ids
    young = _born(intake, Sex.FEMALE, date(2006, 2, 15), "spouse")  # 20 the day after
    problem = await refused_change(
        intake, intake_engine, older, marriage | {"person_id": man, "spouse": young}
    )
    pointers = _pointers(problem)
    assert list(pointers) == ["/body/spouse/id_number"], problem
    assert pointers["/body/spouse/id_number"].startswith(
        "the spouse is under 20 on 2026-02-14, the marriage's day"
    ), problem
    # The refusals name nobody: neither the names nor the ID numbers typed.
    for person in (bride, young):
        assert person["name"] not in str(problem)
        assert person["id_number"] not in str(problem)
    lodger = await moves_in(intake, older, young | {"relationship": "other"}, "2026-02-01")
    problem = await refused_change(
        intake,
        intake_engine,
        older,
        {"kind": "marriage", "person_id": man, "spouse_person_id": lodger, "married_on": on},
    )
    assert list(_pointers(problem)) == ["/body/spouse_person_id"], problem
    assert "the spouse is under 20 on 2026-02-14" in problem["errors"][0]["detail"], problem
    married = await intake.change(older, marriage | {"person_id": man, "spouse": bride})
    assert married["household"]["changes"][-1]["kind"] == "marriage"
