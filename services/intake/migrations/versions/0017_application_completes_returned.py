"""An application may name the returned application it completes.

A returned application (incomplete: ApplicationReturned listed every missing item) is
closed; the clerk sends the household's application again with what it lacked, and that
was a new application with no link to the returned one, so neither timeline said that the
one completed the other. ``application.completes_application_id`` names it (ADR 0009,
3 Dec 2026): an application of the same household, returned, and completed by no other,
which the submission checks; the unique index ``uq_application_completes`` keeps one
completion per returned application when two submissions race (the second write fails and
is answered 409 concurrent-change; sent again, the read refuses it). The foreign key keeps
the named application. Rows written before hold NULL.

Downgrade drops the index and the column: the links go (the timelines keep their entries).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "application",
        sa.Column(
            "completes_application_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(
                "application.id",
                name=op.f("fk_application_completes_application_id_application"),
                ondelete="RESTRICT",
            ),
        ),
    )
    op.create_index(
        "uq_application_completes",
        "application",
        ["completes_application_id"],
        unique=True,
        postgresql_where=sa.text("completes_application_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_application_completes", table_name="application")
    op.drop_column("application", "completes_application_id")
