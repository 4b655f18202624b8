"""The log keeps no inbox table: its own unique ``ce_id`` is its inbox (ADR 0011).

Migration 0001 created the kit's tables for every service, ``inbox_message`` among them;
since ADR 0011 the audit consumer claims nothing there (an event already in the log is
found by its ``ce_id`` under the appender's lock), so the table stayed empty and granted.
An empty table the runtime role may insert into is one more place a reader of the schema
has to rule out, so it goes.

The inbox it drops and brings back is the one ``0001`` made
(``dibao_common.kit_migrations.v0001``), not the kit's current definition: the table
this migration once dropped cannot change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from dibao_common.kit_migrations import v0001

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    v0001.drop_inbox()


def downgrade() -> None:
    # As 0001 created it (the kit's frozen first step): no later kit step reached this
    # table before it was dropped here.
    v0001.create_inbox()
    # As migration 0002 granted it.
    op.execute(
        """
        DO $$
        DECLARE
          app text := current_database() || '_app';
        BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = app) THEN
            EXECUTE format('GRANT SELECT, INSERT ON inbox_message TO %I', app);
          END IF;
        END $$
        """
    )
