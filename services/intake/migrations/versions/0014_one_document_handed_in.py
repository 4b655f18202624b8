"""One document per content, type and member of a household.

An upload of content a household already has on file, as the same type and about the
same member (or about none), wrote a second ``document`` row: a clerk's second click, or a
portal retrying after a timeout without an Idempotency-Key, showed the applicant's ID card
twice. Such an upload now answers the document on file (200) and writes no row (docs/adr/
0015, 3 Dec 2026). A unique index holds it in the database, so that two uploads at once
end in one row (the upload's ``INSERT ... ON CONFLICT DO NOTHING`` names it):
``uq_document_handed_in`` on (household_id, person_id, document_type, sha256), NULLS NOT
DISTINCT (a household's own document has no person; PostgreSQL 15), over the rows whose
``duplicate_of`` is empty.

Rows written before may already repeat one another. They all stay: applications,
household changes and published events (ApplicationSubmitted's documents, the audit log)
name them by id, so none is deleted or merged. The upgrade sets ``duplicate_of`` on each
later copy (by created_at, then id) to the id of the earliest, which keeps the index's
rows unique and tells an operator which rows were handed in twice; the earliest is the one
an upload of the same document now answers. One UPDATE touching only the copies, then the
index's build, which holds a SHARE lock on ``document`` while it reads the table (uploads
wait for it, reads do not; documents are a few per application).

Downgrade drops the index and the column: the marks go, every row stays. Upgraded again,
the same rows are marked (the order is the rows' own), and any copies written meanwhile.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("dibao_intake.migrations")

KEY = ("household_id", "person_id", "document_type", "sha256")

MARK_COPIES = """
UPDATE document AS d SET duplicate_of = f.first_id
FROM (
    SELECT id, first_value(id) OVER (
        PARTITION BY household_id, person_id, document_type, sha256 ORDER BY created_at, id
    ) AS first_id
    FROM document
) AS f
WHERE d.id = f.id AND f.id <> f.first_id
"""
"""Each later copy of a document (the window's partitions take NULL person ids as equal)
names the earliest."""


def upgrade() -> None:
    op.add_column(
        "document",
        sa.Column(
            "duplicate_of",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("document.id", ondelete="RESTRICT"),
            nullable=True,
        ),
    )
    marked = op.get_bind().execute(sa.text(MARK_COPIES)).rowcount
    if marked:
        # Ids and counts only: nothing personal.
        log.info("0014: %d documents handed in again before are marked duplicate_of", marked)
    op.create_index(
        "uq_document_handed_in",
        "document",
        list(KEY),
        unique=True,
        postgresql_nulls_not_distinct=True,
        postgresql_where=sa.text("duplicate_of IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_document_handed_in", table_name="document")
    op.drop_column("document", "duplicate_of")
