"""One open application per household and kind, enforced by the database.

The submission checks for an open application of the same kind with a read, then writes
with a statement of its own (ADR 0013): two submissions sent at once both passed the
check and both were accepted. A partial unique index now refuses the second write. An
application stays ``submitted`` in intake after assessment decides it, so the index
needs to know which are decided: ``decided_at``, set by the timeline consumer when a
decision about the application arrives (and here, from the timeline already recorded).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The decisions the timeline consumer marks (dibao_intake.service_layer.timeline).
BACKFILL = """
UPDATE application a SET decided_at = t.decided_at
FROM (
    SELECT application_id, min(occurred_at) AS decided_at FROM timeline_entry
    WHERE ce_type IN (
        'dibao.assessment.ApplicationRejected.v1',
        'dibao.assessment.BenefitApproved.v1',
        'dibao.assessment.OneOffAssistanceApproved.v1'
    )
    GROUP BY application_id
) t
WHERE t.application_id = a.id
"""


def upgrade() -> None:
    op.add_column("application", sa.Column("decided_at", sa.DateTime(timezone=True)))
    op.execute(BACKFILL)
    op.create_index(
        "uq_application_open_kind",
        "application",
        ["household_id", "kind"],
        unique=True,
        postgresql_where=sa.text("status = 'submitted' AND decided_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_application_open_kind", table_name="application")
    op.drop_column("application", "decided_at")
