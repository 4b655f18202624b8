"""Who applies for an open application once a member_change leaves its applicant unable to
apply (ADR 0016, 3 Dec 2026): the applicant recorded not counted for a reason of living
apart (imprisoned during the investigation, compulsory rehabilitation, missing, religious
living apart, military service). The rule of a death or a move out of the applicant
(test_applicant_left.py): the member the change names, else the head; nobody, and it
closes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import (
    IntakeClient,
    assert_closed_as_applicant_left,
    household_updated,
    refused_change,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()


def _living_apart(person_id: str, reason: str, **more: Any) -> dict[str, Any]:
    return {
        "kind": "member_change",
        "person_id": person_id,
        "effective_on": "2026-02-20",
        "counted": False,
        "exclusion_reason": reason,
    } | more


async def test_the_head_imprisoned_during_the_investigation_names_who_applies_now(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """The head applied and is imprisoned while the application is investigated: he may
    apply no longer and cannot take over from himself, while his wife and his mother may,
    so the change must name who applies (422 at new_applicant_person_id, nothing written,
    he stays applicant); naming his wife records it: GET shows her, the change's details
    and the application's timeline say so, and HouseholdUpdated.applicants_replaced
    carries it, decoded from the broker."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, _kid = household.person_ids[:4]
    application_id = await intake.open_application(household, head)
    imprisoned = _living_apart(head, "imprisoned")
    problem = await refused_change(intake, intake_engine, household, imprisoned)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/new_applicant_person_id"], problem
    assert (await intake.read_application(application_id))["applicant_person_id"] == head
    changed = await intake.change(household, imprisoned | {"new_applicant_person_id": wife})
    read = await intake.read_application(application_id)
    assert (read["status"], read["applicant_person_id"]) == ("submitted", wife)
    entry = read["timeline"][-1]
    assert entry["summary"] == "Household updated: member change"
    assert (
        entry["details"]["previous_applicant_person_id"],
        entry["details"]["applicant_person_id"],
    ) == (head, wife)
    details = changed["household"]["changes"][-1]["details"]
    assert (details["new_applicant_person_id"], details["applications_taken_over"]) == (
        wife,
        [application_id],
    )
    message = await household_updated(intake_stack, changed)
    assert message.WhichOneof("change") == "member_change"
    assert [
        (r.application_id, r.previous_applicant_person_id, r.applicant_person_id)
        for r in message.applicants_replaced
    ] == [(application_id, head, wife)]


async def test_by_default_the_head_takes_over_from_an_applicant_living_apart(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The wife applied and is declared missing: nobody named, the head (who may apply)
    takes the application over, published as for a death or a move out."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife = household.person_ids[:2]
    application_id = await intake.open_application(household, wife)
    changed = await intake.change(household, _living_apart(wife, "declared_missing"))
    assert (await intake.read_application(application_id))["applicant_person_id"] == head
    message = await household_updated(intake_stack, changed)
    [replaced] = message.applicants_replaced
    assert (replaced.previous_applicant_person_id, replaced.applicant_person_id) == (wife, head)


async def test_the_member_named_must_be_able_to_apply_and_is_refused_with_the_other_errors(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The wife applied and enters compulsory rehabilitation; the child named to take over
    cannot apply: 422 with the change's other error (a day in the future) at once, nothing
    written, the wife still the applicant; the grandmother named records it."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, wife, mother, kid = household.person_ids[:4]
    application_id = await intake.open_application(household, wife)
    rehab = _living_apart(wife, "compulsory_rehabilitation")
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        rehab | {"effective_on": "2099-01-01", "new_applicant_person_id": kid},
    )
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {"/body/new_applicant_person_id", "/body/effective_on"}, problem
    assert (await intake.read_application(application_id))["applicant_person_id"] == wife
    await intake.change(household, rehab | {"new_applicant_person_id": mother})
    assert (await intake.read_application(application_id))["applicant_person_id"] == mother


async def test_a_change_that_leaves_the_applicant_able_to_apply_names_nobody(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """A successor named for a change after which the applicant may still apply (a
    disability grade), or for a member who applied for nothing open, is refused (422,
    nothing written), not silently dropped; without it such a change hands nothing over
    and publishes no applicants_replaced."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife = household.person_ids[:2]
    application_id = await intake.open_application(household, head)
    grade = {
        "kind": "member_change",
        "person_id": head,
        "effective_on": "2026-02-20",
        "disability_grade": "3",
    }
    for body in (
        grade | {"new_applicant_person_id": wife},
        _living_apart(wife, "military_service", new_applicant_person_id=head),
    ):
        problem = await refused_change(intake, intake_engine, household, body)
        assert [e["pointer"] for e in problem["errors"]] == ["/body/new_applicant_person_id"]
    changed = await intake.change(household, grade)
    assert (await intake.read_application(application_id))["applicant_person_id"] == head
    assert list((await household_updated(intake_stack, changed)).applicants_replaced) == []


async def test_with_nobody_able_to_apply_an_applicant_living_apart_closes_it(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The mother applied for a household whose father is in prison and leaves for
    religious life apart: nobody else may apply (the father away, a child). The change
    is recorded and closes the application: withdrawn, withdrawal_cause applicant_left,
    an ApplicationWithdrawn of cause APPLICANT_LEFT after the change in its timeline and
    on the broker."""
    household = await intake.register(intake.plan(shape="member_imprisoned"))
    mother = household.person_ids[0]
    application_id = await intake.open_application(household, mother)
    changed = await intake.change(household, _living_apart(mother, "religious_living_apart"))
    assert changed["household"]["changes"][-1]["details"]["applications_closed"] == [application_id]
    await assert_closed_as_applicant_left(
        intake, intake_stack, application_id, mother, "Household updated: member change"
    )
    assert list((await household_updated(intake_stack, changed)).applicants_replaced) == []
