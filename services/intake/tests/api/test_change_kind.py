"""A household change without its kind is told which member is missing and its values."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, refused_change

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

KINDS = (
    "'birth', 'death', 'marriage', 'move_in', 'move_out', 'bank_account_change',"
    " 'member_change', 'address_change', 'divorce', 'spouse_death'"
)


async def test_a_change_without_its_kind_is_told_kind_is_missing_and_its_values(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """{"person_id": ..., "date_of_death": ...} without "kind" was refused at /body with
    "Unable to extract tag using discriminator 'kind'": neither where nor what to send."""
    household = await intake.register()
    death = {"person_id": household.person_ids[0], "date_of_death": "2026-02-20"}
    problem = await refused_change(intake, intake_engine, household, death)
    assert problem["errors"] == [
        {
            "pointer": "/body/kind",
            "detail": f"Field required: one of {KINDS} (it names which form of the body this is)",
            "code": "union_tag_not_found",
        }
    ]
    # A kind it does not know is told the same values, at the body as before.
    unknown = await refused_change(intake, intake_engine, household, death | {"kind": "dying"})
    [error] = unknown["errors"]
    assert error["code"] == "union_tag_invalid"
    assert KINDS in error["detail"]
