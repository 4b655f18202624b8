"""DDL for the kit's HTTP tables every service carries, called from its ``0001`` migration.

``idempotency_record`` keeps each ``Idempotency-Key`` claim and the response it produced;
``webhook_message`` keeps the ids of accepted signed bank requests, so a replay is refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg


def create_http_tables() -> None:
    """The idempotency records and the accepted webhook ids."""
    op.create_table(
        "idempotency_record",
        # Keys are the client's own; the scope keeps two callers' keys apart.
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("claim_token", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_status", sa.SmallInteger, nullable=True),
        sa.Column("response_headers", pg.JSONB, nullable=True),
        sa.Column("response_body", sa.LargeBinary, nullable=True),
        sa.CheckConstraint("state IN ('in_flight', 'completed')", name="state"),
        sa.CheckConstraint(
            "(state = 'completed') = (completed_at IS NOT NULL AND response_status IS NOT NULL"
            " AND response_headers IS NOT NULL AND response_body IS NOT NULL)",
            name="completed_has_response",
        ),
    )
    op.create_index("ix_idempotency_record_completed_at", "idempotency_record", ["completed_at"])
    op.create_table(
        "webhook_message",
        sa.Column("webhook_id", sa.Text, primary_key=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_message_signed_at", "webhook_message", ["signed_at"])


def drop_http_tables() -> None:
    op.drop_index("ix_webhook_message_signed_at", table_name="webhook_message")
    op.drop_table("webhook_message")
    op.drop_index("ix_idempotency_record_completed_at", table_name="idempotency_record")
    op.drop_table("idempotency_record")
