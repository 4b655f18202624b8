"""A member's employment status against their age: who is of working age (劳动年龄) in
Chinese law, and who can have retired (ADR 0021).

Working age runs from 16 (Labour Law art. 15) up to the statutory retirement age, which
depends on sex, on the post (a woman worker's is lower than a woman cadre's) and, since
1 Jan 2025, on the month of birth (NPCSC Decision on the gradual raise of the statutory
retirement age, 13 Sept 2024). The record knows neither the post nor whether a member
will take a lawful early retirement, so each bound here is the most lenient the law makes
certain: a status refused is one no reading of the law allows.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from dibao_intake.domain.codes import DisabilityGrade, EmploymentStatus, Sex
from dibao_intake.domain.errors import Violation
from dibao_intake.domain.resident_id import age_on

MIN_WORKING_AGE = 16
"""Labour Law art. 15: nobody under 16 may be employed; working age starts at 16."""


@dataclass(frozen=True, slots=True)
class _Raise:
    """The statutory retirement age of one group, and its gradual raise."""

    years: int
    """The age before the raise (国发〔1978〕104号)."""
    first_born: tuple[int, int]
    """(year, month) of birth of the first cohort whose age is raised (one month)."""
    every_months: int
    """One more month of delay for each this many months of birth after that cohort."""
    cap_months: int
    """The raise in full, reached by the cohorts born later."""


_LOWEST_STATUTORY = {
    # Men 60 -> 63: one month for every four months of birth from January 1965.
    Sex.MALE: _Raise(60, (1965, 1), 4, 36),
    # Women workers 50 -> 55: one month for every two months of birth from January 1975.
    # (Women cadres' 55 -> 58 from January 1970 is later for every birth month.)
    Sex.FEMALE: _Raise(50, (1975, 1), 2, 60),
}

_HIGHEST_STATUTORY = {
    # Men 60 -> 63, as above: a man's only statutory age.
    Sex.MALE: _LOWEST_STATUTORY[Sex.MALE],
    # Women cadres 55 -> 58: one month for every four months of birth from January 1970
    # (the record does not know a woman's post; a worker's is lower for every birth month).
    Sex.FEMALE: _Raise(55, (1970, 1), 4, 36),
}
"""The highest statutory retirement age that can apply to a member of each sex: working
age ends by then whatever the post, and with it registered unemployment (ADR 0021)."""

EARLIEST_RETIREMENT_AGE = {Sex.MALE: 50, Sex.FEMALE: 45}
"""The youngest a member can have retired without a disability or serious illness recorded:
国发〔1978〕104号 (workers' and cadres' rules alike) lets a man retire from 50 and a woman
from 45 with a total loss of capacity to work certified, and from 55 and 45 after years in
a special occupation (underground, at height, in heat, very heavy work). The 2024 decision
keeps these early retirements and lets nobody retire by choice before the original 60, 50
or 55."""

_WORKING = frozenset(
    {EmploymentStatus.EMPLOYED, EmploymentStatus.SELF_EMPLOYED, EmploymentStatus.FLEXIBLE}
)


def _add_months(day: date, months: int) -> date:
    """``day`` ``months`` later; a day the month lacks is its last (the earlier reading)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _raised_months(rule: _Raise, birth_date: date) -> int:
    first_year, first_month = rule.first_born
    after = (birth_date.year - first_year) * 12 + birth_date.month - first_month
    delay = 0 if after < 0 else min(rule.cap_months, after // rule.every_months + 1)
    return rule.years * 12 + delay


def statutory_retirement_age_months(birth_date: date, sex: Sex) -> int:
    """The lowest statutory retirement age, in months, of a person of ``sex`` born then:
    a man's (60 raised to 63) or a woman worker's (50 raised to 55), by birth month."""
    return _raised_months(_LOWEST_STATUTORY[sex], birth_date)


def highest_statutory_retirement_age_months(birth_date: date, sex: Sex | None) -> int:
    """The highest statutory retirement age, in months, that can apply to a person of
    ``sex`` born then: a man's (60 raised to 63) or a woman cadre's (55 raised to 58), by
    birth month; a sex not known, a man's (the higher)."""
    return _raised_months(_HIGHEST_STATUTORY[sex or Sex.MALE], birth_date)


def working_age_ends(birth_date: date, sex: Sex) -> date:
    """The day a member reaches the lowest statutory retirement age for their sex and
    birth month (the birthday that many years and months on)."""
    return _add_months(birth_date, statutory_retirement_age_months(birth_date, sex))


def working_age_ends_at_the_latest(birth_date: date, sex: Sex | None) -> date:
    """The day a member reaches the highest statutory retirement age that can apply to
    them (the birthday that many years and months on): nobody is of working age from then."""
    return _add_months(birth_date, highest_statutory_retirement_age_months(birth_date, sex))


def _in_years(months: int) -> str:
    years, rest = divmod(months, 12)
    return f"{years}" + (f" years {rest} month{'s' if rest > 1 else ''}" if rest else "")


def employment_violations(
    status: EmploymentStatus,
    birth_date: date,
    sex: Sex | None,
    on: date,
    pointer: str,
    *,
    disability_grade: DisabilityGrade,
    seriously_ill: bool,
    student: bool,
) -> list[Violation]:
    """A member's employment status on ``on`` fits their age then (ADR 0021):

    - working (employed, self-employed, flexible): 16 or older;
    - unemployed: 16 or older, and before the highest statutory retirement age that can
      apply to the member (a man's; a woman cadre's, the higher of a woman's; a man's for a
      sex not known): registered unemployment is for people of working age;
    - retired: 45 or older for a woman, 50 for a man, or 16 with a disability or a serious
      illness recorded (a retirement for a work injury, or in the forces for a disability
      or an illness, has no lower age);
    - not of working age: under 16, from the lowest statutory retirement age for the
      member's sex and birth month, or a full-time student (``student``) of any age.

    A sex not known (None) is read as a woman's for the lower bounds, whose are the lower,
    and as a man's for unemployment's upper bound, whose is the higher."""
    age = age_on(birth_date, on)
    where = f"{pointer}/employment_status"
    if (
        status is EmploymentStatus.UNEMPLOYED
        and age >= MIN_WORKING_AGE
        and on >= working_age_ends_at_the_latest(birth_date, sex)
    ):
        latest = _in_years(highest_statutory_retirement_age_months(birth_date, sex))
        born_so = {Sex.MALE: "a man", Sex.FEMALE: "a woman", None: "anyone"}[sex]
        return [
            Violation(
                where,
                f"the member is past the statutory retirement age on {on}: at most {latest}"
                f" for {born_so} born in that month, so not unemployed (registered"
                " unemployment is for those of working age, 就业促进法; ADR 0021): give"
                " the status that holds, not_of_working_age or retired",
            )
        ]
    sex = sex or Sex.FEMALE
    if status in _WORKING and age < MIN_WORKING_AGE:
        return [Violation(where, f"a member under {MIN_WORKING_AGE} cannot be employed")]
    if status is EmploymentStatus.UNEMPLOYED and age < MIN_WORKING_AGE:
        return [
            Violation(
                where,
                f"a member under {MIN_WORKING_AGE} is not of working age (Labour Law art. 15),"
                " so not unemployed",
            )
        ]
    whom = "a man" if sex is Sex.MALE else "a woman"
    if status is EmploymentStatus.RETIRED:
        earliest = EARLIEST_RETIREMENT_AGE[sex]
        if age < MIN_WORKING_AGE:
            return [Violation(where, f"a member under {MIN_WORKING_AGE} cannot have retired")]
        if age < earliest and disability_grade is DisabilityGrade.NONE and not seriously_ill:
            return [
                Violation(
                    where,
                    f"{whom} under {earliest} on {on} cannot have retired but for a disability"
                    " or a serious illness, none recorded (国发〔1978〕104号's earliest"
                    " early retirement; ADR 0021): give the status that holds",
                )
            ]
    if (
        status is EmploymentStatus.NOT_OF_WORKING_AGE
        and not student
        and age >= MIN_WORKING_AGE
        and on < working_age_ends(birth_date, sex)
    ):
        statutory = _in_years(statutory_retirement_age_months(birth_date, sex))
        return [
            Violation(
                where,
                f"the member is of working age on {on}: from {MIN_WORKING_AGE} up to the"
                f" statutory retirement age, at least {statutory} for {whom} born in that"
                " month; give the status that holds, or student: true for a full-time"
                " student (ADR 0021)",
            )
        ]
    return []
