"""An application is written only from the household as it still is.

The submission reads the household, checks the application against its members, accounts
and documents, and writes the application with a statement of its own afterwards (ADR
0013). Migration 0004's trigger refused the write when a change that committed in between
had dissolved the household, but any other change went through unseen: a member's death,
a birth, a move or a new bank account that committed between the read and the write left
an accepted application, and an ApplicationSubmitted after the HouseholdUpdated, made from
the household as it was before (the dead member in its snapshot, the superseded account
to be paid). The application now records the household's version it was made from, and
the trigger compares it with the household's version under the same lock, after any
change in progress has committed. A different version fails the write with a check
violation named ``application_household_current``; nothing of the statement is kept and
the API answers 409 concurrent-change (send it again).

Applications written before this migration have no version (NULL): they are not checked
again, and their version is not known.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# FOR KEY SHARE is the lock the foreign key takes on the household anyway: it waits for a
# change holding the row FOR UPDATE (record_change), and READ COMMITTED then reads the
# row's new version.
FUNCTION = """
CREATE OR REPLACE FUNCTION application_household_active() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    current_version integer;
BEGIN
    SELECT version INTO current_version FROM household
    WHERE id = NEW.household_id AND status = 'active'
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'household % is not active', NEW.household_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'application_household_active',
                  TABLE = 'application';
    END IF;
    IF NEW.household_version IS NOT NULL AND NEW.household_version <> current_version THEN
        RAISE EXCEPTION 'household % is at version %, the application was made from %',
            NEW.household_id, current_version, NEW.household_version
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'application_household_current',
                  TABLE = 'application';
    END IF;
    RETURN NEW;
END
$$
"""

# Migration 0004's function, for the downgrade.
PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION application_household_active() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM household
    WHERE id = NEW.household_id AND status = 'active'
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'household % is not active', NEW.household_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'application_household_active',
                  TABLE = 'application';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("application", sa.Column("household_version", sa.Integer, nullable=True))
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS_FUNCTION)
    op.drop_column("application", "household_version")
