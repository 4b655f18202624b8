"""Registering a household: every rule, and every violation reported at once."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import pytest

from dibao_intake.domain.codes import (
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    Relationship,
    Sex,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.errors import RulesViolatedError
from dibao_intake.domain.household import (
    MemberInput,
    masked_household_ref,
    validate_household,
)
from dibao_intake.domain.resident_id import compose_resident_id

TODAY = date(2026, 11, 28)
VILLAGE = "620123101203"
DIVISIONS = DivisionTable.load()


def member(
    relationship: Relationship,
    born: date,
    seq: int,
    **changes: object,
) -> MemberInput:
    base = MemberInput(
        name="马秀英",
        id_number=compose_resident_id("620123", born, seq),
        relationship=relationship,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        employment_status=EmploymentStatus.UNEMPLOYED,
        student=False,
        counted=True,
        exclusion_reason=None,
        exclusion_note=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def family() -> list[MemberInput]:
    return [
        member(Relationship.HEAD, date(1968, 4, 2), 11),
        # Past 55 years 3 months (a woman cadre's statutory age) she is no longer
        # unemployed (ADR 0021); she works.
        member(
            Relationship.SPOUSE,
            date(1970, 9, 14),
            22,
            employment_status=EmploymentStatus.FLEXIBLE,
        ),
        member(
            Relationship.CHILD,
            date(2012, 1, 5),
            33,
            employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
            student=True,
        ),
        member(
            Relationship.PARENT, date(1941, 2, 1), 44, employment_status=EmploymentStatus.RETIRED
        ),
    ]


def violations_of(members: list[MemberInput], region: str = VILLAGE) -> dict[str, str]:
    with pytest.raises(RulesViolatedError) as caught:
        validate_household(region, AreaType.RURAL, members, divisions=DIVISIONS, today=TODAY)
    return {v.pointer: v.detail for v in caught.value.violations}


def test_a_realistic_family_is_valid_and_birth_dates_and_sexes_are_derived() -> None:
    household = validate_household(
        VILLAGE, AreaType.RURAL, family(), divisions=DIVISIONS, today=TODAY
    )
    assert household.head.birth_date == date(1968, 4, 2)
    assert [m.sex for m in household.members] == [Sex.MALE, Sex.FEMALE, Sex.MALE, Sex.FEMALE]


def test_declared_birth_date_and_sex_are_cross_checked() -> None:
    members = family()
    members[1] = dataclasses.replace(
        members[1], declared_birth_date=date(1970, 9, 15), declared_sex=Sex.MALE
    )
    found = violations_of(members)
    assert found == {
        "/members/1/birth_date": "does not match the birth date in the ID number",
        "/members/1/sex": "does not match the sex in the ID number",
    }
    members[1] = dataclasses.replace(
        members[1], declared_birth_date=date(1970, 9, 14), declared_sex=Sex.FEMALE
    )
    validate_household(VILLAGE, AreaType.RURAL, members, divisions=DIVISIONS, today=TODAY)


def test_every_problem_is_reported_at_once() -> None:
    members = family()
    members[0] = dataclasses.replace(members[0], relationship=Relationship.OTHER)  # no head
    bad_digit = members[2].id_number[:-1] + ("1" if members[2].id_number[-1] != "1" else "2")
    members[2] = dataclasses.replace(members[2], id_number=bad_digit)
    members[3] = dataclasses.replace(members[3], counted=False)  # no reason given
    found = violations_of(members, region="620123101299")
    assert set(found) == {
        "/region_code",
        "/members",
        "/members/2/id_number",
        "/members/3/exclusion_reason",
    }


def test_the_same_person_twice_is_refused() -> None:
    members = family()
    members.append(dataclasses.replace(members[2], id_number=members[2].id_number.lower()))
    assert violations_of(members) == {"/members/4/id_number": "the same person as /members/2"}


def test_one_head_and_at_most_one_spouse() -> None:
    members = family()
    members.append(member(Relationship.HEAD, date(1980, 1, 1), 55))
    members.append(member(Relationship.SPOUSE, date(1972, 1, 1), 66))
    assert violations_of(members) == {
        "/members/4/relationship": "the household already has a head",
        "/members/5/relationship": "the head already has a spouse",
    }


def test_children_are_younger_and_parents_older_than_the_head() -> None:
    members = family()
    members[2] = member(
        Relationship.CHILD, date(1960, 1, 1), 33, employment_status=EmploymentStatus.FLEXIBLE
    )
    members[3] = member(Relationship.PARENT, date(1990, 1, 1), 44)
    assert violations_of(members) == {
        "/members/2/relationship": "a child is younger than the head",
        "/members/3/relationship": "a parent is older than the head",
    }


def test_exclusions_need_a_reason_and_counted_members_have_none() -> None:
    members = family()
    members[1] = dataclasses.replace(
        members[1], counted=False, exclusion_reason=ExclusionReason.IMPRISONED
    )
    validate_household(VILLAGE, AreaType.RURAL, members, divisions=DIVISIONS, today=TODAY)
    members[2] = dataclasses.replace(members[2], exclusion_reason=ExclusionReason.MILITARY_SERVICE)
    members[3] = dataclasses.replace(
        members[3], counted=False, exclusion_reason=ExclusionReason.PROVINCIAL_OTHER
    )
    assert violations_of(members) == {
        "/members/2/exclusion_reason": "a counted member has no exclusion reason",
        "/members/3/exclusion_note": "say which provincial rule excludes the member",
    }


def test_nobody_under_sixteen_is_employed() -> None:
    members = family()
    members[2] = dataclasses.replace(members[2], employment_status=EmploymentStatus.FLEXIBLE)
    assert violations_of(members) == {
        "/members/2/employment_status": "a member under 16 cannot be employed"
    }


def test_a_township_is_not_a_place_of_registration() -> None:
    assert "/region_code" in violations_of(family(), region="620123101000")


def test_the_masked_reference_shows_only_the_county_and_four_hex_digits() -> None:
    household_id = uuid.UUID("01938f1e-0000-7000-8000-00000000a7f2")
    assert masked_household_ref(household_id, "620102001001") == "620102-****-a7f2"


def test_the_heads_spouse_and_the_head_are_of_marriageable_age_at_registration() -> None:
    """No marriage day is recorded for a registered couple (a de facto marriage before
    1994 has none), but nobody under the legal marriage age is married in China (22 for a
    man, 20 for a woman, Civil Code art. 1047; ADR 0016, 3 Dec 2026, helper hAX): a
    registered spouse of 16 or 19, or a head of 17 registered with a spouse, is a wrong ID
    number or relationship (422 at the spouse's relationship). 20 on the day (the
    birthday itself) is of age for a woman; a head of 17 without a spouse is registered."""
    members = family()
    members[1] = member(Relationship.SPOUSE, date(2010, 6, 1), 22)
    assert violations_of(members) == {
        "/members/1/relationship": "the spouse is under 20 on 2026-11-28: nobody younger is"
        " married in China (Civil Code art. 1047: 22 for a man, 20 for a woman; 20 and 18 for"
        " a marriage before 1981, or lawful under an autonomous area's adapted ages, which"
        " marriage_age_basis autonomous_adaptation says); check the ID numbers and the"
        " relationship"
    }
    young_head = [
        member(Relationship.HEAD, date(2009, 1, 2), 11),
        member(Relationship.SPOUSE, date(1990, 1, 1), 22),
    ]
    assert list(violations_of(young_head)) == ["/members/1/relationship"]
    # A man (the ID number's odd sequence): under 22, a man's marriage age.
    assert "the head is under 22" in violations_of(young_head)["/members/1/relationship"]
    # A woman of 19 (20 tomorrow) is refused; on her 20th birthday she is of age.
    members[1] = member(Relationship.SPOUSE, date(2006, 11, 29), 22)
    assert list(violations_of(members)) == ["/members/1/relationship"]
    members[1] = member(Relationship.SPOUSE, date(2006, 11, 28), 22)
    validate_household(VILLAGE, AreaType.RURAL, members, divisions=DIVISIONS, today=TODAY)
    validate_household(VILLAGE, AreaType.RURAL, young_head[:1], divisions=DIVISIONS, today=TODAY)
