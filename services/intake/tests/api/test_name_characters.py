"""A name pasted with invisible format characters (a zero-width joiner, a direction mark
or override) is the name without them; a name of nothing else, or holding a control
character, is refused, nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def test_format_characters_pasted_into_a_name_are_dropped(intake: IntakeClient) -> None:
    """A portal pasted the head's name from a chat message or a spreadsheet with a zero-width
    joiner, a left-to-right mark and a right-to-left override in it: the name was stored with
    them, so it showed reversed on screens and the printed notice, and the same person typed
    again by name was another name. It is stored as the name the ID card prints."""
    plan = intake.plan()
    payload = plan.payload()
    name = payload["members"][0]["name"]
    payload["members"][0]["name"] = (
        f"\u200e{name[0]}\u200d{name[1:]}\u202e\u2066\u2069\u2063\U000e0041"
    )
    registered = await intake.http.post("/households", json=payload, headers=intake.headers())
    assert registered.status_code == 201, registered.text
    assert registered.json()["members"][0]["name"] == name
    person = registered.json()["members"][0]["person_id"]
    # The name recorded is the name: giving it as a correction changes nothing (422).
    same = await intake.http.post(
        f"/households/{registered.json()['id']}/changes",
        json={
            "kind": "member_change",
            "person_id": person,
            "effective_on": "2026-02-27",
            "name": name,
            "note": "核对姓名",
        },
        headers=intake.headers(),
    )
    assert same.status_code == 422, same.text
    assert [e["pointer"] for e in same.json()["errors"]] == ["/body/name"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("\u200d", "must hold a name"),  # zero-width joiner
        ("\u200e\u202e", "must hold a name"),  # direction mark and override
        ("\u3164", "must hold a name"),  # Hangul filler, shown as nothing
        ("\u2063\U000e0041", "must hold a name"),  # invisible separator, a tag
        ("王\x07芳", "control character"),  # BEL
        ("\x1b[31m王芳", "control character"),  # a terminal's escape sequence
        ("王芳\x9b", "control character"),  # C1 control
    ],
)
async def test_a_name_of_nothing_visible_or_with_a_control_character_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, name: str, says: str
) -> None:
    """Such a name was registered (201): an invisible name, or one holding a terminal's
    escape sequence, for the audit log and every screen to show. Now 422 at the name,
    as the published pattern says, and nothing is written."""
    payload: dict[str, Any] = intake.plan().payload()
    payload["members"][0]["name"] = name
    before = await row_counts(intake_engine)
    response = await intake.http.post("/households", json=payload, headers=intake.headers())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/members/0/name"
    assert says in error["detail"]
    assert name not in response.text
    assert await row_counts(intake_engine) == before
