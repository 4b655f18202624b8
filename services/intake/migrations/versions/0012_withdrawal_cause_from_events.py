"""Withdrawals the first backfill of 0010 took for a dissolution go back to their applicant.

Migration 0010, as first written, took a withdrawn application for one closed by its
household's dissolution when its reason read ``household_dissolved`` and its household was
dissolved, and cleared the reason. An applicant who had written those very words, in a
household dissolved later, so lost their words and had their withdrawal put down to the
dissolution. 0010 now decides from the application's timeline (the ApplicationWithdrawn of
cause HOUSEHOLD_DISSOLVED that the dissolving change wrote in its transaction); this puts
right the databases migrated before: an application withdrawn as ``household_dissolved``
whose timeline holds no such entry becomes the applicant's again, with the words the first
backfill cleared, which were exactly ``household_dissolved`` (it matched nothing else).
Every application closed by a dissolution since 6842631 has its entry, written with it, so
none of them is touched; a database migrated by 0010 as it is now has no such row, and
this changes nothing there (nor when run again). One UPDATE: withdrawn applications are
few.

Downgrade does nothing: the rows were wrong, and 0011's schema takes them as they are now.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CORRECTION = """
UPDATE application AS a
SET withdrawal_cause = 'applicant_request', withdrawal_reason = 'household_dissolved'
WHERE a.withdrawal_cause = 'household_dissolved' AND a.withdrawal_reason IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM timeline_entry AS t
      WHERE t.application_id = a.id AND t.ce_type = 'dibao.intake.ApplicationWithdrawn.v1'
        AND t.details ->> 'cause' = 'household_dissolved'
  )
"""


def upgrade() -> None:
    op.execute(CORRECTION)


def downgrade() -> None:
    """Nothing: the rows put right were wrong."""
