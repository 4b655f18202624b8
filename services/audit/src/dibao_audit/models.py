"""ORM models of the audit service (its own database, its own metadata).

Every table here is append-only: the runtime role may only INSERT and SELECT, and a
trigger refuses UPDATE, DELETE and TRUNCATE for everyone (migration 0002).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dibao_audit.checkpoint import HANDOVER_LINE
from dibao_common.db import service_metadata
from dibao_common.db.schema import service_schema
from dibao_common.messaging.schema import INBOX

REGION_LEVELS = (2, 4, 6, 9, 12)
"""The digits of a division code down to each level a token's prefix may name: province,
city, county, township, village (``dibao_common.auth``)."""


class Base(DeclarativeBase):
    metadata = service_metadata()


def migrated_schema() -> sa.MetaData:
    """What this service's migrations build, as one metadata: these models and the kit's
    tables but its inbox, which migration 0006 drops (the log's own unique ``ce_id`` is its
    inbox, ADR 0011). Alembic's ``target_metadata`` (``migrations/env.py``) and the schema
    test's reference (``dibao_common.db.schema``)."""
    return service_schema(Base.metadata, dropped={INBOX})


class LogEntry(Base):
    """One consumed event, a leaf of the Merkle tree at ``leaf_index``."""

    __tablename__ = "log_entry"

    leaf_index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    ce_id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), unique=True)
    ce_type: Mapped[str] = mapped_column(sa.Text)
    ce_time: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    topic: Mapped[str] = mapped_column(sa.Text)
    partition: Mapped[int] = mapped_column(sa.Integer)
    offset: Mapped[int] = mapped_column(sa.BigInteger)
    record_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # The headers exactly as the leaf hashed them (``entry.header_block``).
    header_block: Mapped[bytes] = mapped_column(sa.LargeBinary)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    household_id: Mapped[str | None] = mapped_column(sa.Text)
    application_id: Mapped[str | None] = mapped_column(sa.Text)
    case_id: Mapped[str | None] = mapped_column(sa.Text)
    region: Mapped[str | None] = mapped_column(sa.Text)
    actor: Mapped[str | None] = mapped_column(sa.Text)
    # Every region the record names besides ``region`` (a search's access record), or NULL.
    regions: Mapped[list[str] | None] = mapped_column(pg.ARRAY(sa.Text))
    appended_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )

    __table_args__ = (
        sa.Index("ix_log_entry_household", "household_id", "leaf_index"),
        sa.Index(
            "ix_log_entry_application",
            "application_id",
            "leaf_index",
            postgresql_where=sa.text("application_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_log_entry_case",
            "case_id",
            "leaf_index",
            postgresql_where=sa.text("case_id IS NOT NULL"),
        ),
        sa.Index("ix_log_entry_type", "ce_type", "leaf_index"),
        sa.Index("ix_log_entry_actor", "actor", "leaf_index"),
        sa.Index("ix_log_entry_time", "ce_time", "leaf_index"),
        # A caller's scope in leaf order (migration 0009, ADR 0017): one per division level.
        *(
            sa.Index(f"ix_log_entry_region_{n}", sa.text(f"left(region, {n})"), "leaf_index")
            for n in REGION_LEVELS
        ),
        sa.Index(
            "ix_log_entry_no_region",
            "leaf_index",
            postgresql_where=sa.text("region IS NULL AND household_id IS NULL"),
        ),
    )


class EntryRegionPrefix(Base):
    """Every division-level prefix of each code of an entry's ``regions`` (a search's other
    regions), written by a trigger from the stored column (migration 0009); not hashed, made
    again from the record by the database check."""

    __tablename__ = "entry_region_prefix"

    prefix: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    leaf_index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)

    __table_args__ = (sa.Index("ix_entry_region_prefix_entry", "leaf_index"),)


class EntryTimeDay(Base):
    """For each UTC day of ``ce_time``, the smallest and the largest leaf of the entries of
    that day: where a walk with ``time_from`` may start (``repository._time_floor``) and
    where one with ``time_to`` may end (``repository._time_ceiling``). Written by a trigger
    from the stored column (migrations 0013 and 0014); not hashed, made again by the
    database check. ``last_leaf`` NULL: not known yet (a day logged before 0014, until its
    fill gives it), so no upper bound."""

    __tablename__ = "entry_time_day"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    first_leaf: Mapped[int] = mapped_column(sa.BigInteger)
    last_leaf: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)


class EntryView(Base):
    """The decoded JSON view of an entry, made after the append (``projector``)."""

    __tablename__ = "entry_view"

    leaf_index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    decoded: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    projected_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class MerkleNode(Base):
    """Every complete subtree, leaves (level 0) included: proofs are indexed lookups.

    The tree is kept apart from the entries' content, so content changed behind the
    log's back no longer hashes to its leaf, and the verifier names the index.
    """

    __tablename__ = "merkle_node"

    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary)

    __table_args__ = (
        sa.CheckConstraint("level >= 0", name="level_not_negative"),
        sa.CheckConstraint("octet_length(hash) = 32", name="hash_size"),
    )


def _contains_pattern(text: str) -> str:
    """A LIKE pattern of the strings containing ``text``, as a PostgreSQL escape-string
    constant (its wildcards and backslashes escaped; a newline written ``\\n``)."""
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
    escaped = pattern.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"E'{escaped}'"


HANDOVER_NOTE = f"signed_note LIKE {_contains_pattern(HANDOVER_LINE)}"
"""The condition of a hand-over's checkpoint on its note (``HANDOVER_LINE`` in it), a
constant in the SQL text: the predicate of ``ix_checkpoint_handover`` (migration 0010).
``repository.handovers`` sends this very text: the planner uses a partial index for a
query whose condition implies its predicate, and a pattern sent as a bind parameter does
so only in a plan made for the parameter's value, not in the generic plan PostgreSQL may
keep for a prepared statement (asyncpg prepares every statement)."""


class Checkpoint(Base):
    """A signed tree head; the history is kept."""

    __tablename__ = "checkpoint"

    tree_size: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    checkpoint_id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), unique=True)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    signed_note: Mapped[str] = mapped_column(sa.Text)
    key_id: Mapped[str] = mapped_column(sa.Text)
    signed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    previous_tree_size: Mapped[int | None] = mapped_column(sa.BigInteger)

    __table_args__ = (
        # The hand-overs (docs/adr/0018), a few rows whatever the table's size (migration
        # 0010): computed by PostgreSQL from the signed note itself, nothing else to trust.
        sa.Index("ix_checkpoint_handover", "tree_size", postgresql_where=sa.text(HANDOVER_NOTE)),
    )


class CheckpointCosignature(Base):
    """A witness's cosignature of a checkpoint (docs/adr/0024, migration 0015): the signature
    line it answered, verified by whoever reads it against the witness's key."""

    __tablename__ = "checkpoint_cosignature"

    tree_size: Mapped[int] = mapped_column(
        sa.BigInteger,
        sa.ForeignKey("checkpoint.tree_size", name="checkpoint_cosignature_checkpoint"),
        primary_key=True,
        autoincrement=False,
    )
    witness: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    """The witness's vkey (C2SP, key type 0x04)."""
    signature_line: Mapped[str] = mapped_column(sa.Text)
    cosigned_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
