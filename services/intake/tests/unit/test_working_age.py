"""A member's employment status fits their age (ADR 0021): working age in Chinese law, at
each boundary, at a registration and at a member change."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, timedelta

import pytest

from dibao_intake.domain.changes import (
    ActiveMember,
    HouseholdState,
    MemberDetails,
    NewMemberDetails,
    check_member_change,
)
from dibao_intake.domain.codes import (
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    Relationship,
    Sex,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.errors import RulesViolatedError
from dibao_intake.domain.household import MemberInput, validate_household
from dibao_intake.domain.resident_id import compose_resident_id
from dibao_intake.domain.working_age import (
    employment_violations,
    highest_statutory_retirement_age_months,
    statutory_retirement_age_months,
    working_age_ends,
    working_age_ends_at_the_latest,
)

S = EmploymentStatus
DAY = timedelta(days=1)
VILLAGE = "620123101203"
DIVISIONS = DivisionTable.load()


def refused(
    status: EmploymentStatus,
    born: date,
    sex: Sex | None,
    on: date,
    *,
    disability_grade: DisabilityGrade = DisabilityGrade.NONE,
    seriously_ill: bool = False,
    student: bool = False,
) -> bool:
    found = employment_violations(
        status,
        born,
        sex,
        on,
        "/members/0",
        disability_grade=disability_grade,
        seriously_ill=seriously_ill,
        student=student,
    )
    assert [v.pointer for v in found] in ([], ["/members/0/employment_status"])
    return bool(found)


def birthday(born: date, years: int) -> date:
    return born.replace(year=born.year + years)


@pytest.mark.parametrize(
    ("born", "sex", "months"),
    [
        # The decision's tables (NPCSC, 13 Sept 2024): born before the first raised cohort,
        # the first of each step, the last step, and after it.
        (date(1964, 12, 31), Sex.MALE, 60 * 12),
        (date(1965, 1, 1), Sex.MALE, 60 * 12 + 1),
        (date(1965, 4, 30), Sex.MALE, 60 * 12 + 1),
        (date(1965, 5, 1), Sex.MALE, 60 * 12 + 2),
        (date(1966, 3, 15), Sex.MALE, 60 * 12 + 4),
        (date(1976, 8, 31), Sex.MALE, 63 * 12 - 1),
        (date(1976, 9, 1), Sex.MALE, 63 * 12),
        (date(1990, 1, 1), Sex.MALE, 63 * 12),
        (date(1974, 12, 31), Sex.FEMALE, 50 * 12),
        (date(1975, 1, 1), Sex.FEMALE, 50 * 12 + 1),
        (date(1975, 2, 28), Sex.FEMALE, 50 * 12 + 1),
        (date(1975, 3, 1), Sex.FEMALE, 50 * 12 + 2),
        (date(1976, 12, 31), Sex.FEMALE, 51 * 12),
        (date(1984, 10, 31), Sex.FEMALE, 55 * 12 - 1),
        (date(1984, 11, 1), Sex.FEMALE, 55 * 12),
        (date(1995, 6, 1), Sex.FEMALE, 55 * 12),
    ],
)
def test_the_lowest_statutory_retirement_age_follows_the_2024_decision(
    born: date, sex: Sex, months: int
) -> None:
    assert statutory_retirement_age_months(born, sex) == months


def test_not_of_working_age_under_16_and_from_the_statutory_retirement_age() -> None:
    """Issue of 3 Dec 2026: a 36-year-old head was registered not_of_working_age. The
    status holds the day before the 16th birthday and again from the birthday that the
    statutory retirement age for the sex and birth month reaches, not between."""
    child = date(2010, 5, 20)
    assert not refused(S.NOT_OF_WORKING_AGE, child, Sex.MALE, birthday(child, 16) - DAY)
    assert refused(S.NOT_OF_WORKING_AGE, child, Sex.MALE, birthday(child, 16))
    # A man born in 1964: 60, the day before his 60th birthday and on it.
    man = date(1964, 6, 10)
    assert refused(S.NOT_OF_WORKING_AGE, man, Sex.MALE, date(2024, 6, 9))
    assert not refused(S.NOT_OF_WORKING_AGE, man, Sex.MALE, date(2024, 6, 10))
    # Born in March 1966: 60 years 4 months, on 15 July 2026.
    raised = date(1966, 3, 15)
    assert working_age_ends(raised, Sex.MALE) == date(2026, 7, 15)
    assert refused(S.NOT_OF_WORKING_AGE, raised, Sex.MALE, date(2026, 7, 14))
    assert not refused(S.NOT_OF_WORKING_AGE, raised, Sex.MALE, date(2026, 7, 15))
    # A woman born in 1970: 50 (a worker's; a cadre's 55 is later: the lenient side).
    woman = date(1970, 9, 14)
    assert refused(S.NOT_OF_WORKING_AGE, woman, Sex.FEMALE, date(2020, 9, 13))
    assert not refused(S.NOT_OF_WORKING_AGE, woman, Sex.FEMALE, date(2020, 9, 14))
    # Born 31 January 1975: 50 years 1 month, a day February lacks: its last.
    last = date(1975, 1, 31)
    assert working_age_ends(last, Sex.FEMALE) == date(2025, 2, 28)
    assert refused(S.NOT_OF_WORKING_AGE, last, Sex.FEMALE, date(2025, 2, 27))
    assert not refused(S.NOT_OF_WORKING_AGE, last, Sex.FEMALE, date(2025, 2, 28))
    # A sex not known: a woman's bound, the lower.
    assert not refused(S.NOT_OF_WORKING_AGE, woman, None, date(2020, 9, 14))
    assert refused(S.NOT_OF_WORKING_AGE, woman, Sex.MALE, date(2020, 9, 14))


def test_a_full_time_student_of_working_age_is_not_of_working_age() -> None:
    """The statuses have none for study: a student of 16 or more is not_of_working_age
    with student set (ADR 0021); without it, the same member of 20 is refused."""
    born = date(2006, 2, 1)
    assert not refused(S.NOT_OF_WORKING_AGE, born, Sex.FEMALE, date(2026, 3, 2), student=True)
    assert refused(S.NOT_OF_WORKING_AGE, born, Sex.FEMALE, date(2026, 3, 2))


def test_retired_from_45_for_a_woman_and_50_for_a_man_or_16_disabled_or_ill() -> None:
    """Issue of 3 Dec 2026: a 22-year-old spouse was registered retired. The earliest
    early retirement (国发〔1978〕104号) is at 45 for a woman and 50 for a man; a
    retirement for a work injury or in the forces has no lower age and goes with a
    disability or an illness, from 16."""
    woman = date(1981, 4, 3)
    assert refused(S.RETIRED, woman, Sex.FEMALE, birthday(woman, 45) - DAY)
    assert not refused(S.RETIRED, woman, Sex.FEMALE, birthday(woman, 45))
    man = date(1976, 4, 3)
    assert refused(S.RETIRED, man, Sex.MALE, birthday(man, 50) - DAY)
    assert not refused(S.RETIRED, man, Sex.MALE, birthday(man, 50))
    assert refused(S.RETIRED, man, None, birthday(man, 45) - DAY)
    assert not refused(S.RETIRED, man, None, birthday(man, 45))
    young = date(2004, 8, 8)
    on = date(2026, 3, 2)
    assert refused(S.RETIRED, young, Sex.MALE, on)
    assert not refused(S.RETIRED, young, Sex.MALE, on, disability_grade=DisabilityGrade.GRADE_2)
    assert not refused(S.RETIRED, young, Sex.MALE, on, seriously_ill=True)
    child = date(2010, 5, 20)
    ill = {"disability_grade": DisabilityGrade.GRADE_1, "seriously_ill": True}
    assert refused(S.RETIRED, child, Sex.MALE, birthday(child, 16) - DAY, **ill)  # type: ignore[arg-type]
    assert not refused(S.RETIRED, child, Sex.MALE, birthday(child, 16), **ill)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [S.EMPLOYED, S.SELF_EMPLOYED, S.FLEXIBLE, S.UNEMPLOYED])
def test_working_or_unemployed_from_16(status: EmploymentStatus) -> None:
    born = date(2010, 5, 20)
    assert refused(status, born, Sex.FEMALE, birthday(born, 16) - DAY)
    assert not refused(status, born, Sex.FEMALE, birthday(born, 16))
    # Working past the retirement age is lawful (re-employed, a flexible job); being
    # unemployed is not (registered unemployment is for those of working age).
    assert refused(status, date(1950, 1, 1), Sex.MALE, date(2026, 3, 2)) is (status is S.UNEMPLOYED)


@pytest.mark.parametrize(
    ("born", "sex", "months"),
    [
        # A man's only statutory age; a woman cadre's, 55 raised to 58 by one month for
        # every four months of birth from January 1970 (NPCSC, 13 Sept 2024).
        (date(1964, 12, 31), Sex.MALE, 60 * 12),
        (date(1966, 3, 15), Sex.MALE, 60 * 12 + 4),
        (date(1976, 9, 1), Sex.MALE, 63 * 12),
        (date(1969, 12, 31), Sex.FEMALE, 55 * 12),
        (date(1970, 1, 1), Sex.FEMALE, 55 * 12 + 1),
        (date(1970, 4, 30), Sex.FEMALE, 55 * 12 + 1),
        (date(1970, 5, 1), Sex.FEMALE, 55 * 12 + 2),
        (date(1981, 8, 31), Sex.FEMALE, 58 * 12 - 1),
        (date(1981, 9, 1), Sex.FEMALE, 58 * 12),
        (date(1995, 6, 1), Sex.FEMALE, 58 * 12),
        # A sex not known: a man's, the higher.
        (date(1970, 9, 14), None, 60 * 12 + 18),
    ],
)
def test_the_highest_statutory_retirement_age_is_a_mans_or_a_woman_cadres(
    born: date, sex: Sex | None, months: int
) -> None:
    assert highest_statutory_retirement_age_months(born, sex) == months


def test_unemployed_until_the_highest_statutory_retirement_age() -> None:
    """Issue of 3 Dec 2026: an 80-year-old was recorded unemployed. Registered unemployment
    (就业促进法; 就业服务与就业管理规定) is for people of working age: unemployed holds the
    day before the highest statutory retirement age that can apply to the member (a man's;
    a woman cadre's, since the record does not know her post), not on that day."""
    assert refused(S.UNEMPLOYED, date(1946, 1, 1), Sex.MALE, date(2026, 3, 2))
    # A man born in 1964: 60.
    man = date(1964, 6, 10)
    assert not refused(S.UNEMPLOYED, man, Sex.MALE, date(2024, 6, 9))
    assert refused(S.UNEMPLOYED, man, Sex.MALE, date(2024, 6, 10))
    # Born in March 1966: 60 years 4 months, on 15 July 2026.
    raised = date(1966, 3, 15)
    assert not refused(S.UNEMPLOYED, raised, Sex.MALE, date(2026, 7, 14))
    assert refused(S.UNEMPLOYED, raised, Sex.MALE, date(2026, 7, 15))
    # A woman born in September 1970: past a worker's 50, of working age as a cadre up to
    # 55 years 3 months, on 14 December 2025.
    woman = date(1970, 9, 14)
    assert working_age_ends_at_the_latest(woman, Sex.FEMALE) == date(2025, 12, 14)
    assert not refused(S.UNEMPLOYED, woman, Sex.FEMALE, date(2020, 9, 14))
    assert not refused(S.UNEMPLOYED, woman, Sex.FEMALE, date(2025, 12, 13))
    assert refused(S.UNEMPLOYED, woman, Sex.FEMALE, date(2025, 12, 14))
    # A sex not known: a man's bound, the higher (61 years 6 months).
    assert working_age_ends_at_the_latest(woman, None) == date(2032, 3, 14)
    assert not refused(S.UNEMPLOYED, woman, None, date(2032, 3, 13))
    assert refused(S.UNEMPLOYED, woman, None, date(2032, 3, 14))
    # Born 31 January 1970: 55 years 1 month, a day February lacks: its last.
    last = date(1970, 1, 31)
    assert working_age_ends_at_the_latest(last, Sex.FEMALE) == date(2025, 2, 28)
    assert not refused(S.UNEMPLOYED, last, Sex.FEMALE, date(2025, 2, 27))
    assert refused(S.UNEMPLOYED, last, Sex.FEMALE, date(2025, 2, 28))
    # Past it, the statuses that hold: not of working age, or retired.
    assert not refused(S.NOT_OF_WORKING_AGE, woman, Sex.FEMALE, date(2025, 12, 14))
    assert not refused(S.RETIRED, woman, Sex.FEMALE, date(2025, 12, 14))


def test_the_unemployment_refusal_names_the_day_and_the_bound_not_the_birth_date() -> None:
    born = date(1946, 5, 17)
    found = employment_violations(
        S.UNEMPLOYED,
        born,
        Sex.FEMALE,
        date(2026, 3, 2),
        "/members/2",
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        student=False,
    )
    assert [(v.pointer, v.detail) for v in found] == [
        (
            "/members/2/employment_status",
            "the member is past the statutory retirement age on 2026-03-02: at most 55 for a"
            " woman born in that month, so not unemployed (registered unemployment is for"
            " those of working age, 就业促进法; ADR 0021): give the status that holds,"
            " not_of_working_age or retired",
        )
    ]
    assert "1946" not in found[0].detail


def test_unable_to_work_fits_any_age() -> None:
    for born in (date(2026, 1, 1), date(1990, 1, 1), date(1940, 1, 1)):
        assert not refused(S.UNABLE_TO_WORK, born, Sex.MALE, date(2026, 3, 2))


def _member(relationship: Relationship, born: date, seq: int, **changes: object) -> MemberInput:
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


def test_a_registration_refuses_a_status_the_age_rules_out() -> None:
    """The reviewer's cases, at the members' employment_status, every one at once."""
    today = date(2026, 3, 2)
    members = [
        _member(Relationship.HEAD, date(1990, 1, 10), 11, employment_status=S.NOT_OF_WORKING_AGE),
        _member(Relationship.SPOUSE, date(2003, 7, 4), 22, employment_status=S.RETIRED),
        _member(Relationship.PARENT, date(1950, 1, 1), 31, employment_status=S.RETIRED),
    ]
    with pytest.raises(RulesViolatedError) as caught:
        validate_household(VILLAGE, AreaType.RURAL, members, divisions=DIVISIONS, today=today)
    found = {v.pointer: v.detail for v in caught.value.violations}
    assert sorted(found) == ["/members/0/employment_status", "/members/1/employment_status"]
    assert found["/members/0/employment_status"] == (
        "the member is of working age on 2026-03-02: from 16 up to the statutory retirement"
        " age, at least 63 for a man born in that month; give the status that holds, or"
        " student: true for a full-time student (ADR 0021)"
    )
    assert (
        "a woman under 45 on 2026-03-02 cannot have retired"
        in (found["/members/1/employment_status"])
    )
    members[0] = dataclasses.replace(members[0], employment_status=S.UNEMPLOYED)
    members[1] = dataclasses.replace(members[1], employment_status=S.FLEXIBLE)
    validate_household(VILLAGE, AreaType.RURAL, members, divisions=DIVISIONS, today=today)


HEAD = uuid.uuid4()
SON = uuid.uuid4()
SON_BORN = date(2006, 9, 1)
STATE = HouseholdState(
    HEAD,
    [
        ActiveMember(HEAD, Relationship.HEAD, date(1975, 3, 3), sex=Sex.FEMALE),
        ActiveMember(SON, Relationship.CHILD, SON_BORN, sex=Sex.MALE),
    ],
)
STUDENT = MemberDetails(
    name="马小军",
    disability_grade=DisabilityGrade.NONE,
    seriously_ill=False,
    employment_status=S.NOT_OF_WORKING_AGE,
    student=True,
    counted=True,
    exclusion_reason=None,
    exclusion_note=None,
)


def _change(new: NewMemberDetails, on: date, current: MemberDetails = STUDENT) -> dict[str, str]:
    _, found = check_member_change(STATE, SON, current, new, on, today=date(2026, 3, 2))
    return {v.pointer: v.detail for v in found}


def test_a_member_change_refuses_a_status_the_age_rules_out_on_its_day() -> None:
    """At 16 on the change's day a son may be unemployed, not before; retired at 19, no;
    a student leaving school at 19 is given the status that holds then, since the status
    leans on the flag. A status recorded before the rule holds up no other change."""
    sixteen = birthday(SON_BORN, 16)
    unemployed = NewMemberDetails(employment_status=S.UNEMPLOYED, student=False)
    assert list(_change(unemployed, sixteen - DAY)) == ["/employment_status"]
    assert _change(unemployed, sixteen) == {}
    assert list(_change(NewMemberDetails(employment_status=S.RETIRED), sixteen)) == [
        "/employment_status"
    ]
    leaves_school = NewMemberDetails(student=False)
    assert list(_change(leaves_school, date(2026, 1, 5))) == ["/employment_status"]
    assert _change(leaves_school, sixteen - DAY) == {}  # under 16: not of working age
    recorded_before = dataclasses.replace(STUDENT, student=False)
    assert _change(NewMemberDetails(seriously_ill=True), date(2026, 1, 5), recorded_before) == {}
    ill_retiree = dataclasses.replace(STUDENT, employment_status=S.RETIRED, seriously_ill=True)
    assert list(_change(NewMemberDetails(seriously_ill=False), date(2026, 1, 5), ill_retiree)) == [
        "/employment_status"
    ]


def test_a_member_change_to_unemployed_is_refused_from_the_statutory_retirement_age() -> None:
    """On the change's day: a man born in November 1965 reaches 60 years 3 months on 20
    February 2026; unemployed the day before, not on it."""
    elder = uuid.uuid4()
    born = date(1965, 11, 20)
    state = HouseholdState(elder, [ActiveMember(elder, Relationship.HEAD, born, sex=Sex.MALE)])
    assert working_age_ends_at_the_latest(born, Sex.MALE) == date(2026, 2, 20)
    current = dataclasses.replace(STUDENT, employment_status=S.FLEXIBLE, student=False)
    lost_job = NewMemberDetails(employment_status=S.UNEMPLOYED)

    def found(on: date) -> list[str]:
        _, violations = check_member_change(
            state, elder, current, lost_job, on, today=date(2026, 3, 2)
        )
        return [v.pointer for v in violations]

    assert found(date(2026, 2, 19)) == []
    assert found(date(2026, 2, 20)) == ["/employment_status"]
