"""A time filter's first leaf is read from a table of each day's first leaf (ADR 0011).

A listing with ``time_from`` starts its walk in leaf order at a lower bound of the first
leaf that can match (ADR 0017, 2 Dec 2026). That bound was ``min(leaf_index)`` over every
entry since ``time_from``, read through ``ix_log_entry_time``: a cost of the whole log's
entries since then on every page (100,000 index entries, then no bound at all, when more:
a village auditor's month of a province walked the village's whole history). Measured at
400,000 entries, a village's page for a window of 120,000-200,000 entries cost 51-61 ms
(the capped scan and the walk from leaf 0), and 30-42 ms under the cap (80,000 since).

Now ``entry_time_day (day, first_leaf)``: for each UTC day of ``ce_time``, the smallest
leaf of the entries of that day. Every entry with ``ce_time >= time_from`` has a day on or
after ``time_from``'s, so ``min(first_leaf)`` of those days is a lower bound (exact up to
the entries of ``time_from``'s own day before it), read from a few rows whatever the
window. A statement trigger on ``log_entry`` writes it from the stored column, as
0009's trigger writes the region prefixes (security definer; the runtime role has SELECT
only). Entries are appended in leaf order, so a day's row is written by its first batch
and only ever lowered by the fill below (``ON CONFLICT ... DO UPDATE ... WHERE`` smaller);
not hashed: the database check makes it again from the entries.

As in 0009, the trigger is committed first, then entries logged before it are filled in
bounded batches of leaf indices, each committed on its own (appends go on meanwhile; the
smaller leaf wins whatever the order). Run again after a failure, it does what is left.
The downgrade drops the trigger, the function and the table, each lock asked for 200 ms
at a time (waiting longer for a reader of ``log_entry`` would hold up every append behind
it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 50_000
"""Leaf indices per backfill statement."""
RETRY_LOCK = "200ms"
"""How long the downgrade's statements wait for a lock before they give way and retry."""
LOCK_NOT_AVAILABLE = "55P03"

# Each UTC day's first leaf among some rows, lowering what is stored: the trigger's and the
# fill's statement.
_FIRST_LEAVES = """
    INSERT INTO entry_time_day AS d (day, first_leaf)
    SELECT (e.ce_time AT TIME ZONE 'UTC')::date, min(e.leaf_index)
    FROM {rows} e WHERE e.ce_time IS NOT NULL {bounds}
    GROUP BY 1
    ON CONFLICT (day) DO UPDATE SET first_leaf = excluded.first_leaf
    WHERE excluded.first_leaf < d.first_leaf
"""

_SETUP = [
    """
    CREATE TABLE IF NOT EXISTS entry_time_day (
        day date NOT NULL,
        first_leaf bigint NOT NULL,
        CONSTRAINT pk_entry_time_day PRIMARY KEY (day)
    )
    """,
    f"""
    CREATE OR REPLACE FUNCTION audit_entry_time_days() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    BEGIN
      {_FIRST_LEAVES.format(rows="new_rows", bounds="")};
      RETURN NULL;
    END $$
    """,
    "REVOKE ALL ON FUNCTION audit_entry_time_days() FROM PUBLIC",
    "DROP TRIGGER IF EXISTS log_entry_time_days ON log_entry",
    "CREATE TRIGGER log_entry_time_days AFTER INSERT ON log_entry "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION audit_entry_time_days()",
    """
    DO $$
    BEGIN
      EXECUTE format('REVOKE ALL ON entry_time_day FROM %I', current_database() || '_app');
      EXECUTE format('GRANT SELECT ON entry_time_day TO %I', current_database() || '_app');
    END $$
    """,
]


def upgrade() -> None:
    for sql in _SETUP:
        op.execute(sql)
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        try:
            size = connection.exec_driver_sql(
                "SELECT coalesce(max(leaf_index) + 1, 0) FROM log_entry"
            ).scalar_one()
            for lo in range(0, size, BATCH):
                bounds = f"AND e.leaf_index >= {lo} AND e.leaf_index < {lo + BATCH}"
                connection.exec_driver_sql(_FIRST_LEAVES.format(rows="log_entry", bounds=bounds))
        finally:
            connection.exec_driver_sql("RESET lock_timeout")


def downgrade() -> None:
    # Each statement needs an ACCESS EXCLUSIVE lock (the trigger's on log_entry), which
    # waits for every reader of the table (a database check, an export: minutes) while
    # every append and read queues behind the waiting lock. So each waits at most
    # RETRY_LOCK at a time, then gives way and asks again, until the readers are gone
    # (DIBAO_MIGRATE_TIMEOUT bounds the run).
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        connection.exec_driver_sql(f"SET lock_timeout = '{RETRY_LOCK}'")
        try:
            for statement in (
                "DROP TRIGGER IF EXISTS log_entry_time_days ON log_entry",
                "DROP FUNCTION IF EXISTS audit_entry_time_days()",
                "DROP TABLE IF EXISTS entry_time_day",
            ):
                while True:
                    try:
                        connection.exec_driver_sql(statement)
                        break
                    except sa.exc.DBAPIError as exc:
                        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                            raise
                        time.sleep(0.2)
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
