"""A member's receipts not counted as income, and deductions, beside their declaration.

A declaration was five net monthly amounts and one note (application_income). domain.md
leaves some receipts out of income (social-assistance payments, state awards and
scholarships, the residents' basic pension, the childcare subsidy, items a city excludes)
and allows deductions (the extra costs of a disability or a serious illness, employment
costs; taxes and social-insurance contributions, which the net amounts are already net
of): assessment could not tell a basic pension from a retirement pension, nor see a
deduction, and verification would find every receipt left out "undeclared" in the
registries. Two tables, each row one kind of one member's declaration, at most one of a
kind (the key), referring to the member's row of application_income (docs/adr/0007, 3 Dec
2026). The counted categories stay as they are: net, as the member receives them.

Applications submitted before have no rows: they declared none. Downgrade drops both
tables, and the receipts and deductions declared since with them (their events keep them).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)
MONTHLY_ITEM_MAX_FEN = 10_000_000
KINDS = {
    "application_income_not_counted": (
        "social_assistance",
        "state_award_or_scholarship",
        "residents_basic_pension",
        "childcare_subsidy",
        "special_care_pension",
        "family_planning_reward",
        "locally_excluded",
    ),
    "application_income_deduction": (
        "taxes_and_social_insurance",
        "disability_costs",
        "serious_illness_costs",
        "employment_costs",
    ),
}
FOREIGN_KEYS = {
    "application_income_not_counted": "fk_application_income_not_counted_declaration",
    "application_income_deduction": "fk_application_income_deduction_declaration",
}


def upgrade() -> None:
    for table, kinds in KINDS.items():
        op.create_table(
            table,
            sa.Column("application_id", UUID, primary_key=True),
            sa.Column("person_id", UUID, primary_key=True),
            sa.Column("kind", sa.Text, primary_key=True),
            sa.Column("monthly_fen", sa.BigInteger, nullable=False),
            sa.ForeignKeyConstraint(
                ["application_id", "person_id"],
                ["application_income.application_id", "application_income.person_id"],
                ondelete="RESTRICT",
                name=FOREIGN_KEYS[table],
            ),
            sa.CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")", name="kind"),
            sa.CheckConstraint(
                f"monthly_fen BETWEEN 1 AND {MONTHLY_ITEM_MAX_FEN}", name="monthly_fen"
            ),
        )


def downgrade() -> None:
    for table in reversed(tuple(KINDS)):
        op.drop_table(table)
