"""An ID or card number in free text with an invisible character inside it is refused as
the number alone is (ADR 0005, 3 Dec 2026): shown, it is the number."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

INVISIBLE_INSIDE = [
    "\u200b",  # zero width space, as some web pages break long numbers
    "\u00ad",  # soft hyphen, as a word processor hyphenates
    "\u2060",  # word joiner
    "\ufeff",  # byte order mark pasted mid-text
    "\u200d",  # zero width joiner
    "\u200e",  # left-to-right mark, as a right-to-left page around the number puts it
]


def _hidden(number: str, mark: str) -> str:
    return mark.join([number[:6], number[6:14], number[14:]])


@pytest.mark.parametrize("mark", INVISIBLE_INSIDE)
async def test_an_id_number_with_an_invisible_character_inside_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, mark: str
) -> None:
    """A statement and a withdrawal reason holding the applicant's ID number with an
    invisible character between its fields were stored and published as typed (201):
    the number in clear in the snapshot on the broker, in the audit log, on every screen.
    Now 422 at the field, the text not echoed, nothing written."""
    household = await intake.register()
    number = household.plan.members[0].id_number
    body = await intake.complete_application_body(household)
    text = f"申请人身份证号{_hidden(number, mark)}，家庭困难"
    before = await row_counts(intake_engine)
    refused = await intake.submit(body | {"statement": text})
    _refused_at(refused.json(), refused.status_code, "/body/statement", number)
    assert await row_counts(intake_engine) == before
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    before = await row_counts(intake_engine)
    withdrawal = await intake.http.post(
        f"/applications/{accepted.json()['id']}/withdrawal",
        json={"reason": text},
        headers=intake.headers(),
    )
    _refused_at(withdrawal.json(), withdrawal.status_code, "/body/reason", number)
    assert await row_counts(intake_engine) == before


async def test_a_card_number_with_invisible_characters_between_its_groups_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A bank card number copied with zero width spaces between its groups (as a banking
    page writes them to break the line) was taken in an address (201)."""
    payload: dict[str, Any] = intake.plan().payload()
    payload["address"] = "测试地址1号，卡号6228\u200b4804\u200b0256\u200b4890\u200b018"
    before = await row_counts(intake_engine)
    response = await intake.http.post("/households", json=payload, headers=intake.headers())
    _refused_at(response.json(), response.status_code, "/body/address", "4890")
    assert await row_counts(intake_engine) == before


def _refused_at(problem: dict[str, Any], status: int, pointer: str, number: str) -> None:
    assert status == 422, problem
    assert problem["type"] == "https://dibao.gov.cn/problems/validation-failed"
    [error] = problem["errors"]
    assert error["pointer"] == pointer
    assert "must not contain a resident ID or bank card number" in error["detail"]
    assert number not in str(problem)
