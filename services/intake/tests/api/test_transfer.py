"""A person moving from one registered household to another in one change (ADR 0016,
3 Dec 2026, helper hAL): a move_in naming the household left (leaves_household_id)
records that household's move_out too, in the same transaction, with every rule a
move_out of it applies, and publishes both HouseholdUpdated events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.domain.household import masked_household_ref
from dibao_intake.testing import (
    RURAL_VILLAGE,
    URBAN_VILLAGE,
    IntakeClient,
    RegisteredHousehold,
    access_records,
    assert_closed_as_applicant_left,
    refused_change,
    row_counts,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

REGISTRY = EventRegistry.default()
MOVED_ON = "2026-02-20"


def _transfer(household_left: RegisteredHousehold, index: int, **fields: Any) -> dict[str, Any]:
    """The move in of ``household_left``'s member ``index`` as a lodger, naming it as left."""
    member = household_left.plan.members[index].payload() | {"relationship": "other"}
    return {
        "kind": "move_in",
        "moved_on": MOVED_ON,
        "member": member,
        "leaves_household_id": household_left.id,
        **fields,
    }


async def _read(intake: IntakeClient, household: RegisteredHousehold) -> dict[str, Any]:
    response = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _updates(stack: TestStack, household: RegisteredHousehold) -> list[ev.HouseholdUpdated]:
    # Its registration, then the change.
    found = await wait_for_events(stack, "dibao.intake.v1", 2, key=household.id)
    decoded = [REGISTRY.decode(e) for e in found]
    return [u for u in decoded if isinstance(u, ev.HouseholdUpdated)]


async def test_a_person_moves_from_one_household_to_another_in_one_change(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The wife of an elderly couple moves to another household: one request records the
    move out of her household (her membership ended on the day, the version up, the
    change naming where she went) and the move in here (the version up, the same person),
    and publishes two HouseholdUpdated, decoded from the broker: the move_out with
    to_household_id and to_region the household joined, the move_in with
    from_household_id the household left."""
    left = await intake.register(intake.plan(shape="elderly_couple"))
    joined = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_alone"))
    wife = left.person_ids[1]
    moved = await intake.change(joined, _transfer(left, 1))
    here = moved["household"]
    assert here["version"] == joined.body["version"] + 1
    [newcomer] = [m for m in here["members"] if m["person_id"] == wife]
    assert (newcomer["active"], newcomer["joined_on"]) == (True, MOVED_ON)
    assert here["changes"][-1]["kind"] == "move_in"
    assert here["changes"][-1]["details"]["from_household_id"] == left.id
    there = await _read(intake, left)
    assert there["version"] == left.body["version"] + 1
    assert there["status"] == "active"
    [gone] = [m for m in there["members"] if m["person_id"] == wife]
    assert (gone["active"], gone["left_on"], gone["left_reason"]) == (False, MOVED_ON, "move_out")
    assert there["changes"][-1]["kind"] == "move_out"
    assert there["changes"][-1]["effective_on"] == MOVED_ON
    assert there["changes"][-1]["details"]["to_household_id"] == joined.id
    [move_out] = [u for u in await _updates(intake_stack, left) if u.WhichOneof("change")]
    assert move_out.WhichOneof("change") == "move_out"
    assert move_out.move_out.person_id == wife
    assert move_out.move_out.to_household_id == joined.id
    assert move_out.move_out.to_region.code == URBAN_VILLAGE
    assert move_out.household.version == left.body["version"] + 1
    assert wife not in [m.person.person_id for m in move_out.household.members]
    [move_in] = [u for u in await _updates(intake_stack, joined) if u.WhichOneof("change")]
    assert move_in.change_id == moved["change_id"]
    assert move_in.move_in.from_household_id == left.id
    assert move_in.move_in.member.person.person_id == wife
    assert move_in.move_in.moved_on.day == 20


async def test_the_head_leaving_names_a_new_head_for_the_household_left(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head of the household left moves out of it as a move_out of it would: without
    new_head_person_id for it, 422 at that field saying it is of the household left,
    nothing written in either household; with his wife named, she heads it."""
    left = await intake.register(intake.plan(shape="elderly_couple"))
    joined = await intake.register()
    head, wife = left.person_ids[:2]
    problem = await refused_change(intake, intake_engine, joined, _transfer(left, 0))
    [error] = problem["errors"]
    assert error["pointer"] == "/body/new_head_person_id"
    assert error["detail"].endswith("(the household left)")
    assert (await _read(intake, left))["version"] == left.body["version"]
    moved = await intake.change(joined, _transfer(left, 0, new_head_person_id=wife))
    assert head in [m["person_id"] for m in moved["household"]["members"] if m["active"]]
    there = await _read(intake, left)
    assert there["head_person_id"] == wife
    assert there["changes"][-1]["details"]["new_head_person_id"] == wife


async def test_the_last_member_leaving_dissolves_the_household_left(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The one member of a household moves to another: the household left is dissolved,
    as a move_out of its last member dissolves it, and its event's snapshot says so."""
    left = await intake.register(intake.plan(shape="elderly_alone"))
    joined = await intake.register()
    await intake.change(joined, _transfer(left, 0))
    there = await _read(intake, left)
    assert there["status"] == "dissolved"
    assert there["head_person_id"] is None
    [move_out] = [u for u in await _updates(intake_stack, left) if u.WhichOneof("change")]
    assert move_out.household.dissolved is True
    assert move_out.move_out.to_household_id == joined.id


async def test_the_applicant_of_the_household_lefts_open_application_leaving_closes_it(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The mother applied for a household whose father is in prison, and moves to another
    household: nobody who stays may apply, so the change closes the application
    (withdrawn, applicant_left) after the move out's entry in its timeline; naming the
    imprisoned father to apply is refused as a move_out's is (422, nothing written)."""
    left = await intake.register(intake.plan(shape="member_imprisoned"))
    joined = await intake.register()
    mother, father, _kid = left.person_ids[:3]
    application_id = await intake.open_application(left, mother)
    problem = await refused_change(
        intake,
        intake_engine,
        joined,
        _transfer(left, 0, new_head_person_id=father, new_applicant_person_id=father),
    )
    assert {e["pointer"] for e in problem["errors"]} == {"/body/new_applicant_person_id"}
    await intake.change(joined, _transfer(left, 0, new_head_person_id=father))
    await assert_closed_as_applicant_left(
        intake, intake_stack, application_id, mother, "Household updated: move out"
    )
    assert (await _read(intake, left))["changes"][-1]["details"]["applications_closed"] == [
        application_id
    ]


async def test_a_household_left_outside_the_clerks_regions_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A clerk of Yuzhong moving a person from a Lanzhou household into a Yuzhong one:
    403 region-out-of-scope, the household left named by its masked reference alone (not
    its id), recorded DENIED as a refused read of it; nothing else is written."""
    left = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_couple"))
    joined = await intake.register(intake.plan(RURAL_VILLAGE))
    clerk = f"clerk-{uuid.uuid4()}"
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{joined.id}/changes",
        json=_transfer(left, 1),
        headers=intake.headers(regions=[RURAL_VILLAGE[:6]], subject=clerk),
    )
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"].endswith("/region-out-of-scope")
    assert masked_household_ref(uuid.UUID(left.id), URBAN_VILLAGE) in problem["detail"]
    assert left.id not in response.text
    after = await row_counts(intake_engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [refusal] = await access_records(intake_stack, left.id, clerk)
    assert (refusal.outcome, refusal.record_type, refusal.record_id) == (
        access.ACCESS_OUTCOME_DENIED,
        access.RECORD_TYPE_HOUSEHOLD,
        left.id,
    )
    assert (await _read(intake, left))["version"] == left.body["version"]
    assert (await _read(intake, joined))["version"] == joined.body["version"]


async def test_a_household_the_person_is_not_in_is_refused_at_leaves_household_id(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """leaves_household_id must be the household the person is an active member of: a
    third household, or the one moved into, is 422 at that field; nothing written but the
    record of what the refusal tells (the person active elsewhere) for the first."""
    left = await intake.register(intake.plan(shape="elderly_couple"))
    joined = await intake.register()
    third = await intake.register()
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{joined.id}/changes",
        json=_transfer(left, 1) | {"leaves_household_id": third.id},
        headers=intake.headers(),
    )
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/leaves_household_id"]
    after = await row_counts(intake_engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    problem = await refused_change(
        intake, intake_engine, joined, _transfer(left, 1) | {"leaves_household_id": joined.id}
    )
    assert [e["pointer"] for e in problem["errors"]] == ["/body/leaves_household_id"]
    # The move out's own fields without the household left are refused, not dropped.
    alone = _transfer(left, 1, new_head_person_id=left.person_ids[0])
    alone["leaves_household_id"] = None
    problem = await refused_change(intake, intake_engine, joined, alone)
    assert [e["pointer"] for e in problem["errors"]] == ["/body/new_head_person_id"]


async def test_a_replayed_transfer_records_nothing_twice(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The same request sent again with its Idempotency-Key answers the stored answer and
    records neither change again: each household's version went up once."""
    left = await intake.register(intake.plan(shape="elderly_couple"))
    joined = await intake.register()
    key = str(uuid.uuid4())
    first = await intake.http.post(
        f"/households/{joined.id}/changes",
        json=_transfer(left, 1),
        headers=intake.headers(idempotency_key=key),
    )
    assert first.status_code == 201, first.text
    counts = await row_counts(intake_engine)
    again = await intake.http.post(
        f"/households/{joined.id}/changes",
        json=_transfer(left, 1),
        headers=intake.headers(idempotency_key=key),
    )
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    after = await row_counts(intake_engine)
    # Only the replay's access record.
    assert after == counts | {"outbox_message_ids_issued": counts["outbox_message_ids_issued"] + 1}
    assert (await _read(intake, left))["version"] == left.body["version"] + 1
    assert (await _read(intake, joined))["version"] == joined.body["version"] + 1


async def test_a_replayed_transfer_rechecks_the_household_lefts_region(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A transfer replayed with its Idempotency-Key is checked against the caller's regions
    as they now stand for both households, as the first request was: a clerk whose token
    still covers the household joined (Yuzhong) but no longer the household left (Lanzhou)
    is answered 403 region-out-of-scope naming the household left by its masked reference
    alone, recorded DENIED (action REPLAY) as a refused read of it, nothing else written;
    with both regions the replay answers the stored answer (ADR 0016, 3 Dec 2026, helper
    hAX)."""
    left = await intake.register(intake.plan(URBAN_VILLAGE, shape="elderly_couple"))
    joined = await intake.register(intake.plan(RURAL_VILLAGE))
    clerk = f"clerk-{uuid.uuid4()}"
    key = str(uuid.uuid4())
    both = [URBAN_VILLAGE[:6], RURAL_VILLAGE[:6]]

    async def send(regions: list[str]) -> Any:
        return await intake.http.post(
            f"/households/{joined.id}/changes",
            json=_transfer(left, 1),
            headers=intake.headers(regions=regions, subject=clerk, idempotency_key=key),
        )

    first = await send(both)
    assert first.status_code == 201, first.text
    before = await row_counts(intake_engine)
    lost = await send([RURAL_VILLAGE[:6]])
    assert lost.status_code == 403, lost.text
    assert "idempotent-replayed" not in lost.headers
    problem = lost.json()
    assert problem["type"].endswith("/region-out-of-scope")
    assert masked_household_ref(uuid.UUID(left.id), URBAN_VILLAGE) in problem["detail"]
    assert left.id not in lost.text
    after = await row_counts(intake_engine)
    # Nothing but the refusal's access record.
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    records = await access_records(intake_stack, left.id, clerk)
    [refusal] = [r for r in records if r.outcome == access.ACCESS_OUTCOME_DENIED]
    assert (refusal.action, refusal.record_type, refusal.region.code) == (
        access.ACCESS_ACTION_REPLAY,
        access.RECORD_TYPE_HOUSEHOLD,
        URBAN_VILLAGE,
    )
    assert list(refusal.persons) == []
    again = await send(both)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    # A plain move in (no household left) is replayed on the joined household's region alone.
    plain_key = str(uuid.uuid4())
    lodger = {
        "kind": "move_in",
        "moved_on": MOVED_ON,
        "member": intake.plan(shape="elderly_alone").members[0].payload()
        | {"relationship": "other"},
    }
    for regions in (both, [RURAL_VILLAGE[:6]]):
        plain = await intake.http.post(
            f"/households/{joined.id}/changes",
            json=lodger,
            headers=intake.headers(regions=regions, subject=clerk, idempotency_key=plain_key),
        )
        assert plain.status_code == 201, plain.text


async def test_without_the_household_left_a_person_active_elsewhere_is_a_409_that_names_it(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Without leaves_household_id a move in of a person active elsewhere is still 409
    person-in-household, the other household masked, nothing written but its access
    record; its detail says how to record both in one change."""
    left = await intake.register(intake.plan(shape="elderly_couple"))
    joined = await intake.register()
    body = _transfer(left, 1)
    del body["leaves_household_id"]
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        f"/households/{joined.id}/changes", json=body, headers=intake.headers()
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"].endswith("/person-in-household")
    assert "leaves_household_id" in problem["detail"]
    assert problem["conflicts"][0]["pointer"] == "/body/member"
    after = await row_counts(intake_engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    assert (await _read(intake, left))["version"] == left.body["version"]


async def _refused_telling(
    intake: IntakeClient,
    engine: AsyncEngine,
    household: RegisteredHousehold,
    body: dict[str, Any],
) -> dict[str, Any]:
    """The change ``body`` is refused (422), writing nothing but the access record of what
    the refusal tells of another household (one outbox row): the problem."""
    before = await row_counts(engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=body, headers=intake.headers()
    )
    assert response.status_code == 422, response.text
    after = await row_counts(engine)
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    problem: dict[str, Any] = response.json()
    return problem


async def test_a_bride_whose_husband_stays_joins_no_head_as_his_spouse_as_after_two_changes(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Marriages across households as a move_out then a move_in read them: a bride who
    joined a widower's household by marriage, her husband staying, moving into another
    widower's household as his spouse is refused at member/relationship (the marriage she
    takes along), the same answer as a move_out of her household then that move_in, and
    nothing is written in either household but the record of what the refusal tells of
    hers; as a lodger she moves. (The first version of the transfer checked this before
    the move out's change was stored, which the marriage taken along is read from: 201.)"""

    def widower() -> Any:
        plan = intake.plan(shape="elderly_couple")
        plan.members = plan.members[:1]
        return plan

    async def married() -> tuple[RegisteredHousehold, dict[str, Any], RegisteredHousehold]:
        left = await intake.register(widower())
        bride = intake.plan(shape="elderly_couple").members[1].payload()
        await intake.change(
            left,
            {
                "kind": "marriage",
                "person_id": left.person_ids[0],
                "married_on": "2026-01-10",
                "spouse": bride | {"relationship": "spouse"},
            },
        )
        return left, bride, await intake.register(widower())

    left, bride, joined = await married()
    body = {
        "kind": "move_in",
        "moved_on": MOVED_ON,
        "member": bride | {"relationship": "spouse"},
        "leaves_household_id": left.id,
    }
    version = (await _read(intake, left))["version"]
    refused = await _refused_telling(intake, intake_engine, joined, body)
    assert (await _read(intake, left))["version"] == version
    # The same in two requests.
    left_2, bride_2, joined_2 = await married()
    [wife_2] = [
        m["person_id"]
        for m in (await _read(intake, left_2))["members"]
        if m["relationship"] == "spouse"
    ]
    await intake.change(left_2, {"kind": "move_out", "person_id": wife_2, "moved_on": MOVED_ON})
    two_steps = await _refused_telling(
        intake,
        intake_engine,
        joined_2,
        {"kind": "move_in", "moved_on": MOVED_ON, "member": bride_2 | {"relationship": "spouse"}},
    )
    pointers = [e["pointer"] for e in refused["errors"]]
    assert pointers == [e["pointer"] for e in two_steps["errors"]]
    assert pointers == ["/body/member/relationship"]
    moved = await intake.change(joined, body | {"member": bride | {"relationship": "other"}})
    assert len(moved["household"]["members"]) == 2


async def test_two_opposite_transfers_at_once_do_not_deadlock(intake: IntakeClient) -> None:
    """A member of A moving to B while a member of B moves to A, at the same time: both
    households are locked in one order whatever the request's, so both are recorded (no
    deadlock, no 500), each household's version up by two."""
    first = await intake.register(intake.plan(shape="elderly_couple"))
    second = await intake.register(intake.plan(shape="elderly_couple"))
    responses = await asyncio.gather(
        *(
            intake.http.post(
                f"/households/{to.id}/changes",
                json=_transfer(source, 1),
                headers=intake.headers(),
            )
            for source, to in ((first, second), (second, first))
        )
    )
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    for household in (first, second):
        assert (await _read(intake, household))["version"] == household.body["version"] + 2


async def _registered_couples(intake: IntakeClient) -> RegisteredHousehold:
    """An old couple (head, spouse) registered with their son and his wife (child,
    child_in_law): two couples of one registration, no marriage change recorded."""
    plan = intake.plan(shape="elderly_couple")
    plan.members += [
        intake.synthesizer.member(
            Relationship.CHILD, Sex.MALE, (30, 40), EmploymentStatus.UNEMPLOYED
        ),
        intake.synthesizer.member(
            Relationship.CHILD_IN_LAW, Sex.FEMALE, (28, 38), EmploymentStatus.UNEMPLOYED
        ),
    ]
    return await intake.register(plan)


async def _a_widower(intake: IntakeClient) -> RegisteredHousehold:
    plan = intake.plan(shape="elderly_couple")
    plan.members = plan.members[:1]
    return await intake.register(plan)


@pytest.mark.parametrize(
    ("wife", "answer"),
    [
        # The head's wife, registered as his spouse: the record's marriage, which she takes
        # along (marriage_taken_along), her husband staying.
        (1, (422, ["/body/member/relationship"])),
        # The son's wife, registered as a child-in-law: a guess of the registration's
        # shape, which permits a divorce and refuses no marriage (ADR 0016, 2 Dec 2026).
        (3, (201, [])),
    ],
    ids=["head_and_spouse", "child_and_child_in_law"],
)
async def test_a_wife_registered_with_her_husband_joins_a_head_as_his_spouse_as_after_two_changes(
    intake: IntakeClient, intake_engine: AsyncEngine, wife: int, answer: tuple[int, list[str]]
) -> None:
    """A wife registered with her husband in one registration (no marriage change
    recorded), her husband staying, moves into a widower's household as his spouse: the
    transfer answers as a move_out of her household then that move_in do. Refused for
    the head's spouse (nothing written in either household but the record of what the
    refusal tells), accepted for the son's wife registered as a child-in-law; never a way
    around the two requests' rule, nor a rule of its own."""

    async def answered(
        household: RegisteredHousehold, body: dict[str, Any]
    ) -> tuple[int, list[str]]:
        response = await intake.http.post(
            f"/households/{household.id}/changes", json=body, headers=intake.headers()
        )
        return response.status_code, [e["pointer"] for e in response.json().get("errors", [])]

    # In two requests.
    left, joined = await _registered_couples(intake), await _a_widower(intake)
    moved_out = {"kind": "move_out", "person_id": left.person_ids[wife], "moved_on": MOVED_ON}
    await intake.change(left, moved_out)
    spouse = left.plan.members[wife].payload() | {"relationship": "spouse"}
    two_steps = await answered(joined, {"kind": "move_in", "moved_on": MOVED_ON, "member": spouse})
    # In one.
    left, joined = await _registered_couples(intake), await _a_widower(intake)
    spouse = left.plan.members[wife].payload() | {"relationship": "spouse"}
    body = {
        "kind": "move_in",
        "moved_on": MOVED_ON,
        "member": spouse,
        "leaves_household_id": left.id,
    }
    before = await row_counts(intake_engine)
    transfer = await answered(joined, body)
    after = await row_counts(intake_engine)
    assert transfer == two_steps == answer
    there, here = await _read(intake, left), await _read(intake, joined)
    if transfer[0] == 422:
        # Only the record of what the refusal tells of her household.
        issued = before["outbox_message_ids_issued"] + 1
        assert after == before | {"outbox_message_ids_issued": issued}
        assert (there["version"], here["version"]) == (left.body["version"], joined.body["version"])
    else:
        [gone] = [m for m in there["members"] if m["person_id"] == left.person_ids[wife]]
        assert (gone["active"], there["changes"][-1]["kind"]) == (False, "move_out")
        [newcomer] = [m for m in here["members"] if m["person_id"] == left.person_ids[wife]]
        assert newcomer["relationship"] == "spouse"
