"""The part of each income category a member received in kind.

domain.md counts "total monetary and in-kind income": a rural household's own grain,
vegetables and livestock consumed (实物收入), wages paid in goods. A declaration was five
amounts with nothing telling which part was cash, so verification, which cross-checks
cash income against the bank and tax registries, would take an in-kind income for
concealed cash, or miss it (docs/adr/0007, 3 Dec 2026). Five columns on the member's row
of application_income, one a category, each the part of that category's amount received
in kind: 0 to the amount (CHECK ``in_kind_within_amounts``), so a category declared zero
has none. The amounts keep their meaning: cash and in kind together.

Rows written before get 0 (the default): those declarations could not say, and were
published as all cash. Downgrade drops the five columns, and the in-kind parts declared
since with them (their events keep them).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES = ("wage", "operating", "property", "transfer", "other")
WITHIN = " AND ".join(f"{c}_in_kind_fen BETWEEN 0 AND {c}_fen" for c in CATEGORIES)


def upgrade() -> None:
    for category in CATEGORIES:
        op.add_column(
            "application_income",
            sa.Column(
                f"{category}_in_kind_fen",
                sa.BigInteger,
                nullable=False,
                server_default=sa.text("0"),
            ),
        )
    op.create_check_constraint("in_kind_within_amounts", "application_income", WITHIN)


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_application_income_in_kind_within_amounts"), "application_income", type_="check"
    )
    for category in reversed(CATEGORIES):
        op.drop_column("application_income", f"{category}_in_kind_fen")
