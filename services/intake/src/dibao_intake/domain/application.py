"""Applications: what must be consistent (else 422) and what must be complete (else returned).

A payload that contradicts the household is refused outright. A consistent one that lacks
documents or declarations is recorded and returned with *every* missing item listed once,
as the national measures require: the applicant should never have to come back twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from dibao_intake.domain.codes import (
    ApplicationKind,
    AssetKind,
    DeductionKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    IncomeCategory,
    MissingItemCode,
    NotCountedKind,
)
from dibao_intake.domain.errors import Violation, raise_if_any
from dibao_intake.domain.household import MemberFacts
from dibao_intake.domain.resident_id import age_on

_SEVERE = frozenset({DisabilityGrade.GRADE_1, DisabilityGrade.GRADE_2})


@dataclass(frozen=True, slots=True)
class NotCountedReceipt:
    """A receipt that is not counted as income (domain.md): its average monthly fen."""

    kind: NotCountedKind
    monthly_fen: int


@dataclass(frozen=True, slots=True)
class Deduction:
    """A deduction from a member's income (domain.md): its average monthly fen. The counted
    categories are net of taxes and social-insurance contributions, so that kind records
    what was taken off them; the other kinds are claims not taken off (``DeductionKind``)."""

    kind: DeductionKind
    monthly_fen: int


_NOT_COUNTED = {k: i for i, k in enumerate(NotCountedKind)}
_DEDUCTIONS = {k: i for i, k in enumerate(DeductionKind)}
WORKING = frozenset(
    {EmploymentStatus.EMPLOYED, EmploymentStatus.SELF_EMPLOYED, EmploymentStatus.FLEXIBLE}
)
"""The employment statuses of a member who works: the ones with costs of working."""


@dataclass(frozen=True, slots=True)
class InKind:
    """The part of each category's monthly amount a member received in kind (实物收入: own
    grain, vegetables and livestock consumed, wages paid in goods), valued in fen; the
    rest of the amount is cash (ADR 0007, 3 Dec 2026). All zeros: all of it cash, or an
    application from before, which could not say."""

    wage_fen: int = 0
    operating_fen: int = 0
    property_fen: int = 0
    transfer_fen: int = 0
    other_fen: int = 0

    def of(self, category: IncomeCategory) -> int:
        return int(getattr(self, f"{category.value}_fen"))

    @property
    def total_fen(self) -> int:
        return sum(self.of(c) for c in IncomeCategory)


CASH_ONLY = InKind()


@dataclass(frozen=True, slots=True)
class IncomeDeclaration:
    """A member's average monthly income by category, in fen, net of taxes and
    social-insurance contributions; with the receipts not counted and the deductions
    declared beside it (3 Dec 2026), at most one of each kind."""

    person_id: uuid.UUID
    wage_fen: int
    operating_fen: int
    property_fen: int
    transfer_fen: int
    other_fen: int
    period_months: int
    note: str | None = None
    not_counted: tuple[NotCountedReceipt, ...] = ()
    deductions: tuple[Deduction, ...] = ()
    in_kind: InKind = CASH_ONLY
    """The part of each category's amount received in kind (3 Dec 2026), within it."""

    def amount(self, category: IncomeCategory) -> int:
        """The category's declared monthly amount, cash and in kind together."""
        return int(getattr(self, f"{category.value}_fen"))

    def in_order(self) -> IncomeDeclaration:
        """The declaration with its receipts and deductions in their vocabularies' order, as
        a read shows them whatever order the clerk gave (checks point into the request's)."""
        return replace(
            self,
            not_counted=tuple(sorted(self.not_counted, key=lambda r: _NOT_COUNTED[r.kind])),
            deductions=tuple(sorted(self.deductions, key=lambda d: _DEDUCTIONS[d.kind])),
        )

    @property
    def total_fen(self) -> int:
        return (
            self.wage_fen
            + self.operating_fen
            + self.property_fen
            + self.transfer_fen
            + self.other_fen
        )


@dataclass(frozen=True, slots=True)
class AssetDeclaration:
    person_id: uuid.UUID | None
    kind: AssetKind
    value_fen: int
    quantity: int
    floor_area_m2: int | None
    description: str | None


@dataclass(frozen=True, slots=True)
class DocumentOnFile:
    """A document handed in with the application (already stored, so its owner is known)."""

    document_id: uuid.UUID
    document_type: DocumentType
    household_id: uuid.UUID
    person_id: uuid.UUID | None


WRITTEN_BY_INTAKE = (
    "is the notice intake gave the applicant of a returned application (return_notice),"
    " not a document the household handed in"
)
"""A return notice listed as one of an application's or a change's documents (ADR 0009,
3 Dec 2026): intake wrote it, so it proves nothing the household brought."""


@dataclass(frozen=True, slots=True)
class ApplicationDraft:
    household_id: uuid.UUID
    kind: ApplicationKind
    applicant_person_id: uuid.UUID
    incomes: Sequence[IncomeDeclaration]
    assets: Sequence[AssetDeclaration]
    documents: Sequence[DocumentOnFile]
    has_bank_account: bool
    requested_amount_fen: int | None
    reason: str | None
    individual_inclusion_person_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class MissingItem:
    """One thing the applicant must still bring; ``field`` names a missing declaration.
    ``code`` says which item it is, as the return notice and the API's clients word it (ADR
    0009, 3 Dec 2026)."""

    description: str
    code: MissingItemCode = field(kw_only=True)
    document_type: DocumentType | None = None
    person_id: uuid.UUID | None = None
    field: str | None = None


def _kind_documents_default() -> dict[ApplicationKind, frozenset[DocumentType]]:
    return {
        ApplicationKind.MEDICAL: frozenset({DocumentType.MEDICAL_RECORD}),
        ApplicationKind.EDUCATION: frozenset({DocumentType.STUDENT_PROOF}),
    }


@dataclass(frozen=True, slots=True)
class CompletenessPolicy:
    """What a complete application contains; provinces tune it (defaults: national practice)."""

    adult_age: int = 16
    """From this age a member shows an ID card and, for dibao, declares income."""
    applicant_min_age: int = 18
    verification_authorisation_for: frozenset[ApplicationKind] = frozenset(
        {
            ApplicationKind.DIBAO,
            ApplicationKind.TEMPORARY,
            ApplicationKind.MEDICAL,
            ApplicationKind.EDUCATION,
        }
    )
    income_proof_for_wages: bool = True
    no_pay_proof_for_employed: bool = True
    """An employed member (employment status ``employed``: someone pays them) declaring no
    wage shows proof of it (an employer's statement, an unpaid-leave certificate): concealed
    income is the main complaint (domain.md), and a wage of zero is the easiest to conceal."""
    basic_pension_age: int = 60
    """The age from which the residents' basic pension is paid."""
    childcare_subsidy_age: int = 3
    """The childcare subsidy is paid for a child younger than this."""
    childcare_subsidy_monthly_fen: int = 30_000
    """The childcare subsidy per child and month (3,600 yuan a year, domain.md)."""
    living_apart: frozenset[ExclusionReason] = frozenset(
        {
            ExclusionReason.IMPRISONED,
            ExclusionReason.COMPULSORY_REHABILITATION,
            ExclusionReason.DECLARED_MISSING,
            ExclusionReason.RELIGIOUS_LIVING_APART,
            ExclusionReason.MILITARY_SERVICE,
        }
    )
    """Exclusion reasons that mean the member does not live with the household: such a
    member is no co-resident and does not apply for it (a provincial reason may not)."""
    kind_documents: Mapping[ApplicationKind, frozenset[DocumentType]] = field(
        default_factory=_kind_documents_default
    )


def applicant_violations(
    member: MemberFacts, pointer: str, *, today: date, policy: CompletenessPolicy
) -> list[Violation]:
    """Why an active member may not apply for the household (none: they may): an
    application is made by a co-resident member (domain.md) of ``applicant_min_age``. The
    same rules hold for the applicant at submission and for the member who takes an open
    application over when its applicant dies or moves out (ADR 0016, 3 Dec 2026)."""
    if member.exclusion_reason in policy.living_apart:
        # domain.md: an application is made by a co-resident member.
        return [
            Violation(pointer, f"not a co-resident member: not counted, {member.exclusion_reason}")
        ]
    if age_on(member.birth_date, today) < policy.applicant_min_age:
        return [Violation(pointer, f"the applicant must be {policy.applicant_min_age} or older")]
    return []


def applicant_after_leaving(
    leaver: uuid.UUID,
    open_applicants: Sequence[uuid.UUID],
    staying: Sequence[MemberFacts],
    head_after: uuid.UUID | None,
    named: uuid.UUID | None,
    *,
    today: date,
    policy: CompletenessPolicy,
    pointer: str = "/new_applicant_person_id",
) -> tuple[uuid.UUID | None, list[Violation]]:
    """Who applies for the household's open applications (``open_applicants``: their
    applicants) that ``leaver``, dying or moving out, applied for (ADR 0016, 3 Dec 2026):
    the member ``named``, held to an applicant's rules; else the head after the change
    (the new head, or the head who stays) when they may apply; else, when a member who
    stays may apply, one must be named (422); else nobody (None, no violation): the
    applications are closed, withdrawn as ``applicant_left``. ``staying``: the active
    members after the change (none: the household is dissolved, and that closes them)."""
    if leaver not in open_applicants or not staying:
        if named is not None:
            return None, [
                Violation(
                    pointer,
                    "only when the member leaving applied for an open application of a"
                    " household that stays",
                )
            ]
        return None, []
    return _successor(
        staying,
        head_after,
        named,
        today=today,
        policy=policy,
        pointer=pointer,
        not_staying="not an active member who stays in the household",
        head_cannot="the member leaving applied for the household's open application, and the"
        " head cannot take it over",
    )


NOT_UNABLE_TO_APPLY = (
    "only when the member changed applied for an open application and this change leaves"
    " them unable to apply"
)
"""A member change naming who applies now while its member applies for nothing open, or
may still apply after it."""


def applicant_after_change(
    changed: MemberFacts,
    open_applicants: Sequence[uuid.UUID],
    others: Sequence[MemberFacts],
    head: uuid.UUID,
    named: uuid.UUID | None,
    *,
    today: date,
    policy: CompletenessPolicy,
    pointer: str = "/new_applicant_person_id",
) -> tuple[bool, uuid.UUID | None, list[Violation]]:
    """The successor rule of ``applicant_after_leaving`` for a member who stays: a
    ``member_change`` after which ``changed`` (the member as the change leaves them)
    applies for one of the household's open applications (``open_applicants``: their
    applicants) and may no longer apply (``applicant_violations``: not counted for a
    reason of living apart, the one check a change of details can break; ADR 0016, 3 Dec
    2026). Whether their open applications change hands, who applies for them from now on
    (``named``, else the ``head`` when they may apply, else None: closed, withdrawn as
    ``applicant_left``, when no other member may apply), and the violations (a member who
    may not apply named; none named while the head may not and another member may; one
    named while the change leaves the applicant able to apply, or applying for nothing
    open). ``others``: the household's other active members."""
    if changed.person_id not in open_applicants or not applicant_violations(
        changed, pointer, today=today, policy=policy
    ):
        if named is not None:
            return (
                False,
                None,
                [Violation(pointer, NOT_UNABLE_TO_APPLY)],
            )
        return False, None, []
    successor, problems = _successor(
        others,
        head if head != changed.person_id else None,
        named,
        today=today,
        policy=policy,
        pointer=pointer,
        not_staying="not another active member of the household",
        head_cannot="the member who applied for the household's open application may no longer"
        " apply, and the head cannot take it over",
    )
    return True, successor, problems


def _successor(
    staying: Sequence[MemberFacts],
    head_after: uuid.UUID | None,
    named: uuid.UUID | None,
    *,
    today: date,
    policy: CompletenessPolicy,
    pointer: str,
    not_staying: str,
    head_cannot: str,
) -> tuple[uuid.UUID | None, list[Violation]]:
    """Among ``staying``: ``named`` when they may apply, else the head after the change
    when they may, else (None) a violation when another may, none when nobody may."""
    by_id = {m.person_id: m for m in staying}
    if named is not None:
        member = by_id.get(named)
        if member is None:
            return None, [Violation(pointer, not_staying)]
        problems = applicant_violations(member, pointer, today=today, policy=policy)
        return (None, problems) if problems else (named, [])
    may = [
        m.person_id
        for m in staying
        if not applicant_violations(m, pointer, today=today, policy=policy)
    ]
    if head_after in may:
        return head_after, []
    if may:
        return None, [
            Violation(
                pointer,
                f"{head_cannot}: name the member who applies for it now (a co-resident member"
                f" of {policy.applicant_min_age} or older)",
            )
        ]
    return None, []


def check_application(
    draft: ApplicationDraft,
    members: Sequence[MemberFacts],
    *,
    today: date,
    policy: CompletenessPolicy,
) -> None:
    """Consistency with the household; raises ``RulesViolatedError`` with every problem."""
    by_id = {m.person_id: m for m in members}
    found: list[Violation] = []
    applicant = by_id.get(draft.applicant_person_id)
    if applicant is None:
        found.append(Violation("/applicant_person_id", "not an active member of the household"))
    else:
        found += applicant_violations(applicant, "/applicant_person_id", today=today, policy=policy)
    seen: set[uuid.UUID] = set()
    for i, income in enumerate(draft.incomes):
        if income.person_id not in by_id:
            found.append(
                Violation(f"/incomes/{i}/person_id", "not an active member of the household")
            )
        elif income.person_id in seen:
            found.append(Violation(f"/incomes/{i}/person_id", "one declaration per member"))
        else:
            found += declaration_violations(
                income, by_id[income.person_id], f"/incomes/{i}", today=today, policy=policy
            )
        found += in_kind_violations(income, f"/incomes/{i}")
        seen.add(income.person_id)
    found += childcare_violations(draft.incomes, members, today=today, policy=policy)
    for i, asset in enumerate(draft.assets):
        if asset.person_id is not None and asset.person_id not in by_id:
            found.append(
                Violation(f"/assets/{i}/person_id", "not an active member of the household")
            )
        if asset.kind is not AssetKind.HOUSING and asset.floor_area_m2 is not None:
            found.append(Violation(f"/assets/{i}/floor_area_m2", "only for housing"))
    for i, document in enumerate(draft.documents):
        if document.household_id != draft.household_id:
            found.append(Violation(f"/document_ids/{i}", "belongs to another household"))
        elif document.document_type is DocumentType.RETURN_NOTICE:
            found.append(Violation(f"/document_ids/{i}", WRITTEN_BY_INTAKE))
    if draft.kind.one_off:
        if draft.individual_inclusion_person_id is not None:
            found.append(
                Violation("/individual_inclusion_person_id", "only for dibao applications")
            )
    else:
        if draft.requested_amount_fen is not None:
            found.append(
                Violation("/requested_amount_fen", "dibao amounts are computed, not requested")
            )
        if draft.reason is not None:
            found.append(
                Violation(
                    "/reason",
                    "only for one-off kinds: a dibao application's account of hardship is"
                    " its statement",
                )
            )
        found.extend(_individual_inclusion_violations(draft, by_id))
    raise_if_any(found)


def months_before(day: date, months: int) -> date:
    """The day ``months`` calendar months before ``day`` (the 28th at the latest)."""
    years, month = divmod(day.month - 1 - months, 12)
    return date(day.year + years, month + 1, min(day.day, 28))


def declaration_violations(
    income: IncomeDeclaration,
    member: MemberFacts,
    pointer: str,
    *,
    today: date,
    policy: CompletenessPolicy,
) -> list[Violation]:
    """What a member's receipts not counted and deductions contradict in the member's
    recorded facts (domain.md, "Income and assets"): one of each kind; the residents' basic
    pension from its age; the extra costs of a disability for a member with a grade, of a
    serious illness for one recorded ill; costs of working for a member who works, at most
    the wage and operating income they were spent to earn. Taxes and social-insurance
    contributions are not bounded by the net amounts (a flexible worker pays their own
    pension contributions out of little), nor the costs of a disability or an illness by
    the member's own income (the household bears them)."""
    found: list[Violation] = []
    kinds: set[str] = set()
    for j, receipt in enumerate(income.not_counted):
        at = f"{pointer}/not_counted/{j}"
        if receipt.kind in kinds:
            found.append(Violation(f"{at}/kind", "declared twice: one amount of each kind"))
        kinds.add(receipt.kind)
        if receipt.kind is NotCountedKind.RESIDENTS_BASIC_PENSION and (
            age_on(member.birth_date, today) < policy.basic_pension_age
        ):
            found.append(
                Violation(
                    f"{at}/kind",
                    f"the residents' basic pension is paid from {policy.basic_pension_age}:"
                    " the member is younger",
                )
            )
        if receipt.kind is NotCountedKind.CHILDCARE_SUBSIDY and (
            age_on(member.birth_date, today) < policy.adult_age
        ):
            found.append(
                Violation(
                    f"{at}/kind",
                    "the childcare subsidy is paid to a child's parent or guardian, not to a"
                    f" member under {policy.adult_age}",
                )
            )
    kinds = set()
    for j, deduction in enumerate(income.deductions):
        at = f"{pointer}/deductions/{j}"
        if deduction.kind in kinds:
            found.append(Violation(f"{at}/kind", "declared twice: one amount of each kind"))
        kinds.add(deduction.kind)
        if (
            deduction.kind is DeductionKind.DISABILITY_COSTS
            and member.disability_grade is DisabilityGrade.NONE
        ):
            found.append(
                Violation(f"{at}/kind", "costs of a disability: the member has no disability grade")
            )
        elif deduction.kind is DeductionKind.SERIOUS_ILLNESS_COSTS and not member.seriously_ill:
            found.append(
                Violation(
                    f"{at}/kind", "costs of a serious illness: the member is not recorded as ill"
                )
            )
        elif deduction.kind is DeductionKind.EMPLOYMENT_COSTS:
            if member.employment_status not in WORKING:
                found.append(
                    Violation(
                        f"{at}/kind",
                        f"costs of working: the member does not work ({member.employment_status})",
                    )
                )
            elif deduction.monthly_fen > income.wage_fen + income.operating_fen:
                found.append(
                    Violation(
                        f"{at}/monthly_fen",
                        "costs of working exceed the member's wage and operating income",
                    )
                )
    return found


def in_kind_violations(income: IncomeDeclaration, pointer: str) -> list[Violation]:
    """The part of a category received in kind is a part of that category's declared
    amount (ADR 0007, 3 Dec 2026): not negative, not above the amount, and so none of a
    category declared zero. What is left is the cash verification compares with the bank
    and tax registries; an in-kind part above the amount would make that cash negative."""
    found: list[Violation] = []
    for category in IncomeCategory:
        part, declared = income.in_kind.of(category), income.amount(category)
        at = f"{pointer}/in_kind/{category.value}_fen"
        if part < 0:
            found.append(Violation(at, "a part received in kind is not negative"))
        elif part > 0 and declared == 0:
            found.append(
                Violation(
                    at,
                    f"received in kind, but no {category.value} income is declared"
                    f" ({category.value}_fen is 0)",
                )
            )
        elif part > declared:
            found.append(
                Violation(
                    at,
                    f"the part received in kind exceeds the {category.value} income declared"
                    f" ({declared} fen a month)",
                )
            )
    return found


def childcare_violations(
    incomes: Sequence[IncomeDeclaration],
    members: Sequence[MemberFacts],
    *,
    today: date,
    policy: CompletenessPolicy,
) -> list[Violation]:
    """The childcare subsidy is paid for a child under 3 (domain.md: 3,600 yuan a year per
    child): the household declaring it has a member under 3 on the first day of the
    declared period, and declares at most the subsidy of its children under 3 each month.
    Which member is a child's parent or guardian the record does not tell (a grandparent
    may be the guardian of a grandchild whose parents work away), so the household is
    judged, and only a member under 16 is refused as the one paid (above)."""
    paid = [
        (f"/incomes/{i}/not_counted/{j}", r)
        for i, income in enumerate(incomes)
        for j, r in enumerate(income.not_counted)
        if r.kind is NotCountedKind.CHILDCARE_SUBSIDY
    ]
    if not paid:
        return []
    period = max(income.period_months for income in incomes)
    start = months_before(today, period)
    children = sum(1 for m in members if age_on(m.birth_date, start) < policy.childcare_subsidy_age)
    pointer = paid[0][0]
    if children == 0:
        return [
            Violation(
                f"{pointer}/kind",
                f"a childcare subsidy, but no member of the household was under"
                f" {policy.childcare_subsidy_age} in the declared period",
            )
        ]
    allowed = children * policy.childcare_subsidy_monthly_fen
    if sum(r.monthly_fen for _, r in paid) > allowed:
        return [
            Violation(
                f"{pointer}/monthly_fen",
                f"childcare subsidies above {allowed} fen a month: the household has"
                f" {children} child(ren) under {policy.childcare_subsidy_age}, each"
                f" {policy.childcare_subsidy_monthly_fen} fen a month",
            )
        ]
    return []


def _individual_inclusion_violations(
    draft: ApplicationDraft, by_id: Mapping[uuid.UUID, MemberFacts]
) -> list[Violation]:
    if draft.individual_inclusion_person_id is None:
        return []
    member = by_id.get(draft.individual_inclusion_person_id)
    if member is None:
        return [
            Violation("/individual_inclusion_person_id", "not an active member of the household")
        ]
    if not member.counted:
        # The allowance covers counted members (domain.md, the benefit): one the household
        # does not count is covered neither with it nor alone.
        return [
            Violation(
                "/individual_inclusion_person_id",
                f"individual inclusion is for a counted member: not counted,"
                f" {member.exclusion_reason or 'no reason recorded'}",
            )
        ]
    if member.disability_grade not in _SEVERE and not member.seriously_ill:
        return [
            Violation(
                "/individual_inclusion_person_id",
                "individual inclusion is for a severely disabled or seriously ill member",
            )
        ]
    return []


def missing_items(
    draft: ApplicationDraft,
    members: Sequence[MemberFacts],
    *,
    today: date,
    policy: CompletenessPolicy,
) -> list[MissingItem]:
    """Every item the application lacks, in a stable order; empty when it is complete."""
    docs = {(d.document_type, d.person_id) for d in draft.documents}
    doc_types = {d.document_type for d in draft.documents}
    declared = {i.person_id: i for i in draft.incomes}
    items: list[MissingItem] = []

    def need_document(
        code: MissingItemCode, kind: DocumentType, person: uuid.UUID | None, what: str
    ) -> None:
        present = (kind, person) in docs if person is not None else kind in doc_types
        if not present:
            items.append(
                MissingItem(description=what, code=code, document_type=kind, person_id=person)
            )

    if draft.kind.one_off:
        if draft.requested_amount_fen is None or draft.requested_amount_fen <= 0:
            items.append(
                MissingItem(
                    "the amount asked for",
                    code=MissingItemCode.REQUESTED_AMOUNT,
                    field="requested_amount_fen",
                )
            )
        if not (draft.reason and draft.reason.strip()):
            items.append(
                MissingItem(
                    "the reason for the request",
                    code=MissingItemCode.REQUEST_REASON,
                    field="reason",
                )
            )
    for i, asset in enumerate(draft.assets):
        # A second home beyond the area limit disqualifies (domain.md): judged by its area.
        if asset.kind is AssetKind.HOUSING and asset.floor_area_m2 is None:
            items.append(
                MissingItem(
                    "the floor area of the declared housing",
                    code=MissingItemCode.HOUSING_FLOOR_AREA,
                    person_id=asset.person_id,
                    field=f"assets[{i}].floor_area_m2",
                )
            )
    need_document(
        MissingItemCode.APPLICATION_FORM,
        DocumentType.APPLICATION_FORM,
        None,
        "the signed application form",
    )
    need_document(
        MissingItemCode.HOUSEHOLD_REGISTER,
        DocumentType.HOUSEHOLD_REGISTER,
        None,
        "the household register (户口簿)",
    )
    if draft.kind in policy.verification_authorisation_for:
        need_document(
            MissingItemCode.VERIFICATION_AUTHORISATION,
            DocumentType.VERIFICATION_AUTHORISATION,
            None,
            "the signed authorisation to check the family's economic circumstances",
        )
    for member in members:
        adult = age_on(member.birth_date, today) >= policy.adult_age
        if member.counted and adult:
            need_document(
                MissingItemCode.ID_CARD,
                DocumentType.ID_CARD,
                member.person_id,
                "a copy of the member's ID card",
            )
        if draft.kind is ApplicationKind.DIBAO and member.counted and adult:
            income = declared.get(member.person_id)
            if income is None:
                items.append(
                    MissingItem(
                        "the member's monthly income declaration (zero if none)",
                        code=MissingItemCode.INCOME_DECLARATION,
                        person_id=member.person_id,
                        field="incomes",
                    )
                )
            elif policy.income_proof_for_wages and income.wage_fen > 0:
                need_document(
                    MissingItemCode.WAGE_PROOF,
                    DocumentType.INCOME_PROOF,
                    member.person_id,
                    "proof of the member's wages",
                )
            elif (
                policy.no_pay_proof_for_employed
                and income.wage_fen == 0
                and member.employment_status is EmploymentStatus.EMPLOYED
            ):
                need_document(
                    MissingItemCode.NO_PAY_PROOF,
                    DocumentType.INCOME_PROOF,
                    member.person_id,
                    "proof that the member's employer pays no wage (an employer's statement"
                    " or an unpaid-leave certificate)",
                )
        if member.disability_grade is not DisabilityGrade.NONE:
            need_document(
                MissingItemCode.DISABILITY_CERTIFICATE,
                DocumentType.DISABILITY_CERTIFICATE,
                member.person_id,
                "the disability certificate",
            )
        if member.seriously_ill and draft.kind is ApplicationKind.DIBAO:
            need_document(
                MissingItemCode.DIAGNOSIS,
                DocumentType.MEDICAL_RECORD,
                member.person_id,
                "the diagnosis of the illness",
            )
        if member.student and adult:
            need_document(
                MissingItemCode.STUDENT_PROOF,
                DocumentType.STUDENT_PROOF,
                member.person_id,
                "proof of full-time study",
            )
    for kind in sorted(policy.kind_documents.get(draft.kind, frozenset())):
        # A member-level item of the same type already asks for it.
        if not any(item.document_type is kind for item in items):
            need_document(
                MissingItemCode.KIND_DOCUMENT,
                kind,
                None,
                f"a {kind.replace('_', ' ')} for this kind of assistance",
            )
    if not draft.has_bank_account:
        items.append(
            MissingItem(
                "a bank account for payments",
                code=MissingItemCode.BANK_ACCOUNT,
                field="bank_account",
            )
        )
    return items
