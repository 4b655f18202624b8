"""``entry_region_prefix``'s primary key gets the name the models give it.

Migration 0009 created the table in plain SQL, so PostgreSQL named its primary key
``entry_region_prefix_pkey``; the models (and every other table of every service) name a
primary key ``pk_<table>`` (``dibao_common.db.NAMING_CONVENTION``). Nothing refers to the
name, but a migration written from the models (``op.drop_constraint``, an autogenerate)
would name a constraint that does not exist, and the schema test
(``tests/infra/test_schema_drift.py``) finds the two apart. Renaming the index renames the
constraint with it; no data is read or written, and ``ALTER INDEX ... RENAME`` takes a
SHARE UPDATE EXCLUSIVE lock on the index alone, which no append or read waits for. Like
0009 and 0010 it may be run again over a database it has already changed (``IF EXISTS``:
then it does nothing); ``test_migration_0009`` runs the chain again from 0008 so.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER INDEX IF EXISTS entry_region_prefix_pkey RENAME TO pk_entry_region_prefix")


def downgrade() -> None:
    op.execute("ALTER INDEX IF EXISTS pk_entry_region_prefix RENAME TO entry_region_prefix_pkey")
