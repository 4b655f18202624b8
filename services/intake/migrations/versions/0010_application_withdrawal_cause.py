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

Backfill, from what was published, not from the words: the change that dissolved a
household wrote, in its transaction, each closed application's ApplicationWithdrawn of
cause HOUSEHOLD_DISSOLVED into that application's timeline (ADR 0012, 0016; the entry's
``details.cause`` is ``household_dissolved``), and nothing closed an application so
before 6842631. A withdrawn application with such an entry was closed by the dissolution
(its reason, the code, is cleared: it was never the applicant's words); every other
withdrawn application was the applicant's, with their words kept, whatever they are: one
whose applicant typed ``household_dissolved`` stays theirs even in a household dissolved
later (their withdrawal's entry has no cause). Should a withdrawn application hold that
code in a dissolved household with no withdrawal entry at all (not written by any code of
this project), it is taken as the applicant's and its id is logged (logger
``dibao_intake.migrations``, WARNING) for an operator to look at. One UPDATE: withdrawn
applications are few, and the constraints are added after it, in the same transaction
(their check reads the table once under its lock).

Downgrade puts the code back in the reason of the dissolved ones and drops the column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("dibao_intake.migrations")

CLOSED_BY_DISSOLUTION = """
EXISTS (
    SELECT 1 FROM timeline_entry AS t
    WHERE t.application_id = a.id AND t.ce_type = 'dibao.intake.ApplicationWithdrawn.v1'
      AND t.details ->> 'cause' = 'household_dissolved'
)
"""
"""Whether withdrawn application ``a`` was closed by its household's dissolution: its
timeline holds the ApplicationWithdrawn of that cause (read by the application's index)."""

BACKFILL = f"""
UPDATE application AS a
SET withdrawal_cause = CASE WHEN {CLOSED_BY_DISSOLUTION} THEN 'household_dissolved'
        ELSE 'applicant_request' END,
    withdrawal_reason = CASE
        WHEN {CLOSED_BY_DISSOLUTION} AND a.withdrawal_reason = 'household_dissolved' THEN NULL
        ELSE a.withdrawal_reason END
WHERE a.status = 'withdrawn'
"""  # noqa: S608 - fixed text

UNEXPLAINED = """
SELECT a.id FROM application AS a JOIN household AS h ON h.id = a.household_id
WHERE a.withdrawal_cause = 'applicant_request' AND a.withdrawal_reason = 'household_dissolved'
  AND h.status = 'dissolved'
  AND NOT EXISTS (
      SELECT 1 FROM timeline_entry AS t
      WHERE t.application_id = a.id AND t.ce_type = 'dibao.intake.ApplicationWithdrawn.v1'
  )
ORDER BY a.id
"""
"""Withdrawals taken as the applicant's for want of their event, though they read as the
code in a dissolved household: logged."""


def upgrade() -> None:
    op.add_column("application", sa.Column("withdrawal_cause", sa.Text))
    op.execute(BACKFILL)
    for (application_id,) in op.get_bind().execute(sa.text(UNEXPLAINED)):
        log.warning(
            "application %s: withdrawn with the words household_dissolved in a dissolved"
            " household, and its timeline holds no withdrawal; taken as the applicant's",
            application_id,
        )
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
