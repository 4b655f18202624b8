"""An application is written only for an active household, enforced by the database.

The submission reads the household, finds it active, and writes the application with a
statement of its own afterwards (ADR 0013). A death or move-out that dissolved the
household and committed in between left an accepted application, and an
ApplicationSubmitted, for a household that no longer exists. A trigger now checks the
household as the application row is written, under a lock that a change in progress
(``record_change`` holds the household ``FOR UPDATE``) makes it wait for: it then sees
the household as that change left it. The write fails with a check violation named
``application_household_active``, and nothing of the statement is kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# FOR KEY SHARE is the lock the foreign key takes on the household anyway: it waits for a
# change holding the row FOR UPDATE, and READ COMMITTED then reads the row's new version.
FUNCTION = """
CREATE FUNCTION application_household_active() RETURNS trigger
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

TRIGGER = """
CREATE TRIGGER application_household_active
BEFORE INSERT ON application
FOR EACH ROW EXECUTE FUNCTION application_household_active()
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER application_household_active ON application")
    op.execute("DROP FUNCTION application_household_active()")
