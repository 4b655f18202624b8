"""An application is not paid into the account of a member who died or moved out."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, RegisteredHousehold, refused_change, row_counts

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


async def _imprisoned_husband_holds_the_card(intake: IntakeClient) -> RegisteredHousehold:
    """A household whose husband, in prison (not counted, imprisoned), was registered as
    the holder of its card: his wife and their child live at home."""
    plan = intake.plan(shape="member_imprisoned")
    payload = plan.payload()
    payload["bank_account"]["holder_member_index"] = 1
    response = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[plan.region_code])
    )
    assert response.status_code == 201, response.text
    body = response.json()
    by_masked = {m["id_number_masked"][-4:] + m["name"]: m["person_id"] for m in body["members"]}
    person_ids = [by_masked[m.id_number[-4:] + m.name] for m in plan.members]
    household = RegisteredHousehold(body["id"], plan, person_ids, body)
    assert body["bank_account"]["holder_person_id"] == person_ids[1]
    return household


async def test_the_card_of_a_member_living_apart_is_not_paid_until_another_is_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The husband in prison holds the household's card; his wife applies, naming no
    account. It was accepted (201) with his card, which nobody at home can use. Now 422 at
    /bank_account, nothing written, and naming that card is refused too (at its
    holder_person_id), until a bank_account_change records the wife's."""
    household = await _imprisoned_husband_holds_the_card(intake)
    wife, husband = household.person_ids[:2]
    body = await intake.complete_application_body(household)
    assert "bank_account" not in body
    detail = await _refused(intake, intake_engine, body)
    assert "living apart" in detail
    assert "imprisoned" in detail
    plan = household.plan
    named = body | {
        "bank_account": {
            "account_number": plan.account_number,
            "bank_code": plan.bank_code,
            "bank_name": plan.bank_name,
            "holder_person_id": husband,
        }
    }
    before = await row_counts(intake_engine)
    response = await intake.submit(named)
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == [
        "/body/bank_account/holder_person_id"
    ]
    assert await row_counts(intake_engine) == before
    await intake.change(
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
    assert response.json()["status"] == "submitted", response.json()["missing_items"]
    assert response.json()["bank_account"]["holder_person_id"] == wife


async def test_a_bank_account_change_does_not_give_the_card_to_a_member_living_apart(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A bank_account_change naming the husband in prison as the holder was recorded
    (201). Refused now (422 at /account/holder_person_id, nothing written), under a custody
    agreement too: custody says who keeps a card, not whose account it is; the account is
    still his. A custodian outside the household, by holder_name, is recorded."""
    household = await intake.register(intake.plan(shape="member_imprisoned"))
    husband = household.person_ids[1]
    account = {
        "account_number": "6217001234567890123",
        "bank_code": "403",
        "bank_name": "中国邮政储蓄银行",
        "holder_person_id": husband,
    }
    document = (await intake.upload(household.id, "custody_agreement")).json()["id"]
    for extra in (
        {},
        {
            "custody_agreement": True,
            "custody_document_id": document,
            "custodian_subject": "cw-xiaguanying-01",
            "document_ids": [document],
        },
    ):
        problem = await refused_change(
            intake,
            intake_engine,
            household,
            {"kind": "bank_account_change", "account": account} | extra,
        )
        [error] = problem["errors"]
        assert error["pointer"] == "/body/account/holder_person_id"
        assert "living apart" in error["detail"]
    custodian = {k: v for k, v in account.items() if k != "holder_person_id"}
    changed = await intake.change(
        household,
        {"kind": "bank_account_change", "account": custodian | {"holder_name": "张桂兰"}},
    )
    assert changed["household"]["bank_account"]["holder_person_id"] is None
