"""A member's employment status fits their age, through the API (ADR 0021): refused with
422 at the member's employment_status, nothing written, at a registration, a move in, a
birth and a member change."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.testing import IntakeClient, refused_change, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TODAY = date(2026, 3, 2)
"""The intake tests' frozen day."""


def _pointers(problem: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in problem.get("errors", [])]


async def test_a_registration_with_a_status_the_age_rules_out_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The reviewer's cases (3 Dec 2026): a head of 36 not of working age, a spouse of 22
    retired. Both were registered (201); now 422 at each one's employment_status."""
    plan = intake.plan(shape="elderly_couple")
    head = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (36, 36), EmploymentStatus.NOT_OF_WORKING_AGE
    )
    spouse = intake.synthesizer.member(
        Relationship.SPOUSE, Sex.FEMALE, (22, 22), EmploymentStatus.RETIRED
    )
    plan.members = [head, spouse]
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert _pointers(problem) == [
        "/body/members/0/employment_status",
        "/body/members/1/employment_status",
    ]
    details = " ".join(e["detail"] for e in problem["errors"])
    for m in (head, spouse):
        assert m.id_number not in response.text
        assert m.name not in response.text
    assert "of working age on 2026-03-02" in details
    assert "a woman under 45 on 2026-03-02 cannot have retired" in details
    assert await row_counts(intake_engine) == before
    head.employment_status = EmploymentStatus.UNEMPLOYED
    spouse.employment_status = EmploymentStatus.FLEXIBLE
    await intake.register(plan)


async def test_a_member_joining_with_a_status_the_age_rules_out_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A newborn retired or unemployed, a lodger of 30 retired moving in: 422 at the
    member's employment_status."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    born = date(2026, 1, 15)
    for status in ("retired", "unemployed"):
        newborn = {
            "name": "马小宝",
            "id_number": intake.synthesizer.id_number(born, Sex.FEMALE),
            "relationship": "grandchild",
            "employment_status": status,
        }
        problem = await refused_change(
            intake, intake_engine, household, {"kind": "birth", "member": newborn}
        )
        assert _pointers(problem) == ["/body/member/employment_status"], problem
    lodger = intake.synthesizer.member(
        Relationship.OTHER, Sex.MALE, (30, 30), EmploymentStatus.RETIRED
    )
    move_in: dict[str, Any] = {
        "kind": "move_in",
        "moved_on": "2026-01-05",
        "member": lodger.payload(),
    }
    problem = await refused_change(intake, intake_engine, household, move_in)
    assert _pointers(problem) == ["/body/member/employment_status"], problem
    assert "a man under 50 on 2026-03-02 cannot have retired" in problem["errors"][0]["detail"]
    # Disabled, the same lodger may have retired (a work injury has no lower age).
    move_in["member"] |= {"disability_grade": "2"}
    joined = await intake.change(household, move_in)
    assert joined["kind"] == "move_in"


async def test_a_member_change_to_a_status_the_age_rules_out_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A man of 40 to 45, unemployed, recorded not of working age or retired: 422 at
    /employment_status; a child of the household leaving school at 16 or more is given
    the status that holds then."""
    plan = intake.plan(shape="unemployed_single")
    plan.members = [
        intake.synthesizer.member(
            Relationship.HEAD, Sex.MALE, (40, 45), EmploymentStatus.UNEMPLOYED
        )
    ]
    household = await intake.register(plan)
    head = household.person_ids[0]
    for status in ("not_of_working_age", "retired"):
        change = {
            "kind": "member_change",
            "person_id": head,
            "effective_on": "2026-02-02",
            "employment_status": status,
        }
        problem = await refused_change(intake, intake_engine, household, change)
        assert _pointers(problem) == ["/body/employment_status"], problem
    found_work = {
        "kind": "member_change",
        "person_id": head,
        "effective_on": "2026-02-02",
        "employment_status": "flexible",
    }
    assert (await intake.change(household, found_work))["kind"] == "member_change"

    family = await intake.register(intake.plan(shape="disabled_spouse"))
    student = family.person_ids[2]  # 18 to 21, a full-time student, not of working age
    leaves = {
        "kind": "member_change",
        "person_id": student,
        "effective_on": "2026-02-02",
        "student": False,
    }
    problem = await refused_change(intake, intake_engine, family, leaves)
    assert _pointers(problem) == ["/body/employment_status"], problem
    assert (await intake.change(family, leaves | {"employment_status": "unemployed"}))[
        "kind"
    ] == "member_change"


async def test_unemployed_past_the_statutory_retirement_age_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Issue of 3 Dec 2026: an 80-year-old was registered unemployed (201). Registered
    unemployment is for people of working age: 422 at the member's employment_status, at a
    registration and at a member change, nothing written; not of working age is taken."""
    plan = intake.plan(shape="elderly_alone")
    elder = intake.synthesizer.member(
        Relationship.HEAD, Sex.MALE, (80, 80), EmploymentStatus.UNEMPLOYED
    )
    plan.members = [elder]
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert _pointers(problem) == ["/body/members/0/employment_status"]
    assert problem["errors"][0]["detail"].startswith(
        "the member is past the statutory retirement age on 2026-03-02: at most 60 for a man"
    )
    assert elder.id_number not in response.text
    assert elder.name not in response.text
    assert str(elder.birth_date.year) not in response.text
    assert await row_counts(intake_engine) == before
    elder.employment_status = EmploymentStatus.NOT_OF_WORKING_AGE
    household = await intake.register(plan)
    change = {
        "kind": "member_change",
        "person_id": household.person_ids[0],
        "effective_on": "2026-02-02",
        "employment_status": "unemployed",
    }
    problem = await refused_change(intake, intake_engine, household, change)
    assert _pointers(problem) == ["/body/employment_status"], problem
    assert "past the statutory retirement age on 2026-02-02" in problem["errors"][0]["detail"]
