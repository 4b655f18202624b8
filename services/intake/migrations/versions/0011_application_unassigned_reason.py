"""Why an accepted application was assigned to nobody.

An accepted application is assigned to its township's responsible caseworker, unless the
household is the caseworker's own or holds a relative of theirs (flagged: the county
assigns it). A caseworker on the roster without their own ID number cannot be matched to
their household, so they were assigned their own case (ADR 0009); since this revision
they are assigned none while their number is not on file. ``unassigned_reason`` says why
an accepted application has no caseworker: ``caseworker_related``,
``caseworker_not_identified`` or ``no_caseworker`` (the township has none). It is written
with the application (the submission's one statement) and published in its
ApplicationSubmitted (``unassigned_reason``).

Applications accepted before stay NULL: why they were left unassigned is not known from
the row (a flagged application may be assigned, when the relation is another staff
member's, and the township's roster may have changed since). The CHECKs admit the three
reasons only, and none beside an assigned caseworker.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("application", sa.Column("unassigned_reason", sa.Text))
    op.create_check_constraint(
        "unassigned_reason",
        "application",
        "unassigned_reason IN ('caseworker_related', 'caseworker_not_identified', 'no_caseworker')",
    )
    op.create_check_constraint(
        "unassigned_has_no_caseworker",
        "application",
        "unassigned_reason IS NULL OR assigned_caseworker IS NULL",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_application_unassigned_has_no_caseworker"), "application", type_="check"
    )
    op.drop_constraint(op.f("ck_application_unassigned_reason"), "application", type_="check")
    op.drop_column("application", "unassigned_reason")
