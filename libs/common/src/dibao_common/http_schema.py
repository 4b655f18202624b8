"""The kit's HTTP tables every service carries, as they are now.

``idempotency_record`` keeps each ``Idempotency-Key`` claim and the response it produced;
``webhook_message`` keeps the ids of accepted signed bank requests, so a replay is refused.
The kit's queries are plain SQL, and :data:`idempotency_record` / :data:`webhook_message`
describe the same tables: part of every service's schema
(``dibao_common.db.schema.service_schema``), which is Alembic's ``target_metadata`` and
what the schema drift test compares the migrations with. The migrations do not build the
tables from here: they call the frozen steps of ``dibao_common.kit_migrations`` (``v0001``
created both). A change here is a new step there and a migration in every service calling
it; on its own it fails the drift test.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from dibao_common.db.engine import service_metadata

IDEMPOTENCY = "idempotency_record"
WEBHOOK = "webhook_message"


def _idempotency_parts() -> list[Any]:
    return [
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
    ]


def _webhook_parts() -> list[Any]:
    return [
        sa.Column("webhook_id", sa.Text, primary_key=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    ]


metadata = service_metadata()
idempotency_record = sa.Table(IDEMPOTENCY, metadata, *_idempotency_parts())
webhook_message = sa.Table(WEBHOOK, metadata, *_webhook_parts())
# Housekeeping purges completed answers and old webhook ids by these times.
sa.Index("ix_idempotency_record_completed_at", idempotency_record.c.completed_at)
sa.Index("ix_webhook_message_signed_at", webhook_message.c.signed_at)
