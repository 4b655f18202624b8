"""A submission held to the allowance's rules, as a township clerk would try it: who may
apply and be applied for, what a declaration must say, which field carries what."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.domain.codes import DisabilityGrade, ExclusionReason
from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _refused(
    intake: IntakeClient, engine: AsyncEngine, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """``body`` is refused, 422 problem+json, writing nothing: its errors."""
    before = await row_counts(engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


async def _imprisoned_husband(intake: IntakeClient) -> tuple[RegisteredHousehold, str]:
    """A wife, her imprisoned husband (not counted, reason imprisoned) and their child."""
    household = await intake.register(intake.plan(shape="member_imprisoned"))
    husband = household.plan.members[1]
    assert husband.exclusion_reason is ExclusionReason.IMPRISONED
    return household, household.person_ids[1]


async def test_a_member_in_prison_does_not_apply_for_the_household(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An application is made by a co-resident member (domain.md, Procedure): a member not
    counted because they are in prison is not living there and signs nothing at the
    township. The wife applies; her husband cannot (before: accepted, 201)."""
    household, husband = await _imprisoned_husband(intake)
    body = await intake.complete_application_body(household)
    errors = await _refused(intake, intake_engine, body | {"applicant_person_id": husband})
    assert [(e["pointer"], e["detail"]) for e in errors] == [
        (
            "/body/applicant_person_id",
            "not a co-resident member: not counted, imprisoned",
        )
    ]
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "submitted", accepted.json()["missing_items"]


async def test_a_member_not_counted_is_not_applied_for_alone(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Individual inclusion (单人保) covers a severely disabled or seriously ill member of
    the household alone; a member the household does not count (here in prison, with a
    grade 1 disability) is no member the allowance covers (before: accepted, 201)."""
    plan = intake.plan(shape="member_imprisoned")
    plan.members[1].disability_grade = DisabilityGrade.GRADE_1
    household = await intake.register(plan)
    husband = household.person_ids[1]
    body = await intake.complete_application_body(household)
    errors = await _refused(
        intake, intake_engine, body | {"individual_inclusion_person_id": husband}
    )
    assert [(e["pointer"], e["detail"]) for e in errors] == [
        (
            "/body/individual_inclusion_person_id",
            "individual inclusion is for a counted member: not counted, imprisoned",
        )
    ]


async def test_a_dibao_application_gives_no_reason_of_a_one_off_request(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """``reason`` is a one-off request's; a dibao application's account of hardship is its
    statement, which ApplicationSubmitted carries. A reason given with a dibao application
    was stored and shown by intake but published to nobody: assessment never read it
    (before: accepted, 201)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    errors = await _refused(intake, intake_engine, body | {"reason": "丈夫因病失去劳动能力"})
    assert [(e["pointer"], e["detail"]) for e in errors] == [
        (
            "/body/reason",
            "only for one-off kinds: a dibao application's account of hardship is its statement",
        )
    ]
    accepted = await intake.submit(body | {"statement": "丈夫因病失去劳动能力"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["statement"] == "丈夫因病失去劳动能力"


async def test_a_home_declared_without_its_floor_area_is_returned_for_it(
    intake: IntakeClient,
) -> None:
    """A second home beyond the area limit disqualifies (domain.md, assets): a home
    declared without its floor area cannot be judged, so the application is returned
    listing it, with whatever else is missing (before: accepted, 201 submitted)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body["assets"] = [
        {"kind": "deposit", "value_fen": 120000},
        {"kind": "housing", "value_fen": 18000000, "floor_area_m2": 64},
        {"kind": "housing", "value_fen": 9000000, "description": "县城商品房"},
    ]
    returned = await intake.submit(body)
    assert returned.status_code == 201, returned.text
    assert returned.json()["status"] == "returned"
    assert returned.json()["missing_items"] == [
        {
            "description": "the floor area of the declared housing",
            "document_type": None,
            "person_id": None,
            "field": "assets[2].floor_area_m2",
        }
    ]
    body["assets"][2]["floor_area_m2"] = 89
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "submitted", accepted.json()["missing_items"]
