"""Witness cosignatures of checkpoints, kept append-only (docs/adr/0024).

``checkpoint_cosignature``: one row per checkpoint and witness, the C2SP cosignature/v1
signature line the witness answered (``dibao_audit.witnessing``), its time, and when the
log received it. Like the log's tables it is append-only for everyone (0002's trigger
function) and the runtime role may only SELECT and INSERT. No hash of the log covers it:
a cosignature is verified by whoever reads it, against the witness's key, over the
checkpoint's note, so a row a superuser forged or edited fails there, and one deleted is
a checkpoint short of its quorum.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoint_cosignature",
        sa.Column(
            "tree_size",
            sa.BigInteger,
            sa.ForeignKey("checkpoint.tree_size", name="checkpoint_cosignature_checkpoint"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("witness", sa.Text, primary_key=True),
        sa.Column("signature_line", sa.Text, nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(
        "CREATE TRIGGER checkpoint_cosignature_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON checkpoint_cosignature FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        """
        DO $$
        DECLARE
          app text := current_database() || '_app';
        BEGIN
          EXECUTE format('REVOKE ALL ON checkpoint_cosignature FROM %I', app);
          EXECUTE format('GRANT SELECT, INSERT ON checkpoint_cosignature TO %I', app);
        END $$
        """
    )


def downgrade() -> None:
    op.drop_table("checkpoint_cosignature")
