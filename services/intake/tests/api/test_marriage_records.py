"""Marriages between members through the API: what the record and the event say of them
(ADR 0016)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.domain.resident_id import age_on
from dibao_intake.domain.working_age import working_age_ends_at_the_latest
from dibao_intake.synthetic import PlannedHousehold
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    moves_in,
    refused_change,
    row_counts,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()


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


async def _marriage_event(intake_stack: TestStack, change_id: str) -> ev.HouseholdUpdated:
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=change_id)
    [update] = [REGISTRY.decode(e) for e in found]
    assert isinstance(update, ev.HouseholdUpdated)
    return update


async def test_the_event_names_both_partners_whichever_the_request_names_first(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The lodger is named as person_id and the member they marry as spouse_person_id:
    the event's marriage is the member's (person_id) and the lodger's (spouse, as now
    recorded), two people, as the change's details say. It named the lodger twice."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    mother_born = household.plan.members[2].birth_date
    lodger = await moves_in(
        intake, household, _person(intake, date(mother_born.year - 2, 3, 3), Sex.MALE, "other")
    )
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": lodger,
            "married_on": "2026-02-14",
            "spouse_person_id": mother,
        },
    )
    assert married["household"]["changes"][-1]["details"]["relationships"] == {lodger: "parent"}
    update = await _marriage_event(intake_stack, married["change_id"])
    assert (update.marriage.person_id, update.marriage.spouse.person.person_id) == (
        mother,
        lodger,
    )
    assert update.marriage.spouse.relationship == enums.RELATIONSHIP_PARENT

    # The same with the head: the lodger named first, the head as spouse_person_id.
    single = await intake.register(intake.plan(shape="unemployed_single"))
    [alone] = single.person_ids
    born = single.plan.members[0].birth_date
    sex = Sex.FEMALE if single.plan.members[0].sex is Sex.MALE else Sex.MALE
    partner = await moves_in(
        intake, single, _person(intake, date(born.year + 1, 3, 3), sex, "other")
    )
    married = await intake.change(
        single,
        {
            "kind": "marriage",
            "person_id": partner,
            "married_on": "2026-02-14",
            "spouse_person_id": alone,
        },
    )
    update = await _marriage_event(intake_stack, married["change_id"])
    assert (update.marriage.person_id, update.marriage.spouse.person.person_id) == (
        alone,
        partner,
    )
    assert update.marriage.spouse.relationship == enums.RELATIONSHIP_SPOUSE


async def test_a_widowed_parent_marries_on_or_after_the_other_parents_death(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's father and mother live with the household (taken to be married to each
    other: neither may marry while both do). The father died on 1 Mar: the death names
    the mother as the spouse left behind, and her marriage to the lodger dated 14 Feb,
    while her husband lived, is refused at married_on naming 1 Mar, writing nothing; on 1
    Mar it is recorded. It was accepted: the record showed her married to two men."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    mother_born = household.plan.members[2].birth_date
    father = await moves_in(
        intake, household, _person(intake, date(mother_born.year - 3, 2, 2), Sex.MALE, "parent")
    )
    lodger = await moves_in(
        intake, household, _person(intake, date(mother_born.year - 2, 3, 3), Sex.MALE, "other")
    )
    died = await intake.change(
        household, {"kind": "death", "person_id": father, "date_of_death": "2026-03-01"}
    )
    assert died["household"]["changes"][-1]["details"]["spouse_person_id"] == mother
    marriage = {"kind": "marriage", "person_id": mother, "spouse_person_id": lodger}
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json=marriage | {"married_on": "2026-02-14"},
        headers=intake.headers(),
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/married_on"
    assert "2026-03-01" in error["detail"]
    assert await row_counts(intake_engine) == before
    married = await intake.change(household, marriage | {"married_on": "2026-03-01"})
    assert married["household"]["changes"][-1]["details"]["relationships"] == {lodger: "parent"}


async def test_a_new_head_married_here_may_not_marry_again(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The grown son married the lodger living with the household (she became a
    child-in-law); his father died and he heads the household, his wife given as his
    spouse. His marriage to her is on record while both are members: a second marriage
    of his is refused, writing nothing. It was recorded. (Until 3 Dec 2026 the wife was
    given as other here, which is now refused, ADR 0016: a member the record shows
    married to the new head is their spouse.)"""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, _wife, _mother, _kid = household.person_ids
    head_born = household.plan.members[0].birth_date
    son = await moves_in(
        intake,
        household,
        _person(intake, date(min(head_born.year + 20, 2003), 2, 2), Sex.MALE, "child"),
    )
    bride = await moves_in(
        intake, household, _person(intake, date(2004, 3, 3), Sex.FEMALE, "other")
    )
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": son,
            "married_on": "2026-02-14",
            "spouse_person_id": bride,
        },
    )
    assert married["household"]["changes"][-1]["details"]["relationships"] == {
        bride: "child_in_law"
    }
    died = await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-03-01",
            "new_head_person_id": son,
            "relationships": {bride: "spouse"},
        },
    )
    assert died["household"]["head_person_id"] == son
    second = _person(intake, date(1998, 4, 4), Sex.FEMALE, "spouse")
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json={"kind": "marriage", "person_id": son, "married_on": "2026-03-01", "spouse": second},
        headers=intake.headers(),
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/spouse"]
    assert await row_counts(intake_engine) == before


async def test_a_marriage_is_between_a_man_and_a_woman(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head marries a spouse joining whose ID number tells the head's own sex: refused
    at the spouse's id_number (a wrong number, or a wrong member), and so is his marriage
    to a co-resident of his sex (at spouse_person_id); both write nothing (both were
    recorded, and the record then took the two for a couple a divorce could end). A bride
    of the other sex marries him."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    [head] = household.person_ids
    born = household.plan.members[0].birth_date
    own = household.plan.members[0].sex
    other = Sex.FEMALE if own is Sex.MALE else Sex.MALE
    lodger = await moves_in(
        intake, household, _person(intake, date(born.year + 1, 3, 3), own, "other")
    )
    marriage = {"kind": "marriage", "person_id": head, "married_on": "2026-02-14"}
    for body, pointer in (
        (
            {"spouse": _person(intake, date(born.year + 1, 5, 5), own, "spouse")},
            "/body/spouse/id_number",
        ),
        ({"spouse_person_id": lodger}, "/body/spouse_person_id"),
    ):
        before = await row_counts(intake_engine)
        response = await intake.http.post(
            f"/households/{household.id}/changes",
            json=marriage | body,
            headers=intake.headers(),
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["pointer"] for e in response.json()["errors"]] == [pointer]
        assert await row_counts(intake_engine) == before
    bride = _person(intake, date(born.year + 1, 5, 5), other, "spouse")
    await intake.change(household, marriage | {"spouse": bride})


async def test_the_heads_spouse_moving_in_is_of_the_other_sex(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A member moving in as the head's spouse whose ID number tells the head's own sex is
    refused at the member's relationship, writing nothing, as a marriage to them is (it
    was recorded, and the record took the two for a couple a divorce could end); of the
    other sex, they move in."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    born = household.plan.members[0].birth_date
    own = household.plan.members[0].sex
    other = Sex.FEMALE if own is Sex.MALE else Sex.MALE
    move_in = {"kind": "move_in", "moved_on": "2026-01-05"}
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes",
        json=move_in | {"member": _person(intake, date(born.year + 1, 5, 5), own, "spouse")},
        headers=intake.headers(),
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/member/relationship"]
    assert await row_counts(intake_engine) == before
    await moves_in(intake, household, _person(intake, date(born.year + 1, 5, 5), other, "spouse"))


async def test_a_household_registers_a_spouse_of_the_other_sex(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A registration whose head's spouse has the head's own sex by the ID numbers is
    refused at that member's relationship and registers nothing (it was registered, the
    two a couple for every marriage rule and a divorce)."""
    plan = intake.plan(shape="elderly_couple")
    head, spouse = plan.members[0], plan.members[1]
    spouse.id_number = intake.synthesizer.id_number(spouse.birth_date, head.sex)
    spouse.sex = head.sex
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/members/1/relationship"]
    assert await row_counts(intake_engine) == before


async def test_a_couple_with_no_marriage_day_is_bound_by_marriageable_age(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A registered couple, or a spouse moving in, has no marriage day recorded (none is
    asked: a de facto marriage before 1994 has none), and nothing bound it: a spouse of
    16 was registered, and the couple's divorce could be dated before either was born.
    Now a spouse under the marriage age on the registration day (422 at the spouse's
    relationship, nothing registered) or the move's day is refused, and a divorce before
    both were of age, naming the day. Dated then, it is recorded."""
    plan = intake.plan(shape="elderly_couple")
    payload = plan.payload()
    young = _person(intake, date(2010, 5, 5), Sex.FEMALE, "spouse")
    payload["members"][1] = young | {"employment_status": "not_of_working_age", "student": True}
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/members/1/relationship"]
    assert "the spouse is under 20" in response.text
    assert await row_counts(intake_engine) == before

    household = await intake.register(intake.plan(shape="elderly_couple"))
    head, wife = household.person_ids
    # Born on 29 February, one is of age on 1 March. An elderly couple (the head born by
    # 1958, the wife by 1961) could marry before 1981, at the Marriage Law of 1950's ages:
    # a man at 20, a woman at 18 (ADR 0016, 3 Dec 2026, helper hAX).
    assert all(
        m.birth_date.year <= (1960 if m.sex is Sex.MALE else 1962) for m in household.plan.members
    )
    of_age = max(
        date(
            m.birth_date.year + (20 if m.sex is Sex.MALE else 18),
            *(
                (3, 1)
                if (m.birth_date.month, m.birth_date.day) == (2, 29)
                else (m.birth_date.month, m.birth_date.day)
            ),
        )
        for m in household.plan.members
    )
    divorce = {"kind": "divorce", "person_id": head, "spouse_person_id": wife}
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"divorced_on": "1950-01-01"}
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/divorced_on"]
    assert of_age.isoformat() in problem["errors"][0]["detail"]
    await intake.change(household, divorce | {"divorced_on": of_age.isoformat()})

    widower = await intake.register(intake.plan(shape="elderly_couple"))
    gone = widower.person_ids[1]
    await intake.change(
        widower, {"kind": "death", "person_id": gone, "date_of_death": "2025-06-01"}
    )
    problem = await refused_change(
        intake,
        intake_engine,
        widower,
        {
            "kind": "move_in",
            "moved_on": "2026-02-01",
            "member": _person(intake, date(2008, 6, 1), Sex.FEMALE, "spouse"),
        },
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/member/relationship"]
    assert "the spouse is under 20 on 2026-02-01" in problem["errors"][0]["detail"]


def _single_plan(intake: IntakeClient, sex: Sex) -> PlannedHousehold:
    """A household of one, its head of ``sex`` and of marriageable age."""
    while True:
        plan = intake.plan(shape="unemployed_single")
        head = plan.members[0]
        if head.sex is sex and age_on(head.birth_date, intake.synthesizer.today) >= 22:
            return plan


async def _single_of(intake: IntakeClient, sex: Sex) -> RegisteredHousehold:
    return await intake.register(_single_plan(intake, sex))


async def _married_then_moved_out(
    intake: IntakeClient,
) -> tuple[RegisteredHousehold, str, dict[str, Any]]:
    """Household B: its head married the lodger who moved in, and she moved out since (no
    divorce, no death recorded): B, her person id, and her as a request gives her."""
    b = await _single_of(intake, Sex.MALE)
    her = _person(intake, date(1992, 5, 5), Sex.FEMALE, "other")
    wife = await moves_in(intake, b, her, "2025-06-01")
    await intake.change(
        b,
        {
            "kind": "marriage",
            "person_id": b.person_ids[0],
            "spouse_person_id": wife,
            "married_on": "2025-07-01",
        },
    )
    await intake.change(b, {"kind": "move_out", "person_id": wife, "moved_on": "2025-12-01"})
    return b, wife, her


def _married_elsewhere(problem: dict[str, Any], pointer: str, b: RegisteredHousehold) -> None:
    """The refusal at ``pointer`` names B by its masked reference, nothing else of it."""
    [error] = [e for e in problem["errors"] if e["pointer"] == pointer]
    assert "married to a person recorded in another household" in error["detail"]
    assert f"-****-{uuid.UUID(b.id).hex[-4:]}" in error["detail"]
    assert b.id not in error["detail"]
    assert "杨" not in error["detail"]


def _one_access_record(before: dict[str, int]) -> dict[str, int]:
    """The counts after a refusal that tells of another household: its access record's
    outbox row (recorded as a lookup of the person is), and nothing else."""
    return before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}


async def _refused_and_recorded(
    intake: IntakeClient, engine: AsyncEngine, household: RegisteredHousehold, body: dict[str, Any]
) -> dict[str, Any]:
    """The change is refused (422 problem+json), writing nothing but the access record."""
    before = await row_counts(engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=body, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == _one_access_record(before)
    problem: dict[str, Any] = response.json()
    return problem


async def test_a_person_married_in_another_household_marries_by_no_path_until_it_ends(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """She married B's head and moved out of B, the marriage ended by nothing recorded.
    In A she is refused as the head's spouse by every path (a move in, a marriage whose
    spouse joins, a registration, a marriage of two members with its other error at once,
    a relationship correction), 422 at the field naming B by its masked reference, nothing
    written; moved in as other, a divorce naming her alone ends it, and she marries. Each
    was recorded before (201): the registry held her married to two men."""
    b, _, her = await _married_then_moved_out(intake)
    a = await _single_of(intake, Sex.MALE)
    spouse = her | {"relationship": "spouse"}
    problem = await _refused_and_recorded(
        intake, intake_engine, a, {"kind": "move_in", "moved_on": "2026-01-05", "member": spouse}
    )
    _married_elsewhere(problem, "/body/member/relationship", b)
    problem = await _refused_and_recorded(
        intake,
        intake_engine,
        a,
        {
            "kind": "marriage",
            "person_id": a.person_ids[0],
            "married_on": "2026-02-01",
            "spouse": spouse,
        },
    )
    _married_elsewhere(problem, "/body/spouse/id_number", b)
    plan = _single_plan(intake, Sex.MALE)
    payload = plan.payload()
    payload["members"].append(spouse)
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(intake_engine) == _one_access_record(before)
    _married_elsewhere(response.json(), "/body/members/1/relationship", b)

    wife = await moves_in(intake, a, her, "2026-01-05")
    problem = await _refused_and_recorded(
        intake,
        intake_engine,
        a,
        {
            "kind": "marriage",
            "person_id": a.person_ids[0],
            "spouse_person_id": wife,
            "married_on": "2026-12-01",
        },
    )
    assert {e["pointer"] for e in problem["errors"]} == {
        "/body/married_on",
        "/body/spouse_person_id",
    }
    _married_elsewhere(problem, "/body/spouse_person_id", b)
    problem = await _refused_and_recorded(
        intake,
        intake_engine,
        a,
        {
            "kind": "member_change",
            "person_id": wife,
            "effective_on": "2026-02-01",
            "relationship": "spouse",
            "note": "household register seen",
        },
    )
    _married_elsewhere(problem, "/body/relationship", b)

    await intake.change(a, {"kind": "divorce", "person_id": wife, "divorced_on": "2026-01-20"})
    married = await intake.change(
        a,
        {
            "kind": "marriage",
            "person_id": a.person_ids[0],
            "spouse_person_id": wife,
            "married_on": "2026-02-01",
        },
    )
    assert married["household"]["changes"][-1]["details"]["relationships"] == {wife: "spouse"}


async def test_a_partner_who_died_or_is_the_one_married_frees_the_one_who_moved_out(
    intake: IntakeClient,
) -> None:
    """B's head, whom she married and left, died since: she moves into A as its head's
    spouse. And he who moved out of B too, heading A, is the one she is married to: she
    moves in as his spouse. Neither is a second marriage."""
    b, _, her = await _married_then_moved_out(intake)
    await intake.change(
        b, {"kind": "death", "person_id": b.person_ids[0], "date_of_death": "2026-01-02"}
    )
    a = await _single_of(intake, Sex.MALE)
    await moves_in(intake, a, her | {"relationship": "spouse"}, "2026-02-01")

    b, _, her = await _married_then_moved_out(intake)
    husband = b.plan.payload()["members"][0]
    await intake.change(
        b, {"kind": "move_out", "person_id": b.person_ids[0], "moved_on": "2026-01-02"}
    )
    plan = intake.plan(shape="unemployed_single")
    payload = plan.payload()
    payload["members"] = [husband]
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 201, response.text
    a = RegisteredHousehold(response.json()["id"], plan, [], response.json())
    await moves_in(intake, a, her | {"relationship": "spouse"}, "2026-02-01")


async def test_the_one_left_behind_marries_again_only_once_divorced_or_widowed(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """B's head married the lodger, who moved out (no divorce, no death recorded). B read
    the move out as the end of his marriage: a bride joining by marriage, a spouse moving
    in, a marriage to a spouse living elsewhere were recorded (201), and a divorce naming
    him alone refused (422, no marriage to end). A move out ends the couple's life in the
    household, not the marriage (ADR 0016, 3 Dec 2026, helper hAG): each marriage is
    refused, 422 at the field with the change's other errors at once, nothing written;
    the divorce naming him alone is recorded, and then he marries. A spouse_death for the
    spouse who moved out frees him alike."""
    b, _, _ = await _married_then_moved_out(intake)
    head = b.person_ids[0]
    bride = _person(intake, date(1994, 4, 4), Sex.FEMALE, "spouse")
    problem = await refused_change(
        intake,
        intake_engine,
        b,
        {"kind": "marriage", "person_id": head, "married_on": "2027-01-01", "spouse": bride},
    )
    assert {e["pointer"] for e in problem["errors"]} == {"/body/married_on", "/body/person_id"}
    [error] = [e for e in problem["errors"] if e["pointer"] == "/body/person_id"]
    assert "moved out of the household on 2025-12-01" in error["detail"]
    assert "杨" not in error["detail"]
    problem = await refused_change(
        intake,
        intake_engine,
        b,
        {"kind": "marriage", "person_id": head, "married_on": "2026-02-01"},
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/person_id"]
    problem = await refused_change(
        intake,
        intake_engine,
        b,
        {"kind": "move_in", "moved_on": "2026-02-01", "member": bride},
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/member/relationship"]

    divorced = await intake.change(
        b, {"kind": "divorce", "person_id": head, "divorced_on": "2026-01-20"}
    )
    assert divorced["household"]["changes"][-1]["kind"] == "divorce"
    married = await intake.change(
        b, {"kind": "marriage", "person_id": head, "married_on": "2026-02-01", "spouse": bride}
    )
    assert married["household"]["changes"][-1]["details"]["joined_person_ids"]

    b, _, _ = await _married_then_moved_out(intake)
    head = b.person_ids[0]
    await intake.change(
        b, {"kind": "spouse_death", "person_id": head, "date_of_death": "2026-01-20"}
    )
    await moves_in(intake, b, _person(intake, date(1993, 3, 3), Sex.FEMALE, "spouse"), "2026-02-01")


async def test_a_marriage_taken_along_bars_the_new_heads_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """She married B's head and moved out of B (no divorce, no death), then into A as a
    lodger. A's head dies and his son heads A: she given as the son's spouse was recorded
    (201), the registry holding her married to two men. Now refused as every other path
    is (ADR 0016, 3 Dec 2026, helper hAG): 422 at her ``/relationships/<person id>``, B
    named by its masked reference alone, nothing written but the access record; once her
    divorce naming her alone is recorded in A, she is the new head's spouse."""
    b, _, her = await _married_then_moved_out(intake)
    plan = intake.plan(shape="unemployed_single")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.CHILD, Sex.MALE, (23, 26), EmploymentStatus.UNEMPLOYED
        )
    )
    a = await intake.register(plan)
    head, son = a.person_ids
    lodger = await moves_in(intake, a, her, "2026-01-05")
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-03-01",
        "new_head_person_id": son,
        "relationships": {lodger: "spouse"},
    }
    problem = await _refused_and_recorded(intake, intake_engine, a, death)
    assert [e["pointer"] for e in problem["errors"]] == [f"/body/relationships/{lodger}"]
    _married_elsewhere(problem, f"/body/relationships/{lodger}", b)
    await intake.change(a, {"kind": "divorce", "person_id": lodger, "divorced_on": "2026-02-01"})
    died = await intake.change(a, death)
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {son: "head", lodger: "spouse"}


def _held_alive(problem: dict[str, Any], other: RegisteredHousehold) -> None:
    """The refusal at /person_id says the registry holds the spouse alive in ``other``,
    named by its masked reference alone."""
    [error] = [e for e in problem["errors"] if e["pointer"] == "/body/person_id"]
    assert "the registry holds the spouse alive" in error["detail"]
    assert f"-****-{uuid.UUID(other.id).hex[-4:]}" in error["detail"]
    assert other.id not in error["detail"]
    assert "杨" not in error["detail"]


async def test_a_spouse_the_registry_holds_alive_is_not_recorded_dead(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """She married B's head and moved out of B into A (as other), no divorce, no death.
    A spouse_death was accepted (201), in B saying she died or in A saying he did, while
    each is an active member of a household here, no death recorded anywhere: a living person's
    death recorded, a marriage ended falsely. Now 422 at /person_id with the change's
    other errors at once, the other household named by its masked reference alone,
    nothing written but the access record (ADR 0016, 3 Dec 2026, helper hAH). Once he has
    left the registry (moved out of B, a household nowhere), he may have died anywhere:
    her spouse_death is recorded in A."""
    b, _, her = await _married_then_moved_out(intake)
    a = await _single_of(intake, Sex.MALE)
    wife = await moves_in(intake, a, her, "2026-01-05")
    head = b.person_ids[0]
    problem = await _refused_and_recorded(
        intake,
        intake_engine,
        b,
        {"kind": "spouse_death", "person_id": head, "date_of_death": "2027-01-20"},
    )
    assert {e["pointer"] for e in problem["errors"]} == {"/body/person_id", "/body/date_of_death"}
    _held_alive(problem, a)
    problem = await _refused_and_recorded(
        intake,
        intake_engine,
        a,
        {"kind": "spouse_death", "person_id": wife, "date_of_death": "2026-01-20"},
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/person_id"]
    _held_alive(problem, b)

    await intake.change(b, {"kind": "move_out", "person_id": head, "moved_on": "2026-02-01"})
    widowed = await intake.change(
        a, {"kind": "spouse_death", "person_id": wife, "date_of_death": "2026-02-10"}
    )
    assert widowed["household"]["changes"][-1]["kind"] == "spouse_death"
