"""DDL for the outbox and inbox tables every service carries, called from its migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg


def create_messaging_tables() -> None:
    """The transactional outbox (events waiting for the relay) and the consumer inbox."""
    op.create_table(
        "outbox_message",
        # The sequence gives commit-independent order per key; the relay sorts on it.
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("ce_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("ce_subject", sa.Text, nullable=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_outbox_message_pending",
        "outbox_message",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox_message",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("ce_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def drop_messaging_tables() -> None:
    op.drop_table("inbox_message")
    op.drop_index("ix_outbox_message_pending", table_name="outbox_message")
    op.drop_table("outbox_message")
