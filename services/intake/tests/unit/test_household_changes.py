"""Births, deaths, marriages, moves and bank accounts: who may change what."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    check_bank_account_change,
    check_birth,
    check_death,
    check_marriage,
    check_move_in,
    check_move_out,
    relationships_to_new_head,
)
from dibao_intake.domain.codes import DisabilityGrade, EmploymentStatus, Relationship
from dibao_intake.domain.errors import Violation
from dibao_intake.domain.household import MemberInput, ValidMember, validate_member
from dibao_intake.domain.resident_id import compose_resident_id

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
    raw = MemberInput(
        name="杨小梅",
        id_number=compose_resident_id("620123", born, seq),
        relationship=relationship,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
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
    assert check_birth(STATE, joining(Relationship.GRANDCHILD, date(2026, 9, 1), 12)) == []
    assert pointers(check_birth(STATE, joining(Relationship.SIBLING, date(2026, 9, 1), 12))) == {
        "/member/relationship"
    }


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
    assert pointers(check_marriage(STATE, SON, date(2026, 5, 1), groom, today=TODAY)) == {
        "/married_on"
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
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SPOUSE, {})
    assert found == []
    assert rebased == {
        SPOUSE: Relationship.HEAD,
        SON: Relationship.CHILD,
        GRANDMA: Relationship.PARENT_IN_LAW,
        GRANDSON: Relationship.GRANDCHILD,
        DAUGHTER_IN_LAW: Relationship.CHILD_IN_LAW,
    }


def test_a_son_as_head_asks_for_what_the_old_relationships_do_not_tell() -> None:
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SON, {})
    # The old head's grandson may be the son's child or a nephew; the daughter-in-law
    # his wife or his brother's.
    assert pointers(found) == {f"/relationships/{GRANDSON}", f"/relationships/{DAUGHTER_IN_LAW}"}
    assert rebased[SPOUSE] is Relationship.PARENT
    assert rebased[GRANDMA] is Relationship.GRANDPARENT
    given = {GRANDSON: Relationship.CHILD, DAUGHTER_IN_LAW: Relationship.SPOUSE}
    rebased, found = relationships_to_new_head(FAMILY, HEAD, SON, given)
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
    _, found = relationships_to_new_head(FAMILY, HEAD, SON, given)
    assert pointers(found) == {f"/relationships/{HEAD}", f"/relationships/{SON}", "/relationships"}
