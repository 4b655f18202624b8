"""The append-only log: entries, every complete Merkle subtree, checkpoints, runtime role.

The runtime role (``<database>_app``, NOLOGIN; roles are cluster-wide and several
databases share a server in tests, hence the database name in it) may only INSERT and
SELECT these tables and does not own them; a trigger refuses UPDATE, DELETE and
TRUNCATE for everyone, owner included (see docs/adr/0006-audit-log.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_TABLES = ("log_entry", "merkle_node", "checkpoint")


def upgrade() -> None:
    op.create_table(
        "log_entry",
        sa.Column("leaf_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ce_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("ce_type", sa.Text, nullable=False),
        sa.Column("ce_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("record_key", sa.LargeBinary, nullable=True),
        sa.Column("headers", pg.JSONB, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("decoded", pg.JSONB, nullable=True),
        sa.Column("household_id", sa.Text, nullable=True),
        sa.Column("application_id", sa.Text, nullable=True),
        sa.Column("case_id", sa.Text, nullable=True),
        sa.Column("region", sa.Text, nullable=True),
        sa.Column("actor", sa.Text, nullable=True),
        sa.Column(
            "appended_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.create_index("ix_log_entry_household", "log_entry", ["household_id", "leaf_index"])
    op.create_index(
        "ix_log_entry_application",
        "log_entry",
        ["application_id", "leaf_index"],
        postgresql_where=sa.text("application_id IS NOT NULL"),
    )
    op.create_index(
        "ix_log_entry_case",
        "log_entry",
        ["case_id", "leaf_index"],
        postgresql_where=sa.text("case_id IS NOT NULL"),
    )
    op.create_index("ix_log_entry_type", "log_entry", ["ce_type", "leaf_index"])
    op.create_index("ix_log_entry_actor", "log_entry", ["actor", "leaf_index"])
    op.create_index("ix_log_entry_time", "log_entry", ["ce_time", "leaf_index"])

    op.create_table(
        "merkle_node",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("level >= 0", name="level_not_negative"),
        sa.CheckConstraint("octet_length(hash) = 32", name="hash_size"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("checkpoint_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("signed_note", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_tree_size", sa.BigInteger, nullable=True),
    )

    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in LOG_TABLES:
        # Per statement: refused even when it would touch no row.
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )

    # Idempotent: the role survives a dropped and recreated database of the same name.
    op.execute(
        """
        DO $$
        DECLARE
          app text := current_database() || '_app';
        BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = app) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', app);
          END IF;
          -- The service's login user assumes the role on connect (startup option role=...).
          IF NOT pg_has_role(session_user, app, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', app, session_user);
          END IF;
          EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app);
          EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app);
          EXECUTE format(
            'REVOKE ALL ON log_entry, merkle_node, checkpoint, inbox_message FROM %I', app);
          EXECUTE format(
            'GRANT SELECT, INSERT ON log_entry, merkle_node, checkpoint, inbox_message TO %I', app);
          -- The relay marks outbox rows published and purges old ones: not part of the log.
          EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON outbox_message TO %I', app);
          EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %I', app);
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE
          app text := current_database() || '_app';
        BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = app) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', app);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', app);
            EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', app);
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), app);
          END IF;
        END $$
        """
    )
    for table in LOG_TABLES:
        op.drop_table(table)
    op.execute("DROP FUNCTION audit_refuse_change()")
