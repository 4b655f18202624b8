"""The relationships given to a new head are held to a registration's rules."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, refused_change

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def test_relationships_to_the_new_head_keep_the_age_order_sex_and_marriageable_age(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head dies and his wife heads the household; the clerk gives the relationships
    the record cannot derive (``relationships``). Each given code was recorded as typed:
    the schoolchild as the widow's spouse, the head's mother of 80 as her child. A
    registration, a member joining and a relationship correction refuse each of those
    (a child younger than the head, a parent older, a spouse of the other sex and 18 or
    more); the new head's relationships now are refused alike, 422 at
    ``/relationships/<person id>``, nothing written. Derived codes and sound ones stand."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, kid = household.person_ids
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": wife,
    }
    for given, why in (
        ({kid: "spouse"}, "under 18"),
        ({mother: "child"}, "younger than the head"),
        ({kid: "parent"}, "older than the head"),
        ({mother: "spouse"}, "a marriage is between a man and a woman"),
    ):
        problem = await refused_change(
            intake, intake_engine, household, death | {"relationships": given}
        )
        [(person_id, _)] = given.items()
        pointers = {e["pointer"]: e["detail"] for e in problem["errors"]}
        assert list(pointers) == [f"/body/relationships/{person_id}"], problem
        assert why in pointers[f"/body/relationships/{person_id}"], problem
    # A sound code given (the mother-in-law kept as a lodger's other) is recorded.
    died = await intake.change(household, death | {"relationships": {mother: "other"}})
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {wife: "head", mother: "other", kid: "child"}
