"""A scoped listing reads its own entries, not the log (ADR 0017).

``GET /audit/entries`` selected a caller's entries by a filter on leaf order
(``region LIKE ANY(prefixes)`` or a prefix of one of ``regions``): an auditor with few or
no entries in scope walked the whole log (244-330 ms at 300,000 entries). Tokens carry
prefixes of the division levels only (2, 4, 6, 9 or 12 digits, ``dibao_common.auth``), and
a code lies under a prefix of ``L`` digits exactly when its first ``L`` characters are the
prefix, so:

- ``region``: one B-tree per level on ``(left(region, L), leaf_index)``. PostgreSQL keeps
  them equal to the column (no new data to trust: ``region`` is checked against the record
  as before), and an index range scan gives a prefix's entries in leaf order from any
  cursor. The appender's code is unchanged; the cost is five index entries per append.
- ``regions`` (a search's other regions, NULL on nearly every entry): a new append-only
  table ``entry_region_prefix (prefix, leaf_index)``, every level prefix of every code in
  ``regions``, written by a statement trigger on ``log_entry`` from the stored column
  (security definer: the runtime role has SELECT on it only). Not hashed: the database
  check (``dbcheck``) makes each entry's prefixes again from its record.
- The whole log's entries (no household; the log's region or none): the level-12 index for
  the log's region, and a partial index of entries with neither household nor region.

The trigger is committed first, so that every entry appended from then on writes its own
prefixes; then entries logged before it are filled in bounded batches of leaf indices,
each statement committed on its own (an autocommit block: no transaction over the whole
log, appends go on meanwhile), and the indexes are built ``CONCURRENTLY`` (appends are
not blocked; each build waits, without a lock timeout, for the transactions older than
it, such as a database check or an export in progress; on a log of hundreds of millions
of entries this takes longer than ``DIBAO_MIGRATE_TIMEOUT``'s default: run it with a
larger one). A run stopped half way is
run again: what exists is kept (an index a failed build left invalid is dropped and built
again), rows already written are skipped (``ON CONFLICT DO NOTHING``). The downgrade
drops the indexes ``CONCURRENTLY`` too (waiting for readers, not holding up appends),
then the trigger and the table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The division levels a token's prefix may name (``dibao_common.auth``; ``repository``).
LEVELS = (2, 4, 6, 9, 12)
BATCH = 50_000
"""Leaf indices per backfill statement."""

_LEVELS_SQL = "ARRAY[" + ",".join(map(str, LEVELS)) + "]"

# Every level prefix of each code of ``regions``: the same rows for the trigger and the fill.
_PREFIXES_OF = """
    SELECT DISTINCT left(c.code, l.len), e.leaf_index
    FROM {rows} e, unnest(e.regions) AS c(code), unnest(LEVELS) AS l(len)
    WHERE e.regions IS NOT NULL AND length(c.code) >= l.len
""".replace("LEVELS", _LEVELS_SQL)

_SETUP = [
    """
    CREATE TABLE IF NOT EXISTS entry_region_prefix (
        prefix text NOT NULL,
        leaf_index bigint NOT NULL,
        PRIMARY KEY (prefix, leaf_index)
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_entry_region_prefix_entry ON entry_region_prefix (leaf_index)",
    f"""
    CREATE OR REPLACE FUNCTION audit_entry_region_prefixes() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    BEGIN
      INSERT INTO entry_region_prefix (prefix, leaf_index)
      {_PREFIXES_OF.format(rows="new_rows")}
      ON CONFLICT DO NOTHING;
      RETURN NULL;
    END $$
    """,
    "REVOKE ALL ON FUNCTION audit_entry_region_prefixes() FROM PUBLIC",
    "DROP TRIGGER IF EXISTS log_entry_region_prefixes ON log_entry",
    "CREATE TRIGGER log_entry_region_prefixes AFTER INSERT ON log_entry "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION audit_entry_region_prefixes()",
    "DROP TRIGGER IF EXISTS entry_region_prefix_append_only ON entry_region_prefix",
    "CREATE TRIGGER entry_region_prefix_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
    "ON entry_region_prefix FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    """
    DO $$
    BEGIN
      EXECUTE format('REVOKE ALL ON entry_region_prefix FROM %I', current_database() || '_app');
      EXECUTE format('GRANT SELECT ON entry_region_prefix TO %I', current_database() || '_app');
    END $$
    """,
]

INDEXES = {
    **{f"ix_log_entry_region_{n}": f"(left(region, {n}), leaf_index)" for n in LEVELS},
    "ix_log_entry_no_region": "(leaf_index) WHERE region IS NULL AND household_id IS NULL",
}


def upgrade() -> None:
    for sql in _SETUP:
        op.execute(sql)
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        # alembic_env's lock_timeout was the transaction's (SET LOCAL): here the session's.
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        try:
            size = connection.exec_driver_sql(
                "SELECT coalesce(max(leaf_index) + 1, 0) FROM log_entry"
            ).scalar_one()
            fill = (
                "INSERT INTO entry_region_prefix (prefix, leaf_index) "
                + _PREFIXES_OF.format(rows="log_entry")
                + " AND e.leaf_index >= {lo} AND e.leaf_index < {hi} ON CONFLICT DO NOTHING"
            )
            for lo in range(0, size, BATCH):
                connection.exec_driver_sql(fill.format(lo=lo, hi=lo + BATCH))
            # A concurrent build waits for every transaction older than its snapshots (a
            # database check or an export reads the log for minutes in one): under the
            # lock timeout that wait failed the migration. Its SHARE UPDATE EXCLUSIVE lock
            # holds up no append and no read, so it waits (DIBAO_MIGRATE_TIMEOUT bounds
            # the run).
            connection.exec_driver_sql("SET lock_timeout = 0")
            for name, definition in INDEXES.items():
                invalid = connection.execute(
                    sa.text(
                        "SELECT NOT i.indisvalid FROM pg_index i "
                        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"
                    ),
                    {"name": name},
                ).scalar()
                if invalid:
                    connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY {name}")
                connection.exec_driver_sql(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON log_entry {definition}"
                )
        finally:
            connection.exec_driver_sql("RESET lock_timeout")


def downgrade() -> None:
    # Concurrently, as they were built: a plain DROP INDEX takes ACCESS EXCLUSIVE on
    # log_entry, queued behind any reader (a database check, an export), and every append
    # and read queued behind it until the lock timeout failed the downgrade.
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        connection.exec_driver_sql("SET lock_timeout = 0")
        try:
            for name in INDEXES:
                connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        finally:
            connection.exec_driver_sql("RESET lock_timeout")
    op.execute("DROP TRIGGER IF EXISTS log_entry_region_prefixes ON log_entry")
    op.execute("DROP FUNCTION IF EXISTS audit_entry_region_prefixes()")
    op.execute("DROP TABLE IF EXISTS entry_region_prefix")
