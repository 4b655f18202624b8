"""A spouse living elsewhere dies (ADR 0016) through the API: the record, the event as
consumers decode it, the timeline, and every refusal as problem+json that writes
nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import Sex
from dibao_intake.testing import IntakeClient, moves_in, refused_change, wait_for_events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()
TYPE = "dibao.intake.HouseholdUpdated.v1"


def _pointers(problem: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in problem.get("errors", [])]


async def test_a_spouse_living_elsewhere_dies_and_the_member_is_widowed(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The head's mother married a man living elsewhere; he died. The spouse_death names
    her and his date of death: recorded (its details name her), HouseholdUpdated decodes
    with the proto as a spouse_death with the death certificate given, the open
    application's timeline shows it. Refused at the field, writing nothing: no marriage
    elsewhere recorded yet, a day before the marriage (naming it) or in the future, the head
    (married to his wife here), a non-member, another member's death certificate. Then the
    record shows her widowed: a second spouse_death is 409, a divorce finds no marriage, a
    later marriage is dated on or after his death."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, _kid = household.person_ids
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    death = {"kind": "spouse_death", "person_id": mother, "date_of_death": "2026-02-20"}
    problem = await refused_change(intake, intake_engine, household, death)
    assert _pointers(problem) == ["/body/person_id"]
    await intake.change(
        household, {"kind": "marriage", "person_id": mother, "married_on": "2026-01-10"}
    )
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-01-09"}
    )
    assert _pointers(problem) == ["/body/date_of_death"]
    assert "2026-01-10" in problem["errors"][0]["detail"]
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2099-01-01"}
    )
    assert _pointers(problem) == ["/body/date_of_death"]
    problem = await refused_change(intake, intake_engine, household, death | {"person_id": head})
    assert _pointers(problem) == ["/body/person_id"]
    assert "death instead" in problem["errors"][0]["detail"]
    problem = await refused_change(
        intake, intake_engine, household, death | {"person_id": str(uuid.uuid4())}
    )
    assert _pointers(problem) == ["/body/person_id"]
    his = (await intake.upload(household.id, "death_certificate")).json()["id"]
    wifes = (await intake.upload(household.id, "death_certificate", wife)).json()["id"]
    problem = await refused_change(
        intake, intake_engine, household, death | {"document_ids": [his, wifes]}
    )
    assert _pointers(problem) == ["/body/document_ids/1"]

    recorded = await intake.change(household, death | {"document_ids": [his], "note": "病故"})
    assert recorded["kind"] == "spouse_death"
    assert {m["person_id"] for m in recorded["household"]["members"]} >= {head, wife, mother}
    change = recorded["household"]["changes"][-1]
    assert (change["kind"], change["effective_on"]) == ("spouse_death", "2026-02-20")
    assert change["details"] == {"person_id": mother, "document_ids": [his]}
    [found] = await wait_for_events(
        intake_stack, "dibao.intake.v1", 1, subject=recorded["change_id"]
    )
    assert found.ce_type == TYPE
    update = REGISTRY.decode(found)
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.WhichOneof("change") == "spouse_death"
    assert update.spouse_death.person_id == mother
    died = update.spouse_death.date_of_death
    assert (died.year, died.month, died.day) == (2026, 2, 20)
    assert update.spouse_death.death_certificate.document_id == his
    assert update.note == "病故"
    read = await intake.http.get(
        f"/applications/{submitted.json()['id']}", headers=intake.headers()
    )
    assert [(e["summary"], e["details"]) for e in read.json()["timeline"] if e["type"] == TYPE] == [
        (
            "Household updated: marriage",
            {"change": "marriage", "person_id": mother, "married_on": "2026-01-10"},
        ),
        (
            "Household updated: spouse death",
            {"change": "spouse_death", "person_id": mother, "date_of_death": "2026-02-20"},
        ),
    ]

    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-02-21"}, 409
    )
    assert problem["type"].endswith("/marriage-ended")
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {"kind": "divorce", "person_id": mother, "divorced_on": "2026-02-21"},
    )
    assert _pointers(problem) == ["/body/person_id"]
    marriage = {"kind": "marriage", "person_id": mother}
    problem = await refused_change(
        intake, intake_engine, household, marriage | {"married_on": "2026-02-19"}
    )
    assert _pointers(problem) == ["/body/married_on"]
    assert "2026-02-20" in problem["errors"][0]["detail"]
    await intake.change(household, marriage | {"married_on": "2026-02-20"})


async def test_a_spouse_death_after_the_divorce_or_before_joining_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A lodger who moved in on 1 Feb, married elsewhere since December: his wife's death
    dated before he joined is refused at date_of_death (naming the day), writing nothing.
    Divorced from her, a spouse_death of that marriage is 409: it ended already."""
    household = await intake.register(intake.plan(shape="three_generations"))
    mother_born = household.plan.members[2].birth_date
    lodger = await moves_in(
        intake,
        household,
        {
            "name": "王志强",
            "id_number": intake.synthesizer.id_number(
                mother_born.replace(year=mother_born.year - 1), Sex.MALE
            ),
            "relationship": "other",
            "employment_status": "retired",
        },
        "2026-02-01",
    )
    await intake.change(
        household, {"kind": "marriage", "person_id": lodger, "married_on": "2025-12-01"}
    )
    death = {"kind": "spouse_death", "person_id": lodger}
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-01-15"}
    )
    assert _pointers(problem) == ["/body/date_of_death"]
    assert "2026-02-01" in problem["errors"][0]["detail"]
    await intake.change(
        household, {"kind": "divorce", "person_id": lodger, "divorced_on": "2026-02-10"}
    )
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-02-15"}, 409
    )
    assert problem["type"].endswith("/marriage-ended")
