"""Divorce through the API (ADR 0016): the record, the event as consumers decode it, the
timeline, and every refusal as problem+json that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    moves_in,
    refused_change,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()
TYPE = "dibao.intake.HouseholdUpdated.v1"


async def _event(intake_stack: TestStack, change_id: str) -> ev.HouseholdUpdated:
    """The change's HouseholdUpdated as a consumer reads it off the topic: the CloudEvent
    decoded with the proto (the registry by its type)."""
    [found] = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=change_id)
    assert found.ce_type == TYPE
    update = REGISTRY.decode(found)
    assert isinstance(update, ev.HouseholdUpdated)
    assert update.WhichOneof("change") == "divorce"
    return update


def _pointers(problem: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in problem.get("errors", [])]


def _relationships(changed: dict[str, Any]) -> dict[str, str]:
    return {m["person_id"]: m["relationship"] for m in changed["household"]["members"]}


async def _old_couple_with(intake: IntakeClient, child: Sex, in_law: Sex) -> RegisteredHousehold:
    """An old couple registered with a grown child and a child-in-law of these sexes (the
    only ones of each)."""
    plan = intake.plan(shape="elderly_couple")
    plan.members += [
        intake.synthesizer.member(Relationship.CHILD, child, (30, 40), EmploymentStatus.UNEMPLOYED),
        intake.synthesizer.member(
            Relationship.CHILD_IN_LAW, in_law, (28, 38), EmploymentStatus.UNEMPLOYED
        ),
    ]
    return await intake.register(plan)


async def _dated_on_or_after(
    intake: IntakeClient,
    engine: AsyncEngine,
    household: RegisteredHousehold,
    body: dict[str, Any],
    field: str,
    before: str,
    on: str,
) -> None:
    """``body`` dated ``before`` (its ``field``) is refused at that field naming ``on``,
    writing nothing; dated ``on``, it is recorded."""
    problem = await refused_change(intake, engine, household, body | {field: before})
    assert _pointers(problem) == [f"/body/{field}"]
    assert on in problem["errors"][0]["detail"]
    await intake.change(household, body | {field: on})


async def test_the_head_divorces_the_spouse_who_stays_as_other(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The head and his wife divorce and both stay (离婚不离家): she is the head's other,
    counted as recorded; the change's details name both; HouseholdUpdated decodes with
    the proto as a divorce (the head as person_id, the former spouse as now recorded);
    the open application's timeline shows it by person ids. The head may marry again on
    or after the day, not before; a second divorce of the two is 409."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, _kid = household.person_ids
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    divorce = {
        "kind": "divorce",
        "person_id": wife,
        "spouse_person_id": head,
        "divorced_on": "2026-02-20",
        "note": "离婚后仍同住",
    }
    divorced = await intake.change(household, divorce)
    assert divorced["kind"] == "divorce"
    after = divorced["household"]
    assert _relationships(divorced)[wife] == "other"
    assert [m["counted"] for m in after["members"] if m["person_id"] == wife] == [True]
    change = after["changes"][-1]
    assert (change["kind"], change["effective_on"]) == ("divorce", "2026-02-20")
    assert change["details"] == {
        "person_id": wife,
        "spouse_person_id": head,
        "relationships": {wife: "other"},
        "document_ids": [],
    }
    update = await _event(intake_stack, divorced["change_id"])
    assert update.divorce.person_id == head
    assert (update.divorce.divorced_on.year, update.divorce.divorced_on.month) == (2026, 2)
    assert update.divorce.divorced_on.day == 20
    assert update.divorce.former_spouse.person.person_id == wife
    assert update.divorce.former_spouse.relationship == enums.RELATIONSHIP_OTHER
    assert update.divorce.former_spouse.counted
    assert update.note == "离婚后仍同住"
    read = await intake.http.get(
        f"/applications/{submitted.json()['id']}", headers=intake.headers()
    )
    assert [(e["summary"], e["details"]) for e in read.json()["timeline"] if e["type"] == TYPE] == [
        (
            "Household updated: divorce",
            {
                "change": "divorce",
                "person_id": head,
                "divorced_on": "2026-02-20",
                "former_spouse_person_id": wife,
            },
        )
    ]

    # Recorded already: 409, whichever the request names first.
    for first, second in ((head, wife), (wife, head)):
        problem = await refused_change(
            intake,
            intake_engine,
            household,
            divorce | {"person_id": first, "spouse_person_id": second},
            409,
        )
        assert problem["type"].endswith("/already-divorced")
    # The head with his mother: no couple the record knows.
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"person_id": head, "spouse_person_id": mother}
    )
    assert _pointers(problem) == ["/body/spouse_person_id"]
    # He marries again: not before the divorce, on its day.
    bride = {
        "name": "杨秀兰",
        "id_number": intake.synthesizer.id_number(household.plan.members[1].birth_date, Sex.FEMALE),
        "relationship": "spouse",
        "employment_status": "unemployed",
    }
    marriage = {"kind": "marriage", "person_id": head, "spouse": bride}
    await _dated_on_or_after(
        intake, intake_engine, household, marriage, "married_on", "2026-02-19", "2026-02-20"
    )


async def test_a_divorce_that_breaks_a_rule_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Each refusal is problem+json naming the field, and writes nothing: a day to come,
    a non-member, the member twice, no spouse named for a couple here, no marriage to a
    spouse elsewhere recorded, a missing day (schema)."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, _kid = household.person_ids
    divorce = {"kind": "divorce", "person_id": head, "spouse_person_id": wife}

    async def pointers(body: dict[str, Any]) -> list[str]:
        return _pointers(await refused_change(intake, intake_engine, household, divorce | body))

    assert await pointers({"divorced_on": "2026-03-03"}) == ["/body/divorced_on"]
    assert await pointers({"divorced_on": "2026-02-20", "spouse_person_id": str(household.id)}) == [
        "/body/spouse_person_id"
    ]
    assert await pointers({"divorced_on": "2026-02-20", "spouse_person_id": head}) == [
        "/body/spouse_person_id"
    ]
    assert await pointers({"divorced_on": "2026-02-20", "spouse_person_id": None}) == [
        "/body/spouse_person_id"
    ]
    assert await pointers(
        {"divorced_on": "2026-02-20", "person_id": mother, "spouse_person_id": None}
    ) == ["/body/person_id"]
    missing = await refused_change(
        intake, intake_engine, household, {"kind": "divorce", "person_id": head}
    )
    assert "/body/divorced_on" in _pointers(missing)


async def test_a_son_and_his_wife_registered_together_are_a_couple(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """An old couple registered with their grown son and his wife: the record takes the
    son and the child-in-law for a couple they may divorce. Their divorce is recorded,
    she becomes the head's other, and the event names him and her."""
    household = await _old_couple_with(intake, Sex.MALE, Sex.FEMALE)
    _head, _wife, son, daughter_in_law = household.person_ids
    divorced = await intake.change(
        household,
        {
            "kind": "divorce",
            "person_id": daughter_in_law,
            "spouse_person_id": son,
            "divorced_on": "2026-02-20",
        },
    )
    assert _relationships(divorced)[daughter_in_law] == "other"
    update = await _event(intake_stack, divorced["change_id"])
    assert update.divorce.person_id == son
    assert update.divorce.former_spouse.person.person_id == daughter_in_law
    assert update.divorce.former_spouse.relationship == enums.RELATIONSHIP_OTHER


async def test_a_registered_child_in_law_is_no_bar_to_the_childs_marriage(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An old couple registered with their unmarried son and their late son's widow (the
    only child of age and the only child-in-law, so the record could take the two for a
    couple). His marriage to a bride joining was refused at person_id ('taken to be
    married'), and nothing let the clerk record it; it is recorded now, and the widow is
    no party to his marriage: their divorce is refused at spouse_person_id. In another
    such household his death names no spouse left behind (a guess is published as
    nothing)."""
    household = await _old_couple_with(intake, Sex.MALE, Sex.FEMALE)
    plan, synthesizer = household.plan, intake.synthesizer
    _head, _wife, son, widow = household.person_ids
    bride = {
        "name": "杨秀兰",
        "id_number": synthesizer.id_number(plan.members[3].birth_date, Sex.FEMALE),
        "relationship": "child_in_law",
        "employment_status": "unemployed",
    }
    married = await intake.change(
        household,
        {"kind": "marriage", "person_id": son, "married_on": "2026-02-14", "spouse": bride},
    )
    assert married["household"]["changes"][-1]["kind"] == "marriage"
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "divorce",
            "person_id": widow,
            "spouse_person_id": son,
            "divorced_on": "2026-02-20",
        },
    )
    assert _pointers(problem) == ["/body/spouse_person_id"]

    other = await _old_couple_with(intake, Sex.MALE, Sex.FEMALE)
    _head, _wife, son, _widow = other.person_ids
    died = await intake.change(
        other, {"kind": "death", "person_id": son, "date_of_death": "2026-02-10"}
    )
    assert "spouse_person_id" not in died["household"]["changes"][-1]["details"]


async def test_a_child_in_law_corrected_to_grandchild_is_no_longer_the_childs_wife(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An old couple registered with their grown son and a granddaughter recorded as
    their child-in-law: the record took the two for a couple (the only child of age, the
    only child-in-law). Her relationship corrected to grandchild (ADR 0016), the
    registration is read as corrected: their divorce is refused at spouse_person_id,
    writing nothing. The correction was refused before (no such field, 422)."""
    household = await _old_couple_with(intake, Sex.MALE, Sex.FEMALE)
    _head, _wife, son, granddaughter = household.person_ids
    corrected = await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": granddaughter,
            "effective_on": "2026-02-27",
            "relationship": "grandchild",
            "note": "登记时误录为儿媳，系孙女",
        },
    )
    assert _relationships(corrected)[granddaughter] == "grandchild"
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "divorce",
            "person_id": son,
            "spouse_person_id": granddaughter,
            "divorced_on": "2026-02-28",
        },
    )
    assert _pointers(problem) == ["/body/spouse_person_id"]


async def test_a_divorce_is_recorded_with_the_couples_certificate(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A divorce certificate (离婚证, or the judgment) is a document type of its own: one
    naming a member outside the couple is refused at its document_ids index, writing
    nothing; the couple's is recorded and the event's divorce names it (one naming nobody
    only when no partner's is given)."""
    household = await intake.register(intake.plan(shape="three_generations"))
    head, wife, mother, _kid = household.person_ids
    mothers = (await intake.upload(household.id, "divorce_certificate", mother)).json()["id"]
    wifes = (await intake.upload(household.id, "divorce_certificate", wife)).json()["id"]
    unnamed = (await intake.upload(household.id, "divorce_certificate")).json()["id"]
    divorce = {
        "kind": "divorce",
        "person_id": head,
        "spouse_person_id": wife,
        "divorced_on": "2026-02-20",
    }
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"document_ids": [wifes, mothers]}
    )
    assert _pointers(problem) == ["/body/document_ids/1"]
    divorced = await intake.change(household, divorce | {"document_ids": [unnamed, wifes]})
    update = await _event(intake_stack, divorced["change_id"])
    assert update.divorce.divorce_certificate.document_id == wifes
    assert divorced["household"]["changes"][-1]["details"]["document_ids"] == [unnamed, wifes]


async def test_a_marriage_to_a_spouse_living_elsewhere_ends_by_a_divorce(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The head's mother married a man living elsewhere (no spouse joins); the divorce
    names her alone, its event no former spouse, and a divorce before the marriage's day
    is refused at divorced_on. Her remarriage to the lodger follows the divorce."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    await intake.change(
        household, {"kind": "marriage", "person_id": mother, "married_on": "2026-01-10"}
    )
    divorce = {"kind": "divorce", "person_id": mother}
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"divorced_on": "2026-01-09"}
    )
    assert _pointers(problem) == ["/body/divorced_on"]
    assert "2026-01-10" in problem["errors"][0]["detail"]
    divorced = await intake.change(household, divorce | {"divorced_on": "2026-02-20"})
    assert divorced["household"]["changes"][-1]["details"] == {
        "person_id": mother,
        "relationships": {},
        "document_ids": [],
    }
    update = await _event(intake_stack, divorced["change_id"])
    assert update.divorce.person_id == mother
    assert not update.divorce.HasField("former_spouse")
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"divorced_on": "2026-02-21"}, 409
    )
    assert problem["type"].endswith("/already-divorced")


async def test_a_parent_beside_the_other_parent_marries_by_neither_path(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's father and mother live with the household (taken to be married to each
    other). The mother's marriage to a man joining from outside is refused at person_id,
    as her marriage to a member already was (it was recorded: the two marriage paths
    disagreed). Once the parents' divorce is recorded, she marries him."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    mother_born = household.plan.members[2].birth_date
    father = {
        "name": "杨建国",
        "id_number": intake.synthesizer.id_number(
            mother_born.replace(year=mother_born.year - 2), Sex.MALE
        ),
        "relationship": "parent",
        "employment_status": "retired",
    }
    father_id = await moves_in(intake, household, father)
    groom = father | {
        "name": "王志强",
        "id_number": intake.synthesizer.id_number(
            mother_born.replace(year=mother_born.year - 1), Sex.MALE
        ),
    }
    marriage = {"kind": "marriage", "person_id": mother, "married_on": "2026-02-25"}
    problem = await refused_change(intake, intake_engine, household, marriage | {"spouse": groom})
    assert _pointers(problem) == ["/body/person_id"]
    divorced = await intake.change(
        household,
        {
            "kind": "divorce",
            "person_id": mother,
            "spouse_person_id": father_id,
            "divorced_on": "2026-02-20",
        },
    )
    # Both stay the head's parents.
    assert {_relationships(divorced)[p] for p in (mother, father_id)} == {"parent"}
    await intake.change(household, marriage | {"spouse": groom})


async def test_a_death_is_not_dated_before_a_marriage_or_divorce_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head married on 14 Feb (his bride joined); his death dated 10 Feb is refused at
    date_of_death, writing nothing (it was recorded: he married four days after he
    died); naming her head is no fault of its own (she was not in the household on the
    10th, but nobody else was either). The divorce of 20 Feb recorded, the former wife's
    death dated 19 Feb is refused too (a divorce is not dated after a death); dated
    20 Feb, it is recorded."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    [head] = household.person_ids
    born = household.plan.members[0].birth_date
    sex = Sex.FEMALE if household.plan.members[0].sex is Sex.MALE else Sex.MALE
    bride = {
        "name": "杨秀兰",
        "id_number": intake.synthesizer.id_number(born.replace(year=born.year + 1), sex),
        "relationship": "spouse",
        "employment_status": "unemployed",
    }
    married = await intake.change(
        household,
        {"kind": "marriage", "person_id": head, "married_on": "2026-02-14", "spouse": bride},
    )
    [wife] = [m["person_id"] for m in married["household"]["members"] if m["person_id"] != head]
    death = {"kind": "death", "person_id": head, "new_head_person_id": wife}
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-02-10"}
    )
    assert _pointers(problem) == ["/body/date_of_death"]
    assert "2026-02-14" in problem["errors"][0]["detail"]
    await intake.change(
        household,
        {
            "kind": "divorce",
            "person_id": head,
            "spouse_person_id": wife,
            "divorced_on": "2026-02-20",
        },
    )
    death = {"kind": "death", "person_id": wife}
    problem = await refused_change(
        intake, intake_engine, household, death | {"date_of_death": "2026-02-19"}
    )
    assert _pointers(problem) == ["/body/date_of_death"]
    await intake.change(household, death | {"date_of_death": "2026-02-20"})


async def test_a_spouse_elsewhere_who_moved_in_is_divorced_by_name(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head married a woman living elsewhere (no spouse joined), and she moved in
    later as the head's spouse. The record now shows his marriage to a member here: a
    divorce naming him alone is refused at spouse_person_id, writing nothing (it was
    recorded, she stayed his spouse, and a second divorce of the two was recorded too:
    one marriage divorced twice). Named, the divorce is recorded once, and ends the
    marriage for both forms of the request."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    [head] = household.person_ids
    born = household.plan.members[0].birth_date
    sex = Sex.FEMALE if household.plan.members[0].sex is Sex.MALE else Sex.MALE
    await intake.change(
        household, {"kind": "marriage", "person_id": head, "married_on": "2026-01-10"}
    )
    wife = {
        "name": "杨秀兰",
        "id_number": intake.synthesizer.id_number(born.replace(year=born.year + 1), sex),
        "relationship": "spouse",
        "employment_status": "unemployed",
    }
    wife_id = await moves_in(intake, household, wife, "2026-02-01")
    divorce = {"kind": "divorce", "person_id": head, "divorced_on": "2026-02-20"}
    problem = await refused_change(intake, intake_engine, household, divorce)
    assert _pointers(problem) == ["/body/spouse_person_id"]
    divorced = await intake.change(household, divorce | {"spouse_person_id": wife_id})
    assert _relationships(divorced)[wife_id] == "other"
    problem = await refused_change(
        intake, intake_engine, household, divorce | {"spouse_person_id": wife_id}, 409
    )
    assert problem["type"].endswith("/already-divorced")
    # His marriage is over: no marriage of his is left for a divorce naming him alone.
    problem = await refused_change(intake, intake_engine, household, divorce)
    assert _pointers(problem) == ["/body/person_id"]


async def test_a_daughter_and_a_daughter_in_law_registered_together_are_no_couple(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An old couple registered with their grown daughter and their late son's widow (the
    only child of age and the only child-in-law, both women): the record took the two
    women for a couple, which no marriage in China can be (Civil Code art. 1049, a man and
    a woman), so the daughter's marriage to a groom joining was refused at person_id and
    the two women's "divorce" was recorded. Now their divorce is refused at
    spouse_person_id, writing nothing, and the daughter marries."""
    household = await _old_couple_with(intake, Sex.FEMALE, Sex.FEMALE)
    plan, synthesizer = household.plan, intake.synthesizer
    _head, _wife, daughter, widow = household.person_ids
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "divorce",
            "person_id": widow,
            "spouse_person_id": daughter,
            "divorced_on": "2026-02-20",
        },
    )
    assert _pointers(problem) == ["/body/spouse_person_id"]
    groom = {
        "name": "王志强",
        "id_number": synthesizer.id_number(plan.members[2].birth_date, Sex.MALE),
        "relationship": "child_in_law",
        "employment_status": "unemployed",
    }
    married = await intake.change(
        household,
        {"kind": "marriage", "person_id": daughter, "married_on": "2026-02-14", "spouse": groom},
    )
    assert married["household"]["changes"][-1]["kind"] == "marriage"


async def test_a_widow_who_died_first_is_recorded_on_her_day(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An old couple living with their son: the husband's death on 10 Feb is recorded
    first, then the office learns that his wife died before him, on 5 Feb. Her death is
    recorded on its day: being widowed by the record (the day his death ended their
    marriage here) is no act of hers and does not show her alive (it was refused at
    date_of_death, naming 10 Feb: the clerk could only record a date of death five days
    late). A divorce or a marriage of hers still bounds it."""
    plan = intake.plan(shape="elderly_couple")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.CHILD, Sex.MALE, (30, 40), EmploymentStatus.UNEMPLOYED
        )
    )
    household = await intake.register(plan)
    head, wife, son = household.person_ids
    await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-02-10",
            "new_head_person_id": son,
        },
    )
    died = await intake.change(
        household, {"kind": "death", "person_id": wife, "date_of_death": "2026-02-05"}
    )
    assert died["household"]["changes"][-1]["effective_on"] == "2026-02-05"


async def test_a_marriage_here_does_not_end_before_its_day(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head married on 14 Feb (his bride joined); his move out is recorded after it,
    dated 10 Feb, the lodger (there since January) named head: the bride, who joined
    after the 10th, cannot be. The marriage here ends on its own day at the earliest,
    not on the 10th: the bride's marriage to the lodger dated 12 Feb is refused at
    married_on naming 14 Feb, writing nothing (it was recorded: two marriages of hers,
    the later one first). On 14 Feb it is recorded.

    Since 3 Dec 2026 (ADR 0016, helper hAC) that move out is itself refused (422 at
    moved_on, naming the head's marriage here on the 14th): a move out is not dated before
    the member's own marriage here. The head moves out on the 14th instead, which ends
    the marriage that day; a record made before (the move out on the 10th) is read as
    ending it on the 14th too (unit
    ``test_a_move_out_recorded_before_this_rule_ends_no_marriage_before_its_day``)."""
    household = await intake.register(intake.plan(shape="unemployed_single"))
    [head] = household.person_ids
    born = household.plan.members[0].birth_date
    own = household.plan.members[0].sex
    other = Sex.FEMALE if own is Sex.MALE else Sex.MALE

    def person(sex: Sex, relationship: str, month: int) -> dict[str, Any]:
        return {
            "name": "杨秀兰" if sex is Sex.FEMALE else "王志强",
            "id_number": intake.synthesizer.id_number(
                born.replace(year=born.year + 1, month=month), sex
            ),
            "relationship": relationship,
            "employment_status": "unemployed",
        }

    await intake.change(
        household, {"kind": "move_in", "moved_on": "2026-01-05", "member": person(own, "other", 3)}
    )
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": head,
            "married_on": "2026-02-14",
            "spouse": person(other, "spouse", 5),
        },
    )
    members = {m["relationship"]: m["person_id"] for m in married["household"]["members"]}
    bride, lodger = members["spouse"], members["other"]
    move_out = {
        "kind": "move_out",
        "person_id": head,
        "moved_on": "2026-02-10",
        "new_head_person_id": lodger,
        "relationships": {bride: "other"},
    }
    problem = await refused_change(intake, intake_engine, household, move_out)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/moved_on"], problem
    assert "2026-02-14" in problem["errors"][0]["detail"], problem
    await intake.change(household, move_out | {"moved_on": "2026-02-14"})
    marriage = {"kind": "marriage", "person_id": bride, "spouse_person_id": lodger}
    # Refused twice at married_on, both naming the 14th: the end of her marriage to the
    # head, and (since 3 Dec 2026) the day she joined, a marriage of two members being
    # dated on or after it.
    # Since 3 Dec 2026 (helper hAG) also at person_id: the head's move out ended their
    # life here, not her marriage to him, which a divorce naming her alone ends first.
    problem = await refused_change(
        intake, intake_engine, household, marriage | {"married_on": "2026-02-12"}
    )
    assert set(_pointers(problem)) == {"/body/married_on", "/body/person_id"}, problem
    assert all(
        "2026-02-14" in e["detail"] for e in problem["errors"] if e["pointer"] == "/body/married_on"
    ), problem
    await intake.change(
        household, {"kind": "divorce", "person_id": bride, "divorced_on": "2026-02-14"}
    )
    await intake.change(household, marriage | {"married_on": "2026-02-14"})


async def test_two_parents_of_one_sex_are_not_taken_to_be_married(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's mother lives with the household, and so, since January, does another of
    the head's parents of her sex (the late father's second wife). The two are no couple:
    the mother's marriage to a groom joining is recorded (it was refused at person_id,
    the two taken to be married to each other), and a divorce of the two is refused at
    spouse_person_id."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    mother_plan = household.plan.members[2]
    other = Sex.FEMALE if mother_plan.sex is Sex.MALE else Sex.MALE
    second = {
        "name": "杨秀兰" if mother_plan.sex is Sex.FEMALE else "王志强",
        "id_number": intake.synthesizer.id_number(
            mother_plan.birth_date.replace(year=mother_plan.birth_date.year + 2),
            mother_plan.sex,
        ),
        "relationship": "parent",
        "employment_status": "retired",
    }
    second_id = await moves_in(intake, household, second)
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {
            "kind": "divorce",
            "person_id": mother,
            "spouse_person_id": second_id,
            "divorced_on": "2026-02-20",
        },
    )
    assert _pointers(problem) == ["/body/spouse_person_id"]
    groom = second | {
        "name": "王志强" if other is Sex.MALE else "杨秀兰",
        "id_number": intake.synthesizer.id_number(
            mother_plan.birth_date.replace(year=mother_plan.birth_date.year - 1), other
        ),
    }
    await intake.change(
        household,
        {"kind": "marriage", "person_id": mother, "married_on": "2026-02-25", "spouse": groom},
    )


async def test_a_marriage_here_ends_the_spouses_marriage_elsewhere(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's mother married a man living elsewhere on 10 Jan; on 1 Feb she married a
    lodger here (a step-parent of the head since), the marriage naming him and her as the
    spouse (spouse_person_id), which tells her January marriage over (ADR 0016). He died
    on the 10th: the record shows her widowed, married elsewhere no more. A divorce naming
    her alone, and a spouse_death, are refused at person_id (no marriage of hers left to
    end), writing nothing: both were recorded (201), of the January marriage that showed
    again once he died."""
    household = await intake.register(intake.plan(shape="three_generations"))
    _head, _wife, mother, _kid = household.person_ids
    mother_born = household.plan.members[2].birth_date
    await intake.change(
        household, {"kind": "marriage", "person_id": mother, "married_on": "2026-01-10"}
    )
    lodger = {
        "name": "王志强",
        "id_number": intake.synthesizer.id_number(
            mother_born.replace(year=mother_born.year - 1), Sex.MALE
        ),
        "relationship": "other",
        "employment_status": "retired",
    }
    lodger_id = await moves_in(intake, household, lodger, "2026-01-15")
    await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": lodger_id,
            "spouse_person_id": mother,
            "married_on": "2026-02-01",
        },
    )
    await intake.change(
        household, {"kind": "death", "person_id": lodger_id, "date_of_death": "2026-02-10"}
    )
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {"kind": "divorce", "person_id": mother, "divorced_on": "2026-02-20"},
    )
    assert _pointers(problem) == ["/body/person_id"]
    problem = await refused_change(
        intake,
        intake_engine,
        household,
        {"kind": "spouse_death", "person_id": mother, "date_of_death": "2026-02-20"},
    )
    assert _pointers(problem) == ["/body/person_id"]


async def test_the_heads_divorce_gives_the_in_laws_relationship_after_it(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The head's former wife's mother, living with them, stayed the head's parent_in_law
    after the divorce. The divorce now needs her relationship after it (422 at
    relationships/<her id> without it, or with a code that is neither hers nor other /
    other_dependant; the head's own mother is no kin through the marriage), nothing
    written; given, it is recorded, in the change's details beside the former wife's,
    and in the event's household."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.PARENT_IN_LAW, Sex.FEMALE, (66, 75), EmploymentStatus.RETIRED
        )
    )
    household = await intake.register(plan)
    head, wife, mother, kid, in_law = household.person_ids
    divorce = {
        "kind": "divorce",
        "person_id": head,
        "spouse_person_id": wife,
        "divorced_on": "2026-02-20",
    }
    problem = await refused_change(intake, intake_engine, household, divorce)
    assert _pointers(problem) == [f"/body/relationships/{in_law}"]
    assert "parent_in_law" in problem["errors"][0]["detail"]
    for wrong, pointer in (
        ({in_law: "parent"}, in_law),
        ({in_law: "other", mother: "other"}, mother),
    ):
        problem = await refused_change(
            intake, intake_engine, household, divorce | {"relationships": wrong}
        )
        assert _pointers(problem) == [f"/body/relationships/{pointer}"], wrong
    divorced = await intake.change(
        household, divorce | {"relationships": {in_law: "other_dependant", kid: "child"}}
    )
    relationships = _relationships(divorced)
    assert (relationships[wife], relationships[in_law], relationships[kid]) == (
        "other",
        "other_dependant",
        "child",
    )
    assert relationships[mother] == "parent"
    assert divorced["household"]["changes"][-1]["details"]["relationships"] == {
        wife: "other",
        in_law: "other_dependant",
    }
    update = await _event(intake_stack, divorced["change_id"])
    assert update.divorce.former_spouse.person.person_id == wife
    assert {m.person.person_id: m.relationship for m in update.household.members}[in_law] == (
        enums.RELATIONSHIP_OTHER_DEPENDANT
    )
