"""Income received in kind (实物收入; ADR 0007, 3 Dec 2026), against the real database and
broker: the part of each category a member received in kind is stored on the member's
declaration, answered by the 201 and the read, published in ApplicationSubmitted as a
category's second DeclaredIncome entry (``in_kind`` true, the cash entry the rest), and
refused (422 problem+json, every problem at once, nothing written) when it is negative, not
a number, above its category or of a category declared zero."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts, wait_for_events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()
NO_PART = {"wage_fen": 0, "operating_fen": 0, "property_fen": 0, "transfer_fen": 0, "other_fen": 0}


async def _farming_family(
    intake: IntakeClient, head_eats: int | None
) -> tuple[RegisteredHousehold, dict[str, Any]]:
    """A rural three-generation household, its head farming (self-employed, operating
    income), his wife in flexible work (a wage): the body of its complete application, the
    head declaring ``head_eats`` fen of his operating income in kind (or nothing in kind)."""
    plan = intake.plan(shape="three_generations")
    for m in plan.members:
        m.in_kind.clear()
    if head_eats is not None:
        plan.members[0].in_kind["operating_fen"] = head_eats
    household = await intake.register(plan)
    return household, await intake.complete_application_body(household)


def _declaring(body: dict[str, Any], person_id: str, **declared: Any) -> dict[str, Any]:
    return body | {
        "incomes": [i | declared if i["person_id"] == person_id else i for i in body["incomes"]]
    }


async def _refused(
    intake: IntakeClient, engine: AsyncEngine, body: dict[str, Any]
) -> list[tuple[str, str]]:
    before = await row_counts(engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before
    return [(e["pointer"], e["detail"]) for e in response.json()["errors"]]


async def test_a_part_in_kind_is_stored_answered_and_published_as_its_own_entry(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """Before: 422, in_kind an extra field; nothing could say which part was cash, and
    every DeclaredIncome went out with in_kind false."""
    household, body = await _farming_family(intake, head_eats=None)
    head, wife, _mother, _kid = household.person_ids
    operating = household.plan.members[0].operating_fen
    wage = household.plan.members[1].wage_fen
    eaten = operating // 2 // 100 * 100
    body = _declaring(body, head, in_kind={"operating_fen": eaten})
    body = _declaring(body, wife, in_kind={"wage_fen": wage})  # all of it paid in flour and oil
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    answered = response.json()
    assert answered["status"] == "submitted", answered["missing_items"]
    by_person = {i["person_id"]: i for i in answered["incomes"]}
    assert by_person[head]["in_kind"] == NO_PART | {"operating_fen": eaten}
    assert by_person[head]["operating_fen"] == operating  # the amount is cash and kind
    assert by_person[wife]["in_kind"] == NO_PART | {"wage_fen": wage}
    assert {by_person[p]["in_kind"] == NO_PART for p in household.person_ids[2:]} == {True}
    read = await intake.http.get(f"/applications/{answered['id']}", headers=intake.headers())
    assert read.status_code == 200, read.text
    assert read.json()["incomes"] == answered["incomes"]
    async with intake_engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT person_id::text, wage_in_kind_fen, operating_in_kind_fen,"
                    " property_in_kind_fen, transfer_in_kind_fen, other_in_kind_fen"
                    " FROM application_income WHERE application_id = :id"
                ),
                {"id": answered["id"]},
            )
        ).all()
    assert {tuple(r) for r in stored} == {
        (head, 0, eaten, 0, 0, 0),
        (wife, wage, 0, 0, 0, 0),
        *((p, 0, 0, 0, 0, 0) for p in household.person_ids[2:]),
    }

    found = await wait_for_events(intake_stack, "dibao.intake.v1", 3, key=household.id)
    [submitted] = [
        m for m in (REGISTRY.decode(e) for e in found) if isinstance(m, ev.ApplicationSubmitted)
    ]
    sent = [
        (i.person_id, i.category, i.monthly_amount.fen, i.in_kind)
        for i in submitted.incomes
        if i.person_id in (head, wife)
        and i.category in (enums.INCOME_CATEGORY_WAGE, enums.INCOME_CATEGORY_OPERATING)
    ]
    assert sorted(sent) == sorted(
        [
            (head, enums.INCOME_CATEGORY_WAGE, 0, False),
            (head, enums.INCOME_CATEGORY_OPERATING, operating - eaten, False),
            (head, enums.INCOME_CATEGORY_OPERATING, eaten, True),
            (wife, enums.INCOME_CATEGORY_WAGE, 0, False),
            (wife, enums.INCOME_CATEGORY_WAGE, wage, True),
            (wife, enums.INCOME_CATEGORY_OPERATING, 0, False),
        ]
    )
    assert [i.in_kind for i in submitted.incomes].count(True) == 2
    assert len(submitted.incomes) == 5 * len(body["incomes"]) + 2


async def test_todays_body_is_all_cash(intake: IntakeClient, intake_stack: TestStack) -> None:
    """A client sending the body it always sent is answered with no part in kind, and its
    event is the five entries a member it always was."""
    household, body = await _farming_family(intake, head_eats=None)
    assert all("in_kind" not in i for i in body["incomes"])
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    assert [i["in_kind"] for i in response.json()["incomes"]] == [NO_PART] * len(body["incomes"])
    found = await wait_for_events(intake_stack, "dibao.intake.v1", 3, key=household.id)
    [submitted] = [
        m for m in (REGISTRY.decode(e) for e in found) if isinstance(m, ev.ApplicationSubmitted)
    ]
    assert len(submitted.incomes) == 5 * len(body["incomes"])
    assert not any(i.in_kind for i in submitted.incomes)


async def test_parts_the_schema_refuses_write_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household, body = await _farming_family(intake, head_eats=None)
    head = household.person_ids[0]
    index = [i["person_id"] for i in body["incomes"]].index(head)
    for in_kind, field in (
        ({"operating_fen": -100}, "operating_fen"),
        ({"operating_fen": "300"}, "operating_fen"),
        ({"operating_fen": 1.5}, "operating_fen"),
        ({"grain_fen": 100}, "grain_fen"),
    ):
        errors = await _refused(intake, intake_engine, _declaring(body, head, in_kind=in_kind))
        assert [p for p, _ in errors] == [f"/body/incomes/{index}/in_kind/{field}"], in_kind


async def test_parts_above_their_category_are_refused_all_at_once_writing_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Before: a body with in_kind was refused as an extra field, so this could not be
    said at all; now the head eats more than he grows and is paid rent in grain he does
    not declare, and the schoolchild's 'other' income in kind is of none declared."""
    household, body = await _farming_family(intake, head_eats=None)
    head, _wife, _mother, kid = household.person_ids
    operating = household.plan.members[0].operating_fen
    index = {i["person_id"]: n for n, i in enumerate(body["incomes"])}
    body = _declaring(body, head, in_kind={"operating_fen": operating + 100, "property_fen": 5_000})
    body = _declaring(body, kid, in_kind={"other_fen": 1_000})
    errors = await _refused(intake, intake_engine, body)
    assert sorted(errors) == sorted(
        [
            (
                f"/body/incomes/{index[head]}/in_kind/operating_fen",
                "the part received in kind exceeds the operating income declared"
                f" ({operating} fen a month)",
            ),
            (
                f"/body/incomes/{index[head]}/in_kind/property_fen",
                "received in kind, but no property income is declared (property_fen is 0)",
            ),
            (
                f"/body/incomes/{index[kid]}/in_kind/other_fen",
                "received in kind, but no other income is declared (other_fen is 0)",
            ),
        ]
    )
    # The whole amount in kind is accepted: the limit is the amount itself.
    accepted = await intake.submit(_declaring(body, head, in_kind={"operating_fen": operating}))
    assert accepted.status_code == 422  # the kid's part still refused
    fine = _declaring(_declaring(body, kid, in_kind={}), head, in_kind={"operating_fen": operating})
    response = await intake.submit(fine)
    assert response.status_code == 201, response.text
