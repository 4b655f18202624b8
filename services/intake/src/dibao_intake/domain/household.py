"""Households and their members: who may be registered, and how."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from dibao_intake.domain.codes import (
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    MarriageAgeBasis,
    Relationship,
    Sex,
)
from dibao_intake.domain.divisions import DivisionLevel, DivisionTable, UnknownDivisionError
from dibao_intake.domain.errors import Violation, raise_if_any
from dibao_intake.domain.resident_id import (
    InvalidResidentIdError,
    ResidentId,
    age_on,
    parse_resident_id,
)
from dibao_intake.domain.working_age import employment_violations

MARRIAGE_LAWS: tuple[tuple[date, Mapping[Sex, int]], ...] = (
    (date.min, {Sex.MALE: 20, Sex.FEMALE: 18}),
    (date(1981, 1, 1), {Sex.MALE: 22, Sex.FEMALE: 20}),
)
"""The legal marriage age of a man and of a woman, by the day the marriage is contracted,
each from the day its law took effect (ADR 0016, 3 Dec 2026, helper hAX): the Marriage
Law of 1950 (art. 4: 20 and 18), held also for a marriage dated before it took effect on
1 May 1950; the Marriage Law of 1980 from 1 January 1981 (art. 6: 22 and 20), kept by the
Civil Code (art. 1047). A marriage is judged by the law of its day: a couple who married
at 20 and 18 in 1975 married lawfully, and so did a de facto marriage before 1 February
1994 whose partners were of that day's age (事实婚姻)."""


ADAPTED_MARRIAGE_AGES: Mapping[Sex, int] = {Sex.MALE: 20, Sex.FEMALE: 18}
"""The lowest legal marriage age of a man and of a woman under an autonomous area's adapted
provisions of art. 1047 (变通规定: Xinjiang, Tibet, Inner Mongolia, Ningxia and several
autonomous prefectures lower it to 20 and 18, often for minority citizens only), applied
only to a marriage the clerk records as lawful under one (``MarriageAgeBasis
.AUTONOMOUS_ADAPTATION``), never lower (ADR 0016, 3 Dec 2026, helper hBB). The record
holds neither where the marriage was registered nor the couple's ethnicity: the clerk
says it, from the marriage certificate."""


def _laws(basis: MarriageAgeBasis | None) -> tuple[tuple[date, Mapping[Sex, int]], ...]:
    """``MARRIAGE_LAWS``, each law's ages lowered to ``ADAPTED_MARRIAGE_AGES`` for a
    marriage lawful under an autonomous area's adaptation (none is lowered further)."""
    if basis is not MarriageAgeBasis.AUTONOMOUS_ADAPTATION:
        return MARRIAGE_LAWS
    return tuple(
        (since, {sex: min(age, ADAPTED_MARRIAGE_AGES[sex]) for sex, age in ages.items()})
        for since, ages in MARRIAGE_LAWS
    )


def marriage_age(sex: Sex | None, on: date, basis: MarriageAgeBasis | None = None) -> int:
    """The legal marriage age of a person of ``sex`` on ``on`` (``MARRIAGE_LAWS``): 22 for
    a man and 20 for a woman since 1981, 20 and 18 before, and 20 and 18 on any day under
    an autonomous area's adaptation (``basis``); a woman's when the sex is not known (unit
    tests only)."""
    ages = next(ages for since, ages in reversed(_laws(basis)) if on >= since)
    return ages[Sex.FEMALE if sex is None else sex]


def of_marriageable_age(
    birth_date: date, sex: Sex | None, on: date, basis: MarriageAgeBasis | None = None
) -> bool:
    """``on`` is a day someone born on ``birth_date`` may marry: of the age the law of
    that day sets (the birthday itself counts: ``age_on``), adapted by ``basis``."""
    return age_on(birth_date, on) >= marriage_age(sex, on, basis)


def first_marriageable_day(
    *people: tuple[date, Sex | None], basis: MarriageAgeBasis | None = None
) -> date:
    """The first day on which every one of ``people`` (birth date, sex) was of marriageable
    age by the law of that day: the earliest a couple with no marriage day recorded can
    have married. The age rose on 1 January 1981, so a man who turned 20 in 1980 could
    marry then, and not again until 22 (29 February counts as 1 March); under an
    autonomous area's adaptation (``basis``) 20 and 18 throughout."""
    laws = [*_laws(basis), (date.max, {})]
    for (since, ages), (until, _) in itertools.pairwise(laws):
        day = max(
            since,
            *(birthday(born, ages[Sex.FEMALE if sex is None else sex]) for born, sex in people),
        )
        if day < until:
            return day
    raise AssertionError("the last law has no end")


def married_by(
    birth_date: date, sex: Sex | None, on: date, basis: MarriageAgeBasis | None = None
) -> bool:
    """Someone born on ``birth_date`` may have married by ``on`` (a couple whose marriage
    has no day in the record: registered together, a spouse who moved in)."""
    return first_marriageable_day((birth_date, sex), basis=basis) <= on


def adapted(basis: MarriageAgeBasis | None) -> str:
    """What a refusal adds when the clerk said the marriage was lawful under an autonomous
    area's adaptation: that the lower ages were applied, and that none is lower."""
    if basis is not MarriageAgeBasis.AUTONOMOUS_ADAPTATION:
        return ""
    return (
        ", even by an autonomous area's adapted ages (marriage_age_basis autonomous_adaptation:"
        " 20 for a man, 18 for a woman, never lower)"
    )


def birthday(birth_date: date, years: int) -> date:
    """The day someone born on ``birth_date`` is ``years`` old (1 March for 29 February,
    as ``age_on`` counts it)."""
    try:
        return birth_date.replace(year=birth_date.year + years)
    except ValueError:
        return date(birth_date.year + years, 3, 1)


_YOUNGER_THAN_HEAD = frozenset({Relationship.CHILD, Relationship.GRANDCHILD})
_OLDER_THAN_HEAD = frozenset({Relationship.PARENT, Relationship.GRANDPARENT})


@dataclass(frozen=True, slots=True)
class MemberInput:
    """A member as the clerk declares them; birth date and sex are optional cross-checks."""

    name: str
    id_number: str
    relationship: Relationship
    disability_grade: DisabilityGrade
    seriously_ill: bool
    employment_status: EmploymentStatus
    student: bool
    counted: bool
    exclusion_reason: ExclusionReason | None
    exclusion_note: str | None
    declared_birth_date: date | None = None
    declared_sex: Sex | None = None
    name_correction: bool = False
    """The person's recorded name is wrong and ``name`` corrects it (a member joining by a
    change, with the ID card or household register among the change's documents)."""
    marriage_age_basis: MarriageAgeBasis | None = None
    """The head's spouse registered or moving in: the couple's marriage was lawful under
    an autonomous area's adapted ages (or the Civil Code's, said explicitly); None: not
    said, the Civil Code's (ADR 0016, 3 Dec 2026, helper hBB)."""


@dataclass(frozen=True, slots=True)
class ValidMember:
    """A member whose ID number is valid and agrees with what was declared."""

    input: MemberInput
    resident_id: ResidentId

    @property
    def birth_date(self) -> date:
        return self.resident_id.birth_date

    @property
    def sex(self) -> Sex:
        return self.resident_id.sex


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What the rules need to know about a recorded member."""

    person_id: uuid.UUID
    relationship: Relationship
    birth_date: date
    counted: bool
    disability_grade: DisabilityGrade
    seriously_ill: bool
    student: bool
    employment_status: EmploymentStatus
    exclusion_reason: ExclusionReason | None = None
    """Why a member is not counted (None when counted): some reasons mean living apart."""


def validate_member(
    member: MemberInput, *, pointer: str, today: date
) -> tuple[ValidMember | None, list[Violation]]:
    """Check one member on its own: ID number, cross-checks, exclusion, employment age."""
    violations: list[Violation] = []
    try:
        rid = parse_resident_id(member.id_number, today=today)
    except InvalidResidentIdError as exc:
        violations.append(Violation(f"{pointer}/id_number", exc.reason))
        rid = None
    if rid is not None:
        if member.declared_birth_date is not None and member.declared_birth_date != rid.birth_date:
            violations.append(
                Violation(f"{pointer}/birth_date", "does not match the birth date in the ID number")
            )
        if member.declared_sex is not None and member.declared_sex is not rid.sex:
            violations.append(
                Violation(f"{pointer}/sex", "does not match the sex in the ID number")
            )
        violations.extend(
            employment_violations(
                member.employment_status,
                rid.birth_date,
                rid.sex,
                today,
                pointer,
                disability_grade=member.disability_grade,
                seriously_ill=member.seriously_ill,
                student=member.student,
            )
        )
    violations.extend(
        exclusion_violations(
            member.counted, member.exclusion_reason, member.exclusion_note, pointer
        )
    )
    if member.marriage_age_basis is not None and member.relationship is not Relationship.SPOUSE:
        violations.append(Violation(f"{pointer}/marriage_age_basis", BASIS_ONLY_FOR_SPOUSE))
    if violations:
        return None, violations
    assert rid is not None
    return ValidMember(member, rid), []


BASIS_ONLY_FOR_SPOUSE = (
    "only for the head's spouse (relationship spouse), whose marriage to the head it says"
    " was lawful under that basis; a marriage recorded as a change says it on the marriage"
)


def exclusion_violations(
    counted: bool,
    exclusion_reason: ExclusionReason | None,
    exclusion_note: str | None,
    pointer: str,
) -> list[Violation]:
    """A member not counted has a reason code (and a provincial rule, words); a counted
    member has none."""
    if counted and exclusion_reason is not None:
        return [
            Violation(f"{pointer}/exclusion_reason", "a counted member has no exclusion reason")
        ]
    if not counted and exclusion_reason is None:
        return [
            Violation(f"{pointer}/exclusion_reason", "a member not counted needs a reason code")
        ]
    if exclusion_reason is ExclusionReason.PROVINCIAL_OTHER and not exclusion_note:
        return [
            Violation(f"{pointer}/exclusion_note", "say which provincial rule excludes the member")
        ]
    return []


@dataclass(frozen=True, slots=True)
class ValidHousehold:
    region_code: str
    area_type: AreaType
    members: tuple[ValidMember, ...]

    @property
    def head(self) -> ValidMember:
        return next(m for m in self.members if m.input.relationship is Relationship.HEAD)


def validate_household(
    region_code: str,
    area_type: AreaType,
    members: Sequence[MemberInput],
    *,
    divisions: DivisionTable,
    today: date,
) -> ValidHousehold:
    """Every rule of a new household at once; raises ``RulesViolatedError`` listing them all."""
    violations: list[Violation] = []
    try:
        divisions.require(region_code, DivisionLevel.VILLAGE)
    except UnknownDivisionError:
        violations.append(
            Violation("/region_code", "not a village or community in the division table")
        )
    valid: list[ValidMember] = []
    seen: dict[str, int] = {}
    for index, member in enumerate(members):
        checked, problems = validate_member(member, pointer=f"/members/{index}", today=today)
        violations.extend(problems)
        if checked is None:
            continue
        first = seen.setdefault(checked.resident_id.number, index)
        if first != index:
            violations.append(
                Violation(f"/members/{index}/id_number", f"the same person as /members/{first}")
            )
            continue
        valid.append(checked)
    violations.extend(_composition_violations(members))
    if not violations:
        violations.extend(_age_order_violations(valid, today))
    raise_if_any(violations)
    return ValidHousehold(region_code=region_code, area_type=area_type, members=tuple(valid))


def _composition_violations(members: Sequence[MemberInput]) -> list[Violation]:
    heads = [i for i, m in enumerate(members) if m.relationship is Relationship.HEAD]
    spouses = [i for i, m in enumerate(members) if m.relationship is Relationship.SPOUSE]
    found: list[Violation] = []
    if not heads:
        found.append(Violation("/members", "one member must be the head of household"))
    found.extend(
        Violation(f"/members/{i}/relationship", "the household already has a head")
        for i in heads[1:]
    )
    found.extend(
        Violation(f"/members/{i}/relationship", "the head already has a spouse")
        for i in spouses[1:]
    )
    return found


def _age_order_violations(members: Sequence[ValidMember], today: date) -> list[Violation]:
    head = next(m for m in members if m.input.relationship is Relationship.HEAD)
    found: list[Violation] = []
    for index, member in enumerate(members):
        relation = member.input.relationship
        pointer = f"/members/{index}/relationship"
        found += age_order_violations(relation, member.birth_date, head.birth_date, pointer)
        found += marriage_age_violations(
            relation,
            member.birth_date,
            head.birth_date,
            today,
            pointer,
            sex=member.sex,
            head_sex=head.sex,
            basis=member.input.marriage_age_basis,
        )
        if relation is Relationship.SPOUSE and member.sex is head.sex:
            # A marriage is between a man and a woman (Civil Code arts. 1046, 1049; ADR 0016).
            found.append(
                Violation(
                    f"/members/{index}/relationship",
                    f"the spouse is {member.sex} as the head is, by the ID numbers: a marriage"
                    " is between a man and a woman",
                )
            )
    return found


def check_joining_member(
    member: ValidMember, *, head_birth_date: date, pointer: str
) -> list[Violation]:
    """A member joining an existing household (birth, marriage, moving in)."""
    relation = member.input.relationship
    if relation is Relationship.HEAD:
        return [Violation(f"{pointer}/relationship", "the household already has a head")]
    return age_order_violations(
        relation, member.birth_date, head_birth_date, f"{pointer}/relationship"
    )


def age_order_violations(
    relation: Relationship, birth_date: date, head_birth_date: date, pointer: str
) -> list[Violation]:
    """A child or grandchild is younger than the head, a parent or grandparent older: at
    a registration, a member joining, and a relationship corrected (ADR 0016)."""
    if relation in _YOUNGER_THAN_HEAD and birth_date <= head_birth_date:
        return [Violation(pointer, f"a {relation} is younger than the head")]
    if relation in _OLDER_THAN_HEAD and birth_date >= head_birth_date:
        return [Violation(pointer, f"a {relation} is older than the head")]
    return []


def marriage_age_violations(
    relation: Relationship,
    birth_date: date,
    head_birth_date: date,
    on: date,
    pointer: str,
    *,
    sex: Sex | None = None,
    head_sex: Sex | None = None,
    basis: MarriageAgeBasis | None = None,
) -> list[Violation]:
    """The head's spouse, registered or joining on ``on``, and the head are both of
    marriageable age that day (ADR 0016, 2 Dec 2026): no marriage day is recorded for
    them, but none can be before both were of age (``married_by``: 22 for a man and 20 for
    a woman, the law since 1981, 3 Dec 2026, helper hAX; one who married earlier at the
    ages of the law then, 20 and 18, was of age; 20 and 18 for a couple the clerk says
    married under an autonomous area's adaptation, ``basis``, helper hBB)."""
    if relation is not Relationship.SPOUSE:
        return []
    return [
        Violation(
            pointer,
            f"{who} is under {marriage_age(of, on, basis)} on {on}{adapted(basis)}:"
            f" {NOBODY_YOUNGER}",
        )
        for who, born, of in (
            ("the spouse", birth_date, sex),
            ("the head", head_birth_date, head_sex),
        )
        if not married_by(born, of, on, basis)
    ]


NOBODY_YOUNGER = (
    "nobody younger is married in China (Civil Code art. 1047: 22 for a man, 20 for a woman;"
    " 20 and 18 for a marriage before 1981, or lawful under an autonomous area's adapted"
    " ages, which marriage_age_basis autonomous_adaptation says); check the ID numbers and"
    " the relationship"
)


def masked_household_ref(household_id: uuid.UUID, region_code: str) -> str:
    """A reference that lets staff of that county find the household, and tells others little.

    E.g. ``620102-****-3f9c``: the county and the last four hex digits of the id.
    """
    return f"{region_code[:6]}-****-{household_id.hex[-4:]}"
