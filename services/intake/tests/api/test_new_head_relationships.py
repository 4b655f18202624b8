"""The relationships given to a new head are held to a registration's rules."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.domain.codes import EmploymentStatus, Relationship, Sex
from dibao_intake.synthetic import PlannedMember
from dibao_intake.testing import IntakeClient, RegisteredHousehold, moves_in, refused_change

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
        # Under 18 or, for a boy, 20 (ADR 0016, 3 Dec 2026): either way, too young.
        ({kid: "spouse"}, "nobody younger is married"),
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


def _lodger(
    intake: IntakeClient,
    sex: Sex,
    ages: tuple[int, int],
    status: EmploymentStatus = EmploymentStatus.RETIRED,
) -> PlannedMember:
    return intake.synthesizer.member(Relationship.OTHER, sex, ages, status)


async def _the_son_married_to_the_lodger(
    intake: IntakeClient,
) -> tuple[RegisteredHousehold, str, str, str]:
    """A head, their son (23-26: a man marries from 22, a woman from 20, ADR 0016, 3 Dec
    2026, helper hAX; of age on the marriage's day, weeks before the registration) and a
    woman lodging with them (21-24), the son and the lodger married here on 10 Jan 2026:
    (household, head, son, the son's wife)."""
    plan = intake.plan(shape="unemployed_single")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.CHILD, Sex.MALE, (23, 26), EmploymentStatus.UNEMPLOYED
        )
    )
    plan.members.append(_lodger(intake, Sex.FEMALE, (21, 24), EmploymentStatus.UNEMPLOYED))
    household = await intake.register(plan)
    head, son, wife = household.person_ids
    couple = {"person_id": son, "spouse_person_id": wife}
    await intake.change(household, {"kind": "marriage", "married_on": "2026-01-10"} | couple)
    return household, head, son, wife


async def test_a_member_married_to_another_member_is_not_the_new_heads_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's widowed mother married the lodger living with them (a marriage recorded
    here: he became the head's step-father). The head dies and his wife heads the
    household: the lodger given as the widow's spouse was recorded (201), though the
    record shows him married to the mother, who stays, which a relationship correction
    to the spouse refuses (ADR 0016). Now refused alike, 422 at the lodger's
    ``/relationships/<person id>``, nothing written; the widow's in-law as he is now
    derived, the death is recorded."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(_lodger(intake, Sex.MALE, (72, 80)))
    household = await intake.register(plan)
    head, wife, mother, kid, lodger = household.person_ids
    married = await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": mother,
            "spouse_person_id": lodger,
            "married_on": "2026-02-14",
        },
    )
    assert married["household"]["changes"][-1]["details"]["relationships"] == {lodger: "parent"}
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": wife,
    }
    problem = await refused_change(
        intake, intake_engine, household, death | {"relationships": {lodger: "spouse"}}
    )
    [error] = problem["errors"]
    assert error["pointer"] == f"/body/relationships/{lodger}", problem
    assert "the member married to another member" in error["detail"], problem
    died = await intake.change(household, death)
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {
        wife: "head",
        mother: "parent_in_law",
        lodger: "parent_in_law",
        kid: "child",
    }


async def test_the_new_head_married_to_a_member_takes_no_other_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's widowed mother married a lodger younger than the head (a marriage
    recorded here; he stays the head's other, a step-father is older). The head dies
    and his mother heads the household; the clerk gives the relationships the record
    cannot derive: a second lodger given as her spouse, her husband as other, was
    recorded (201), the record showing her married to the one and the spouse of the
    other. Refused as a relationship correction to the spouse refuses it: 422 at the
    second lodger's pointer, nothing written."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(_lodger(intake, Sex.MALE, (30, 34), EmploymentStatus.UNEMPLOYED))
    plan.members.append(_lodger(intake, Sex.MALE, (60, 64)))
    household = await intake.register(plan)
    head, wife, mother, kid, husband, other_lodger = household.person_ids
    await intake.change(
        household,
        {
            "kind": "marriage",
            "person_id": mother,
            "spouse_person_id": husband,
            "married_on": "2026-02-14",
        },
    )
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": mother,
    }
    wrong = {husband: "other", other_lodger: "spouse"}
    problem = await refused_change(
        intake, intake_engine, household, death | {"relationships": wrong}
    )
    pointers = {e["pointer"]: e["detail"] for e in problem["errors"]}
    assert f"/body/relationships/{other_lodger}" in pointers, problem
    assert (
        "the new head married to another member" in pointers[f"/body/relationships/{other_lodger}"]
    ), problem
    given = {husband: "spouse", other_lodger: "other"}
    died = await intake.change(household, death | {"relationships": given})
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {
        mother: "head",
        wife: "child_in_law",
        kid: "grandchild",
        husband: "spouse",
        other_lodger: "other",
    }


async def test_a_marriage_elsewhere_bars_the_new_heads_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A lodger married a woman living elsewhere (a marriage recorded here without the
    spouse joining); the head dies and his wife heads the household. The lodger given as
    her spouse was recorded (201), the record showing him with two wives; so was he as
    the head's mother's spouse, her own marriage elsewhere recorded, when she was named
    head. A relationship correction to the spouse refuses both (ADR 0016, helper-78); the
    new head's relationships now too, 422 at the lodger's pointer, naming whose marriage,
    nothing written. A man who moved in after the mother's marriage is read as her
    husband who lived elsewhere, and is recorded as her spouse."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(_lodger(intake, Sex.MALE, (62, 68)))
    household = await intake.register(plan)
    head, wife, mother, kid, lodger = household.person_ids
    await intake.change(
        household, {"kind": "marriage", "person_id": lodger, "married_on": "2026-01-10"}
    )
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": wife,
        "relationships": {lodger: "spouse"},
    }

    async def refusal() -> str:
        problem = await refused_change(intake, intake_engine, household, death)
        [error] = problem["errors"]
        assert error["pointer"] == f"/body/relationships/{lodger}", problem
        return str(error["detail"])

    assert "the member married to a spouse living elsewhere" in await refusal()
    await intake.change(
        household, {"kind": "spouse_death", "person_id": lodger, "date_of_death": "2026-01-20"}
    )
    await intake.change(
        household, {"kind": "marriage", "person_id": mother, "married_on": "2026-01-25"}
    )
    death["new_head_person_id"] = mother
    assert "the new head married to a spouse living elsewhere" in await refusal()
    husband = await moves_in(
        intake,
        household,
        {
            "name": "杨建国",
            "id_number": intake.synthesizer.id_number(date(1950, 3, 3), Sex.MALE),
            "relationship": "other",
            "employment_status": "not_of_working_age",
        },
        "2026-02-01",
    )
    died = await intake.change(
        household, death | {"relationships": {lodger: "other", husband: "spouse"}}
    )
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {
        mother: "head",
        wife: "child_in_law",
        kid: "grandchild",
        lodger: "other",
        husband: "spouse",
    }


async def test_a_divorced_member_is_not_the_new_heads_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's son married the lodger living with them (a marriage recorded here: she
    became the head's child-in-law), and they divorced (she stays, as the head's other).
    The head dies and the son heads the household: his former wife given as his spouse
    was recorded (201), the record showing the two divorced and married again by nothing.
    A relationship correction to the spouse refuses that ("a marriage records a new
    one"); the new head's relationships now too: 422 at her pointer, nothing written.
    Their marriage recorded anew, she is his spouse."""
    household, head, son, lodger = await _the_son_married_to_the_lodger(intake)
    couple = {"person_id": son, "spouse_person_id": lodger}
    await intake.change(household, {"kind": "divorce", "divorced_on": "2026-02-01"} | couple)
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": son,
        "relationships": {lodger: "spouse"},
    }
    problem = await refused_change(intake, intake_engine, household, death)
    [error] = problem["errors"]
    assert error["pointer"] == f"/body/relationships/{lodger}", problem
    assert "the member and the new head divorced" in error["detail"], problem
    await intake.change(household, {"kind": "marriage", "married_on": "2026-02-10"} | couple)
    died = await intake.change(household, death)
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {son: "head", lodger: "spouse"}


async def test_a_member_married_to_the_new_head_is_their_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's son married the lodger living with them (a marriage recorded here: she
    became the head's child-in-law). The head dies and the son heads the household: his
    wife given as his other was recorded (201), the record showing the two married and
    the head without a spouse. A relationship correction refuses anything but the spouse
    for a member the record shows married to the head (a divorce ends that); the new
    head's relationships now too: 422 at her pointer, nothing written."""
    household, head, son, wife = await _the_son_married_to_the_lodger(intake)
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": son,
    }
    for code in ("other", "other_dependant"):
        problem = await refused_change(
            intake, intake_engine, household, death | {"relationships": {wife: code}}
        )
        [error] = problem["errors"]
        assert error["pointer"] == f"/body/relationships/{wife}", problem
        assert "married to the new head" in error["detail"], problem
    died = await intake.change(household, death | {"relationships": {wife: "spouse"}})
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {son: "head", wife: "spouse"}


async def test_the_head_s_divorced_parents_are_not_derived_a_couple(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head's parents divorced (recorded; both stay, his parents). The head dies and
    his mother heads the household: his father was derived as her spouse (201), the
    record showing the two divorced and married again by nothing, which a relationship
    correction to the spouse refuses. He is now not derived but asked (422 at his
    pointer, nothing written, saying why), and recorded as given."""
    plan = intake.plan(shape="three_generations")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.PARENT, Sex.MALE, (72, 80), EmploymentStatus.NOT_OF_WORKING_AGE
        )
    )
    household = await intake.register(plan)
    head, wife, mother, kid, father = household.person_ids
    await intake.change(
        household,
        {
            "kind": "divorce",
            "person_id": mother,
            "spouse_person_id": father,
            "divorced_on": "2026-01-10",
        },
    )
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": mother,
    }
    problem = await refused_change(intake, intake_engine, household, death)
    [error] = problem["errors"]
    assert error["pointer"] == f"/body/relationships/{father}", problem
    assert "the member and the new head divorced" in error["detail"], problem
    assert error["detail"].endswith("give their relationship to the new head"), problem
    died = await intake.change(household, death | {"relationships": {father: "other"}})
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {
        mother: "head",
        wife: "child_in_law",
        kid: "grandchild",
        father: "other",
    }


async def test_a_former_spouse_moves_back_in_by_a_marriage(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head married the lodger living with him (recorded here), they divorced, and
    she moved out. Moving back in as his spouse was recorded (201), the record showing
    the two divorced and married again by nothing, which a relationship correction to the
    spouse refuses ("a marriage records a new one", ADR 0016). Now refused alike: 422 at
    the member's relationship, nothing written; their marriage recorded with her joining
    brings her in as the head's spouse."""
    plan = intake.plan(shape="unemployed_single")
    other_sex = Sex.FEMALE if plan.members[0].sex is Sex.MALE else Sex.MALE
    plan.members.append(_lodger(intake, other_sex, (35, 45), EmploymentStatus.UNEMPLOYED))
    household = await intake.register(plan)
    head, lodger = household.person_ids
    couple = {"person_id": head, "spouse_person_id": lodger}
    await intake.change(household, {"kind": "marriage", "married_on": "2026-01-10"} | couple)
    await intake.change(household, {"kind": "divorce", "divorced_on": "2026-01-20"} | couple)
    await intake.change(
        household, {"kind": "move_out", "person_id": lodger, "moved_on": "2026-01-25"}
    )
    her = plan.payload()["members"][1] | {"relationship": "spouse"}
    move_in = {"kind": "move_in", "moved_on": "2026-02-10", "member": her}
    problem = await refused_change(intake, intake_engine, household, move_in)
    [error] = problem["errors"]
    assert error["pointer"] == "/body/member/relationship", problem
    assert "the member and the head divorced" in error["detail"], problem
    married = await intake.change(
        household,
        {"kind": "marriage", "person_id": head, "married_on": "2026-02-10", "spouse": her},
    )
    relationships = {
        m["person_id"]: m["relationship"] for m in married["household"]["members"] if m["active"]
    }
    assert relationships == {head: "head", lodger: "spouse"}


async def test_a_spouse_moving_in_while_the_head_is_married_to_a_member_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A record made before 3 Dec 2026: the son married the lodger here, became head, and
    she was given as his other (now refused, above; set here as such a record holds it).
    The head has no spouse by the relationships, and a woman moving in as his spouse was
    recorded (201): the record showed him with two wives, which a relationship correction
    to the spouse refuses. Now 422 at the member's relationship, nothing written, pointing
    at the correction of the wife's relationship, after which the move in is the head
    already having a spouse."""
    household, head, son, wife = await _the_son_married_to_the_lodger(intake)
    await intake.change(
        household,
        {
            "kind": "death",
            "person_id": head,
            "date_of_death": "2026-02-20",
            "new_head_person_id": son,
            "relationships": {wife: "spouse"},
        },
    )
    async with intake_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE household_member SET relationship = 'other'"
                " WHERE household_id = :household AND person_id = :wife AND active"
            ),
            {"household": household.id, "wife": wife},
        )
    second = {
        "name": "杨秀兰",
        "id_number": intake.synthesizer.id_number(date(1999, 5, 5), Sex.FEMALE),
        "relationship": "spouse",
        "employment_status": "unemployed",
    }
    move_in = {"kind": "move_in", "moved_on": "2026-02-25", "member": second}
    problem = await refused_change(intake, intake_engine, household, move_in)
    [error] = problem["errors"]
    assert error["pointer"] == "/body/member/relationship", problem
    assert "the head married to another member" in error["detail"], problem
    assert "member_change" in error["detail"], problem


async def test_derived_relationships_to_the_new_head_keep_a_registrations_age_order(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The head (65-70) lives with his second wife (30-32), his son (40-42) and a
    grandchild (33-35). He dies: with the son as head, the young widow was derived the
    son's parent though younger than him; with the widow as head, the son and the
    grandchild were derived her child and grandchild though older than her (201 both),
    which a registration refuses. Now such a code is not derived but asked, 422 at the
    member's ``/relationships/<person id>``, nothing written, and recorded as given."""
    plan = intake.plan(shape="unemployed_single")
    synth = intake.synthesizer
    plan.members[0] = synth.member(Relationship.HEAD, Sex.MALE, (65, 70), EmploymentStatus.RETIRED)
    plan.members += [
        synth.member(Relationship.SPOUSE, Sex.FEMALE, (30, 32), EmploymentStatus.UNEMPLOYED),
        synth.member(Relationship.CHILD, Sex.MALE, (40, 42), EmploymentStatus.UNEMPLOYED),
        synth.member(Relationship.GRANDCHILD, Sex.MALE, (33, 35), EmploymentStatus.UNEMPLOYED),
    ]
    household = await intake.register(plan)
    head, widow, son, grandchild = household.person_ids
    death = {"kind": "death", "person_id": head, "date_of_death": "2026-02-20"}
    son_heads = death | {"new_head_person_id": son, "relationships": {grandchild: "child"}}
    problem = await refused_change(intake, intake_engine, household, son_heads)
    [error] = problem["errors"]
    assert error["pointer"] == f"/body/relationships/{widow}", problem
    assert "the new head's parent" in error["detail"], problem
    widow_heads = death | {"new_head_person_id": widow}
    problem = await refused_change(intake, intake_engine, household, widow_heads)
    assert {e["pointer"] for e in problem["errors"]} == {
        f"/body/relationships/{son}",
        f"/body/relationships/{grandchild}",
    }, problem
    given = {son: "other", grandchild: "other_dependant"}
    died = await intake.change(household, widow_heads | {"relationships": given})
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {widow: "head"} | given


async def test_a_member_left_by_a_spouse_who_moved_out_is_no_new_heads_spouse(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The son married the lodger here, and she moved out (no divorce, no death recorded).
    The head dies and the son heads the household: a second lodger given as his spouse was
    recorded (201), the son married to two women by the registry. A move out ends the
    couple's life here, not the marriage (ADR 0016, 3 Dec 2026, helper hAG): refused, 422
    at her ``/relationships/<person id>``, nothing written; once the son's divorce naming
    him alone is recorded, she is given as his spouse."""
    plan = intake.plan(shape="unemployed_single")
    plan.members.append(
        intake.synthesizer.member(
            Relationship.CHILD, Sex.MALE, (23, 26), EmploymentStatus.UNEMPLOYED
        )
    )
    plan.members.append(_lodger(intake, Sex.FEMALE, (21, 24), EmploymentStatus.UNEMPLOYED))
    plan.members.append(_lodger(intake, Sex.FEMALE, (21, 24), EmploymentStatus.UNEMPLOYED))
    household = await intake.register(plan)
    head, son, wife, lodger = household.person_ids
    couple = {"person_id": son, "spouse_person_id": wife}
    await intake.change(household, {"kind": "marriage", "married_on": "2026-01-10"} | couple)
    await intake.change(
        household, {"kind": "move_out", "person_id": wife, "moved_on": "2026-02-01"}
    )
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-03-01",
        "new_head_person_id": son,
        "relationships": {lodger: "spouse"},
    }
    problem = await refused_change(intake, intake_engine, household, death)
    [error] = problem["errors"]
    assert error["pointer"] == f"/body/relationships/{lodger}", problem
    assert "moved out of the household on 2026-02-01" in error["detail"], problem
    await intake.change(
        household, {"kind": "divorce", "person_id": son, "divorced_on": "2026-02-20"}
    )
    died = await intake.change(household, death)
    relationships = {
        m["person_id"]: m["relationship"] for m in died["household"]["members"] if m["active"]
    }
    assert relationships == {son: "head", lodger: "spouse"}
