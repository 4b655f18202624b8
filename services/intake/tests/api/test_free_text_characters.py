"""Free text holds no control character but a tab or a line break, and no direction
embedding, override or isolate (ADR 0005, 3 Dec 2026): a right-to-left override shows a
clerk another text than the one stored ("Trojan Source"), an escape sequence or a NUL
breaks a terminal and a printout. Refused at the field, nothing written; one rule for
every free-text field of a request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import Role
from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REFUSED = [
    "\u202e",  # right-to-left override: the rest shows reversed
    "\u202a",  # left-to-right embedding
    "\u2067",  # right-to-left isolate
    "\u2069",  # pop directional isolate
    "\x1b",  # escape, as a terminal's colour sequence starts
    "\x07",  # bell
    "\x0c",  # form feed: a new page on a printer
    "\x9b",  # C1 control sequence introducer
]


def _refused_at(response: Any, pointer: str, character: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == pointer
    assert "control character" in error["detail"]
    assert "override" in error["detail"]
    assert character not in response.text


@pytest.mark.parametrize("character", REFUSED)
async def test_an_address_and_a_bank_name_with_a_control_or_override_are_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, character: str
) -> None:
    """A household was registered with such an address (201): stored and shown so. Now
    422 at the address, and at the bank's name, nothing registered."""
    payload: dict[str, Any] = intake.plan().payload()
    before = await row_counts(intake_engine)
    addressed = payload | {"address": f"榆中县{character}夏官营村三社12号"}
    response = await intake.http.post("/households", json=addressed, headers=intake.headers())
    _refused_at(response, "/body/address", character)
    banked = payload | {
        "bank_account": payload["bank_account"] | {"bank_name": f"农业银行{character}支行"}
    }
    response = await intake.http.post("/households", json=banked, headers=intake.headers())
    _refused_at(response, "/body/bank_account/bank_name", character)
    assert await row_counts(intake_engine) == before


async def test_a_statement_a_reason_and_a_note_with_an_override_are_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The applicant's statement "家庭困难\u202e请批准" showed its end reversed; a withdrawal
    reason and a change's note took an escape sequence. Each is 422 at the field."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    before = await row_counts(intake_engine)
    refused = await intake.submit(body | {"statement": "家庭困难\u202e请批准"})
    _refused_at(refused, "/body/statement", "\u202e")
    assert await row_counts(intake_engine) == before
    # Tabs and line breaks are ordinary text: taken, and kept inside as typed.
    accepted = await intake.submit(body | {"statement": "家庭困难\n\t父亲卧病\r\n请批准"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["statement"] == "家庭困难\n\t父亲卧病\r\n请批准"
    before = await row_counts(intake_engine)
    withdrawal = await intake.http.post(
        f"/applications/{accepted.json()['id']}/withdrawal",
        json={"reason": "\x1b[8m找到工作\x1b[0m"},
        headers=intake.headers(idempotency_key=str(uuid.uuid4())),
    )
    _refused_at(withdrawal, "/body/reason", "\x1b")
    change = await intake.http.post(
        f"/households/{household.id}/changes",
        json={
            "kind": "member_change",
            "person_id": household.person_ids[0],
            "effective_on": "2026-02-27",
            "seriously_ill": True,
            "note": "住院\u2067治疗\u2069",
        },
        headers=intake.headers(),
    )
    _refused_at(change, "/body/note", "\u2067")
    assert await row_counts(intake_engine) == before


async def test_a_purpose_note_with_an_override_is_refused_and_not_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A purpose note is recorded on the access record audit keeps: "核对\u202e发放" read
    otherwise there than it was sent. 422 at /query/purpose_note, no number disclosed."""
    household = await intake.register()
    before = await row_counts(intake_engine)
    response = await intake.http.get(
        f"/persons/{household.person_ids[0]}/identity",
        params={"purpose": "other", "purpose_note": "核对\u202e发放"},
        headers=intake.headers(Role.INVESTIGATOR, ["620123"]),
    )
    _refused_at(response, "/query/purpose_note", "\u202e")
    assert household.plan.members[0].id_number not in response.text
    assert await row_counts(intake_engine) == before
