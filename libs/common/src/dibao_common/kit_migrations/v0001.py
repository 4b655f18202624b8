"""The kit's tables as every service's first migration (``0001_messaging``) created them,
28 Nov 2026: ``outbox_message``, ``inbox_message``, ``idempotency_record``,
``webhook_message``.

NEVER EDIT THIS MODULE. It is the record of what ``0001`` did to every database migrated
so far; an edit here reaches fresh databases only, and every deployed one keeps the old
table without anything failing. A change to a kit table is a new module (``v0002``, ...)
beside this one, a migration in every service that carries the table calling it, and the
kit's current definitions (the metadata in ``dibao_common.messaging.schema`` and
``dibao_common.http_schema``) updated to match (``dibao_common.kit_migrations``).

Everything is literal, names included: a constraint or index name written with
``op.f`` is taken as given, so neither a later change to the naming convention nor the
``target_metadata`` a service's ``env.py`` configures can change what runs here. The names
are the ones the shared naming convention (``dibao_common.db.engine.NAMING_CONVENTION``)
gave these tables when ``0001`` was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

_PENDING = sa.text("published_at IS NULL")


def create_outbox() -> None:
    """The transactional outbox: events waiting for the relay."""
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("ce_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("ce_subject", sa.Text, nullable=True),
        sa.Column("ce_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("ce_id", name=op.f("uq_outbox_message_ce_id")),
    )
    op.create_index(
        op.f("ix_outbox_message_pending"), "outbox_message", ["id"], postgresql_where=_PENDING
    )
    op.create_index(
        op.f("ix_outbox_message_pending_key"),
        "outbox_message",
        ["key", "id"],
        postgresql_where=_PENDING,
    )


def drop_outbox() -> None:
    """Undo :func:`create_outbox`."""
    op.drop_index(op.f("ix_outbox_message_pending_key"), table_name="outbox_message")
    op.drop_index(op.f("ix_outbox_message_pending"), table_name="outbox_message")
    op.drop_table("outbox_message")


def create_inbox() -> None:
    """The consumer inbox (also what a service that dropped it brings back on a downgrade:
    audit's ``0006``)."""
    op.create_table(
        "inbox_message",
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("ce_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.PrimaryKeyConstraint("consumer", "ce_id", name=op.f("pk_inbox_message")),
    )


def drop_inbox() -> None:
    """Undo :func:`create_inbox`."""
    op.drop_table("inbox_message")


def create_idempotency() -> None:
    """The ``Idempotency-Key`` claims and the responses they produced."""
    op.create_table(
        "idempotency_record",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("claim_token", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.SmallInteger, nullable=True),
        sa.Column("response_headers", pg.JSONB, nullable=True),
        sa.Column("response_body", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_record")),
        sa.CheckConstraint(
            "state IN ('in_flight', 'completed')", name=op.f("ck_idempotency_record_state")
        ),
        sa.CheckConstraint(
            "(state = 'completed') = (completed_at IS NOT NULL AND response_status IS NOT NULL"
            " AND response_headers IS NOT NULL AND response_body IS NOT NULL)",
            name=op.f("ck_idempotency_record_completed_has_response"),
        ),
    )
    op.create_index(
        op.f("ix_idempotency_record_completed_at"), "idempotency_record", ["completed_at"]
    )


def drop_idempotency() -> None:
    """Undo :func:`create_idempotency`."""
    op.drop_index(op.f("ix_idempotency_record_completed_at"), table_name="idempotency_record")
    op.drop_table("idempotency_record")


def create_webhook() -> None:
    """The ids of accepted signed bank requests (a replay is refused)."""
    op.create_table(
        "webhook_message",
        sa.Column("webhook_id", sa.Text, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_webhook_message")),
    )
    op.create_index(op.f("ix_webhook_message_signed_at"), "webhook_message", ["signed_at"])


def drop_webhook() -> None:
    """Undo :func:`create_webhook`."""
    op.drop_index(op.f("ix_webhook_message_signed_at"), table_name="webhook_message")
    op.drop_table("webhook_message")


def upgrade() -> None:
    """Every service's ``0001``: the four tables, in the order ``0001`` created them."""
    create_outbox()
    create_inbox()
    create_idempotency()
    create_webhook()


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    drop_webhook()
    drop_idempotency()
    drop_inbox()
    drop_outbox()
