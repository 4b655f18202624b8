"""Births, deaths, marriages, moves, bank accounts and members' details: who may change
what."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from dibao_intake.domain.changes import (
    NO_MARRIAGES,
    ActiveMember,
    Address,
    HouseholdState,
    LeftBy,
    Marriages,
    MemberDetails,
    NewMemberDetails,
    PastChange,
    changed_details,
    check_address_change,
    check_bank_account_change,
    check_birth,
    check_death,
    check_marriage,
    check_marriage_in_household,
    check_member_change,
    check_move_in,
    check_move_out,
    marriages_in_household,
    relationships_to_new_head,
    spouse_left_behind,
)
from dibao_intake.domain.codes import (
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    Relationship,
    Sex,
)
from dibao_intake.domain.errors import Violation
from dibao_intake.domain.household import MemberInput, ValidMember, validate_member
from dibao_intake.domain.resident_id import age_on, compose_resident_id
from dibao_intake.domain.working_age import working_age_ends_at_the_latest

TODAY = date(2026, 11, 28)
HEAD, SPOUSE, SON = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
STATE = HouseholdState(
    head_person_id=HEAD,
    members=[
        ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
        ActiveMember(SPOUSE, Relationship.SPOUSE, date(1970, 9, 14)),
        ActiveMember(SON, Relationship.CHILD, date(1995, 1, 5)),
    ],
)


def joining(relationship: Relationship, born: date, seq: int) -> ValidMember:
    sex = Sex.MALE if seq % 2 else Sex.FEMALE  # the ID number's sequence: odd for a man
    raw = MemberInput(
        name="杨小梅",
        id_number=compose_resident_id("620123", born, seq),
        relationship=relationship,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        # A status that fits the age (ADR 0021): adults of working age joining here are
        # out of work; the elderly are not of working age.
        employment_status=(
            EmploymentStatus.UNEMPLOYED
            if age_on(born, TODAY) >= 16 and working_age_ends_at_the_latest(born, sex) > TODAY
            else EmploymentStatus.NOT_OF_WORKING_AGE
        ),
        student=False,
        counted=True,
        exclusion_reason=None,
        exclusion_note=None,
    )
    valid, problems = validate_member(raw, pointer="/member", today=TODAY)
    assert valid is not None, problems
    return valid


def pointers(found: Sequence[Violation]) -> set[str]:
    return {v.pointer for v in found}


def test_a_death_of_a_member_needs_no_new_head() -> None:
    assert check_death(STATE, SON, date(2026, 10, 1), None, today=TODAY) == []


def test_a_death_of_the_head_needs_a_new_head_among_the_living() -> None:
    assert pointers(check_death(STATE, HEAD, date(2026, 10, 1), None, today=TODAY)) == {
        "/new_head_person_id"
    }
    assert pointers(check_death(STATE, HEAD, date(2026, 10, 1), HEAD, today=TODAY)) == {
        "/new_head_person_id"
    }
    assert check_death(STATE, HEAD, date(2026, 10, 1), SPOUSE, today=TODAY) == []


def test_a_death_date_is_neither_future_nor_before_birth() -> None:
    assert pointers(check_death(STATE, SON, date(2027, 1, 1), None, today=TODAY)) == {
        "/date_of_death"
    }
    assert pointers(check_death(STATE, SON, date(1990, 1, 1), None, today=TODAY)) == {
        "/date_of_death"
    }


def test_only_active_members_die_or_move_out() -> None:
    stranger = uuid.uuid4()
    assert pointers(check_death(STATE, stranger, date(2026, 1, 1), None, today=TODAY)) == {
        "/person_id"
    }
    assert pointers(check_move_out(STATE, stranger, date(2026, 1, 1), None, today=TODAY)) == {
        "/person_id"
    }


def test_a_new_head_is_named_only_when_the_head_leaves() -> None:
    assert pointers(check_move_out(STATE, SON, date(2026, 1, 1), SPOUSE, today=TODAY)) == {
        "/new_head_person_id"
    }
    assert check_move_out(STATE, HEAD, date(2026, 1, 1), SON, today=TODAY) == []


def test_a_newborn_is_a_child_or_grandchild() -> None:
    grandchild = joining(Relationship.GRANDCHILD, date(2026, 9, 1), 12)
    assert check_birth(STATE, grandchild, today=TODAY) == []
    sibling = joining(Relationship.SIBLING, date(2026, 9, 1), 12)
    assert pointers(check_birth(STATE, sibling, today=TODAY)) == {"/member/relationship"}


def test_a_birth_registers_a_child_under_18_however_late() -> None:
    """A child left without hukou is registered years late, by a birth dated on the day of
    birth; from 18 a person never registered is no birth (ADR 0016, 3 Dec 2026)."""
    late = joining(Relationship.CHILD, date(2008, 11, 29), 12)  # 17 on TODAY, 18 tomorrow
    assert check_birth(STATE, late, today=TODAY) == []
    of_age = joining(Relationship.CHILD, date(2008, 11, 28), 12)  # 18 on TODAY
    [refused] = check_birth(STATE, of_age, today=TODAY)
    assert refused.pointer == "/member/id_number"
    assert "a person of 18 on 2026-11-28" in refused.detail
    forty_five = joining(Relationship.CHILD, date(1981, 6, 1), 11)
    assert pointers(check_birth(STATE, forty_five, today=TODAY)) == {"/member/id_number"}


def test_moving_in_cannot_add_a_second_head_or_spouse() -> None:
    assert pointers(
        check_move_in(
            STATE, joining(Relationship.SPOUSE, date(1971, 1, 1), 12), date(2026, 1, 1), today=TODAY
        )
    ) == {"/member/relationship"}
    assert pointers(
        check_move_in(
            STATE, joining(Relationship.HEAD, date(1971, 1, 1), 12), date(2026, 1, 1), today=TODAY
        )
    ) == {"/member/relationship"}
    assert (
        check_move_in(
            STATE, joining(Relationship.PARENT, date(1940, 1, 1), 12), date(2026, 1, 1), today=TODAY
        )
        == []
    )


def test_a_son_marrying_brings_in_a_child_in_law() -> None:
    bride = joining(Relationship.CHILD_IN_LAW, date(1997, 3, 3), 22)
    assert check_marriage(STATE, SON, date(2026, 5, 1), bride, today=TODAY) == []
    wrong = joining(Relationship.SPOUSE, date(1997, 3, 3), 22)
    assert pointers(check_marriage(STATE, SON, date(2026, 5, 1), wrong, today=TODAY)) == {
        "/spouse/relationship"
    }
    assert check_marriage(STATE, SON, date(2026, 5, 1), None, today=TODAY) == []


def test_the_head_already_married_cannot_add_a_second_spouse() -> None:
    second = joining(Relationship.SPOUSE, date(1975, 3, 3), 22)
    assert pointers(check_marriage(STATE, HEAD, date(2026, 5, 1), second, today=TODAY)) == {
        "/spouse"
    }


def test_a_custody_agreement_needs_its_document_and_custodian() -> None:
    assert (
        check_bank_account_change(
            custody_agreement=False, custody_document_id=None, custodian_subject=None
        )
        == []
    )
    assert pointers(
        check_bank_account_change(
            custody_agreement=True, custody_document_id=None, custodian_subject=None
        )
    ) == {"/custody_document_id", "/custodian_subject"}
    assert (
        check_bank_account_change(
            custody_agreement=True, custody_document_id=uuid.uuid4(), custodian_subject="cw-1"
        )
        == []
    )
    assert pointers(
        check_bank_account_change(
            custody_agreement=False, custody_document_id=None, custodian_subject="cw-1"
        )
    ) == {"/custody_agreement"}


def test_a_marriage_needs_both_of_age_and_nobody_already_married() -> None:
    groom = joining(Relationship.CHILD_IN_LAW, date(2010, 3, 3), 23)
    # The groom's age is his ID number's: refused at it, never by his name.
    assert pointers(check_marriage(STATE, SON, date(2026, 5, 1), groom, today=TODAY)) == {
        "/spouse/id_number"
    }
    assert pointers(check_marriage(STATE, SON, date(1994, 5, 1), None, today=TODAY)) == {
        "/married_on"
    }
    assert pointers(check_marriage(STATE, SPOUSE, date(2026, 5, 1), None, today=TODAY)) == {
        "/person_id"
    }
    assert pointers(check_marriage(STATE, HEAD, date(2026, 5, 1), None, today=TODAY)) == {
        "/person_id"
    }


def test_only_the_heads_spouse_is_a_spouse() -> None:
    widowed = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(SON, Relationship.PARENT, date(1940, 1, 5)),
        ],
    )
    second = joining(Relationship.SPOUSE, date(1942, 3, 3), 22)
    assert pointers(check_marriage(widowed, SON, date(2026, 5, 1), second, today=TODAY)) == {
        "/spouse/relationship"
    }


def test_a_spouse_stands_to_the_head_as_the_member_marrying_does() -> None:
    # A brother's wife is no child of the head, nor a grandmother's husband a grandchild;
    # where the codes have no in-law (a sibling's, a grandchild's spouse), other is.
    brother, grandmother = uuid.uuid4(), uuid.uuid4()
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(brother, Relationship.SIBLING, date(1975, 6, 1)),
            ActiveMember(grandmother, Relationship.GRANDPARENT, date(1930, 2, 1)),
        ],
    )
    on = date(2026, 5, 1)
    for relationship in (Relationship.CHILD, Relationship.GRANDCHILD, Relationship.CHILD_IN_LAW):
        wife = joining(relationship, date(1990, 3, 3), 22)
        assert pointers(check_marriage(state, brother, on, wife, today=TODAY)) == {
            "/spouse/relationship"
        }, relationship
    for relationship in (Relationship.OTHER, Relationship.OTHER_DEPENDANT):
        wife = joining(relationship, date(1990, 3, 3), 22)
        assert check_marriage(state, brother, on, wife, today=TODAY) == [], relationship
    for relationship in (Relationship.GRANDCHILD, Relationship.SIBLING):
        husband = joining(relationship, date(1992, 3, 3), 23)
        assert pointers(check_marriage(state, grandmother, on, husband, today=TODAY)) == {
            "/spouse/relationship"
        }, relationship
    husband = joining(Relationship.GRANDPARENT, date(1932, 3, 3), 23)
    assert check_marriage(state, grandmother, on, husband, today=TODAY) == []


def test_nobody_leaves_before_joining_or_moves_in_before_birth() -> None:
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(SON, Relationship.CHILD, date(1995, 1, 5), joined_on=date(2026, 6, 1)),
        ],
    )
    assert pointers(check_death(state, SON, date(2026, 5, 1), None, today=TODAY)) == {
        "/date_of_death"
    }
    assert pointers(check_move_out(state, SON, date(2026, 5, 1), None, today=TODAY)) == {
        "/moved_on"
    }
    assert check_death(state, SON, date(2026, 6, 1), None, today=TODAY) == []
    late = joining(Relationship.OTHER, date(2020, 1, 1), 12)
    assert pointers(check_move_in(state, late, date(2019, 1, 1), today=TODAY)) == {"/moved_on"}


def test_the_new_head_was_in_the_household_on_the_day_the_head_left() -> None:
    """A member the record shows joining after the head's death or move out was not in
    the household then and cannot have headed it from that day (ADR 0016): refused at
    new_head_person_id naming the day they joined. Joining on the day itself is in time;
    a member registered with the household carries no day and always was."""
    newcomer = uuid.uuid4()
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            *STATE.members,
            ActiveMember(
                newcomer, Relationship.OTHER, date(1990, 3, 3), joined_on=date(2026, 6, 1)
            ),
        ],
    )
    died = check_death(state, HEAD, date(2026, 5, 20), newcomer, today=TODAY)
    assert pointers(died) == {"/new_head_person_id"}
    assert "joined the household on 2026-06-01, after 2026-05-20" in died[0].detail
    moved = check_move_out(state, HEAD, date(2026, 5, 20), newcomer, today=TODAY)
    assert pointers(moved) == {"/new_head_person_id"}
    assert "2026-06-01" in moved[0].detail
    assert check_death(state, HEAD, date(2026, 6, 1), newcomer, today=TODAY) == []
    assert check_move_out(state, HEAD, date(2026, 5, 20), SPOUSE, today=TODAY) == []


def test_when_every_remaining_member_joined_after_the_head_left_any_of_them_is_named() -> None:
    """The head registered alone; a lodger and a nephew moved in later. The head's death
    (or move out) dated before both joined finds nobody the record shows in the household
    then: the day, which stops or changes the allowance, is recorded as it is, and either
    may be named head (the naming is forced, as in ADR 0016's reverted rule); a new head
    must still be named."""
    lodger, nephew = uuid.uuid4(), uuid.uuid4()
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1950, 4, 2)),
            ActiveMember(lodger, Relationship.OTHER, date(1980, 1, 1), joined_on=date(2026, 7, 1)),
            ActiveMember(nephew, Relationship.OTHER, date(1985, 1, 1), joined_on=date(2026, 6, 1)),
        ],
    )
    for check in (check_death, check_move_out):
        for heir in (lodger, nephew):
            assert check(state, HEAD, date(2026, 5, 20), heir, today=TODAY) == []
        [violation] = check(state, HEAD, date(2026, 5, 20), None, today=TODAY)
        assert violation.pointer == "/new_head_person_id"
        assert violation.detail == "the head leaves: name the new head"
    # Once the nephew is there (6 Jun), the lodger (1 Jul) is not named in his stead.
    [violation] = check_death(state, HEAD, date(2026, 6, 10), lodger, today=TODAY)
    assert "joined the household on 2026-07-01, after 2026-06-10" in violation.detail
    assert check_death(state, HEAD, date(2026, 6, 1), nephew, today=TODAY) == []


# --- the head leaves: everyone's relationship to the new head -------------------------------

GRANDMA, GRANDSON, DAUGHTER_IN_LAW = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
FAMILY = HouseholdState(
    head_person_id=HEAD,
    members=[
        *STATE.members,
        ActiveMember(GRANDMA, Relationship.PARENT, date(1940, 2, 2)),
        ActiveMember(GRANDSON, Relationship.GRANDCHILD, date(2020, 6, 1)),
        ActiveMember(DAUGHTER_IN_LAW, Relationship.CHILD_IN_LAW, date(1996, 3, 3)),
    ],
)


def test_the_widow_as_head_keeps_the_children_and_takes_the_parents_as_in_laws() -> None:
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SPOUSE, {}, on=TODAY)
    assert found == []
    assert rebased == {
        SPOUSE: Relationship.HEAD,
        SON: Relationship.CHILD,
        GRANDMA: Relationship.PARENT_IN_LAW,
        GRANDSON: Relationship.GRANDCHILD,
        DAUGHTER_IN_LAW: Relationship.CHILD_IN_LAW,
    }


def test_a_son_as_head_asks_for_what_the_old_relationships_do_not_tell() -> None:
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SON, {}, on=TODAY)
    # The old head's grandson may be the son's child or a nephew; the daughter-in-law
    # his wife or his brother's.
    assert pointers(found) == {f"/relationships/{GRANDSON}", f"/relationships/{DAUGHTER_IN_LAW}"}
    assert rebased[SPOUSE] is Relationship.PARENT
    assert rebased[GRANDMA] is Relationship.GRANDPARENT
    given = {GRANDSON: Relationship.CHILD, DAUGHTER_IN_LAW: Relationship.SPOUSE}
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SON, given, on=TODAY)
    assert found == []
    assert rebased[GRANDSON] is Relationship.CHILD
    assert rebased[DAUGHTER_IN_LAW] is Relationship.SPOUSE


def test_given_relationships_must_name_staying_members_and_leave_one_spouse() -> None:
    given = {
        HEAD: Relationship.OTHER,  # the one leaving
        SON: Relationship.HEAD,  # the heir is named elsewhere
        GRANDSON: Relationship.SPOUSE,
        DAUGHTER_IN_LAW: Relationship.SPOUSE,
    }
    _, found = relationships_to_new_head(FAMILY, HEAD, SON, given, on=TODAY)
    # The grandson, a child, is no spouse at all (under 18), besides being a second one.
    assert pointers(found) == {
        f"/relationships/{HEAD}",
        f"/relationships/{SON}",
        f"/relationships/{GRANDSON}",
        "/relationships",
    }


def test_given_relationships_to_the_new_head_are_held_to_a_registrations_rules() -> None:
    """A code given for the new head is refused where a registration would refuse it
    (ADR 0016, 3 Dec 2026): the grandson of 6 as the son's spouse or parent, the
    grandmother as his child; the daughter-in-law as his wife is sound."""
    for given, why in (
        ({GRANDSON: Relationship.SPOUSE}, "nobody younger is married"),
        ({GRANDSON: Relationship.PARENT}, "older than the head"),
        ({GRANDMA: Relationship.CHILD}, "younger than the head"),
    ):
        _, found = relationships_to_new_head(
            FAMILY, HEAD, SON, {DAUGHTER_IN_LAW: Relationship.SPOUSE} | given, on=TODAY
        )
        [(person_id, _)] = given.items()
        assert [v.pointer for v in found if why in v.detail] == [f"/relationships/{person_id}"]


def test_two_parents_of_one_sex_are_not_taken_for_the_new_heads_spouse() -> None:
    """The head dies and his mother heads the household; his father would be derived as
    her spouse, but another mother of the head (his late father's second wife) was too,
    though two women are no couple (ADR 0016, 3 Dec 2026): her relationship is asked."""
    mother, stepmother, father = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    head = ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2), sex=Sex.MALE)
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            head,
            ActiveMember(mother, Relationship.PARENT, date(1944, 1, 1), sex=Sex.FEMALE),
            ActiveMember(stepmother, Relationship.PARENT, date(1950, 1, 1), sex=Sex.FEMALE),
        ],
    )
    rebased, found = relationships_to_new_head(state, HEAD, mother, {}, on=TODAY)
    assert pointers(found) == {f"/relationships/{stepmother}"}
    given = {stepmother: Relationship.OTHER}
    rebased, found = relationships_to_new_head(state, HEAD, mother, given, on=TODAY)
    assert (found, rebased[stepmother]) == ([], Relationship.OTHER)
    # A father and a mother are still taken for a couple: he is derived her spouse.
    with_father = HouseholdState(
        head_person_id=HEAD,
        members=[
            head,
            ActiveMember(mother, Relationship.PARENT, date(1944, 1, 1), sex=Sex.FEMALE),
            ActiveMember(father, Relationship.PARENT, date(1942, 1, 1), sex=Sex.MALE),
        ],
    )
    rebased, found = relationships_to_new_head(with_father, HEAD, mother, {}, on=TODAY)
    assert (found, rebased[father]) == ([], Relationship.SPOUSE)


def test_a_member_married_to_another_member_is_no_spouse_of_the_new_head() -> None:
    """What a relationship correction to the spouse refuses of the record's marriages, the
    relationships given to a new head refuse alike (ADR 0016, 3 Dec 2026): a lodger the
    record shows married to the grandmother, given as the widow's spouse; a lodger given
    as the son's spouse while the record shows the son married to his wife. The widow's
    own marriage, to the head who dies, ends with the death and bars nothing."""
    lodger = uuid.uuid4()
    state = replace(
        FAMILY,
        members=[*FAMILY.members, ActiveMember(lodger, Relationship.OTHER, date(1960, 1, 1))],
    )
    to_grandma = Marriages({GRANDMA: lodger, lodger: GRANDMA, HEAD: SPOUSE, SPOUSE: HEAD}, {})
    given = {lodger: Relationship.SPOUSE}
    _, found = relationships_to_new_head(state, HEAD, SPOUSE, given, on=TODAY, marriages=to_grandma)
    assert [(v.pointer, v.detail) for v in found] == [
        (
            f"/relationships/{lodger}",
            "the record shows the member married to another member by a marriage recorded here",
        )
    ]
    to_son = Marriages({SON: DAUGHTER_IN_LAW, DAUGHTER_IN_LAW: SON, HEAD: SPOUSE, SPOUSE: HEAD}, {})
    given = {GRANDSON: Relationship.CHILD, DAUGHTER_IN_LAW: Relationship.OTHER} | given
    _, found = relationships_to_new_head(state, HEAD, SON, given, on=TODAY, marriages=to_son)
    assert [(v.pointer, v.detail) for v in found] == [
        (
            f"/relationships/{lodger}",
            "the record shows the new head married to another member by a marriage recorded here",
        ),
        # And his wife, whom the record shows married to him, is no other (same day, later).
        (
            f"/relationships/{DAUGHTER_IN_LAW}",
            "the record shows the member married to the new head by a marriage recorded"
            " here: the new head's spouse (a divorce ends a marriage)",
        ),
    ]
    # Unmarried by the record, the lodger may be given as the widow's spouse.
    _, found = relationships_to_new_head(
        state, HEAD, SPOUSE, {lodger: Relationship.SPOUSE}, on=TODAY, marriages=to_son
    )
    assert found == []


def test_a_member_married_elsewhere_is_no_spouse_of_the_new_head() -> None:
    """A marriage to a spouse living elsewhere bars the new head's spouse as it bars a
    correction to the spouse (ADR 0016, 3 Dec 2026): the lodger's own, and the new head's
    unless the member moved in on or after its day (read as that spouse moving in)."""
    lodger, newcomer = uuid.uuid4(), uuid.uuid4()
    state = replace(
        FAMILY,
        members=[
            *FAMILY.members,
            ActiveMember(lodger, Relationship.OTHER, date(1960, 1, 1)),
            ActiveMember(
                newcomer, Relationship.OTHER, date(1962, 1, 1), joined_on=date(2026, 6, 1)
            ),
        ],
    )
    lodger_married = Marriages({}, {}, elsewhere={lodger: date(2026, 5, 1)})
    [violation] = relationships_to_new_head(
        state,
        HEAD,
        SPOUSE,
        {lodger: Relationship.SPOUSE, newcomer: Relationship.OTHER},
        on=TODAY,
        marriages=lodger_married,
    )[1]
    assert violation.pointer == f"/relationships/{lodger}"
    assert "the member married to a spouse living elsewhere" in violation.detail
    widow_married = Marriages({}, {}, elsewhere={SPOUSE: date(2026, 5, 1)})
    [violation] = relationships_to_new_head(
        state,
        HEAD,
        SPOUSE,
        {lodger: Relationship.SPOUSE, newcomer: Relationship.OTHER},
        on=TODAY,
        marriages=widow_married,
    )[1]
    assert violation.pointer == f"/relationships/{lodger}"
    assert "the new head married to a spouse living elsewhere" in violation.detail
    rebased, found = relationships_to_new_head(
        state,
        HEAD,
        SPOUSE,
        {newcomer: Relationship.SPOUSE, lodger: Relationship.OTHER},
        on=TODAY,
        marriages=widow_married,
    )
    assert (found, rebased[newcomer]) == ([], Relationship.SPOUSE)


def test_a_parent_the_record_shows_divorced_or_remarried_is_not_derived_a_spouse() -> None:
    """The head's mother named head takes his father as her spouse, unless the record's
    marriages refuse it as they refuse a correction to the spouse (ADR 0016, 3 Dec 2026):
    the two divorced, or he is married here to his second wife (who, of the mother's sex,
    is asked too). Either is asked, saying why; given, they are recorded."""
    mother, father, stepmother = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    head = ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2), sex=Sex.MALE)
    parents = [
        head,
        ActiveMember(mother, Relationship.PARENT, date(1944, 1, 1), sex=Sex.FEMALE),
        ActiveMember(father, Relationship.PARENT, date(1942, 1, 1), sex=Sex.MALE),
    ]
    state = HouseholdState(head_person_id=HEAD, members=parents)
    divorced = Marriages({}, {}, divorced=frozenset({frozenset({mother, father})}))
    _, found = relationships_to_new_head(state, HEAD, mother, {}, on=TODAY, marriages=divorced)
    [violation] = found
    assert violation.pointer == f"/relationships/{father}"
    assert "the member and the new head divorced" in violation.detail
    rebased, found = relationships_to_new_head(
        state, HEAD, mother, {father: Relationship.OTHER}, on=TODAY, marriages=divorced
    )
    assert (found, rebased[father]) == ([], Relationship.OTHER)
    with_second_wife = replace(
        state,
        members=[
            *parents,
            ActiveMember(stepmother, Relationship.PARENT, date(1950, 1, 1), sex=Sex.FEMALE),
        ],
    )
    remarried = replace(divorced, married_to={father: stepmother, stepmother: father})
    _, found = relationships_to_new_head(
        with_second_wife, HEAD, mother, {}, on=TODAY, marriages=remarried
    )
    assert pointers(found) == {f"/relationships/{father}", f"/relationships/{stepmother}"}
    # Neither divorced nor married to another, the father is her spouse as before.
    rebased, found = relationships_to_new_head(state, HEAD, mother, {}, on=TODAY)
    assert (found, rebased[father]) == ([], Relationship.SPOUSE)


TEEN = uuid.uuid4()
"""Born 2010-03-01 (16 on 2026-03-01), moved in on 2026-06-01."""
WITH_TEEN = HouseholdState(
    head_person_id=HEAD,
    members=[
        *STATE.members,
        ActiveMember(TEEN, Relationship.GRANDCHILD, date(2010, 3, 1), date(2026, 6, 1)),
    ],
)
RECORDED = MemberDetails(
    name="王秀兰",
    disability_grade=DisabilityGrade.NONE,
    seriously_ill=False,
    employment_status=EmploymentStatus.UNEMPLOYED,
    student=False,
    counted=True,
    exclusion_reason=None,
    exclusion_note=None,
)
IMPRISONED = MemberDetails(
    name="王秀兰",
    disability_grade=DisabilityGrade.NONE,
    seriously_ill=False,
    employment_status=EmploymentStatus.UNABLE_TO_WORK,
    student=False,
    counted=False,
    exclusion_reason=ExclusionReason.PROVINCIAL_OTHER,
    exclusion_note="省规定：长期外出务工",
)
ON = date(2026, 11, 2)


def member_change(
    new: NewMemberDetails,
    current: MemberDetails | None = RECORDED,
    person_id: uuid.UUID = SPOUSE,
    on: date = ON,
    state: HouseholdState = STATE,
) -> tuple[MemberDetails | None, list[Violation]]:
    return check_member_change(state, person_id, current, new, on, today=TODAY)


def test_a_member_change_changes_only_the_details_given() -> None:
    after, found = member_change(NewMemberDetails(disability_grade=DisabilityGrade.GRADE_2))
    assert found == []
    assert after is not None
    assert after.disability_grade is DisabilityGrade.GRADE_2
    assert changed_details(RECORDED, after) == {"disability_grade": "2"}
    after, found = member_change(
        NewMemberDetails(
            seriously_ill=True,
            employment_status=EmploymentStatus.UNABLE_TO_WORK,
            disability_grade=DisabilityGrade.NONE,
        )
    )
    assert found == []
    assert after is not None
    assert changed_details(RECORDED, after) == {
        "seriously_ill": True,
        "employment_status": "unable_to_work",
    }


def test_a_member_change_is_of_an_active_member_on_a_day_they_were_one() -> None:
    grade = NewMemberDetails(disability_grade=DisabilityGrade.GRADE_1)
    assert pointers(member_change(grade, person_id=uuid.uuid4())[1]) == {"/person_id"}
    assert pointers(member_change(grade, current=None)[1]) == {"/person_id"}
    assert pointers(member_change(grade, on=date(2026, 11, 29))[1]) == {"/effective_on"}
    assert pointers(member_change(grade, on=date(1970, 1, 1))[1]) == {"/effective_on"}
    before_joining = member_change(grade, person_id=TEEN, on=date(2026, 5, 31), state=WITH_TEEN)
    assert pointers(before_joining[1]) == {"/effective_on"}
    assert member_change(grade, person_id=TEEN, on=date(2026, 6, 1), state=WITH_TEEN)[1] == []


def test_a_member_change_is_not_dated_before_the_members_later_recorded_one() -> None:
    """The record holds the details as of the latest change: one dated before it would
    pass for the current details while the later one holds. The same day is a change
    after it; a name correction is dated by nothing."""
    grade = NewMemberDetails(disability_grade=DisabilityGrade.GRADE_1)
    later = date(2026, 11, 10)
    after, found = check_member_change(
        STATE, SPOUSE, RECORDED, grade, ON, today=TODAY, latest_on=later
    )
    assert (after, pointers(found)) == (None, {"/effective_on"})
    assert "2026-11-10" in found[0].detail
    for on in (later, date(2026, 11, 20)):
        assert (
            check_member_change(STATE, SPOUSE, RECORDED, grade, on, today=TODAY, latest_on=later)[1]
            == []
        )
    name = NewMemberDetails(name="王秀芝")
    after, found = check_member_change(
        STATE, SPOUSE, RECORDED, name, ON, today=TODAY, latest_on=later
    )
    assert found == []
    assert after is not None
    assert changed_details(RECORDED, after) == {"name": "王秀芝"}


def test_a_member_change_must_change_something() -> None:
    same = NewMemberDetails(disability_grade=DisabilityGrade.NONE, counted=True)
    after, found = member_change(same)
    assert after is None
    assert pointers(found) == {"/disability_grade", "/counted"}
    assert pointers(member_change(NewMemberDetails())[1]) == {""}
    # One detail the same, another changed: a change.
    school = NewMemberDetails(disability_grade=DisabilityGrade.NONE, student=True)
    assert member_change(school)[1] == []


MAN, IN_LAW, TENANT, MOTHER, FATHER = (uuid.uuid4() for _ in range(5))
CORRECTING = HouseholdState(
    head_person_id=MAN,
    members=[
        ActiveMember(MAN, Relationship.HEAD, date(1960, 4, 2), sex=Sex.MALE),
        ActiveMember(IN_LAW, Relationship.CHILD_IN_LAW, date(1990, 6, 6), sex=Sex.FEMALE),
        ActiveMember(TENANT, Relationship.OTHER, date(1963, 7, 1), sex=Sex.FEMALE),
        ActiveMember(MOTHER, Relationship.PARENT, date(1938, 1, 5), sex=Sex.FEMALE),
        ActiveMember(FATHER, Relationship.PARENT, date(1936, 2, 2), sex=Sex.MALE),
    ],
)
"""A widower head, a child-in-law, a tenant (other), his two parents (taken to be a couple)."""
WHY = "登记时与户主关系录入有误"


def correction(
    person_id: uuid.UUID,
    relationship: Relationship,
    *,
    state: HouseholdState = CORRECTING,
    note: str | None = WHY,
    marriages: Marriages = NO_MARRIAGES,
    latest_on: date | None = None,
) -> tuple[MemberDetails | None, list[Violation]]:
    return check_member_change(
        state,
        person_id,
        RECORDED,
        NewMemberDetails(),
        ON,
        today=TODAY,
        latest_on=latest_on,
        relationship=relationship,
        note=note,
        marriages=marriages,
    )


def test_a_relationship_recorded_wrongly_is_corrected_with_a_note_saying_why() -> None:
    """A grandchild recorded as a child-in-law: corrected, the details as recorded (no
    change of details, so bound by no later one), and only with a note."""
    assert correction(IN_LAW, Relationship.GRANDCHILD) == (RECORDED, [])
    later = date(2026, 11, 20)
    assert correction(IN_LAW, Relationship.GRANDCHILD, latest_on=later) == (RECORDED, [])
    for note in (None, ""):
        assert pointers(correction(IN_LAW, Relationship.GRANDCHILD, note=note)[1]) == {"/note"}
    # With a change of details besides, the details change too.
    after, found = check_member_change(
        CORRECTING,
        IN_LAW,
        RECORDED,
        NewMemberDetails(student=True),
        ON,
        today=TODAY,
        relationship=Relationship.GRANDCHILD,
        note=WHY,
    )
    assert found == []
    assert after is not None
    assert after.student


def test_a_relationship_correction_is_refused_what_a_registration_refuses() -> None:
    """Not the head (nor the head's own relationship), not what is recorded, not a second
    spouse of the head nor one of the head's sex, a parent or grandparent older than the
    head and a child or grandchild younger: the registration's rules, at /relationship."""
    refused = [
        (TENANT, Relationship.HEAD),
        (MAN, Relationship.CHILD),
        (IN_LAW, Relationship.CHILD_IN_LAW),
        (TENANT, Relationship.PARENT),  # born after the head
        (TENANT, Relationship.GRANDPARENT),
        (MOTHER, Relationship.CHILD),  # born before the head
        (MOTHER, Relationship.GRANDCHILD),
        (FATHER, Relationship.SPOUSE),  # a man, as the head is
    ]
    for person_id, relationship in refused:
        after, found = correction(person_id, relationship)
        assert (after, pointers(found)) == (None, {"/relationship"}), (person_id, relationship)
    # The tenant, a woman, may be corrected to the head's spouse; with a spouse recorded
    # beside her, not.
    assert correction(TENANT, Relationship.SPOUSE)[1] == []
    wife = ActiveMember(uuid.uuid4(), Relationship.SPOUSE, date(1962, 1, 1), sex=Sex.FEMALE)
    married = HouseholdState(MAN, [*CORRECTING.members, wife])
    _, found = correction(TENANT, Relationship.SPOUSE, state=married)
    assert [v.detail for v in found] == ["the head already has a spouse"]


def test_a_relationship_correction_keeps_the_records_marriages() -> None:
    """A marriage recorded here binds: the tenant married to the in-law cannot be
    corrected to the head's spouse, nor anybody while the head is married to a member
    recorded otherwise; that member may be corrected to the spouse (what the marriage
    says), and to nothing else (a divorce ends it). A divorce of the head and a member
    recorded: no correction makes them married again. Couples read from relationships
    (the head's two parents) are no bar: a parent corrected to other is no parent."""
    wed = PastChange(
        "marriage",
        date(2026, 2, 14),
        {"person_id": str(TENANT), "spouse_person_id": str(IN_LAW)},
    )
    lodger_married = marriages_in_household([wed], head_person_id=MAN, left_as={})
    _, found = correction(TENANT, Relationship.SPOUSE, marriages=lodger_married)
    assert pointers(found) == {"/relationship"}
    assert "married to another member" in found[0].detail
    head_wed = PastChange(
        "marriage", date(2026, 2, 14), {"person_id": str(MAN), "spouse_person_id": str(IN_LAW)}
    )
    head_married = marriages_in_household([head_wed], head_person_id=MAN, left_as={})
    _, found = correction(TENANT, Relationship.SPOUSE, marriages=head_married)
    assert [v.detail for v in found] == [
        "the record shows the head married to another member by a marriage recorded here"
    ]
    assert correction(IN_LAW, Relationship.SPOUSE, marriages=head_married)[1] == []
    _, found = correction(IN_LAW, Relationship.GRANDCHILD, marriages=head_married)
    assert pointers(found) == {"/relationship"}
    assert "a divorce ends it" in found[0].detail
    divorced = PastChange(
        "divorce",
        date(2026, 3, 1),
        {"person_id": str(MAN), "spouse_person_id": str(IN_LAW), "relationships": {}},
    )
    apart = marriages_in_household([head_wed, divorced], head_person_id=MAN, left_as={})
    _, found = correction(IN_LAW, Relationship.SPOUSE, marriages=apart)
    assert pointers(found) == {"/relationship"}
    assert "divorced" in found[0].detail
    assert correction(MOTHER, Relationship.OTHER)[1] == []


def test_a_relationship_correction_to_the_spouse_of_one_married_elsewhere_is_refused() -> None:
    """A marriage recorded without the spouse joining, not ended (no divorce naming the
    one married alone, no spouse_death): the member is no head's spouse by a correction
    (two spouses by the record), nor anybody while the head is so married, naming whose
    marriage, its day and what ends it. Once ended, the correction is made. A member who
    joined on or after the head's marriage's day may be the wife who lived elsewhere and
    moved in since (as a move in as the spouse is read); one registered with the
    household or here before that day is not."""
    tenant_wed = PastChange("marriage", date(2026, 1, 10), {"person_id": str(TENANT)})
    tenant_married = marriages_in_household([tenant_wed], head_person_id=MAN, left_as={})
    after, found = correction(TENANT, Relationship.SPOUSE, marriages=tenant_married)
    assert (after, pointers(found)) == (None, {"/relationship"})
    [refusal] = found
    assert "the member married to a spouse living elsewhere" in refusal.detail
    assert "2026-01-10" in refusal.detail
    assert "a divorce" in refusal.detail
    assert "spouse_death" in refusal.detail
    for kind in ("divorce", "spouse_death"):
        end = PastChange(kind, date(2026, 2, 1), {"person_id": str(TENANT)})
        ended = marriages_in_household([tenant_wed, end], head_person_id=MAN, left_as={})
        assert correction(TENANT, Relationship.SPOUSE, marriages=ended)[1] == [], kind
    head_wed = PastChange("marriage", date(2026, 1, 12), {"person_id": str(MAN)})
    head_married = marriages_in_household([head_wed], head_person_id=MAN, left_as={})
    _, found = correction(TENANT, Relationship.SPOUSE, marriages=head_married)
    [refusal] = found
    assert refusal.pointer == "/relationship"
    assert "the head married to a spouse living elsewhere" in refusal.detail
    assert "2026-01-12" in refusal.detail
    assert "spouse_death" in refusal.detail
    both = marriages_in_household([tenant_wed, head_wed], head_person_id=MAN, left_as={})
    _, found = correction(TENANT, Relationship.SPOUSE, marriages=both)
    assert len(found) == 2
    assert {v.pointer for v in found} == {"/relationship"}
    # Corrected to something else, no marriage elsewhere bars it.
    assert correction(TENANT, Relationship.OTHER_DEPENDANT, marriages=both)[1] == []
    wife = ActiveMember(
        uuid.uuid4(), Relationship.OTHER, date(1962, 3, 3), date(2026, 1, 12), Sex.FEMALE
    )
    for joined_on, refused in (
        (date(2026, 1, 12), False),
        (date(2026, 2, 1), False),
        (date(2026, 1, 11), True),
    ):
        moved_in = replace(wife, joined_on=joined_on)
        state = HouseholdState(MAN, [*CORRECTING.members, moved_in])
        _, found = correction(
            moved_in.person_id, Relationship.SPOUSE, state=state, marriages=head_married
        )
        assert bool(found) is refused, joined_on


def test_a_relationship_correction_to_the_spouse_is_of_marriageable_age_from_the_start() -> None:
    """A correction says the code was wrong from the start, so the member was the head's
    spouse from the day it was first recorded: the registration day for a member
    registered with the household, the day they joined by a change, the day the head
    joined when later. Both were of marriageable age that day, 20 for a woman and 22 for
    a man (as a registration or a move in as the spouse would have checked; ADR 0016, 3
    Dec 2026, helper hAX); of age by the correction's day is not enough: if the two
    married since, a marriage records it on its day. A marriage of the two recorded here
    was checked on its day; the head's marriage to a spouse living elsewhere, which a
    member who moved in since is read as, binds on its own day. With no day in the
    record, the correction's."""
    head = ActiveMember(MAN, Relationship.HEAD, date(1990, 4, 2), sex=Sex.MALE)
    girl = ActiveMember(uuid.uuid4(), Relationship.OTHER, date(2004, 3, 2), sex=Sex.FEMALE)
    # Registered on the day before her 20th birthday: no wife of the head's then.
    registered = HouseholdState(MAN, [head, girl], registered_on=date(2024, 3, 1))
    after, found = correction(girl.person_id, Relationship.SPOUSE, state=registered)
    assert (after, pointers(found)) == (None, {"/relationship"})
    [refusal] = found
    assert refusal.detail.startswith("the member is under 20 on 2024-03-01, when the household")
    assert "record the marriage on its day (kind marriage, spouse_person_id)" in refusal.detail
    a_day_later = replace(registered, registered_on=date(2024, 3, 2))
    assert correction(girl.person_id, Relationship.SPOUSE, state=a_day_later) == (RECORDED, [])
    # Joined by a move in: that day, not the registration's.
    for joined_on, refused in ((date(2024, 3, 1), True), (date(2024, 3, 2), False)):
        moved_in = replace(girl, joined_on=joined_on)
        state = HouseholdState(MAN, [head, moved_in], registered_on=date(2020, 1, 1))
        _, found = correction(moved_in.person_id, Relationship.SPOUSE, state=state)
        assert bool(found) is refused, joined_on
        assert all("when the member joined" in v.detail for v in found)
    # The head, a man, under 22 on the day (3 Dec 2026, helper hAX: a man's marriage age);
    # a head who joined after the member, on his day.
    boy = replace(head, birth_date=date(2002, 3, 2))
    woman = replace(girl, birth_date=date(1990, 1, 1))
    state = HouseholdState(MAN, [boy, woman], registered_on=date(2024, 3, 1))
    _, found = correction(woman.person_id, Relationship.SPOUSE, state=state)
    assert [v.detail.split(",")[0] for v in found] == ["the head is under 22 on 2024-03-01"]
    late_head = replace(boy, joined_on=date(2024, 3, 2))
    state = HouseholdState(MAN, [late_head, woman], registered_on=date(2024, 3, 1))
    assert correction(woman.person_id, Relationship.SPOUSE, state=state)[1] == []
    # A marriage of the two recorded here (the heir's wife recorded other): checked then.
    child_bride = replace(girl, birth_date=date(2008, 1, 1), joined_on=date(2020, 1, 1))
    wed = PastChange(
        "marriage",
        date(2026, 2, 14),
        {"person_id": str(MAN), "spouse_person_id": str(child_bride.person_id)},
    )
    wedded = marriages_in_household([wed], head_person_id=MAN, left_as={})
    state = HouseholdState(MAN, [head, child_bride], registered_on=date(2019, 1, 1))
    assert correction(
        child_bride.person_id, Relationship.SPOUSE, state=state, marriages=wedded
    ) == (RECORDED, [])
    # The head's marriage elsewhere on 12 January: a wife who moved in since was 20 then.
    head_wed = PastChange("marriage", date(2026, 1, 12), {"person_id": str(MAN)})
    head_married = marriages_in_household([head_wed], head_person_id=MAN, left_as={})
    for born, refused in ((date(2006, 1, 13), True), (date(2006, 1, 12), False)):
        wife = replace(girl, birth_date=born, joined_on=date(2026, 2, 1))
        state = HouseholdState(MAN, [head, wife], registered_on=date(2024, 3, 1))
        _, found = correction(
            wife.person_id, Relationship.SPOUSE, state=state, marriages=head_married
        )
        assert [v.detail.split(",")[0] for v in found] == (
            ["the member is under 20 on 2026-01-12"] if refused else []
        ), born
    # No day in the record: the correction's (ON, 2 November 2026).
    for born, refused in ((date(2006, 11, 3), True), (date(2006, 11, 2), False)):
        unknown = HouseholdState(MAN, [head, replace(girl, birth_date=born)])
        _, found = correction(girl.person_id, Relationship.SPOUSE, state=unknown)
        assert [v.detail.split(",")[0] for v in found] == (
            ["the member is under 20 on 2026-11-02"] if refused else []
        ), born


def test_a_member_not_counted_has_a_reason_and_a_counted_one_none() -> None:
    assert pointers(member_change(NewMemberDetails(counted=False))[1]) == {"/exclusion_reason"}
    imprisoned = NewMemberDetails(counted=False, exclusion_reason=ExclusionReason.IMPRISONED)
    after, found = member_change(imprisoned)
    assert found == []
    assert after is not None
    assert changed_details(RECORDED, after) == {"counted": False, "exclusion_reason": "imprisoned"}
    # A reason for a member who stays counted, given with counted true or not at all.
    reason = NewMemberDetails(exclusion_reason=ExclusionReason.IMPRISONED)
    assert pointers(member_change(reason)[1]) == {"/exclusion_reason"}
    counted = NewMemberDetails(counted=True, exclusion_reason=ExclusionReason.IMPRISONED)
    assert pointers(member_change(counted)[1]) == {"/exclusion_reason"}
    # A note only for a member not counted, and a provincial rule needs one.
    noted = NewMemberDetails(exclusion_note="说明")
    assert pointers(member_change(noted)[1]) == {"/exclusion_note"}
    provincial = NewMemberDetails(counted=False, exclusion_reason=ExclusionReason.PROVINCIAL_OTHER)
    assert pointers(member_change(provincial)[1]) == {"/exclusion_note"}


def test_a_member_counted_again_keeps_no_reason_and_a_note_goes_with_its_reason() -> None:
    after, found = member_change(NewMemberDetails(counted=True), current=IMPRISONED)
    assert found == []
    assert after is not None
    assert (after.exclusion_reason, after.exclusion_note) == (None, None)
    assert changed_details(IMPRISONED, after) == {
        "counted": True,
        "exclusion_reason": None,
        "exclusion_note": None,
    }
    # Another reason: the provincial rule's words go with it.
    other = NewMemberDetails(exclusion_reason=ExclusionReason.COMPULSORY_REHABILITATION)
    after, found = member_change(other, current=IMPRISONED)
    assert found == []
    assert after is not None
    assert (after.counted, after.exclusion_note) == (False, None)
    # The same reason with new words.
    after, found = member_change(
        NewMemberDetails(exclusion_note="省规定：失联"), current=IMPRISONED
    )
    assert found == []
    assert after is not None
    assert after.exclusion_note == "省规定：失联"
    assert after.exclusion_reason is ExclusionReason.PROVINCIAL_OTHER


def test_a_member_takes_a_job_only_of_working_age_on_the_day() -> None:
    job = NewMemberDetails(employment_status=EmploymentStatus.EMPLOYED)
    state = HouseholdState(
        head_person_id=HEAD,
        members=[*STATE.members, ActiveMember(TEEN, Relationship.GRANDCHILD, date(2010, 3, 1))],
    )
    assert pointers(member_change(job, person_id=TEEN, on=date(2026, 2, 28), state=state)[1]) == {
        "/employment_status"
    }
    assert member_change(job, person_id=TEEN, on=date(2026, 3, 1), state=state)[1] == []
    # Under 16, not of working age (a full-time student at any age: ADR 0021).
    idle = NewMemberDetails(employment_status=EmploymentStatus.NOT_OF_WORKING_AGE, student=True)
    assert member_change(idle, person_id=TEEN, on=date(2026, 2, 28), state=state)[1] == []


HOME = Address("620123101203", AreaType.RURAL, "夏官营村三社12号")


def test_a_household_moves_somewhere_known_on_a_day_gone() -> None:
    moved = Address("620123101204", AreaType.RURAL, "红柳沟村二社8号")
    assert check_address_change(HOME, moved, ON, known_village=True, today=TODAY) == []
    # A new address in the same village, or only the area type recorded anew.
    same_village = Address(HOME.region_code, HOME.area_type, "夏官营村四社1号")
    assert check_address_change(HOME, same_village, ON, known_village=True, today=TODAY) == []
    urban = Address(HOME.region_code, AreaType.URBAN, HOME.address)
    assert check_address_change(HOME, urban, ON, known_village=True, today=TODAY) == []
    assert pointers(check_address_change(HOME, HOME, ON, known_village=True, today=TODAY)) == {
        "/address"
    }
    assert pointers(check_address_change(HOME, moved, ON, known_village=False, today=TODAY)) == {
        "/region_code"
    }
    future = date(2026, 11, 29)
    assert pointers(check_address_change(HOME, moved, future, known_village=True, today=TODAY)) == {
        "/moved_on"
    }


def test_a_move_dated_before_the_latest_recorded_one_is_refused() -> None:
    """The record holds where the household lives since its latest recorded move: an
    earlier move learned of later would pass for the current address. The same day is
    allowed, and a household never moved is bound by nothing."""
    moved = Address("620123101204", AreaType.RURAL, "红柳沟村二社8号")
    latest = date(2026, 2, 20)

    def check(on: date, latest_on: date | None) -> set[str]:
        return pointers(
            check_address_change(
                HOME, moved, on, known_village=True, today=TODAY, latest_on=latest_on
            )
        )

    assert check(date(2026, 2, 19), latest) == {"/moved_on"}
    assert check(latest, latest) == set()
    assert check(date(2026, 2, 21), latest) == set()
    assert check(date(2020, 1, 1), None) == set()


LODGER, WIDOW_HEAD, YOUNG = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ALONE_WITH_LODGERS = HouseholdState(
    head_person_id=WIDOW_HEAD,
    members=[
        ActiveMember(WIDOW_HEAD, Relationship.HEAD, date(1968, 4, 2)),
        ActiveMember(LODGER, Relationship.OTHER_DEPENDANT, date(1966, 7, 1)),
        ActiveMember(SON, Relationship.CHILD, date(1995, 1, 5)),
        ActiveMember(YOUNG, Relationship.OTHER, date(2010, 3, 1)),
    ],
)


def test_a_co_resident_who_marries_the_head_becomes_the_spouse() -> None:
    def married(
        person: uuid.UUID, partner: uuid.UUID, state: HouseholdState = ALONE_WITH_LODGERS
    ) -> tuple[uuid.UUID | None, set[str]]:
        recorded, found = check_marriage_in_household(state, person, partner, ON, today=TODAY)
        if recorded is None:
            return None, pointers(found)
        [(spouse, relationship)] = recorded.items()
        assert relationship is Relationship.SPOUSE
        return spouse, pointers(found)

    # Either of the two may be named first: the one who is not the head becomes spouse.
    assert married(WIDOW_HEAD, LODGER) == (LODGER, set())
    assert married(LODGER, WIDOW_HEAD) == (LODGER, set())
    # Not the head themself, a member of the household.
    assert married(WIDOW_HEAD, WIDOW_HEAD) == (None, {"/spouse_person_id"})
    assert married(WIDOW_HEAD, uuid.uuid4()) == (None, {"/spouse_person_id"})
    # The head's own child, or a member under age; the head already has a spouse.
    assert married(WIDOW_HEAD, SON) == (None, {"/spouse_person_id"})
    # Under age: refused at the member's own pointer (3 Dec 2026, helper hAX).
    assert married(WIDOW_HEAD, YOUNG) == (None, {"/spouse_person_id"})
    assert married(HEAD, SON, STATE) == (None, {"/person_id", "/spouse_person_id"})
    assert married(SPOUSE, HEAD, STATE) == (None, {"/person_id"})


def _past(kind: str, on: date, **details: object) -> PastChange:
    return PastChange(
        kind,
        on,
        {k: [str(i) for i in v] if isinstance(v, list) else str(v) for k, v in details.items()},
    )


def test_the_record_tells_when_each_members_marriage_here_ended() -> None:
    """A couple is the head and their spouse (registered so, or married here), or a
    marriage's member and the spouse who joined or was a member; a death or move out of
    either ends it on its day. The spouse a leaving member leaves behind is named by the
    change since 1 Dec 2026; before, a member who left as the spouse was the head's then."""
    head, wife, son, bride, groom, heir = (uuid.uuid4() for _ in range(6))
    died, left, moved = date(2026, 2, 1), date(2026, 4, 1), date(2025, 9, 1)
    # The head's registered wife died (recorded before the key): the head's marriage ended.
    recorded = marriages_in_household(
        [_past("death", died, person_id=wife)],
        head_person_id=head,
        left_as={(wife, died): Relationship.SPOUSE},
    )
    assert recorded == Marriages({}, {head: died, wife: died})
    # The son married, his bride joined; she is married to him until she moves out.
    married = _past("marriage", date(2025, 5, 1), person_id=son, joined_person_ids=[bride])
    assert marriages_in_household([married], head_person_id=head, left_as={}).married_to == {
        son: bride,
        bride: son,
    }
    assert marriages_in_household(
        [married, _past("move_out", left, person_id=bride)],
        head_person_id=head,
        left_as={(bride, left): Relationship.CHILD_IN_LAW},
    ) == Marriages(
        {},
        {son: left, bride: left},
        acted_on=dict.fromkeys((son, bride), married.effective_on),
        # Her move out ends the couple's life here, not the marriage (3 Dec 2026).
        left_by={son: LeftBy(bride, married.effective_on, left)},
    )
    # A marriage to a member already (spouse_person_id), and one to a spouse elsewhere.
    assert marriages_in_household(
        [
            _past("marriage", date(2025, 5, 1), person_id=head, spouse_person_id=groom),
            _past("marriage", date(2025, 6, 1), person_id=son),
        ],
        head_person_id=head,
        left_as={},
    ).married_to == {head: groom, groom: head}
    # The head left (their spouse named), the spouse heads: the heir's marriage ended then.
    assert marriages_in_household(
        [_past("death", died, person_id=head, new_head_person_id=wife, spouse_person_id=wife)],
        head_person_id=wife,
        left_as={(head, died): Relationship.HEAD},
    ).ended_on == {head: died, wife: died}
    # A spouse who left is the spouse of the head at the time, not of today's head: the
    # old head moved out, the son heads and married; then the son's wife died.
    assert marriages_in_household(
        [
            _past("move_out", moved, person_id=head, new_head_person_id=heir),
            _past("death", died, person_id=wife),
        ],
        head_person_id=heir,
        left_as={(head, moved): Relationship.HEAD, (wife, died): Relationship.SPOUSE},
    ).ended_on == {heir: died, wife: died}


def test_the_spouse_a_leaving_member_leaves_behind() -> None:
    assert spouse_left_behind(STATE, HEAD) == SPOUSE
    assert spouse_left_behind(STATE, SPOUSE) == HEAD
    assert spouse_left_behind(STATE, SON) is None
    assert spouse_left_behind(ALONE_WITH_LODGERS, WIDOW_HEAD) is None


def test_a_marriage_is_dated_on_or_after_the_end_of_the_members_last_one_here() -> None:
    """The head's wife died on 1 Jun: a marriage of the head dated before is refused at
    married_on naming the day, whether the spouse joins or is a member already; the same
    day or later is not. A member married to a member still here may not marry."""
    widowed = HouseholdState(
        head_person_id=WIDOW_HEAD,
        members=[
            ActiveMember(WIDOW_HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(LODGER, Relationship.OTHER_DEPENDANT, date(1966, 7, 1)),
            ActiveMember(SON, Relationship.CHILD, date(1995, 1, 5)),
        ],
    )
    ended = date(2026, 6, 1)
    marriages = Marriages({}, {WIDOW_HEAD: ended})
    bride = joining(Relationship.SPOUSE, date(1970, 3, 3), 22)

    def outside(on: date) -> list[Violation]:
        return check_marriage(widowed, WIDOW_HEAD, on, bride, today=TODAY, marriages=marriages)

    def inside(
        person: uuid.UUID, partner: uuid.UUID, on: date, recorded: Marriages = marriages
    ) -> list[Violation]:
        return check_marriage_in_household(
            widowed, person, partner, on, today=TODAY, marriages=recorded
        )[1]

    [refused] = outside(date(2026, 5, 1))
    assert refused.pointer == "/married_on"
    assert "2026-06-01" in refused.detail
    assert outside(ended) == []
    assert outside(date(2026, 7, 1)) == []
    assert check_marriage(widowed, WIDOW_HEAD, date(2026, 5, 1), None, today=TODAY) == []
    assert pointers(inside(WIDOW_HEAD, LODGER, date(2026, 5, 1))) == {"/married_on"}
    assert pointers(inside(LODGER, WIDOW_HEAD, date(2026, 5, 1))) == {"/married_on"}
    assert inside(WIDOW_HEAD, LODGER, ended) == []
    # The spouse's own last marriage here bounds it too.
    lodger_widowed = Marriages({}, {LODGER: ended})
    [refused] = inside(WIDOW_HEAD, LODGER, date(2026, 5, 1), lodger_widowed)
    assert refused.pointer == "/married_on"
    assert "the spouse's" in refused.detail
    # Married to a member still here (recorded by a marriage): refused whatever the day.
    son_married = Marriages({SON: LODGER, LODGER: SON}, {})
    bride = joining(Relationship.CHILD_IN_LAW, date(1997, 3, 3), 22)
    assert pointers(
        check_marriage(widowed, SON, date(2026, 7, 1), bride, today=TODAY, marriages=son_married)
    ) == {"/person_id"}
    assert pointers(inside(WIDOW_HEAD, LODGER, date(2026, 7, 1), son_married)) == {
        "/spouse_person_id"
    }


def test_two_members_other_than_the_head_marry_and_one_takes_a_place_by_the_other() -> None:
    """The head's widowed mother marries the lodger: he becomes the head's step-father
    (parent); the son marries the other lodger: she becomes a child-in-law; two lodgers
    marry: nothing changes. The younger lodger who marries the mother stays other (a
    parent is older than the head), as does a lodger marrying a sibling (no code)."""
    mother, son, sister, lodger, boarder, young = (uuid.uuid4() for _ in range(6))
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(mother, Relationship.PARENT, date(1944, 1, 5)),
            ActiveMember(son, Relationship.CHILD, date(1995, 1, 5)),
            ActiveMember(sister, Relationship.SIBLING, date(1972, 6, 1)),
            ActiveMember(lodger, Relationship.OTHER, date(1942, 7, 1)),
            ActiveMember(boarder, Relationship.OTHER_DEPENDANT, date(1997, 3, 3)),
            ActiveMember(young, Relationship.OTHER, date(1975, 3, 3)),
        ],
    )

    def married(
        person: uuid.UUID, partner: uuid.UUID, on: date = ON, recorded: Marriages = NO_MARRIAGES
    ) -> tuple[dict[uuid.UUID, Relationship] | None, set[str]]:
        relationships, found = check_marriage_in_household(
            state, person, partner, on, today=TODAY, marriages=recorded
        )
        return relationships, pointers(found)

    assert married(mother, lodger) == ({lodger: Relationship.PARENT}, set())
    assert married(lodger, mother) == ({lodger: Relationship.PARENT}, set())
    assert married(son, boarder) == ({boarder: Relationship.CHILD_IN_LAW}, set())
    assert married(lodger, boarder) == ({}, set())
    assert married(mother, young) == ({}, set())
    assert married(sister, young) == ({}, set())
    # Two relatives of the head: refused, naming spouse_person_id.
    assert married(son, mother) == (None, {"/spouse_person_id"})
    assert married(sister, son) == (None, {"/spouse_person_id"})
    # The existing refusals hold: under age on the day, a non-member, already married.
    # (each under age refused at their own pointer: 3 Dec 2026, helper hAX)
    assert married(son, boarder, date(2014, 5, 1)) == (None, {"/person_id", "/spouse_person_id"})
    assert married(mother, uuid.uuid4()) == (None, {"/spouse_person_id"})
    assert married(uuid.uuid4(), lodger) == (None, {"/person_id"})
    son_married = Marriages({son: boarder, boarder: son}, {})
    assert married(son, young, recorded=son_married) == (None, {"/person_id"})
    assert married(young, boarder, recorded=son_married) == (None, {"/spouse_person_id"})
    assert married(lodger, young, date(2026, 5, 1), Marriages({}, {young: ON})) == (
        None,
        {"/married_on"},
    )
    # The head's spouse is married; a parent beside the other parent is taken to be too.
    with_spouse = HouseholdState(
        head_person_id=HEAD,
        members=[*STATE.members, ActiveMember(lodger, Relationship.OTHER, date(1960, 1, 1))],
    )
    found = check_marriage_in_household(with_spouse, SPOUSE, lodger, ON, today=TODAY)
    assert found == (None, [Violation("/person_id", "is married to the head")])
    father = ActiveMember(uuid.uuid4(), Relationship.PARENT, date(1940, 2, 2))
    both_parents = HouseholdState(HEAD, [*state.members, father])
    relationships, problems = check_marriage_in_household(
        both_parents, mother, lodger, ON, today=TODAY
    )
    assert relationships is None
    assert pointers(problems) == {"/person_id"}


def test_a_spouse_moving_in_while_the_head_is_married_to_a_member_is_refused() -> None:
    """A head the record shows married here to a member recorded otherwise (the heir's
    wife given as other when he became head, a record made before 3 Dec 2026) has no
    spouse by the relationships, and a spouse moving in was taken: the record showed two
    wives. A relationship correction to the spouse refuses it, and so does a move in
    (ADR 0016, 3 Dec 2026), pointing at the member_change that corrects the wife."""
    wife = uuid.uuid4()
    state = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(wife, Relationship.OTHER, date(1970, 9, 14)),
        ],
    )
    married = Marriages({HEAD: wife, wife: HEAD}, {})
    newcomer = joining(Relationship.SPOUSE, date(1972, 3, 1), 12)
    [violation] = check_move_in(state, newcomer, date(2026, 3, 1), today=TODAY, marriages=married)
    assert violation.pointer == "/member/relationship"
    assert violation.detail.startswith(
        "the record shows the head married to another member by a marriage recorded here"
    )
    assert "other" in violation.detail
    assert check_move_in(state, newcomer, date(2026, 3, 1), today=TODAY) == []


def test_a_spouse_moving_in_is_of_marriageable_age_on_the_day() -> None:
    """A member moving in as the head's spouse carries no marriage day, so nothing bound
    their age: one under 20 (a woman, or a person of unknown sex) or 22 (a man) on the
    day of the move (or a head who was) is refused at the relationship; of age that day,
    the birthday itself, is of age (3 Dec 2026, helper hAX: the law since 1981)."""
    widower = HouseholdState(
        head_person_id=HEAD,
        members=[
            ActiveMember(HEAD, Relationship.HEAD, date(1968, 4, 2)),
            ActiveMember(SON, Relationship.CHILD, date(1995, 1, 5)),
        ],
    )
    young = joining(Relationship.SPOUSE, date(2006, 3, 1), 12)
    found = check_move_in(widower, young, date(2026, 2, 28), today=TODAY)
    assert [(v.pointer, v.detail.split(":")[0]) for v in found] == [
        ("/member/relationship", "the spouse is under 20 on 2026-02-28")
    ]
    assert check_move_in(widower, young, date(2026, 3, 1), today=TODAY) == []
    boy = HouseholdState(HEAD, [ActiveMember(HEAD, Relationship.HEAD, date(2009, 5, 5))])
    found = check_move_in(boy, young, date(2026, 3, 1), today=TODAY)
    assert [v.detail.split(":")[0] for v in found] == ["the head is under 20 on 2026-03-01"]
