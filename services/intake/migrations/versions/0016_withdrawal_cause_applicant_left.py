"""An application is closed when its applicant leaves and nobody who stays may apply.

A death or a move out of the member who applied for an open application (submitted, not
yet decided) names the member who takes it over, or the head after the change takes it
over; when no member who stays may apply (none of 18 or more living at home), the change
closes it as withdrawn, cause ``applicant_left`` (ADR 0016, 3 Dec 2026). The CHECK on
``application.withdrawal_cause`` (migration 0010) admits that third cause; the rows are
unchanged.

Downgrade restores the two causes, and is refused (naming the applications) while an
application holds ``applicant_left``: which of the two others it would be is neither (the
applicant did not ask, the household was not dissolved), so nothing could stand for it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "ck_application_withdrawal_cause"


def upgrade() -> None:
    op.drop_constraint(op.f(CONSTRAINT), "application", type_="check")
    op.create_check_constraint(
        "withdrawal_cause",
        "application",
        "withdrawal_cause IN ('applicant_request', 'household_dissolved', 'applicant_left')",
    )


def downgrade() -> None:
    closed = [
        str(row[0])
        for row in op.get_bind().execute(
            sa.text(
                "SELECT id FROM application WHERE withdrawal_cause = 'applicant_left' ORDER BY id"
            )
        )
    ]
    if closed:
        raise RuntimeError(
            "applications closed because their applicant left cannot be downgraded (no"
            f" cause before 0016 stands for it): {', '.join(closed)}"
        )
    op.drop_constraint(op.f(CONSTRAINT), "application", type_="check")
    op.create_check_constraint(
        "withdrawal_cause",
        "application",
        "withdrawal_cause IN ('applicant_request', 'household_dissolved')",
    )
