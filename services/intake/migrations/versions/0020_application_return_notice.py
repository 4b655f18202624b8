"""A returned application names the notice given to its applicant.

domain.md: an incomplete application gets "one notice listing every missing item"
(一次性告知书). ApplicationReturned listed the items but its ``notice`` was never set: no
notice existed that the township could print and hand over, and nothing recorded what the
applicant was told. Since 3 Dec 2026 (ADR 0009) intake renders it when it returns an
application, stores it as a document of the household (type ``return_notice``) and names it
here: ``application.notice_document_id``, a foreign key to ``document``, set only on a
returned application (CHECK ``notice_of_a_return``). Applications returned before hold NULL:
their notice was never made, and is not made now (the day, the township's name and the
items it would show are those of today's code, not what the applicant was told).

Downgrade is refused while a ``return_notice`` document exists: the code before 0020 does
not know the type and fails on reading such a row (a household's documents, the sweep's
checks), and dropping the documents would lose what the applicants were told, which
ApplicationReturned names. On a database without one it drops the constraint and column.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "application",
        sa.Column(
            "notice_document_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(
                "document.id",
                name=op.f("fk_application_notice_document_id_document"),
                ondelete="RESTRICT",
            ),
        ),
    )
    op.create_check_constraint(
        "notice_of_a_return",
        "application",
        "notice_document_id IS NULL OR status = 'returned'",
    )


def downgrade() -> None:
    notices = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM document WHERE document_type = 'return_notice'")
    )
    if notices:
        raise RuntimeError(
            f"0020 downgrade refused: {notices} return notice(s) on file (document_type"
            " return_notice), which the code before 0020 cannot read; they are what"
            " applicants were told and ApplicationReturned names them, so they are not dropped"
        )
    op.drop_constraint(op.f("ck_application_notice_of_a_return"), "application", type_="check")
    op.drop_column("application", "notice_document_id")
