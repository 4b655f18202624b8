"""Why an application was withdrawn is a column of its own.

Since 6842631 the change that dissolves a household (its last member's death or move out)
closes its open applications as withdrawn, and their ApplicationWithdrawn carries the
cause as an enum (HOUSEHOLD_DISSOLVED; UNSPECIFIED is the applicant's withdrawal), while
the row kept only ``withdrawal_reason``, the applicant's words, with the code
``household_dissolved`` written there instead. ``withdrawal_cause`` now says why:
``applicant_request`` (POST /applications/{id}/withdrawal, by a clerk, with the
applicant's reason) or ``household_dissolved`` (no reason in words, as its event has
none). It is set exactly when the application is withdrawn (two CHECK constraints: the
known causes, and status ``withdrawn`` if and only if a cause), and the event is built
from the row as written.

Backfill: a withdrawn application whose reason is the code ``household_dissolved`` and
whose household is dissolved was closed by the dissolution (its reason is cleared: it
was never the applicant's words); every other withdrawn application was the applicant's
(one whose applicant wrote those very words while the household still exists stays
theirs). One UPDATE: withdrawn applications are few, and the constraints are added after
it, in the same transaction (their check reads the table once under its lock).

Downgrade puts the code back in the reason of the dissolved ones and drops the column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE application AS a
SET withdrawal_cause = CASE WHEN d.dissolved THEN 'household_dissolved'
        ELSE 'applicant_request' END,
    withdrawal_reason = CASE WHEN d.dissolved THEN NULL ELSE a.withdrawal_reason END
FROM (
    SELECT a2.id, (a2.withdrawal_reason = 'household_dissolved' AND h.status = 'dissolved')
        AS dissolved
    FROM application AS a2 JOIN household AS h ON h.id = a2.household_id
    WHERE a2.status = 'withdrawn'
) AS d
WHERE a.id = d.id
"""


def upgrade() -> None:
    op.add_column("application", sa.Column("withdrawal_cause", sa.Text))
    op.execute(BACKFILL)
    op.create_check_constraint(
        "withdrawal_cause",
        "application",
        "withdrawal_cause IN ('applicant_request', 'household_dissolved')",
    )
    op.create_check_constraint(
        "withdrawn_has_cause",
        "application",
        "(status = 'withdrawn') = (withdrawal_cause IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute(
        "UPDATE application SET withdrawal_reason = 'household_dissolved'"
        " WHERE withdrawal_cause = 'household_dissolved'"
    )
    op.drop_constraint(op.f("ck_application_withdrawn_has_cause"), "application", type_="check")
    op.drop_constraint(op.f("ck_application_withdrawal_cause"), "application", type_="check")
    op.drop_column("application", "withdrawal_cause")
