"""A time window's last leaf too: ``entry_time_day.last_leaf`` (ADR 0011, 3 Dec 2026).

A listing with ``time_from`` starts its walk at the first leaf of the days since then
(0013); nothing bounded it from above, so a window with ``time_to`` (a month long past)
walked the scope's entries to the end of the log to find it had no more. Now each day
also keeps its entries' largest leaf: every entry with ``ce_time < time_to`` is of a day
on or before ``time_to``'s, so ``max(last_leaf)`` of those days is an upper bound of the
window's leaves, exact whatever the clocks (an entry logged late, with an old time, raises
its old day's last leaf; the bound is then as late as that entry).

NULL is "not known yet" (a day logged before this migration, until the fill below gives
it): a listing then takes no upper bound from the days up to it. The trigger writes both
ends (least first, greatest last), from the stored column, as before.

Order, so that no append can leave a day's last leaf too low:

1. One statement (a ``DO`` block, one transaction) locks ``log_entry`` in SHARE mode
   (waiting for the appends in flight, holding new ones until it commits), adds the
   column and replaces the trigger's function. Without the lock, an append whose
   statement trigger fired between the ALTER and the commit would run the function it
   had already looked up (writing no last leaf) after the commit, with leaves the fill
   below may not read. Each lock is asked for ``RETRY_LOCK`` at a time (a database
   check reading ``entry_time_day`` holds the ALTER off for minutes; appends wait behind
   a queued lock), then asked again.
2. Every append after it writes its days' last leaves (its leaves are the log's largest,
   so a day's row it touches is exact from then on).
3. The fill reads the entries logged before (leaf batches of ``BATCH``, each its own
   statement, nothing locked but ``ACCESS SHARE``), keeps each day's least and greatest
   leaf in memory (one pair a day), and writes them in one statement at the end with
   ``least``/``greatest`` against the row as it then stands (``ON CONFLICT ... DO
   UPDATE`` compares with the latest version, whatever committed since the batches were
   read): so no row is ever written lower than its entries' last (batch by batch, a
   day's last leaf would be too low, and trusted, until the batch of its later entries).
   Run again after a failure, it does it all again.

The downgrade restores 0013's function and drops the column, in one statement under the
same lock.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import time
from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 50_000
"""Leaf indices per statement of the fill."""
RETRY_LOCK = "200ms"
"""How long the DDL waits for a lock before it gives way and asks again."""
LOCK_NOT_AVAILABLE = "55P03"

_FUNCTION = """
    CREATE OR REPLACE FUNCTION audit_entry_time_days() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
    BEGIN
      {body};
      RETURN NULL;
    END $fn$
"""

# 0013's: the first leaf only.
_FIRST_ONLY = """
      INSERT INTO entry_time_day AS d (day, first_leaf)
      SELECT (e.ce_time AT TIME ZONE 'UTC')::date, min(e.leaf_index)
      FROM new_rows e WHERE e.ce_time IS NOT NULL
      GROUP BY 1
      ON CONFLICT (day) DO UPDATE SET first_leaf = excluded.first_leaf
      WHERE excluded.first_leaf < d.first_leaf
"""

# Both ends: a batch's leaves are the log's largest, so its days' last leaves rise (one HOT
# update of the day's row per batch: the column is in no index).
_BOTH_ENDS = """
      INSERT INTO entry_time_day AS d (day, first_leaf, last_leaf)
      SELECT (e.ce_time AT TIME ZONE 'UTC')::date, min(e.leaf_index), max(e.leaf_index)
      FROM new_rows e WHERE e.ce_time IS NOT NULL
      GROUP BY 1
      ON CONFLICT (day) DO UPDATE
      SET first_leaf = least(d.first_leaf, excluded.first_leaf),
          last_leaf = greatest(d.last_leaf, excluded.last_leaf)
      WHERE excluded.first_leaf < d.first_leaf
         OR d.last_leaf IS NULL OR excluded.last_leaf > d.last_leaf
"""

_UPGRADE = f"""
    DO $do$
    BEGIN
      LOCK TABLE log_entry IN SHARE MODE;
      ALTER TABLE entry_time_day ADD COLUMN IF NOT EXISTS last_leaf bigint;
      {_FUNCTION.format(body=_BOTH_ENDS)};
    END $do$
"""

_DOWNGRADE = f"""
    DO $do$
    BEGIN
      LOCK TABLE log_entry IN SHARE MODE;
      {_FUNCTION.format(body=_FIRST_ONLY)};
      ALTER TABLE entry_time_day DROP COLUMN IF EXISTS last_leaf;
    END $do$
"""

_DAYS_OF = """
    SELECT (ce_time AT TIME ZONE 'UTC')::date, min(leaf_index), max(leaf_index)
    FROM log_entry WHERE ce_time IS NOT NULL AND leaf_index >= :lo AND leaf_index < :hi
    GROUP BY 1
"""

_WRITE = """
    INSERT INTO entry_time_day AS d (day, first_leaf, last_leaf)
    SELECT * FROM unnest(CAST(:days AS date[]), CAST(:firsts AS bigint[]),
                         CAST(:lasts AS bigint[]))
    ON CONFLICT (day) DO UPDATE
    SET first_leaf = least(d.first_leaf, excluded.first_leaf),
        last_leaf = greatest(d.last_leaf, excluded.last_leaf)
"""


def _with_retry(connection: sa.Connection, statement: str) -> None:
    """Run ``statement`` (one transaction), each attempt waiting ``RETRY_LOCK`` for its
    locks, until it gets them (``DIBAO_MIGRATE_TIMEOUT`` bounds the run)."""
    connection.exec_driver_sql(f"SET lock_timeout = '{RETRY_LOCK}'")
    try:
        while True:
            try:
                connection.exec_driver_sql(statement)
                return
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                time.sleep(0.2)
    finally:
        connection.exec_driver_sql("RESET lock_timeout")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        _with_retry(connection, _UPGRADE)
        # Every entry logged from here on has its day's last leaf written by the trigger;
        # those logged before are below ``size`` (appended in leaf order).
        size = connection.exec_driver_sql(
            "SELECT coalesce(max(leaf_index) + 1, 0) FROM log_entry"
        ).scalar_one()
        ends: dict[date, tuple[int, int]] = {}
        for lo in range(0, size, BATCH):
            rows = connection.execute(sa.text(_DAYS_OF), {"lo": lo, "hi": min(lo + BATCH, size)})
            for day, first, last in rows:
                was = ends.get(day, (first, last))
                ends[day] = (min(was[0], first), max(was[1], last))
        if ends:
            days = sorted(ends)
            connection.exec_driver_sql("SET lock_timeout = '5s'")
            try:
                connection.execute(
                    sa.text(_WRITE),
                    {
                        "days": days,
                        "firsts": [ends[d][0] for d in days],
                        "lasts": [ends[d][1] for d in days],
                    },
                )
            finally:
                connection.exec_driver_sql("RESET lock_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _with_retry(op.get_bind(), _DOWNGRADE)
