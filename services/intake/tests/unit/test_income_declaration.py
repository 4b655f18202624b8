"""A member's receipts not counted as income and deductions (domain.md, "Income and
assets"; ADR 0007, 3 Dec 2026): the rules that refuse them (422, every problem at once),
the proof an employed member declaring no wage shows, and how they are published."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime

import pytest

from dibao.common.v1 import enums_pb2 as enums
from dibao_common.testing.auth_fixtures import auth_settings_values
from dibao_common.testing.service_env import common_secret_values
from dibao_intake.adapters import contracts
from dibao_intake.adapters.records import HouseholdRecord, MemberRecord
from dibao_intake.domain.application import (
    ApplicationDraft,
    CompletenessPolicy,
    Deduction,
    DocumentOnFile,
    IncomeDeclaration,
    NotCountedReceipt,
    check_application,
    missing_items,
    months_before,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AreaType,
    DeductionKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    HouseholdStatus,
    NotCountedKind,
    Relationship,
    Sex,
)
from dibao_intake.domain.errors import RulesViolatedError
from dibao_intake.domain.household import MemberFacts
from dibao_intake.settings import IntakeSettings
from dibao_intake.testing import pii_settings_for_tests

TODAY = date(2026, 12, 3)
POLICY = CompletenessPolicy()
HOUSEHOLD = uuid.uuid4()
HEAD, WIFE, GRANDMA, SON, BABY = (uuid.uuid4() for _ in range(5))


def facts(person: uuid.UUID, rel: Relationship, born: date, **changes: object) -> MemberFacts:
    base = MemberFacts(
        person_id=person,
        relationship=rel,
        birth_date=born,
        counted=True,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        student=False,
        employment_status=EmploymentStatus.UNEMPLOYED,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


HEAD_FACTS = facts(
    HEAD, Relationship.HEAD, date(1990, 5, 1), employment_status=EmploymentStatus.EMPLOYED
)
WIFE_FACTS = facts(
    WIFE,
    Relationship.SPOUSE,
    date(1992, 8, 8),
    disability_grade=DisabilityGrade.GRADE_2,
    employment_status=EmploymentStatus.UNABLE_TO_WORK,
)
GRANDMA_FACTS = facts(
    GRANDMA,
    Relationship.PARENT,
    date(1958, 2, 2),
    seriously_ill=True,
    employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
)
SON_FACTS = facts(
    SON, Relationship.CHILD, date(2014, 6, 6), employment_status=EmploymentStatus.NOT_OF_WORKING_AGE
)
BABY_FACTS = facts(
    BABY,
    Relationship.CHILD,
    date(2025, 4, 10),
    employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
)
MEMBERS = [HEAD_FACTS, WIFE_FACTS, GRANDMA_FACTS, SON_FACTS, BABY_FACTS]


def declared(
    person: uuid.UUID,
    *,
    wage: int = 0,
    operating: int = 0,
    not_counted: tuple[tuple[NotCountedKind, int], ...] = (),
    deductions: tuple[tuple[DeductionKind, int], ...] = (),
) -> IncomeDeclaration:
    return IncomeDeclaration(
        person,
        wage,
        operating,
        0,
        0,
        0,
        6,
        None,
        tuple(NotCountedReceipt(k, fen) for k, fen in not_counted),
        tuple(Deduction(k, fen) for k, fen in deductions),
    )


def draft(*incomes: IncomeDeclaration) -> ApplicationDraft:
    return ApplicationDraft(
        household_id=HOUSEHOLD,
        kind=ApplicationKind.DIBAO,
        applicant_person_id=HEAD,
        incomes=list(incomes),
        assets=[],
        documents=[],
        has_bank_account=True,
        requested_amount_fen=None,
        reason=None,
        individual_inclusion_person_id=None,
    )


def problems(*incomes: IncomeDeclaration, members: list[MemberFacts] = MEMBERS) -> list[str]:
    try:
        check_application(draft(*incomes), members, today=TODAY, policy=POLICY)
    except RulesViolatedError as error:
        return [f"{v.pointer}: {v.detail}" for v in error.violations]
    return []


def test_a_household_declaring_what_the_domain_allows_is_consistent() -> None:
    """Each kind where it belongs: the head's taxes and costs of working (under his wage),
    the wife's disability costs, the grandmother's basic pension and illness costs, the
    childcare subsidy of the baby paid to the mother."""
    assert (
        problems(
            declared(
                HEAD,
                wage=250_000,
                deductions=(
                    (DeductionKind.TAXES_AND_SOCIAL_INSURANCE, 26_000),
                    (DeductionKind.EMPLOYMENT_COSTS, 30_000),
                ),
            ),
            declared(
                WIFE,
                not_counted=(
                    (NotCountedKind.CHILDCARE_SUBSIDY, 30_000),
                    (NotCountedKind.SOCIAL_ASSISTANCE, 10_000),
                ),
                deductions=((DeductionKind.DISABILITY_COSTS, 40_000),),
            ),
            declared(
                GRANDMA,
                not_counted=((NotCountedKind.RESIDENTS_BASIC_PENSION, 18_000),),
                deductions=((DeductionKind.SERIOUS_ILLNESS_COSTS, 120_000),),
            ),
        )
        == []
    )


def test_each_deduction_needs_the_fact_it_is_for_and_every_problem_is_told() -> None:
    assert problems(
        declared(
            HEAD,
            wage=100_000,
            deductions=(
                (DeductionKind.DISABILITY_COSTS, 10_000),
                (DeductionKind.SERIOUS_ILLNESS_COSTS, 10_000),
            ),
        ),
        declared(WIFE, deductions=((DeductionKind.EMPLOYMENT_COSTS, 5_000),)),
    ) == [
        "/incomes/0/deductions/0/kind: costs of a disability: the member has no disability grade",
        "/incomes/0/deductions/1/kind: costs of a serious illness: the member is not recorded"
        " as ill",
        "/incomes/1/deductions/0/kind: costs of working: the member does not work (unable_to_work)",
    ]


def test_costs_of_working_are_at_most_the_wage_and_operating_income() -> None:
    costs = ((DeductionKind.EMPLOYMENT_COSTS, 80_001),)
    assert problems(declared(HEAD, wage=50_000, operating=30_000, deductions=costs)) == [
        "/incomes/0/deductions/0/monthly_fen: costs of working exceed the member's wage and"
        " operating income"
    ]
    fits = ((DeductionKind.EMPLOYMENT_COSTS, 80_000),)
    assert problems(declared(HEAD, wage=50_000, operating=30_000, deductions=fits)) == []


def test_taxes_and_contributions_are_not_bounded_by_the_net_income() -> None:
    """A flexible worker pays their own pension contributions out of little: what was
    paid is recorded beside the net amounts, which it was taken off before."""
    paid = ((DeductionKind.TAXES_AND_SOCIAL_INSURANCE, 90_000),)
    assert problems(declared(HEAD, wage=20_000, deductions=paid)) == []


def test_one_of_each_kind_a_member() -> None:
    assert problems(
        declared(
            GRANDMA,
            not_counted=(
                (NotCountedKind.RESIDENTS_BASIC_PENSION, 18_000),
                (NotCountedKind.RESIDENTS_BASIC_PENSION, 2_000),
            ),
            deductions=(
                (DeductionKind.SERIOUS_ILLNESS_COSTS, 1_000),
                (DeductionKind.SERIOUS_ILLNESS_COSTS, 1_000),
            ),
        )
    ) == [
        "/incomes/0/not_counted/1/kind: declared twice: one amount of each kind",
        "/incomes/0/deductions/1/kind: declared twice: one amount of each kind",
    ]


def test_the_basic_pension_is_paid_from_sixty() -> None:
    pension = ((NotCountedKind.RESIDENTS_BASIC_PENSION, 18_000),)
    assert problems(declared(HEAD, not_counted=pension)) == [
        "/incomes/0/not_counted/0/kind: the residents' basic pension is paid from 60: the"
        " member is younger"
    ]
    assert problems(declared(GRANDMA, not_counted=pension)) == []


def test_a_childcare_subsidy_needs_a_child_under_three_in_the_period() -> None:
    subsidy = ((NotCountedKind.CHILDCARE_SUBSIDY, 30_000),)
    without_baby = [HEAD_FACTS, WIFE_FACTS, GRANDMA_FACTS, SON_FACTS]
    assert problems(declared(WIFE, not_counted=subsidy), members=without_baby) == [
        "/incomes/0/not_counted/0/kind: a childcare subsidy, but no member of the household"
        " was under 3 in the declared period"
    ]
    # Three on 1 December 2026, under three on the period's first day (3 June 2026).
    just_three = dataclasses.replace(BABY_FACTS, birth_date=date(2023, 12, 1))
    assert problems(declared(WIFE, not_counted=subsidy), members=[*without_baby, just_three]) == []
    three_before = dataclasses.replace(BABY_FACTS, birth_date=date(2023, 5, 1))
    assert problems(declared(WIFE, not_counted=subsidy), members=[*without_baby, three_before])


def test_childcare_subsidies_are_at_most_300_yuan_a_month_per_child() -> None:
    """One baby: 300 yuan a month, whoever of the family it is paid to (the record does
    not tell a child's guardian)."""
    assert problems(
        declared(WIFE, not_counted=((NotCountedKind.CHILDCARE_SUBSIDY, 20_000),)),
        declared(GRANDMA, not_counted=((NotCountedKind.CHILDCARE_SUBSIDY, 10_001),)),
    ) == [
        "/incomes/0/not_counted/0/monthly_fen: childcare subsidies above 30000 fen a month:"
        " the household has 1 child(ren) under 3, each 30000 fen a month"
    ]
    twin = facts(uuid.uuid4(), Relationship.CHILD, date(2025, 4, 10))
    assert (
        problems(
            declared(WIFE, not_counted=((NotCountedKind.CHILDCARE_SUBSIDY, 60_000),)),
            members=[*MEMBERS, twin],
        )
        == []
    )


def test_a_child_is_not_paid_a_childcare_subsidy() -> None:
    assert problems(declared(SON, not_counted=((NotCountedKind.CHILDCARE_SUBSIDY, 30_000),))) == [
        "/incomes/0/not_counted/0/kind: the childcare subsidy is paid to a child's parent or"
        " guardian, not to a member under 16"
    ]


def test_months_before_counts_calendar_months() -> None:
    assert months_before(date(2026, 12, 3), 6) == date(2026, 6, 3)
    assert months_before(date(2026, 3, 31), 3) == date(2025, 12, 28)
    assert months_before(date(2026, 1, 15), 12) == date(2025, 1, 15)


DOCUMENTS = [
    DocumentOnFile(uuid.uuid4(), kind, HOUSEHOLD, person)
    for kind, person in (
        (DocumentType.APPLICATION_FORM, None),
        (DocumentType.HOUSEHOLD_REGISTER, None),
        (DocumentType.VERIFICATION_AUTHORISATION, None),
        (DocumentType.ID_CARD, HEAD),
    )
]


def _missing(head: MemberFacts, income: IncomeDeclaration, *extra: DocumentOnFile) -> list[str]:
    application = dataclasses.replace(draft(income), documents=[*DOCUMENTS, *extra])
    return [
        f"{i.document_type}: {i.description}"
        for i in missing_items(application, [head], today=TODAY, policy=POLICY)
    ]


def test_an_employed_member_declaring_no_wage_shows_a_proof_of_no_pay() -> None:
    assert _missing(HEAD_FACTS, declared(HEAD)) == [
        "income_proof: proof that the member's employer pays no wage (an employer's statement"
        " or an unpaid-leave certificate)"
    ]
    proof = DocumentOnFile(uuid.uuid4(), DocumentType.INCOME_PROOF, HOUSEHOLD, HEAD)
    assert _missing(HEAD_FACTS, declared(HEAD), proof) == []
    # A wage asks for the wage's proof; a member in flexible work has no employer to say so.
    assert _missing(HEAD_FACTS, declared(HEAD, wage=100_000)) == [
        "income_proof: proof of the member's wages"
    ]
    flexible = dataclasses.replace(HEAD_FACTS, employment_status=EmploymentStatus.FLEXIBLE)
    assert _missing(flexible, declared(HEAD)) == []


def test_the_policy_may_ask_no_proof_of_no_pay() -> None:
    application = dataclasses.replace(draft(declared(HEAD)), documents=DOCUMENTS)
    lenient = CompletenessPolicy(no_pay_proof_for_employed=False)
    assert missing_items(application, [HEAD_FACTS], today=TODAY, policy=lenient) == []
    # Wage proofs switched off: a wage asks for no proof; the proof of no pay is a rule of
    # its own, still asked of an employed member declaring no wage.
    no_proofs = CompletenessPolicy(income_proof_for_wages=False)
    wage = dataclasses.replace(application, incomes=[declared(HEAD, wage=100_000)])
    assert missing_items(wage, [HEAD_FACTS], today=TODAY, policy=no_proofs) == []
    [asked] = missing_items(application, [HEAD_FACTS], today=TODAY, policy=no_proofs)
    assert asked.description.startswith("proof that the member's employer pays no wage")


@pytest.mark.parametrize(("setting", "asked"), [(None, True), ("true", True), ("false", False)])
def test_a_setting_turns_the_proof_of_no_pay_off(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, asked: bool
) -> None:
    """DIBAO_INTAKE_NO_PAY_PROOF_FOR_EMPLOYED reaches the policy as
    DIBAO_INTAKE_INCOME_PROOF_FOR_WAGES does (default on); off, an employed member declaring
    no wage is asked for no proof, while a wage still asks for its own."""
    if setting is None:
        monkeypatch.delenv("DIBAO_INTAKE_NO_PAY_PROOF_FOR_EMPLOYED", raising=False)
    else:
        monkeypatch.setenv("DIBAO_INTAKE_NO_PAY_PROOF_FOR_EMPLOYED", setting)
    settings = IntakeSettings(
        database_url="postgresql+asyncpg://x/y",
        kafka_bootstrap="k:1",
        pii=pii_settings_for_tests(),
        **auth_settings_values(),
        **common_secret_values(),
    )
    policy = settings.completeness_policy()
    application = dataclasses.replace(draft(declared(HEAD)), documents=DOCUMENTS)
    found = [
        f"{m.document_type}: {m.description}"
        for m in missing_items(application, [HEAD_FACTS], today=TODAY, policy=policy)
    ]
    no_pay = (
        "income_proof: proof that the member's employer pays no wage (an employer's statement"
        " or an unpaid-leave certificate)"
    )
    assert found == ([no_pay] if asked else [])
    wage = dataclasses.replace(application, incomes=[declared(HEAD, wage=100_000)])
    asked_of_wage = missing_items(wage, [HEAD_FACTS], today=TODAY, policy=policy)
    assert [m.description for m in asked_of_wage] == ["proof of the member's wages"]


def _record(person: uuid.UUID, name: str) -> MemberRecord:
    return MemberRecord(
        membership_id=uuid.uuid4(),
        person_id=person,
        name=name,
        masked_id="620102********0011",
        id_hash="h-" + name,
        birth_date=date(1990, 5, 1),
        sex=Sex.MALE,
        relationship=Relationship.HEAD,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        employment_status=EmploymentStatus.EMPLOYED,
        student=False,
        counted=True,
        exclusion_reason=None,
        exclusion_note=None,
        active=True,
        joined_on=date(2026, 1, 1),
        left_on=None,
        left_reason=None,
    )


def test_the_snapshot_carries_each_declaration_once_and_no_note_five_times() -> None:
    """ApplicationSubmitted: the member who declared carries the period, the note once,
    the receipts and the deductions; DeclaredIncome's five entries carry no copy of the
    note; a member who declared nothing carries no declaration."""
    at = datetime(2026, 12, 3, tzinfo=UTC)
    household = HouseholdRecord(
        id=HOUSEHOLD,
        region_code="620102001001",
        area_type=AreaType.URBAN,
        address="-",
        status=HouseholdStatus.ACTIVE,
        head_person_id=HEAD,
        version=1,
        created_at=at,
        updated_at=at,
    )
    income = dataclasses.replace(
        declared(
            HEAD,
            wage=100_000,
            not_counted=((NotCountedKind.LOCALLY_EXCLUDED, 5_000),),
            deductions=((DeductionKind.TAXES_AND_SOCIAL_INSURANCE, 10_500),),
        ),
        note="在超市理货",
    )
    snapshot = contracts.household_snapshot(
        household, [_record(HEAD, "马建国"), _record(WIFE, "李秀兰")], "k1", declarations=[income]
    )
    head, wife = snapshot.members
    assert head.HasField("income_declaration")
    assert not wife.HasField("income_declaration")
    sent = head.income_declaration
    assert (sent.period_months, sent.note) == (6, "在超市理货")
    assert [(r.kind, r.monthly_amount.fen) for r in sent.not_counted] == [
        (enums.NOT_COUNTED_KIND_LOCALLY_EXCLUDED, 5_000)
    ]
    assert [(d.kind, d.monthly_amount.fen) for d in sent.deductions] == [
        (enums.DEDUCTION_KIND_TAXES_AND_SOCIAL_INSURANCE, 10_500)
    ]
    entries = contracts.declared_incomes([income])
    assert len(entries) == 5
    assert {e.description for e in entries} == {""}
    # HouseholdRegistered's and HouseholdUpdated's snapshot: no declaration at all.
    plain = contracts.household_snapshot(household, [_record(HEAD, "马建国")], "k1")
    assert not plain.members[0].HasField("income_declaration")


@pytest.mark.parametrize("kinds", [NotCountedKind, DeductionKind])
def test_in_order_lists_the_kinds_as_their_vocabulary_does(
    kinds: type[NotCountedKind] | type[DeductionKind],
) -> None:
    income = declared(
        GRANDMA,
        not_counted=tuple((k, 1) for k in reversed(NotCountedKind)),
        deductions=tuple((k, 1) for k in reversed(DeductionKind)),
    ).in_order()
    listed = income.not_counted if kinds is NotCountedKind else income.deductions
    assert [x.kind for x in listed] == list(kinds)
