"""An application is not paid into the account of a member who died or moved out."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _application_without_account(
    intake: IntakeClient, household: RegisteredHousehold, leaver: str, applicant: str
) -> dict[str, Any]:
    """A complete application of ``household`` after ``leaver`` left: declaring the
    remaining members' incomes, naming no account (the household's recorded one is paid)."""
    body = await intake.complete_application_body(household)
    body["applicant_person_id"] = applicant
    body["incomes"] = [i for i in body["incomes"] if i["person_id"] != leaver]
    assert "bank_account" not in body
    return body


async def _refused(intake: IntakeClient, engine: AsyncEngine, body: dict[str, Any]) -> str:
    before = await row_counts(engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/bank_account"
    assert await row_counts(engine) == before
    return str(error["detail"])


async def test_the_account_of_a_holder_who_died_is_not_paid_until_another_is_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head held the household's card and died; his widow applies. The application
    naming no account was accepted with his (201, ``bank_account`` his card): a new
    allowance paid into a dead man's account, which the bank freezes once it learns of
    the death. Naming that card in the application was already refused (its holder is no
    active member); naming none is now refused alike (422 at /bank_account, nothing
    written), until a bank_account_change records who holds the card now."""
    household = await intake.register(intake.plan(shape="elderly_couple"))
    head, wife = household.person_ids
    assert household.body["bank_account"]["holder_person_id"] == head
    await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-02-20",
            "new_head_person_id": wife,
        },
    )
    body = await _application_without_account(intake, household, head, wife)
    detail = await _refused(intake, intake_engine, body)
    assert "died" in detail
    assert "bank_account_change" in detail
    changed = await intake.change(
        household,
        {
            "kind": "bank_account_change",
            "account": {
                "account_number": "6217001234567890123",
                "bank_code": "403",
                "bank_name": "中国邮政储蓄银行",
                "holder_person_id": wife,
            },
        },
    )
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    accepted = response.json()
    assert accepted["status"] == "submitted", accepted["missing_items"]
    assert accepted["bank_account"]["token_id"] == changed["household"]["bank_account"]["token_id"]
    assert accepted["bank_account"]["holder_person_id"] == wife


async def test_the_account_of_a_holder_who_moved_out_is_held_as_a_non_member_first(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head held the card and moved out (working in the city); the application of the
    household he left, naming no account, was accepted with it, the record still saying a
    member holds it. Refused now (422, nothing written) until the card is recorded again:
    here the same card, held by him as someone outside the household (holder_name)."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, _kid = household.person_ids
    await intake.change(
        household,
        {
            "kind": "move_out",
            "person_id": head,
            "moved_on": "2026-02-20",
            "new_head_person_id": wife,
        },
    )
    body = await _application_without_account(intake, household, head, wife)
    assert "moved out" in await _refused(intake, intake_engine, body)
    plan = household.plan
    await intake.change(
        household,
        {
            "kind": "bank_account_change",
            "account": {
                "account_number": plan.account_number,
                "bank_code": plan.bank_code,
                "bank_name": plan.bank_name,
                "holder_name": plan.members[0].name,
            },
        },
    )
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "submitted", response.json()["missing_items"]
    assert response.json()["bank_account"]["holder_person_id"] is None
