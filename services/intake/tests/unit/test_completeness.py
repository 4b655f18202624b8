"""Consistency (refused) and completeness (returned with every missing item) of applications."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import pytest

from dibao_intake.domain.application import (
    ApplicationDraft,
    AssetDeclaration,
    CompletenessPolicy,
    DocumentOnFile,
    IncomeDeclaration,
    MissingItem,
    check_application,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    AssetKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    Relationship,
)
from dibao_intake.domain.errors import RulesViolatedError
from dibao_intake.domain.household import MemberFacts

TODAY = date(2026, 11, 28)
POLICY = CompletenessPolicy()
HOUSEHOLD = uuid.uuid4()
HEAD, WIFE, DAUGHTER, SON = (uuid.uuid4() for _ in range(4))


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


MEMBERS = [
    facts(HEAD, Relationship.HEAD, date(1966, 5, 1), employment_status=EmploymentStatus.FLEXIBLE),
    facts(
        WIFE,
        Relationship.SPOUSE,
        date(1969, 8, 8),
        disability_grade=DisabilityGrade.GRADE_2,
        employment_status=EmploymentStatus.UNABLE_TO_WORK,
    ),
    facts(DAUGHTER, Relationship.CHILD, date(2006, 3, 3), student=True),
    facts(
        SON,
        Relationship.CHILD,
        date(2015, 6, 6),
        employment_status=EmploymentStatus.NOT_OF_WORKING_AGE,
    ),
]


def doc(kind: DocumentType, person: uuid.UUID | None = None) -> DocumentOnFile:
    return DocumentOnFile(uuid.uuid4(), kind, HOUSEHOLD, person)


def income(person: uuid.UUID, wage: int = 0, transfer: int = 0) -> IncomeDeclaration:
    return IncomeDeclaration(person, wage, 0, 0, transfer, 0, 6)


def complete_dibao() -> ApplicationDraft:
    return ApplicationDraft(
        household_id=HOUSEHOLD,
        kind=ApplicationKind.DIBAO,
        applicant_person_id=HEAD,
        incomes=[income(HEAD, wage=95_000), income(WIFE, transfer=20_000), income(DAUGHTER)],
        assets=[AssetDeclaration(None, AssetKind.DEPOSIT, 300_000, 1, None, "savings")],
        documents=[
            doc(DocumentType.APPLICATION_FORM),
            doc(DocumentType.HOUSEHOLD_REGISTER),
            doc(DocumentType.VERIFICATION_AUTHORISATION),
            doc(DocumentType.ID_CARD, HEAD),
            doc(DocumentType.ID_CARD, WIFE),
            doc(DocumentType.ID_CARD, DAUGHTER),
            doc(DocumentType.INCOME_PROOF, HEAD),
            doc(DocumentType.DISABILITY_CERTIFICATE, WIFE),
            doc(DocumentType.STUDENT_PROOF, DAUGHTER),
        ],
        has_bank_account=True,
        requested_amount_fen=None,
        reason=None,
        individual_inclusion_person_id=None,
    )


def missing(draft: ApplicationDraft) -> list[MissingItem]:
    check_application(draft, MEMBERS, today=TODAY, policy=POLICY)
    return missing_items(draft, MEMBERS, today=TODAY, policy=POLICY)


def test_a_complete_dibao_application_misses_nothing() -> None:
    assert missing(complete_dibao()) == []


def test_an_empty_dibao_application_lists_every_missing_item_once() -> None:
    draft = dataclasses.replace(complete_dibao(), incomes=[], documents=[], has_bank_account=False)
    items = missing(draft)
    assert [(i.document_type, i.person_id, i.field) for i in items] == [
        (DocumentType.APPLICATION_FORM, None, None),
        (DocumentType.HOUSEHOLD_REGISTER, None, None),
        (DocumentType.VERIFICATION_AUTHORISATION, None, None),
        (DocumentType.ID_CARD, HEAD, None),
        (None, HEAD, "incomes"),
        (DocumentType.ID_CARD, WIFE, None),
        (None, WIFE, "incomes"),
        (DocumentType.DISABILITY_CERTIFICATE, WIFE, None),
        (DocumentType.ID_CARD, DAUGHTER, None),
        (None, DAUGHTER, "incomes"),
        (DocumentType.STUDENT_PROOF, DAUGHTER, None),
        (None, None, "bank_account"),
    ]
    assert all(i.description for i in items)


def test_wages_need_a_proof_and_a_minor_declares_nothing() -> None:
    draft = complete_dibao()
    draft = dataclasses.replace(
        draft,
        documents=[d for d in draft.documents if d.document_type is not DocumentType.INCOME_PROOF],
    )
    assert [(i.document_type, i.person_id) for i in missing(draft)] == [
        (DocumentType.INCOME_PROOF, HEAD)
    ]


def test_members_not_counted_need_no_id_card_or_income() -> None:
    members = [
        dataclasses.replace(m, counted=False) if m.person_id == DAUGHTER else m for m in MEMBERS
    ]
    draft = complete_dibao()
    draft = dataclasses.replace(
        draft,
        incomes=[i for i in draft.incomes if i.person_id != DAUGHTER],
        documents=[
            d
            for d in draft.documents
            if d.person_id != DAUGHTER or d.document_type is DocumentType.STUDENT_PROOF
        ],
    )
    assert missing_items(draft, members, today=TODAY, policy=POLICY) == []


def test_one_off_kinds_need_an_amount_and_a_reason_and_their_own_documents() -> None:
    draft = dataclasses.replace(
        complete_dibao(),
        kind=ApplicationKind.MEDICAL,
        incomes=[],
        requested_amount_fen=None,
        reason="  ",
    )
    items = missing(draft)
    assert [(i.field, i.document_type) for i in items] == [
        ("requested_amount_fen", None),
        ("reason", None),
        (None, DocumentType.MEDICAL_RECORD),
    ]
    festival = dataclasses.replace(
        complete_dibao(),
        kind=ApplicationKind.FESTIVAL,
        incomes=[],
        requested_amount_fen=50_000,
        reason="春节",
    )
    assert missing(festival) == []


def test_the_policy_decides_what_is_required() -> None:
    lenient = CompletenessPolicy(
        verification_authorisation_for=frozenset(), income_proof_for_wages=False
    )
    draft = dataclasses.replace(
        complete_dibao(),
        documents=[
            d
            for d in complete_dibao().documents
            if d.document_type
            not in (DocumentType.VERIFICATION_AUTHORISATION, DocumentType.INCOME_PROOF)
        ],
    )
    assert missing_items(draft, MEMBERS, today=TODAY, policy=lenient) == []
    assert len(missing_items(draft, MEMBERS, today=TODAY, policy=POLICY)) == 2


def violations(draft: ApplicationDraft) -> set[str]:
    with pytest.raises(RulesViolatedError) as caught:
        check_application(draft, MEMBERS, today=TODAY, policy=POLICY)
    return {v.pointer for v in caught.value.violations}


def test_inconsistent_applications_are_refused_with_every_problem() -> None:
    stranger = uuid.uuid4()
    draft = dataclasses.replace(
        complete_dibao(),
        applicant_person_id=SON,  # a minor
        incomes=[income(stranger), income(HEAD), income(HEAD)],
        assets=[AssetDeclaration(stranger, AssetKind.VEHICLE, 1, 1, 40, None)],
        documents=[DocumentOnFile(uuid.uuid4(), DocumentType.ID_CARD, uuid.uuid4(), None)],
        requested_amount_fen=10_000,
    )
    assert violations(draft) == {
        "/applicant_person_id",
        "/incomes/0/person_id",
        "/incomes/2/person_id",
        "/assets/0/person_id",
        "/assets/0/floor_area_m2",
        "/document_ids/0",
        "/requested_amount_fen",
    }


def test_individual_inclusion_is_for_a_severely_disabled_or_ill_member_and_dibao_only() -> None:
    assert missing(dataclasses.replace(complete_dibao(), individual_inclusion_person_id=WIFE)) == []
    assert violations(
        dataclasses.replace(complete_dibao(), individual_inclusion_person_id=DAUGHTER)
    ) == {"/individual_inclusion_person_id"}
    one_off = dataclasses.replace(
        complete_dibao(),
        kind=ApplicationKind.HEATING,
        individual_inclusion_person_id=WIFE,
        requested_amount_fen=30_000,
        reason="winter",
    )
    assert violations(one_off) == {"/individual_inclusion_person_id"}


def test_income_total_adds_the_five_categories() -> None:
    assert IncomeDeclaration(HEAD, 1, 2, 3, 4, 5, 6).total_fen == 15
