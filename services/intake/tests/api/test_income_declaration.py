"""A declaration as a bureau's form (家庭经济状况申报) has it (ADR 0007, 3 Dec 2026): beside
each member's five net amounts, the receipts not counted as income and the deductions,
stored, answered by the 201 and the read, published once per member in
ApplicationSubmitted; refused (422 problem+json, nothing written) where they contradict
the member's record; and an employed member declaring no wage shows a proof of it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import EmploymentStatus
from dibao_intake.synthetic import required_documents
from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts, wait_for_events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()


async def _refused(
    intake: IntakeClient, engine: AsyncEngine, body: dict[str, Any]
) -> list[tuple[str, str]]:
    """``body`` is refused, 422 problem+json, writing nothing: its errors."""
    before = await row_counts(engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before
    return [(e["pointer"], e["detail"]) for e in response.json()["errors"]]


def _declaring(body: dict[str, Any], person_id: str, **declared: Any) -> dict[str, Any]:
    """``body`` with ``declared`` added to the member's declaration."""
    return body | {
        "incomes": [i | declared if i["person_id"] == person_id else i for i in body["incomes"]]
    }


async def _three_generations(intake: IntakeClient) -> tuple[RegisteredHousehold, dict[str, Any]]:
    """A self-employed head, his wife in flexible work, his seriously ill mother of 70 or
    more, a schoolchild: the body of their complete application, declaring nothing beside
    the amounts."""
    plan = intake.plan(shape="three_generations")
    while len(plan.members) > 4:  # a mother under 40 has a baby too: not this household
        plan = intake.plan(shape="three_generations")
    for m in plan.members:
        m.not_counted.clear()
        m.deductions.clear()
        m.in_kind.clear()  # a farming head's own produce eaten: test_income_in_kind's
    household = await intake.register(plan)
    return household, await intake.complete_application_body(household)


async def test_receipts_not_counted_and_deductions_are_stored_answered_and_published(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """Before: 422, extra fields forbidden; the note was copied into five DeclaredIncome
    entries and nothing told assessment a basic pension from a retirement pension."""
    household, body = await _three_generations(intake)
    head, wife, mother, _kid = household.person_ids
    body = _declaring(
        body,
        head,
        note="在镇上开小卖部",
        deductions=[
            {"kind": "employment_costs", "monthly_fen": 5_000},
            {"kind": "taxes_and_social_insurance", "monthly_fen": 6_000},
        ],
    )
    body = _declaring(
        body,
        mother,
        note="儿子每月给生活费",
        not_counted=[
            {"kind": "social_assistance", "monthly_fen": 3_000},
            {"kind": "residents_basic_pension", "monthly_fen": 17_500},
        ],
        deductions=[{"kind": "serious_illness_costs", "monthly_fen": 62_000}],
    )
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    answered = response.json()
    assert answered["status"] == "submitted", answered["missing_items"]
    by_person = {i["person_id"]: i for i in answered["incomes"]}
    # In the vocabularies' order, whatever order the clerk gave.
    assert by_person[head]["deductions"] == [
        {"kind": "taxes_and_social_insurance", "monthly_fen": 6_000},
        {"kind": "employment_costs", "monthly_fen": 5_000},
    ]
    assert by_person[head]["not_counted"] == []
    assert by_person[mother]["not_counted"] == [
        {"kind": "social_assistance", "monthly_fen": 3_000},
        {"kind": "residents_basic_pension", "monthly_fen": 17_500},
    ]
    assert by_person[mother]["deductions"] == [
        {"kind": "serious_illness_costs", "monthly_fen": 62_000}
    ]
    assert by_person[wife]["not_counted"] == by_person[wife]["deductions"] == []
    read = await intake.http.get(f"/applications/{answered['id']}", headers=intake.headers())
    assert read.status_code == 200, read.text
    assert read.json()["incomes"] == answered["incomes"]
    async with intake_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT 'not_counted', person_id::text, kind, monthly_fen"
                    " FROM application_income_not_counted WHERE application_id = :id"
                    " UNION ALL SELECT 'deduction', person_id::text, kind, monthly_fen"
                    " FROM application_income_deduction WHERE application_id = :id"
                ),
                {"id": answered["id"]},
            )
        ).all()
    assert sorted(map(tuple, stored)) == sorted(
        [
            ("deduction", head, "employment_costs", 5_000),
            ("deduction", head, "taxes_and_social_insurance", 6_000),
            ("deduction", mother, "serious_illness_costs", 62_000),
            ("not_counted", mother, "residents_basic_pension", 17_500),
            ("not_counted", mother, "social_assistance", 3_000),
        ]
    )

    found = await wait_for_events(intake_stack, "dibao.intake.v1", 3, key=household.id)
    [submitted] = [
        m for m in (REGISTRY.decode(e) for e in found) if isinstance(m, ev.ApplicationSubmitted)
    ]
    members = {m.person.person_id: m for m in submitted.household.members}
    sent = members[mother].income_declaration
    assert (sent.period_months, sent.note) == (6, "儿子每月给生活费")
    assert [(r.kind, r.monthly_amount.fen) for r in sent.not_counted] == [
        (enums.NOT_COUNTED_KIND_SOCIAL_ASSISTANCE, 3_000),
        (enums.NOT_COUNTED_KIND_RESIDENTS_BASIC_PENSION, 17_500),
    ]
    assert [(d.kind, d.monthly_amount.fen) for d in sent.deductions] == [
        (enums.DEDUCTION_KIND_SERIOUS_ILLNESS_COSTS, 62_000)
    ]
    assert members[head].income_declaration.note == "在镇上开小卖部"
    assert {
        (d.kind, d.monthly_amount.fen) for d in members[head].income_declaration.deductions
    } == {
        (enums.DEDUCTION_KIND_EMPLOYMENT_COSTS, 5_000),
        (enums.DEDUCTION_KIND_TAXES_AND_SOCIAL_INSURANCE, 6_000),
    }
    # The wife declared amounts only: a declaration with no note and nothing beside.
    assert members[wife].HasField("income_declaration")
    assert not members[wife].income_declaration.not_counted
    # The note once per member, no longer in each of the five entries.
    assert {i.description for i in submitted.incomes} == {""}
    assert len(submitted.incomes) == 5 * len(body["incomes"])


async def test_todays_body_declares_nothing_beside_the_amounts(intake: IntakeClient) -> None:
    """A client sending the body it always sent is answered as before, with empty lists."""
    _, body = await _three_generations(intake)
    assert all("not_counted" not in i and "deductions" not in i for i in body["incomes"])
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "submitted"
    assert {(len(i["not_counted"]), len(i["deductions"])) for i in response.json()["incomes"]} == {
        (0, 0)
    }


async def test_items_the_schema_refuses_write_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household, body = await _three_generations(intake)
    mother = household.person_ids[2]
    for item, pointer in (
        ({"kind": "lottery_win", "monthly_fen": 100}, "kind"),
        ({"kind": "social_assistance", "monthly_fen": -100}, "monthly_fen"),
        ({"kind": "social_assistance", "monthly_fen": 0}, "monthly_fen"),
        ({"kind": "social_assistance", "monthly_fen": 10_000_001}, "monthly_fen"),
        ({"kind": "social_assistance", "monthly_fen": "300"}, "monthly_fen"),
        ({"kind": "social_assistance"}, "monthly_fen"),
    ):
        errors = await _refused(intake, intake_engine, _declaring(body, mother, not_counted=[item]))
        index = body["incomes"].index(next(i for i in body["incomes"] if i["person_id"] == mother))
        assert [p for p, _ in errors] == [f"/body/incomes/{index}/not_counted/0/{pointer}"], item
    errors = await _refused(
        intake,
        intake_engine,
        _declaring(body, mother, deductions=[{"kind": "funeral_costs", "monthly_fen": 100}]),
    )
    [(pointer, _)] = errors
    assert pointer.endswith("/deductions/0/kind")


async def test_items_the_record_contradicts_are_refused_all_at_once_writing_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head has no disability grade and the wife is not recorded ill; the head's costs
    of working exceed his operating income; the mother is paid one basic pension, not two;
    nobody in the household is under 3, so no childcare subsidy; the schoolchild does not
    work."""
    household, body = await _three_generations(intake)
    head, wife, mother, kid = household.person_ids
    operating = household.plan.members[0].operating_fen
    index = {i["person_id"]: n for n, i in enumerate(body["incomes"])}
    body = _declaring(
        body,
        head,
        deductions=[
            {"kind": "disability_costs", "monthly_fen": 10_000},
            {"kind": "employment_costs", "monthly_fen": operating + 100},
        ],
    )
    body = _declaring(
        body,
        wife,
        not_counted=[{"kind": "childcare_subsidy", "monthly_fen": 30_000}],
        deductions=[{"kind": "serious_illness_costs", "monthly_fen": 10_000}],
    )
    body = _declaring(
        body,
        mother,
        not_counted=[
            {"kind": "residents_basic_pension", "monthly_fen": 17_000},
            {"kind": "residents_basic_pension", "monthly_fen": 1_000},
        ],
    )
    body = _declaring(body, kid, deductions=[{"kind": "employment_costs", "monthly_fen": 100}])
    errors = await _refused(intake, intake_engine, body)
    assert sorted(errors) == sorted(
        [
            (
                f"/body/incomes/{index[head]}/deductions/0/kind",
                "costs of a disability: the member has no disability grade",
            ),
            (
                f"/body/incomes/{index[head]}/deductions/1/monthly_fen",
                "costs of working exceed the member's wage and operating income",
            ),
            (
                f"/body/incomes/{index[wife]}/deductions/0/kind",
                "costs of a serious illness: the member is not recorded as ill",
            ),
            (
                f"/body/incomes/{index[wife]}/not_counted/0/kind",
                "a childcare subsidy, but no member of the household was under 3 in the"
                " declared period",
            ),
            (
                f"/body/incomes/{index[mother]}/not_counted/1/kind",
                "declared twice: one amount of each kind",
            ),
            (
                f"/body/incomes/{index[kid]}/deductions/0/kind",
                "costs of working: the member does not work (not_of_working_age)",
            ),
        ]
    )


async def test_an_employed_member_declaring_no_wage_is_asked_for_a_proof_of_no_pay(
    intake: IntakeClient,
) -> None:
    """Before: accepted without one (a wage's proof was asked only for a wage above zero)."""
    plan = intake.plan(shape="unemployed_single")
    head = plan.members[0]
    head.employment_status = EmploymentStatus.EMPLOYED
    head.wage_fen = 0
    household = await intake.register(plan)
    body = await intake.complete_application_body(household)
    needed = required_documents(plan, intake.synthesizer.today)
    proof = body["document_ids"][needed.index(("income_proof", 0))]
    returned = await intake.submit(
        body | {"document_ids": [d for d in body["document_ids"] if d != proof]}
    )
    assert returned.status_code == 201, returned.text
    assert returned.json()["status"] == "returned"
    assert returned.json()["missing_items"] == [
        {
            "description": "proof that the member's employer pays no wage (an employer's"
            " statement or an unpaid-leave certificate)",
            "code": "no_pay_proof",
            "document_type": "income_proof",
            "person_id": household.person_ids[0],
            "field": None,
        }
    ]
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "submitted", accepted.json()["missing_items"]
