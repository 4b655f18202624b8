"""ORM models of the intake service (its own database, its own metadata).

Tables only: no relationships, no behaviour. Repositories load what a use case needs with
explicit queries, and the API has its own schemas. Encrypted columns end in ``_cipher``
(AES-GCM through the kit, see ``adapters/pii.py``); ``id_hash`` columns hold the keyed
HMAC of an ID number for lookups.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dibao_common.db import service_metadata
from dibao_common.db.schema import service_schema


class Base(DeclarativeBase):
    metadata = service_metadata()


def migrated_schema() -> sa.MetaData:
    """What this service's migrations build, as one metadata: these models and the kit's
    tables. Alembic's ``target_metadata`` (``migrations/env.py``) and the schema test's
    reference (``dibao_common.db.schema``)."""
    return service_schema(Base.metadata)


_UUID = pg.UUID(as_uuid=True)
_TS = sa.DateTime(timezone=True)
_REGION = sa.String(12)


def _fk(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="RESTRICT")


class Person(Base):
    """A person known to intake, once, whatever household they are in."""

    __tablename__ = "person"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id_hash: Mapped[str] = mapped_column(sa.Text, unique=True)
    hash_key_id: Mapped[str] = mapped_column(sa.Text)
    id_number_cipher: Mapped[bytes] = mapped_column(sa.LargeBinary)
    masked_id: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    birth_date: Mapped[date] = mapped_column(sa.Date)
    sex: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(_TS)


class Household(Base):
    __tablename__ = "household"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    region_code: Mapped[str] = mapped_column(_REGION, index=True)
    area_type: Mapped[str] = mapped_column(sa.Text)
    address: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text)
    head_person_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("person.id"))
    version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(_TS)
    created_by: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(_TS)

    __table_args__ = (sa.CheckConstraint("status IN ('active', 'dissolved')", name="status"),)


class HouseholdMember(Base):
    """A person's membership of a household; ``active`` is false once they died or left."""

    __tablename__ = "household_member"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("household.id"), index=True)
    person_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("person.id"), index=True)
    relationship: Mapped[str] = mapped_column(sa.Text)
    disability_grade: Mapped[str] = mapped_column(sa.Text)
    seriously_ill: Mapped[bool] = mapped_column(sa.Boolean)
    employment_status: Mapped[str] = mapped_column(sa.Text)
    student: Mapped[bool] = mapped_column(sa.Boolean)
    counted: Mapped[bool] = mapped_column(sa.Boolean)
    exclusion_reason: Mapped[str | None] = mapped_column(sa.Text)
    exclusion_note: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    joined_on: Mapped[date] = mapped_column(sa.Date)
    left_on: Mapped[date | None] = mapped_column(sa.Date)
    left_reason: Mapped[str | None] = mapped_column(sa.Text)
    marriage_age_basis: Mapped[str | None] = mapped_column(sa.Text)
    """The head's spouse registered or moved in: the legal marriage age the clerk said
    their marriage was lawful under (migration 0022, ADR 0016, 3 Dec 2026, helper hBB)."""

    __table_args__ = (
        # One active household per person: the database, not a hope, enforces it.
        sa.Index(
            "uq_household_member_active_person",
            "person_id",
            unique=True,
            postgresql_where=sa.text("active"),
        ),
        sa.CheckConstraint("active = (left_on IS NULL)", name="active_until_left"),
        sa.CheckConstraint("counted = (exclusion_reason IS NULL)", name="excluded_has_reason"),
        sa.CheckConstraint(
            "marriage_age_basis IN ('civil_code', 'autonomous_adaptation')",
            name="marriage_age_basis",
        ),
    )


class BankAccount(Base):
    """An account payments go to; its id is the token other services know it by."""

    __tablename__ = "bank_account"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("household.id"), index=True)
    number_cipher: Mapped[bytes] = mapped_column(sa.LargeBinary)
    number_hash: Mapped[str] = mapped_column(sa.Text)
    masked_number: Mapped[str] = mapped_column(sa.Text)
    bank_code: Mapped[str] = mapped_column(sa.Text)
    bank_name: Mapped[str] = mapped_column(sa.Text)
    holder_name: Mapped[str] = mapped_column(sa.Text)
    holder_person_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("person.id"))
    custody_agreement: Mapped[bool] = mapped_column(sa.Boolean)
    custody_document_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("document.id"))
    custodian_subject: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(_TS)
    superseded_at: Mapped[datetime | None] = mapped_column(_TS)

    __table_args__ = (
        sa.Index(
            "uq_bank_account_current",
            "household_id",
            unique=True,
            postgresql_where=sa.text("superseded_at IS NULL"),
        ),
    )


class Document(Base):
    """A document handed in; the content lives in the document store under its sha256."""

    __tablename__ = "document"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("household.id"), index=True)
    person_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("person.id"))
    document_type: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    media_type: Mapped[str] = mapped_column(sa.Text)
    uploaded_by: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(_TS)
    # Set by migration 0014 alone, on a document handed in again before uploads answered
    # the one on file (docs/adr/0015, 3 Dec 2026): the earliest of those rows. Such rows
    # stay (applications and events name them); uploads never write it.
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("document.id"))

    __table_args__ = (
        sa.CheckConstraint("size_bytes > 0", name="not_empty"),
        # One document per content, type and member (or none) of a household: the same
        # handed in again answers the one on file (an upload's ON CONFLICT, migration 0014).
        sa.Index(
            "uq_document_handed_in",
            "household_id",
            "person_id",
            "document_type",
            "sha256",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=sa.text("duplicate_of IS NULL"),
        ),
    )


class HouseholdChange(Base):
    """One registered change of a household (birth, death, ...), as published."""

    __tablename__ = "household_change"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("household.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    effective_on: Mapped[date] = mapped_column(sa.Date)
    # Person ids, dates and flags only: never names or ID numbers.
    details: Mapped[dict[str, Any]] = mapped_column(pg.JSONB)
    note: Mapped[str | None] = mapped_column(sa.Text)
    recorded_by: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime] = mapped_column(_TS)


class Application(Base):
    __tablename__ = "application"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("household.id"), index=True)
    # The household's region when submitted: searches need no join.
    region_code: Mapped[str] = mapped_column(_REGION)
    kind: Mapped[str] = mapped_column(sa.Text)
    channel: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text)
    applicant_person_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("person.id"))
    statement: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    requested_amount_fen: Mapped[int | None] = mapped_column(sa.BigInteger)
    individual_inclusion_person_id: Mapped[uuid.UUID | None] = mapped_column(
        _UUID, _fk("person.id")
    )
    bank_account_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("bank_account.id"))
    staff_related: Mapped[bool] = mapped_column(sa.Boolean)
    staff_relation_note: Mapped[str | None] = mapped_column(sa.Text)
    assigned_caseworker: Mapped[str | None] = mapped_column(sa.Text)
    missing_items: Mapped[list[dict[str, Any]]] = mapped_column(pg.JSONB)
    submitted_at: Mapped[datetime] = mapped_column(_TS)
    submitted_by: Mapped[str] = mapped_column(sa.Text)
    accepted_on: Mapped[date | None] = mapped_column(sa.Date)
    withdrawn_at: Mapped[datetime | None] = mapped_column(_TS)
    withdrawal_reason: Mapped[str | None] = mapped_column(sa.Text)
    # Why it was withdrawn (codes.WithdrawalCause), set exactly when it was (migration
    # 0010); the reason above is the applicant's words, none for a dissolved household.
    withdrawal_cause: Mapped[str | None] = mapped_column(sa.Text)
    # Why an accepted application has no assigned caseworker (codes.UnassignedReason,
    # migration 0011); NULL when assigned, returned, or accepted before 0011.
    unassigned_reason: Mapped[str | None] = mapped_column(sa.Text)
    # When assessment decided it (approved or rejected), as the timeline consumer learnt:
    # the decision's occurred_at.
    decided_at: Mapped[datetime | None] = mapped_column(_TS)
    # What it decided (codes.DecisionOutcome, from the event's type) and the amount it
    # granted, in fen (monthly for approved, once for one-off; none for a refusal), set
    # with decided_at (migration 0018, ADR 0023).
    decision: Mapped[str | None] = mapped_column(sa.Text)
    decided_amount_fen: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The household's version it was made from; the database refuses the write when the
    # household changed since (migration 0007). NULL for applications written before.
    household_version: Mapped[int | None] = mapped_column(sa.Integer)
    # The staff roster's version its read saw (staff_roster_version); the database refuses
    # the write when the roster changed since (migration 0021, ADR 0009). NULL for
    # applications written before.
    roster_version: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The returned application of the household this one completes, sent again by the
    # clerk (migration 0017); one completion per returned application (the index below).
    completes_application_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("application.id"))
    # The notice given to the applicant of a returned application (一次性告知书), a document
    # of the household of type return_notice written with it (migration 0020, ADR 0009);
    # NULL for an accepted application and for one returned before 0020.
    notice_document_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("document.id"))

    __table_args__ = (
        sa.CheckConstraint("status IN ('submitted', 'returned', 'withdrawn')", name="status"),
        sa.CheckConstraint(
            "notice_document_id IS NULL OR status = 'returned'", name="notice_of_a_return"
        ),
        sa.Index(
            "uq_application_completes",
            "completes_application_id",
            unique=True,
            postgresql_where=sa.text("completes_application_id IS NOT NULL"),
        ),
        # One open (submitted, undecided) application per household and kind: two
        # submissions at once both pass the read's check; the second write fails here.
        sa.Index(
            "uq_application_open_kind",
            "household_id",
            "kind",
            unique=True,
            postgresql_where=sa.text("status = 'submitted' AND decided_at IS NULL"),
        ),
        sa.CheckConstraint("requested_amount_fen >= 0", name="requested_amount_not_negative"),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected', 'one_off_approved')", name="decision"
        ),
        sa.CheckConstraint(
            "(decision IS NULL) = (decided_at IS NULL)", name="decided_has_decision"
        ),
        sa.CheckConstraint(
            "decided_amount_fen IS NULL"
            " OR (decided_amount_fen >= 0 AND decision IN ('approved', 'one_off_approved'))",
            name="decided_amount_of_a_grant",
        ),
        sa.CheckConstraint(
            "withdrawal_cause IN ('applicant_request', 'household_dissolved', 'applicant_left')",
            name="withdrawal_cause",
        ),
        sa.CheckConstraint(
            "(status = 'withdrawn') = (withdrawal_cause IS NOT NULL)", name="withdrawn_has_cause"
        ),
        sa.CheckConstraint(
            "unassigned_reason IN"
            " ('caseworker_related', 'caseworker_not_identified', 'no_caseworker')",
            name="unassigned_reason",
        ),
        sa.CheckConstraint(
            "unassigned_reason IS NULL OR assigned_caseworker IS NULL",
            name="unassigned_has_no_caseworker",
        ),
        # Keyset pagination runs on id (UUIDv7, time-ordered) within a region prefix.
        sa.Index("ix_application_region_id", "region_code", "id"),
        sa.Index("ix_application_status_id", "status", "id"),
        sa.Index("ix_application_submitted_at", "submitted_at"),
    )


IN_KIND_WITHIN_AMOUNTS = " AND ".join(
    f"{c}_in_kind_fen BETWEEN 0 AND {c}_fen"
    for c in ("wage", "operating", "property", "transfer", "other")
)
"""Each part received in kind is within its category's amount (migration 0019)."""


class ApplicationIncome(Base):
    """A member's declared average monthly income, by category, in fen, net of taxes and
    social-insurance contributions (receipts not counted and deductions: the two below)."""

    __tablename__ = "application_income"

    application_id: Mapped[uuid.UUID] = mapped_column(
        _UUID, _fk("application.id"), primary_key=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("person.id"), primary_key=True)
    wage_fen: Mapped[int] = mapped_column(sa.BigInteger)
    operating_fen: Mapped[int] = mapped_column(sa.BigInteger)
    property_fen: Mapped[int] = mapped_column(sa.BigInteger)
    transfer_fen: Mapped[int] = mapped_column(sa.BigInteger)
    other_fen: Mapped[int] = mapped_column(sa.BigInteger)
    period_months: Mapped[int] = mapped_column(sa.SmallInteger)
    note: Mapped[str | None] = mapped_column(sa.Text)
    # The part of each amount received in kind, within it (migration 0019).
    wage_in_kind_fen: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    operating_in_kind_fen: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    property_in_kind_fen: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    transfer_in_kind_fen: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    other_in_kind_fen: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))

    __table_args__ = (
        sa.CheckConstraint(
            "wage_fen >= 0 AND operating_fen >= 0 AND property_fen >= 0"
            " AND transfer_fen >= 0 AND other_fen >= 0",
            name="amounts_not_negative",
        ),
        sa.CheckConstraint("period_months BETWEEN 1 AND 12", name="period_months"),
        sa.CheckConstraint(IN_KIND_WITHIN_AMOUNTS, name="in_kind_within_amounts"),
    )


NOT_COUNTED_KINDS = (
    "social_assistance",
    "state_award_or_scholarship",
    "residents_basic_pension",
    "childcare_subsidy",
    "special_care_pension",
    "family_planning_reward",
    "locally_excluded",
)
DEDUCTION_KINDS = (
    "taxes_and_social_insurance",
    "disability_costs",
    "serious_illness_costs",
    "employment_costs",
)
MONTHLY_ITEM_MAX_FEN = 10_000_000


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


class ApplicationIncomeNotCounted(Base):
    """A receipt a member declared that is not counted as income (migration 0015): one
    of each kind a member, beside the member's declaration."""

    __tablename__ = "application_income_not_counted"

    application_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    person_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    monthly_fen: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["application_id", "person_id"],
            ["application_income.application_id", "application_income.person_id"],
            ondelete="RESTRICT",
            name="fk_application_income_not_counted_declaration",
        ),
        sa.CheckConstraint(_kinds(NOT_COUNTED_KINDS), name="kind"),
        sa.CheckConstraint(f"monthly_fen BETWEEN 1 AND {MONTHLY_ITEM_MAX_FEN}", name="monthly_fen"),
    )


class ApplicationIncomeDeduction(Base):
    """A deduction a member declared (migration 0015): one of each kind a member."""

    __tablename__ = "application_income_deduction"

    application_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    person_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    monthly_fen: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["application_id", "person_id"],
            ["application_income.application_id", "application_income.person_id"],
            ondelete="RESTRICT",
            name="fk_application_income_deduction_declaration",
        ),
        sa.CheckConstraint(_kinds(DEDUCTION_KINDS), name="kind"),
        sa.CheckConstraint(f"monthly_fen BETWEEN 1 AND {MONTHLY_ITEM_MAX_FEN}", name="monthly_fen"),
    )


class ApplicationAsset(Base):
    __tablename__ = "application_asset"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    application_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("application.id"), index=True)
    person_id: Mapped[uuid.UUID | None] = mapped_column(_UUID, _fk("person.id"))
    kind: Mapped[str] = mapped_column(sa.Text)
    value_fen: Mapped[int] = mapped_column(sa.BigInteger)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    floor_area_m2: Mapped[int | None] = mapped_column(sa.Integer)
    description: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.CheckConstraint("value_fen >= 0", name="value_not_negative"),
        sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
    )


class ApplicationDocument(Base):
    __tablename__ = "application_document"

    application_id: Mapped[uuid.UUID] = mapped_column(
        _UUID, _fk("application.id"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("document.id"), primary_key=True)


class StaffMember(Base):
    """Someone on a township's roster: their relatives' applications are flagged."""

    __tablename__ = "staff_member"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    township_code: Mapped[str] = mapped_column(_REGION, index=True)
    name: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.Text)
    # The token subject of a caseworker, who gets cases assigned.
    subject: Mapped[str | None] = mapped_column(sa.Text)
    responsible_caseworker: Mapped[bool] = mapped_column(sa.Boolean)
    id_hash: Mapped[str | None] = mapped_column(sa.Text, index=True)
    id_number_cipher: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    masked_id: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    created_at: Mapped[datetime] = mapped_column(_TS)
    created_by: Mapped[str] = mapped_column(sa.Text)
    # Set when taken off the roster (empty for those deactivated before migration 0005).
    deactivated_at: Mapped[datetime | None] = mapped_column(_TS)
    deactivated_by: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.Index(
            "uq_staff_member_responsible_caseworker",
            "township_code",
            unique=True,
            postgresql_where=sa.text("responsible_caseworker AND active"),
        ),
        # One person, one township (migration 0013): by login and by ID number.
        sa.Index(
            "uq_staff_member_caseworker_subject",
            "subject",
            unique=True,
            postgresql_where=sa.text("responsible_caseworker AND active"),
        ),
        sa.Index(
            "uq_staff_member_caseworker_id_hash",
            "id_hash",
            unique=True,
            postgresql_where=sa.text("responsible_caseworker AND active"),
        ),
        sa.CheckConstraint(
            "NOT responsible_caseworker OR (role = 'caseworker' AND subject IS NOT NULL)",
            name="caseworker_has_subject",
        ),
        sa.CheckConstraint(
            "(deactivated_at IS NULL) = (deactivated_by IS NULL)", name="deactivation_recorded"
        ),
        sa.CheckConstraint("NOT active OR deactivated_at IS NULL", name="active_not_deactivated"),
    )


class StaffRosterVersion(Base):
    """One row: moved by one by every change of what a submission reads of the roster
    (``staff_member``, ``staff_relative``; their trigger ``staff_roster_changed``), and
    compared by the submission's write with the version its read saw (migration 0021)."""

    __tablename__ = "staff_roster_version"

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.CheckConstraint("id = 1", name="one_row"),)


class StaffRelative(Base):
    __tablename__ = "staff_relative"

    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    staff_id: Mapped[uuid.UUID] = mapped_column(_UUID, _fk("staff_member.id"), index=True)
    relation: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    id_hash: Mapped[str] = mapped_column(sa.Text, index=True)
    id_number_cipher: Mapped[bytes] = mapped_column(sa.LargeBinary)
    masked_id: Mapped[str] = mapped_column(sa.Text)


class TimelineEntry(Base):
    """One event about an application, from any service, in the order it happened."""

    __tablename__ = "timeline_entry"

    ce_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    # An event about a household enters each of its open applications' timelines
    # (migration 0008): one entry per event and application.
    application_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True, index=True)
    ce_type: Mapped[str] = mapped_column(sa.Text)
    ce_source: Mapped[str] = mapped_column(sa.Text)
    occurred_at: Mapped[datetime] = mapped_column(_TS)
    actor: Mapped[str | None] = mapped_column(sa.Text)
    summary: Mapped[str] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(pg.JSONB)
    recorded_at: Mapped[datetime] = mapped_column(_TS)


def table_of(model: type[Base]) -> sa.Table:
    """The Core table of a model, for the repositories' Core statements."""
    found = model.__table__
    assert isinstance(found, sa.Table)
    return found
