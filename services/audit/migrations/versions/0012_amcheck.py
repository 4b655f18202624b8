"""The database check can verify the log's B-tree indexes against their tables (amcheck).

Every listing and lookup of the log goes through its B-tree indexes; one that has lost an
entry (a torn page, a storage fault, a catalog edit) makes an auditor's listing silently
miss it, and no hash covers an index. ``dbcheck`` (``verify_cli --database-url``) runs
amcheck's ``bt_index_check(index, heapallindexed => true)`` on every index of the log's
tables: the B-tree's own invariants, and every row of the table found in the index (ADR
0006, 2 Dec 2026).

amcheck ships with PostgreSQL (Debian's ``postgresql`` package, which ``deploy/`` installs,
has it in contrib) but is not a trusted extension: only a superuser creates it. This
creates it when the server has it and the migration's login may (``IF NOT EXISTS``: one a
DBA created, in any schema, is kept); otherwise the migration goes on and says why (a
NOTICE), and the database check reports the index check as unavailable, naming the reason,
instead of running it. Creating the extension reads and writes no table; its functions are
executable by superusers only (amcheck revokes them from PUBLIC): the login that runs the
check needs ``GRANT EXECUTE`` on ``bt_index_check(regclass, boolean)`` otherwise, which
the check names when it is missing.

The downgrade drops the extension when this login may (it holds no data).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT FROM pg_extension WHERE extname = 'amcheck') THEN
            RETURN;
          END IF;
          IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'amcheck') THEN
            RAISE NOTICE 'amcheck is not installed on this server: the database check '
              'cannot verify the log''s indexes (install PostgreSQL''s contrib modules, '
              'then run this migration again)';
            RETURN;
          END IF;
          BEGIN
            CREATE EXTENSION amcheck;
          EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'amcheck not created (%): a superuser may CREATE EXTENSION '
              'amcheck in this database', SQLERRM;
          END;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
          DROP EXTENSION IF EXISTS amcheck;
        EXCEPTION WHEN insufficient_privilege OR dependent_objects_still_exist THEN
          RAISE NOTICE 'amcheck kept (%)', SQLERRM;
        END $$
        """
    )
