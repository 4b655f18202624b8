"""An application is written only from the staff roster as it still is.

A submission reads the roster (the township's responsible caseworker, the staff and staff
relatives among the household's members), then writes the application with a statement of
its own (ADR 0013). A roster change that committed in between (the caseworker taken off or
replaced, a relative put on) was not seen: the application was accepted assigned to a
caseworker no longer responsible, or not flagged though the relative was on the roster,
and its ``submitted_at`` could be later than the change.

- ``staff_roster_version``: one row, whose ``version`` every change of a row of
  ``staff_member`` or ``staff_relative`` that the submission's read reads moves by one (the
  trigger ``staff_roster_changed``, in the change's own transaction).
- ``application.roster_version``: the version the submission's read saw (in the same
  snapshot as the roster it read). The trigger ``application_roster_current`` (BEFORE
  INSERT, after ``application_household_active`` by name) takes the roster's advisory
  lock shared, which a roster change holds exclusive from before it reads its clock to its
  commit (``adapters.repositories.staff.lock_roster``), and compares: a different version
  fails the write with a check violation named ``application_roster_current``; nothing of
  the statement is kept and the API answers 409 concurrent-change (send it again). The
  function is VOLATILE, so its SELECT takes a snapshot of its own, after the lock: it sees
  the change it waited for.

The lock is ``pg_advisory_xact_lock(1919906676, 0)`` (``b"rost"``, the two-key form, apart
from the one-key locks of idempotency keys and the content locks of ``b"docs"``). Shared
locks do not wait for each other, and nothing is written to a page to take one: many
submissions at once cost each other nothing.

Applications written before this migration have no roster version (NULL): they are not
checked, and what the roster was when they were read is not known.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the submission's read reads of each table (adapters/repositories/submission.py):
# an UPDATE of any other column (a cipher re-keyed, a masked number) is no roster change.
STAFF_COLUMNS = "township_code, name, role, subject, responsible_caseworker, id_hash, active"
RELATIVE_COLUMNS = "staff_id, relation, name, id_hash"

ROSTER_CHANGED = """
CREATE FUNCTION staff_roster_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE staff_roster_version SET version = version + 1;
    RETURN NULL;
END
$$
"""

ROSTER_CURRENT = """
CREATE FUNCTION application_roster_current() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    current_version bigint;
BEGIN
    IF NEW.roster_version IS NULL THEN
        RETURN NEW;
    END IF;
    -- Waits for a roster change in progress (held exclusive to its commit); a roster change
    -- begun after this waits for the statement's end.
    PERFORM pg_advisory_xact_lock_shared(1919906676, 0);
    SELECT version INTO current_version FROM staff_roster_version;
    IF current_version IS DISTINCT FROM NEW.roster_version THEN
        RAISE EXCEPTION 'the staff roster is at version %, the application was made from %',
            current_version, NEW.roster_version
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'application_roster_current',
                  TABLE = 'application';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "staff_roster_version",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_staff_roster_version_one_row")),
    )
    op.execute("INSERT INTO staff_roster_version (id, version) VALUES (1, 0)")
    op.execute(ROSTER_CHANGED)
    for table, columns in (("staff_member", STAFF_COLUMNS), ("staff_relative", RELATIVE_COLUMNS)):
        op.execute(
            f"CREATE TRIGGER staff_roster_changed AFTER INSERT OR DELETE OR UPDATE OF {columns}"
            f" ON {table} FOR EACH ROW EXECUTE FUNCTION staff_roster_changed()"
        )
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("application", sa.Column("roster_version", sa.BigInteger, nullable=True))
    op.execute(ROSTER_CURRENT)
    op.execute(
        "CREATE TRIGGER application_roster_current BEFORE INSERT ON application"
        " FOR EACH ROW EXECUTE FUNCTION application_roster_current()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER application_roster_current ON application")
    op.execute("DROP FUNCTION application_roster_current()")
    op.drop_column("application", "roster_version")
    for table in ("staff_member", "staff_relative"):
        op.execute(f"DROP TRIGGER staff_roster_changed ON {table}")
    op.execute("DROP FUNCTION staff_roster_changed()")
    op.drop_table("staff_roster_version")
