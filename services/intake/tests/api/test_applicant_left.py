"""Who applies for an open application once its applicant dies or moves out (ADR 0016,
3 Dec 2026): the member the change names, else the head after it; nobody, and it closes."""

from __future__ import annotations

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


async def test_the_head_s_death_hands_his_application_to_the_new_head(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The head applied and died; his wife is named the new head. The application named
    the dead man as its applicant (the person who signs, is notified and visited): now the
    new head applies for it, shown by GET /applications/{id} and its timeline, and
    published in HouseholdUpdated.applicants_replaced, decoded from the broker."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, _kid = household.person_ids[:4]
    application_id = await intake.open_application(household, head)
    died = await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-02-20",
            "new_head_person_id": wife,
        },
    )
    read = await intake.read_application(application_id)
    assert read["applicant_person_id"] == wife
    entry = read["timeline"][-1]
    assert entry["summary"] == "Household updated: death"
    assert (
        entry["details"]["previous_applicant_person_id"],
        entry["details"]["applicant_person_id"],
    ) == (
        head,
        wife,
    )
    message = await household_updated(intake_stack, died)
    assert [
        (r.application_id, r.previous_applicant_person_id, r.applicant_person_id)
        for r in message.applicants_replaced
    ] == [(application_id, head, wife)]


async def test_the_member_named_takes_over_and_must_be_able_to_apply(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """The wife applied and moves out (the head stays): a member who may not apply (the
    child of 6 to 14) named to take over is refused with every other error at once, 422,
    nothing written; the head named (or by default) takes over."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, kid = household.person_ids[:4]
    application_id = await intake.open_application(household, wife)
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "move_out",
            "person_id": wife,
            "moved_on": "2099-01-01",
            "new_applicant_person_id": kid,
        },
    )
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {"/body/new_applicant_person_id", "/body/moved_on"}, problem
    assert (await intake.read_application(application_id))["applicant_person_id"] == wife
    moved = await intake.change(
        household, {"kind": "move_out", "person_id": wife, "moved_on": "2026-02-20"}
    )
    assert (await intake.read_application(application_id))["applicant_person_id"] == head
    message = await household_updated(intake_stack, moved)
    [replaced] = message.applicants_replaced
    assert (replaced.previous_applicant_person_id, replaced.applicant_person_id) == (wife, head)


async def test_a_member_is_named_when_the_new_head_cannot_apply(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head applied and died; the child is named the new head, who cannot apply: the
    change must name who applies now (422 at new_applicant_person_id, nothing written);
    naming the grandmother records it."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, _wife, mother, kid = household.person_ids[:4]
    application_id = await intake.open_application(household, head)
    death = {"kind": "death", "person_id": head, "date_of_death": "2026-02-20"}
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        death | {"new_head_person_id": kid},
    )
    assert "/body/new_applicant_person_id" in {e["pointer"] for e in problem["errors"]}, problem
    await intake.change(
        household,
        death
        | {
            "new_head_person_id": kid,
            "new_applicant_person_id": mother,
        },
    )
    assert (await intake.read_application(application_id))["applicant_person_id"] == mother


async def test_with_nobody_able_to_apply_the_open_application_closes(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The mother applied for a household whose father is in prison and moves out, leaving
    him and a child: nobody who stays may apply. The change is recorded (a move out is a
    fact) and closes the application: withdrawn, withdrawal_cause applicant_left, an
    ApplicationWithdrawn of cause APPLICANT_LEFT after the change in its timeline and on
    the broker."""
    household = await intake.register(intake.plan(shape="member_imprisoned"))
    mother, father, _kid = household.person_ids[:3]
    application_id = await intake.open_application(household, mother)
    await intake.change(
        household,
        {
            "kind": "move_out",
            "person_id": mother,
            "moved_on": "2026-02-20",
            "new_head_person_id": father,
        },
    )
    await assert_closed_as_applicant_left(
        intake, intake_stack, application_id, mother, "Household updated: move out"
    )


async def test_naming_a_successor_for_nothing_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A member who applied for nothing open moves out: naming who takes over is an error
    (422, nothing written), not silently dropped."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, _mother, _kid = household.person_ids[:4]
    await intake.open_application(household, head)
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "move_out",
            "person_id": wife,
            "moved_on": "2026-02-20",
            "new_applicant_person_id": head,
        },
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/new_applicant_person_id"]
