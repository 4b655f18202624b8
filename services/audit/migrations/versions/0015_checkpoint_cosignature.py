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

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Re-runnable, as 0009-0014 are: a run stopped half way, or a database whose alembic
# version was set back (test_migration_0009), runs it again over what it made.
_SETUP = [
    """
    CREATE TABLE IF NOT EXISTS checkpoint_cosignature (
        tree_size bigint NOT NULL,
        witness text NOT NULL,
        signature_line text NOT NULL,
        cosigned_at timestamp with time zone NOT NULL,
        received_at timestamp with time zone NOT NULL DEFAULT now(),
        CONSTRAINT pk_checkpoint_cosignature PRIMARY KEY (tree_size, witness),
        CONSTRAINT checkpoint_cosignature_checkpoint FOREIGN KEY (tree_size)
            REFERENCES checkpoint (tree_size)
    )
    """,
    "DROP TRIGGER IF EXISTS checkpoint_cosignature_append_only ON checkpoint_cosignature",
    "CREATE TRIGGER checkpoint_cosignature_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
    "ON checkpoint_cosignature FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    """
    DO $$
    DECLARE
      app text := current_database() || '_app';
    BEGIN
      EXECUTE format('REVOKE ALL ON checkpoint_cosignature FROM %I', app);
      EXECUTE format('GRANT SELECT, INSERT ON checkpoint_cosignature TO %I', app);
    END $$
    """,
]


def upgrade() -> None:
    for sql in _SETUP:
        op.execute(sql)


def downgrade() -> None:
    op.drop_table("checkpoint_cosignature")
