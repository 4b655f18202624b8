"""Who took someone off a township's roster, and when.

A deactivation only cleared ``active``: the roster then showed a former member without
saying since when or on whose word, though the roster decides whose relatives are
flagged and who gets cases. ``deactivated_at`` and ``deactivated_by`` (the token subject)
are set with it from now on. Members deactivated before this migration keep both empty:
nobody recorded them. An active member has neither, and the two go together.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("staff_member", sa.Column("deactivated_at", sa.DateTime(timezone=True)))
    op.add_column("staff_member", sa.Column("deactivated_by", sa.Text))
    op.create_check_constraint(
        "deactivation_recorded",
        "staff_member",
        "(deactivated_at IS NULL) = (deactivated_by IS NULL)",
    )
    op.create_check_constraint(
        "active_not_deactivated", "staff_member", "NOT active OR deactivated_at IS NULL"
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_staff_member_active_not_deactivated"), "staff_member", type_="check"
    )
    op.drop_constraint(op.f("ck_staff_member_deactivation_recorded"), "staff_member", type_="check")
    op.drop_column("staff_member", "deactivated_by")
    op.drop_column("staff_member", "deactivated_at")
