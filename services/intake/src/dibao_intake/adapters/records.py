"""What repositories return: plain frozen records, free of ORM state and of raw numbers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationStatus,
    AreaType,
    DecisionOutcome,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    MarriageAgeBasis,
    Relationship,
    Sex,
    StaffRole,
    SubmissionChannel,
    UnassignedReason,
    WithdrawalCause,
)
from dibao_intake.domain.household import MemberFacts


@dataclass(frozen=True, slots=True)
class HouseholdRecord:
    id: uuid.UUID
    region_code: str
    area_type: AreaType
    address: str
    status: HouseholdStatus
    head_person_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HouseholdSummary:
    """A row of a household list: enough to pick a household, little personal data."""

    id: uuid.UUID
    region_code: str
    area_type: AreaType
    status: HouseholdStatus
    head_person_id: uuid.UUID | None
    head_name: str | None
    active_members: int
    created_at: datetime
    updated_at: datetime
    # For the list's access record only (not shown): the head's keyed hash and masked
    # number, by which every read names people.
    head_id_hash: str | None
    head_masked_id: str | None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A membership with the person's details (the ID number only masked and hashed)."""

    membership_id: uuid.UUID
    person_id: uuid.UUID
    name: str
    masked_id: str
    id_hash: str
    birth_date: date
    sex: Sex
    relationship: Relationship
    disability_grade: DisabilityGrade
    seriously_ill: bool
    employment_status: EmploymentStatus
    student: bool
    counted: bool
    exclusion_reason: ExclusionReason | None
    exclusion_note: str | None
    active: bool
    joined_on: date
    left_on: date | None
    left_reason: LeaveReason | None
    marriage_age_basis: MarriageAgeBasis | None = None
    """The head's spouse registered or moved in: the legal marriage age the clerk said
    their marriage to the head was lawful under (ADR 0016, 3 Dec 2026, helper hBB)."""

    def facts(self) -> MemberFacts:
        return MemberFacts(
            person_id=self.person_id,
            relationship=self.relationship,
            birth_date=self.birth_date,
            counted=self.counted,
            disability_grade=self.disability_grade,
            seriously_ill=self.seriously_ill,
            student=self.student,
            employment_status=self.employment_status,
            exclusion_reason=self.exclusion_reason,
        )


@dataclass(frozen=True, slots=True)
class BankAccountRecord:
    id: uuid.UUID
    household_id: uuid.UUID
    number_hash: str
    masked_number: str
    bank_code: str
    bank_name: str
    holder_name: str
    holder_person_id: uuid.UUID | None
    custody_agreement: bool
    custody_document_id: uuid.UUID | None
    custodian_subject: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: uuid.UUID
    household_id: uuid.UUID
    person_id: uuid.UUID | None
    document_type: DocumentType
    sha256: str
    size_bytes: int
    media_type: str
    uploaded_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    id: uuid.UUID
    kind: str
    effective_on: date
    details: dict[str, Any]
    note: str | None
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class HouseholdAggregate:
    """A household with its members (active and former), current account and changes."""

    household: HouseholdRecord
    members: tuple[MemberRecord, ...]
    bank_account: BankAccountRecord | None
    changes: tuple[ChangeRecord, ...] = ()

    @property
    def active_members(self) -> tuple[MemberRecord, ...]:
        return tuple(m for m in self.members if m.active)

    def member(self, person_id: uuid.UUID) -> MemberRecord | None:
        return next((m for m in self.members if m.person_id == person_id), None)


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    id: uuid.UUID
    household_id: uuid.UUID
    region_code: str
    kind: ApplicationKind
    channel: SubmissionChannel
    status: ApplicationStatus
    applicant_person_id: uuid.UUID
    statement: str | None
    reason: str | None
    requested_amount_fen: int | None
    individual_inclusion_person_id: uuid.UUID | None
    bank_account_id: uuid.UUID | None
    staff_related: bool
    staff_relation_note: str | None
    assigned_caseworker: str | None
    missing_items: list[dict[str, Any]]
    submitted_at: datetime
    submitted_by: str
    accepted_on: date | None
    withdrawn_at: datetime | None
    withdrawal_reason: str | None
    withdrawal_cause: WithdrawalCause | None
    unassigned_reason: UnassignedReason | None
    completes_application_id: uuid.UUID | None = None
    """The returned application of the household this one completes (migration 0017)."""
    decided_at: datetime | None = None
    """When assessment decided it (the decision's occurred_at), as the consumer learnt."""
    decision: DecisionOutcome | None = None
    """What it decided (migration 0018), set with ``decided_at``."""
    decided_amount_fen: int | None = None
    """The amount granted: monthly when approved, once when one-off approved."""
    notice_document_id: uuid.UUID | None = None
    """The notice given to the applicant of a returned application (migration 0020)."""


@dataclass(frozen=True, slots=True)
class ApplicationSummary:
    """A row of a search result: enough to pick a case, little personal data."""

    id: uuid.UUID
    household_id: uuid.UUID
    region_code: str
    kind: ApplicationKind
    status: ApplicationStatus
    applicant_person_id: uuid.UUID
    applicant_name: str
    staff_related: bool
    assigned_caseworker: str | None
    submitted_at: datetime
    # For the search's access record only (not shown): the applicant's keyed hash and
    # masked number, by which every read names people.
    applicant_id_hash: str
    applicant_masked_id: str
    decided_at: datetime | None = None
    decision: DecisionOutcome | None = None
    decided_amount_fen: int | None = None


@dataclass(frozen=True, slots=True)
class TimelineRecord:
    ce_id: uuid.UUID
    ce_type: str
    ce_source: str
    occurred_at: datetime
    actor: str | None
    summary: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StaffRelativeRecord:
    id: uuid.UUID
    relation: str
    name: str
    masked_id: str
    id_hash: str


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: uuid.UUID
    township_code: str
    name: str
    role: StaffRole
    subject: str | None
    responsible_caseworker: bool
    masked_id: str | None
    active: bool
    created_at: datetime
    relatives: tuple[StaffRelativeRecord, ...]
    id_hash: str | None
    deactivated_at: datetime | None
    deactivated_by: str | None
