"""The legal marriage age a spouse's marriage to the head was recorded under.

The record refuses a marriage under the Civil Code's ages (art. 1047: 22 for a man, 20 for
a woman), which catches mistyped ID numbers; but an autonomous area's adapted provisions
(变通规定) lower them to 20 and 18, and a marriage lawful under one could not be recorded,
which blocked the household's register and its application. A clerk now says so on the
request (``marriage_age_basis``: ``autonomous_adaptation``; ADR 0016, 3 Dec 2026, helper
hBB), and the floor is 20 and 18, never lower.

- ``household_member.marriage_age_basis``: what the clerk said for the head's spouse
  registered with the household or moved in as the head's spouse (NULL: nothing said, the
  Civil Code's ages), ``civil_code`` or ``autonomous_adaptation`` (CHECK
  ``marriage_age_basis``). The rules that read a registered couple later (the earliest day
  of their divorce) read it. A marriage recorded as a change keeps it in the change's
  details, as the rest of them (no column).

Rows written before get NULL: they were recorded under the Civil Code's ages, or the 20
and 18 of before 3 Dec 2026. Downgrade drops the column, and what was said since with it
(the events keep it).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("household_member", sa.Column("marriage_age_basis", sa.Text, nullable=True))
    op.create_check_constraint(
        "marriage_age_basis",
        "household_member",
        "marriage_age_basis IN ('civil_code', 'autonomous_adaptation')",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_household_member_marriage_age_basis"), "household_member", type_="check"
    )
    op.drop_column("household_member", "marriage_age_basis")
