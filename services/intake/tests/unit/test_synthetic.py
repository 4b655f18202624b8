"""Synthetic households obey the rules they are used to exercise."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date

import pytest

from dibao_intake.domain.application import (
    ApplicationDraft,
    CompletenessPolicy,
    DocumentOnFile,
    IncomeDeclaration,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AreaType,
    DocumentType,
    EmploymentStatus,
    Sex,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.household import MemberFacts, MemberInput, validate_household
from dibao_intake.domain.resident_id import age_on
from dibao_intake.synthetic import (
    SHAPE_WEIGHTS,
    SHAPES,
    PlannedHousehold,
    Synthesizer,
    pdf_bytes,
    required_documents,
)

TODAY = date(2026, 3, 2)
DIVISIONS = DivisionTable.load()


def _inputs(plan: PlannedHousehold) -> list[MemberInput]:
    return [
        MemberInput(
            name=m.name,
            id_number=m.id_number,
            relationship=m.relationship,
            disability_grade=m.disability_grade,
            seriously_ill=m.seriously_ill,
            employment_status=m.employment_status,
            student=m.student,
            counted=m.counted,
            exclusion_reason=m.exclusion_reason,
            exclusion_note=None,
        )
        for m in plan.members
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_is_a_valid_household_and_its_documents_make_it_complete(shape: str) -> None:
    synthesizer = Synthesizer(shape, TODAY)
    for _ in range(20):
        plan = synthesizer.household("620123101203", AreaType.RURAL, "x", shape)
        valid = validate_household(
            plan.region_code, plan.area_type, _inputs(plan), divisions=DIVISIONS, today=TODAY
        )
        ids = [uuid.uuid4() for _ in plan.members]
        household = uuid.uuid4()
        draft = ApplicationDraft(
            household_id=household,
            kind=ApplicationKind.DIBAO,
            applicant_person_id=ids[0],
            incomes=[
                IncomeDeclaration(pid, m.wage_fen, m.operating_fen, 0, m.transfer_fen, 0, 6)
                for pid, m in zip(ids, plan.members, strict=True)
                if m.counted
            ],
            assets=[],
            documents=[
                DocumentOnFile(
                    uuid.uuid4(), DocumentType(kind), household, ids[i] if i is not None else None
                )
                for kind, i in required_documents(plan, TODAY)
            ],
            has_bank_account=True,
            requested_amount_fen=None,
            reason=None,
            individual_inclusion_person_id=None,
        )
        facts = [
            MemberFacts(
                pid,
                m.input.relationship,
                m.birth_date,
                m.input.counted,
                m.input.disability_grade,
                m.input.seriously_ill,
                m.input.student,
                m.input.employment_status,
            )
            for pid, m in zip(ids, valid.members, strict=True)
        ]
        assert missing_items(draft, facts, today=TODAY, policy=CompletenessPolicy()) == []


def test_the_same_seed_gives_the_same_people_and_numbers_are_unique() -> None:
    first = Synthesizer(7, TODAY).household("620102001001", AreaType.URBAN, "x")
    again = Synthesizer(7, TODAY).household("620102001001", AreaType.URBAN, "x")
    assert first.payload() == again.payload()
    synthesizer = Synthesizer(8, TODAY)
    numbers = [
        m.id_number
        for _ in range(300)
        for m in synthesizer.household("620102001001", AreaType.URBAN, "x").members
    ]
    assert len(numbers) == len(set(numbers))


def test_the_stand_in_scan_is_a_pdf() -> None:
    content = pdf_bytes("申请书 application form")
    assert content.startswith(b"%PDF-1.4")
    assert content.rstrip().endswith(b"%%EOF")


def test_synthesizers_sharing_what_they_issued_never_draw_one_person_twice() -> None:
    """Tests seeded apart share one database: with the set of ID numbers already issued
    they never draw the same person, even when their seeds would have them do so."""
    issued: set[str] = set()
    first = Synthesizer(9, TODAY, used=issued)
    again = Synthesizer(9, TODAY, used=issued)
    born = date(1950, 5, 1)
    drawn = [s.id_number(born, Sex.MALE, "620102") for s in (first, again) for _ in range(200)]
    assert len(set(drawn)) == 400
    assert issued == set(drawn)
    assert Synthesizer(9, TODAY).id_number(born, Sex.MALE, "620102") == drawn[0]


@pytest.mark.parametrize("area", list(AreaType))
def test_households_are_drawn_like_a_dibao_caseload(area: AreaType) -> None:
    """Review of 3 Dec 2026: the eight types were drawn evenly, so one household in eight
    had a member in prison. Drawn by SHAPE_WEIGHTS (ADR 0021): mostly the elderly, the
    seriously ill, the disabled and single parents; prison in a few percent."""
    synthesizer = Synthesizer(f"caseload {area}", TODAY)
    drawn = Counter(synthesizer.household("620123101203", area, "x").shape for _ in range(4000))
    shares = {shape: count / 4000 for shape, count in drawn.items()}
    for shape, percent in SHAPE_WEIGHTS[area].items():
        assert abs(shares.get(shape, 0.0) - percent / 100) < 0.025, (shape, shares)
    assert shares["member_imprisoned"] < 0.05
    cared_for = ("elderly_alone", "elderly_couple", "seriously_ill_head", "disabled_spouse")
    assert sum(shares[s] for s in (*cared_for, "single_parent")) > 0.75


def test_the_heads_mother_keeps_her_own_surname() -> None:
    """She was given the head's surname; a Chinese woman keeps her own (drawn like a
    spouse's, so now and then the same by chance)."""
    synthesizer = Synthesizer("mothers", TODAY)
    same = 0
    for _ in range(200):
        head, _wife, mother, *_children = synthesizer.household(
            "620123101203", AreaType.RURAL, "x", "three_generations"
        ).members
        same += mother.name[0] == head.name[0]
    assert same < 40


@pytest.mark.parametrize("shape", SHAPES)
def test_statuses_fit_the_ages_years_on_and_the_elderly_never_retired(shape: str) -> None:
    """ADR 0021: every status fits its member's age on the day drawn and six years on (the
    children are students by then); the elderly of a dibao household draw the residents'
    pension, never retired from a job (a farmer does not retire): not_of_working_age."""
    synthesizer = Synthesizer(f"ages {shape}", TODAY)
    for area in AreaType:
        for _ in range(20):
            plan = synthesizer.household("620123101203", area, "x", shape)
            for day in (TODAY, TODAY.replace(year=TODAY.year + 6)):
                validate_household(
                    plan.region_code, area, _inputs(plan), divisions=DIVISIONS, today=day
                )
            for m in plan.members:
                assert m.employment_status is not EmploymentStatus.RETIRED
                if age_on(m.birth_date, TODAY) >= 65:
                    assert m.employment_status is EmploymentStatus.NOT_OF_WORKING_AGE


@pytest.mark.parametrize("shape", ["three_generations", "single_parent"])
def test_without_babies_a_shape_has_its_fixed_members(shape: str) -> None:
    """Tests seed their synthesizer anew each run and name a household's members by
    position (``head, wife, mother, kid = household.person_ids``): the baby a young mother
    has in the demo (some draws only) would make one run in three fail. Without babies the
    shape's members are its own; with them, some households of the same draws have one."""
    sizes = {
        babies: {
            len(
                Synthesizer(f"{shape} {seed}", TODAY, babies=babies)
                .household("620123101203", AreaType.RURAL, "x", shape)
                .members
            )
            for seed in range(60)
        }
        for babies in (True, False)
    }
    fixed = {"three_generations": {4}, "single_parent": {2, 3}}[shape]
    assert sizes[False] == fixed
    assert sizes[True] > fixed


def test_without_in_kind_every_amount_is_cash() -> None:
    """A test counts a declaration's DeclaredIncome entries (five per member); a rural
    family's income in kind (three in four draw some) would add one per category."""
    parts = {
        in_kind: sum(
            len(m.in_kind)
            for seed in range(40)
            for m in Synthesizer(f"kind {seed}", TODAY, in_kind=in_kind)
            .household("620123101203", AreaType.RURAL, "x", "three_generations")
            .members
        )
        for in_kind in (True, False)
    }
    assert parts[False] == 0
    assert parts[True] > 0
