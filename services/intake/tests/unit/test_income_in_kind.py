"""Income received in kind (实物收入; domain.md, "Income and assets": income counted is the
total monetary and in-kind income; ADR 0007, 3 Dec 2026): the part of each category's
amount a member received in kind is within that amount (422 otherwise, every problem at
once), is published as a category's second DeclaredIncome entry with ``in_kind`` set, and
the demo's rural farming families declare some."""

from __future__ import annotations

import uuid
from datetime import date

from dibao.common.v1 import enums_pb2 as enums
from dibao_intake.adapters import contracts
from dibao_intake.domain.application import (
    ApplicationDraft,
    CompletenessPolicy,
    IncomeDeclaration,
    InKind,
    check_application,
    in_kind_violations,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AreaType,
    DisabilityGrade,
    EmploymentStatus,
    Relationship,
)
from dibao_intake.domain.errors import RulesViolatedError, Violation
from dibao_intake.domain.household import MemberFacts
from dibao_intake.synthetic import Synthesizer, application_payload

TODAY = date(2026, 12, 3)
HOUSEHOLD, HEAD, WIFE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _member(person: uuid.UUID, relationship: Relationship, born: date) -> MemberFacts:
    return MemberFacts(
        person_id=person,
        relationship=relationship,
        birth_date=born,
        counted=True,
        disability_grade=DisabilityGrade.NONE,
        seriously_ill=False,
        student=False,
        employment_status=EmploymentStatus.SELF_EMPLOYED,
    )


MEMBERS = [
    _member(HEAD, Relationship.HEAD, date(1978, 3, 1)),
    _member(WIFE, Relationship.SPOUSE, date(1980, 9, 9)),
]


def declared(person: uuid.UUID, in_kind: InKind, **amounts: int) -> IncomeDeclaration:
    return IncomeDeclaration(
        person,
        amounts.get("wage", 0),
        amounts.get("operating", 0),
        amounts.get("property", 0),
        amounts.get("transfer", 0),
        amounts.get("other", 0),
        6,
        in_kind=in_kind,
    )


def problems(*incomes: IncomeDeclaration) -> list[str]:
    draft = ApplicationDraft(
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
    try:
        check_application(draft, MEMBERS, today=TODAY, policy=CompletenessPolicy())
    except RulesViolatedError as error:
        return [f"{v.pointer}: {v.detail}" for v in error.violations]
    return []


def test_a_part_in_kind_within_its_category_is_consistent() -> None:
    """Up to all of the amount: a family eating all it grows declares it all in kind."""
    assert (
        problems(
            declared(HEAD, InKind(operating_fen=40_000), operating=60_000),
            declared(
                WIFE, InKind(wage_fen=30_000, transfer_fen=5_000), wage=30_000, transfer=9_000
            ),
        )
        == []
    )


def test_a_part_above_its_category_or_of_a_category_not_declared_is_refused_all_at_once() -> None:
    """Before this change the in-kind parts were not read at all: nothing was refused."""
    assert problems(
        declared(HEAD, InKind(operating_fen=60_001, property_fen=500), operating=60_000),
        declared(WIFE, InKind(wage_fen=10_000, other_fen=1), wage=10_000),
    ) == [
        "/incomes/0/in_kind/operating_fen: the part received in kind exceeds the operating"
        " income declared (60000 fen a month)",
        "/incomes/0/in_kind/property_fen: received in kind, but no property income is"
        " declared (property_fen is 0)",
        "/incomes/1/in_kind/other_fen: received in kind, but no other income is declared"
        " (other_fen is 0)",
    ]


def test_a_negative_part_is_refused() -> None:
    """The schema refuses it first (Fen is not negative); the rule holds without it."""
    assert in_kind_violations(declared(HEAD, InKind(wage_fen=-1), wage=5_000), "/incomes/0") == [
        Violation("/incomes/0/in_kind/wage_fen", "a part received in kind is not negative")
    ]


def test_a_declaration_of_a_non_member_is_checked_too() -> None:
    """Every problem at once: the unknown member and the in-kind part above its amount."""
    stranger = uuid.uuid4()
    assert problems(declared(stranger, InKind(wage_fen=2), wage=1)) == [
        "/incomes/0/person_id: not an active member of the household",
        "/incomes/0/in_kind/wage_fen: the part received in kind exceeds the wage income"
        " declared (1 fen a month)",
    ]


def test_a_category_with_a_part_in_kind_is_published_as_cash_and_in_kind_entries() -> None:
    """Before: one entry per category, in_kind never set; verification took the family's
    own grain for cash the bank should have seen."""
    sent = contracts.declared_incomes(
        [
            declared(HEAD, InKind(operating_fen=40_000), operating=60_000, transfer=8_000),
            declared(WIFE, InKind(wage_fen=30_000), wage=30_000),
        ]
    )
    rows = [
        (i.person_id, i.category, i.monthly_amount.fen, i.in_kind, i.period_months) for i in sent
    ]
    head, wife = str(HEAD), str(WIFE)
    assert rows == [
        (head, enums.INCOME_CATEGORY_WAGE, 0, False, 6),
        (head, enums.INCOME_CATEGORY_OPERATING, 20_000, False, 6),
        (head, enums.INCOME_CATEGORY_OPERATING, 40_000, True, 6),
        (head, enums.INCOME_CATEGORY_PROPERTY, 0, False, 6),
        (head, enums.INCOME_CATEGORY_TRANSFER, 8_000, False, 6),
        (head, enums.INCOME_CATEGORY_OTHER, 0, False, 6),
        # All of the wage in goods: its cash entry says zero, the declared zero of cash.
        (wife, enums.INCOME_CATEGORY_WAGE, 0, False, 6),
        (wife, enums.INCOME_CATEGORY_WAGE, 30_000, True, 6),
        (wife, enums.INCOME_CATEGORY_OPERATING, 0, False, 6),
        (wife, enums.INCOME_CATEGORY_PROPERTY, 0, False, 6),
        (wife, enums.INCOME_CATEGORY_TRANSFER, 0, False, 6),
        (wife, enums.INCOME_CATEGORY_OTHER, 0, False, 6),
    ]


def test_an_all_cash_declaration_is_published_as_before() -> None:
    sent = contracts.declared_incomes([declared(HEAD, InKind(), wage=50_000)])
    assert [(i.monthly_amount.fen, i.in_kind) for i in sent] == [
        (50_000, False),
        (0, False),
        (0, False),
        (0, False),
        (0, False),
    ]


def test_rural_farming_families_declare_part_of_their_operating_income_in_kind() -> None:
    """Some, not all, of the rural self-employed (farming) members: 30 to 70 per cent of
    their operating income, the same for the same person; none in a town."""
    parts: list[tuple[int, int]] = []
    for seed in range(40):
        synthesizer = Synthesizer(seed, TODAY, babies=False)
        plan = synthesizer.household("620123101203", AreaType.RURAL, "村", "three_generations")
        again = Synthesizer(seed, TODAY, babies=False).household(
            "620123101203", AreaType.RURAL, "村", "three_generations"
        )
        assert [m.in_kind for m in again.members] == [m.in_kind for m in plan.members]
        head = plan.members[0]
        assert all(not m.in_kind for m in plan.members[1:])
        parts.append((head.in_kind.get("operating_fen", 0), head.operating_fen))
        body = application_payload("h", [str(i) for i in range(4)], plan, [])
        assert body["incomes"][0].get("in_kind", {}) == head.in_kind
        town = Synthesizer(seed, TODAY, babies=False).household(
            "620102001001", AreaType.URBAN, "街", "three_generations"
        )
        assert all(not m.in_kind for m in town.members)
    eaten = [(part, whole) for part, whole in parts if part]
    assert 0 < len(eaten) < len(parts)
    assert all(0.29 * whole <= part <= 0.7 * whole for part, whole in eaten)
    assert all(part % 100 == 0 for part, _ in eaten)
