"""The key hand-overs are an index lookup, not a read of every checkpoint (ADR 0018).

Every export's header carries the log's hand-overs (``repository.handovers``), found by
their signed note holding the hand-over line (``checkpoint.HANDOVER_LINE``,
``"\\nhandover "``). No index held that: each export read the whole ``checkpoint`` table,
and a province's log (hundreds of millions of entries, a checkpoint every 1,000) has
hundreds of thousands of rows of about 0.5 KB, hundreds of MB per export. Now a partial
B-tree on ``tree_size`` of the rows whose note holds the line, a few rows (one per
rotation). Its predicate is computed by PostgreSQL from ``signed_note`` itself, the note
the verifier checks the signatures of: no new column, nothing a hash does not cover. The
predicate is a constant ``LIKE`` (the line holds no wildcard; ``models.HANDOVER_NOTE``
is the same text, escaped from the line, which the query must send as is for the planner
to match it: ``tree_size`` order, ``tree_size <= n`` an index condition).

The index is built ``CONCURRENTLY``, as migration 0009's: a plain build holds a SHARE lock
on ``checkpoint`` for the whole scan, and the appender, which inserts its checkpoint in the
append's transaction, would wait behind it. A concurrent build waits, without a lock
timeout, for the transactions older than it (a database check or an export in progress):
the build itself reads the table once (seconds even at hundreds of MB), but that wait is
bounded only by ``DIBAO_MIGRATE_TIMEOUT`` (600 s by default): while one runs, run the
migration with a larger one. Run again after a failure, an index a failed build left
invalid is dropped and built again. The downgrade drops it ``CONCURRENTLY`` too.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_checkpoint_handover"
# models.HANDOVER_NOTE when written: "signed_note LIKE" the line "\nhandover " between
# wildcards, an escape string (the E'' reads \n as the newline).
DEFINITION = "(tree_size) WHERE signed_note LIKE E'%\\nhandover %'"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        # Not alembic_env's 5 s (that was the transaction's, SET LOCAL): the build waits for
        # older transactions, and its SHARE UPDATE EXCLUSIVE lock holds up no append and
        # no read (DIBAO_MIGRATE_TIMEOUT bounds the run).
        connection.exec_driver_sql("SET lock_timeout = 0")
        try:
            invalid = connection.execute(
                sa.text(
                    "SELECT NOT i.indisvalid FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
                ),
                {"name": NAME},
            ).scalar()
            if invalid:
                connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY {NAME}")
            connection.exec_driver_sql(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON checkpoint {DEFINITION}"
            )
        finally:
            connection.exec_driver_sql("RESET lock_timeout")


def downgrade() -> None:
    # Concurrently, as it was built: a plain DROP INDEX takes ACCESS EXCLUSIVE on
    # checkpoint, queued behind any reader, and the appender's checkpoint behind it.
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        connection.exec_driver_sql("SET lock_timeout = 0")
        try:
            connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
