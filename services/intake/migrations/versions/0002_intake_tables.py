"""Intake's own tables: persons, households, members, bank accounts, documents, changes,
applications with incomes, assets and documents, the staff roster and the timeline.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = pg.UUID(as_uuid=True)
TS = sa.DateTime(timezone=True)


def _fk(column: str, target: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(column, UUID, sa.ForeignKey(target, ondelete="RESTRICT"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("id_hash", sa.Text, nullable=False, unique=True),
        sa.Column("hash_key_id", sa.Text, nullable=False),
        sa.Column("id_number_cipher", sa.LargeBinary, nullable=False),
        sa.Column("masked_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("sex", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "household",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("area_type", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _fk("head_person_id", "person.id", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('active', 'dissolved')", name="status"),
    )
    op.create_index("ix_household_region_code", "household", ["region_code"])
    op.create_table(
        "household_member",
        sa.Column("id", UUID, primary_key=True),
        _fk("household_id", "household.id"),
        _fk("person_id", "person.id"),
        sa.Column("relationship", sa.Text, nullable=False),
        sa.Column("disability_grade", sa.Text, nullable=False),
        sa.Column("seriously_ill", sa.Boolean, nullable=False),
        sa.Column("employment_status", sa.Text, nullable=False),
        sa.Column("student", sa.Boolean, nullable=False),
        sa.Column("counted", sa.Boolean, nullable=False),
        sa.Column("exclusion_reason", sa.Text, nullable=True),
        sa.Column("exclusion_note", sa.Text, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("left_on", sa.Date, nullable=True),
        sa.Column("left_reason", sa.Text, nullable=True),
        sa.CheckConstraint("active = (left_on IS NULL)", name="active_until_left"),
        sa.CheckConstraint("counted = (exclusion_reason IS NULL)", name="excluded_has_reason"),
    )
    op.create_index("ix_household_member_household_id", "household_member", ["household_id"])
    op.create_index("ix_household_member_person_id", "household_member", ["person_id"])
    op.create_index(
        "uq_household_member_active_person",
        "household_member",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "document",
        sa.Column("id", UUID, primary_key=True),
        _fk("household_id", "household.id"),
        _fk("person_id", "person.id", nullable=True),
        sa.Column("document_type", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("uploaded_by", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("size_bytes > 0", name="not_empty"),
    )
    op.create_index("ix_document_household_id", "document", ["household_id"])
    op.create_index("ix_document_sha256", "document", ["sha256"])
    op.create_table(
        "bank_account",
        sa.Column("id", UUID, primary_key=True),
        _fk("household_id", "household.id"),
        sa.Column("number_cipher", sa.LargeBinary, nullable=False),
        sa.Column("number_hash", sa.Text, nullable=False),
        sa.Column("masked_number", sa.Text, nullable=False),
        sa.Column("bank_code", sa.Text, nullable=False),
        sa.Column("bank_name", sa.Text, nullable=False),
        sa.Column("holder_name", sa.Text, nullable=False),
        _fk("holder_person_id", "person.id", nullable=True),
        sa.Column("custody_agreement", sa.Boolean, nullable=False),
        _fk("custody_document_id", "document.id", nullable=True),
        sa.Column("custodian_subject", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("superseded_at", TS, nullable=True),
    )
    op.create_index("ix_bank_account_household_id", "bank_account", ["household_id"])
    op.create_index(
        "uq_bank_account_current",
        "bank_account",
        ["household_id"],
        unique=True,
        postgresql_where=sa.text("superseded_at IS NULL"),
    )
    op.create_table(
        "household_change",
        sa.Column("id", UUID, primary_key=True),
        _fk("household_id", "household.id"),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("effective_on", sa.Date, nullable=False),
        sa.Column("details", pg.JSONB, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("ix_household_change_household_id", "household_change", ["household_id"])
    op.create_table(
        "application",
        sa.Column("id", UUID, primary_key=True),
        _fk("household_id", "household.id"),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _fk("applicant_person_id", "person.id"),
        sa.Column("statement", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("requested_amount_fen", sa.BigInteger, nullable=True),
        _fk("individual_inclusion_person_id", "person.id", nullable=True),
        _fk("bank_account_id", "bank_account.id", nullable=True),
        sa.Column("staff_related", sa.Boolean, nullable=False),
        sa.Column("staff_relation_note", sa.Text, nullable=True),
        sa.Column("assigned_caseworker", sa.Text, nullable=True),
        sa.Column("missing_items", pg.JSONB, nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("submitted_by", sa.Text, nullable=False),
        sa.Column("accepted_on", sa.Date, nullable=True),
        sa.Column("withdrawn_at", TS, nullable=True),
        sa.Column("withdrawal_reason", sa.Text, nullable=True),
        sa.CheckConstraint("status IN ('submitted', 'returned', 'withdrawn')", name="status"),
        sa.CheckConstraint("requested_amount_fen >= 0", name="requested_amount_not_negative"),
    )
    op.create_index("ix_application_household_id", "application", ["household_id"])
    op.create_index("ix_application_region_id", "application", ["region_code", "id"])
    op.create_index("ix_application_status_id", "application", ["status", "id"])
    op.create_index("ix_application_submitted_at", "application", ["submitted_at"])
    op.create_table(
        "application_income",
        sa.Column(
            "application_id",
            UUID,
            sa.ForeignKey("application.id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column(
            "person_id", UUID, sa.ForeignKey("person.id", ondelete="RESTRICT"), primary_key=True
        ),
        sa.Column("wage_fen", sa.BigInteger, nullable=False),
        sa.Column("operating_fen", sa.BigInteger, nullable=False),
        sa.Column("property_fen", sa.BigInteger, nullable=False),
        sa.Column("transfer_fen", sa.BigInteger, nullable=False),
        sa.Column("other_fen", sa.BigInteger, nullable=False),
        sa.Column("period_months", sa.SmallInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.CheckConstraint(
            "wage_fen >= 0 AND operating_fen >= 0 AND property_fen >= 0"
            " AND transfer_fen >= 0 AND other_fen >= 0",
            name="amounts_not_negative",
        ),
        sa.CheckConstraint("period_months BETWEEN 1 AND 12", name="period_months"),
    )
    op.create_table(
        "application_asset",
        sa.Column("id", UUID, primary_key=True),
        _fk("application_id", "application.id"),
        _fk("person_id", "person.id", nullable=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value_fen", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("floor_area_m2", sa.Integer, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.CheckConstraint("value_fen >= 0", name="value_not_negative"),
        sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
    )
    op.create_index("ix_application_asset_application_id", "application_asset", ["application_id"])
    op.create_table(
        "application_document",
        sa.Column(
            "application_id",
            UUID,
            sa.ForeignKey("application.id", ondelete="RESTRICT"),
            primary_key=True,
        ),
        sa.Column(
            "document_id", UUID, sa.ForeignKey("document.id", ondelete="RESTRICT"), primary_key=True
        ),
    )
    op.create_table(
        "staff_member",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("township_code", sa.String(12), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("responsible_caseworker", sa.Boolean, nullable=False),
        sa.Column("id_hash", sa.Text, nullable=True),
        sa.Column("id_number_cipher", sa.LargeBinary, nullable=True),
        sa.Column("masked_id", sa.Text, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.CheckConstraint(
            "NOT responsible_caseworker OR (role = 'caseworker' AND subject IS NOT NULL)",
            name="caseworker_has_subject",
        ),
    )
    op.create_index("ix_staff_member_township_code", "staff_member", ["township_code"])
    op.create_index("ix_staff_member_id_hash", "staff_member", ["id_hash"])
    op.create_index(
        "uq_staff_member_responsible_caseworker",
        "staff_member",
        ["township_code"],
        unique=True,
        postgresql_where=sa.text("responsible_caseworker AND active"),
    )
    op.create_table(
        "staff_relative",
        sa.Column("id", UUID, primary_key=True),
        _fk("staff_id", "staff_member.id"),
        sa.Column("relation", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("id_hash", sa.Text, nullable=False),
        sa.Column("id_number_cipher", sa.LargeBinary, nullable=False),
        sa.Column("masked_id", sa.Text, nullable=False),
    )
    op.create_index("ix_staff_relative_staff_id", "staff_relative", ["staff_id"])
    op.create_index("ix_staff_relative_id_hash", "staff_relative", ["id_hash"])
    op.create_table(
        "timeline_entry",
        sa.Column("ce_id", UUID, primary_key=True),
        sa.Column("application_id", UUID, nullable=False),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("actor", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", pg.JSONB, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("ix_timeline_entry_application_id", "timeline_entry", ["application_id"])


def downgrade() -> None:
    for table in (
        "timeline_entry",
        "staff_relative",
        "staff_member",
        "application_document",
        "application_asset",
        "application_income",
        "application",
        "household_change",
        "bank_account",
        "document",
        "household_member",
        "household",
        "person",
    ):
        op.drop_table(table)
