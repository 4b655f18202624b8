"""The decoded JSON view moves off the append path into ``entry_view`` (append-only too).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entry_view",
        sa.Column("leaf_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("decoded", pg.JSONB, nullable=True),
        sa.Column(
            "projected_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.execute(
        "INSERT INTO entry_view (leaf_index, decoded) "
        "SELECT leaf_index, decoded FROM log_entry ORDER BY leaf_index"
    )
    op.drop_column("log_entry", "decoded")
    op.execute(
        "CREATE TRIGGER entry_view_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON entry_view FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        """
        DO $$
        BEGIN
          EXECUTE format('GRANT SELECT, INSERT ON entry_view TO %I', current_database() || '_app');
        END $$
        """
    )


def downgrade() -> None:
    op.add_column("log_entry", sa.Column("decoded", pg.JSONB, nullable=True))
    op.drop_table("entry_view")
