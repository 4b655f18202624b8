"""The runtime role may log in: the running service connects as it, not as the owner.

The service used to log in as the owner (in development the cluster's superuser) and
assume ``<database>_app`` with the startup option ``role``; one ``SET ROLE NONE`` gave
the session its login back, which may disable the append-only trigger. Logging in as the
role itself leaves nothing to return to (ADR 0006, "Immutability"). A role that can log
in already (created beforehand by an administrator, with its password) is left as it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE
          app text := current_database() || '_app';
        BEGIN
          IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = app) THEN
            EXECUTE format('ALTER ROLE %I LOGIN', app);
          END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER ROLE %I NOLOGIN', current_database() || '_app'); END $$"
    )
