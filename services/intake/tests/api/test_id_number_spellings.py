"""A resident ID number typed with spaces around it or a lower-case check digit ``x`` is
the same person's number: taken everywhere one is, stored, masked and hashed as one."""

from __future__ import annotations

from typing import Any

import pytest

from dibao_common.auth import Role
from dibao_intake.synthetic import PlannedHousehold
from dibao_intake.testing import IntakeClient, RegisteredHousehold

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOWNSHIP = "620123103000"
VILLAGE = "620123103201"


def _with_x_head(intake: IntakeClient) -> PlannedHousehold:
    """A household whose head's number ends in the check digit X (one in eleven do)."""
    for _ in range(500):
        plan = intake.plan(VILLAGE, shape="elderly_couple")
        if plan.members[0].id_number.endswith("X"):
            return plan
    raise AssertionError("no number ending in X drawn")


def _spellings(number: str) -> list[str]:
    lower = number.lower()
    return [f" {lower} ", f"\t{number}\n", f"\u3000{lower}", lower]


async def test_a_padded_or_lower_case_number_is_the_same_person_everywhere(
    intake: IntakeClient,
) -> None:
    plan = _with_x_head(intake)
    head = plan.members[0]
    payload: dict[str, Any] = plan.payload()
    payload["members"][0]["id_number"] = f"  {head.id_number.lower()} "
    clerk = intake.headers(regions=[VILLAGE])
    registered = await intake.http.post("/households", json=payload, headers=clerk)
    assert registered.status_code == 201, registered.text
    household = registered.json()
    [member] = [m for m in household["members"] if m["name"] == head.name]
    assert member["id_number_masked"] == head.id_number[:6] + "********" + head.id_number[-4:]
    # Found by the number however it is typed: one keyed hash.
    for spelling in [head.id_number, *_spellings(head.id_number)]:
        found = await intake.http.post(
            "/households/lookup",
            json={"id_number": spelling},
            headers=intake.headers(Role.INVESTIGATOR, [VILLAGE]),
        )
        assert found.status_code == 200, (spelling, found.text)
        assert (found.json()["household_id"], found.json()["person_id"]) == (
            household["id"],
            member["person_id"],
        )
    # Registered again, in the number's plain spelling: the same person, already active.
    again = intake.plan(VILLAGE, shape="elderly_alone").payload()
    again["members"][0] |= {"id_number": head.id_number, "name": head.name}
    refused = await intake.http.post("/households", json=again, headers=clerk)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/person-in-household")
    # A staff relative typed so is the applicant's relative (the same keyed hash), and the
    # roster shows the number masked as the household's is.
    staff = await intake.http.post(
        f"/townships/{TOWNSHIP}/staff",
        json={
            "name": "马晓东",
            "role": "village_committee",
            "relatives": [
                {"name": head.name, "id_number": f" {head.id_number.lower()}", "relation": "uncle"}
            ],
        },
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert staff.status_code == 201, staff.text
    [relative] = staff.json()["relatives"]
    assert relative["masked_id"] == member["id_number_masked"]
    by_masked = {
        m["id_number_masked"][-4:] + m["name"]: m["person_id"] for m in household["members"]
    }
    person_ids = [by_masked[m.id_number[-4:] + m.name] for m in plan.members]
    as_registered = RegisteredHousehold(household["id"], plan, person_ids, household)
    submitted = await intake.submit(await intake.complete_application_body(as_registered))
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["staff_related"] is True
