"""Outbox and inbox tables every service carries, as they are now: what the kit queries.

The kit's outbox, relay and inbox code query :data:`outbox_message` /
:data:`inbox_message`; ``dibao_common.db.schema.service_schema`` puts them in every
service's Alembic target, which ``tests/infra/test_schema_drift.py`` compares a migrated
database with. The migrations do not build the tables from here: they call the frozen
steps of ``dibao_common.kit_migrations`` (``v0001`` created both). A change here is a new
step there and a migration in every service calling it; on its own it fails the drift test.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from dibao_common.db.engine import service_metadata

OUTBOX = "outbox_message"
INBOX = "inbox_message"


def _outbox_columns() -> list[sa.Column[Any]]:
    return [
        # The identity gives the order of a key's events; the relay publishes in it.
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("ce_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_source", sa.Text, nullable=False),
        sa.Column("ce_subject", sa.Text, nullable=True),
        sa.Column("ce_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        # Every record header (CloudEvents attributes, traceparent, ...), name -> value.
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        # The relay deletes a row once the broker has acknowledged it (Kafka and the audit
        # log keep the history), so every row here is still to be published. Only relays
        # from before that change set published_at: such rows are never sent again, and
        # are purged after the retention. The partial indexes are on its absence.
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        # A row the broker refused: how often, and the last error (it stays, and is retried).
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    ]


def _inbox_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("ce_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


_PENDING = sa.text("published_at IS NULL")

metadata = service_metadata()
outbox_message = sa.Table(OUTBOX, metadata, *_outbox_columns())
inbox_message = sa.Table(INBOX, metadata, *_inbox_columns())
# The relay claims pending rows by id, and checks a key's oldest pending rows by (key, id).
sa.Index("ix_outbox_message_pending", outbox_message.c.id, postgresql_where=_PENDING)
sa.Index(
    "ix_outbox_message_pending_key",
    outbox_message.c.key,
    outbox_message.c.id,
    postgresql_where=_PENDING,
)
