"""The kit's tables (outbox, inbox, idempotency records, webhook ids) of the payments service.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The DDL is the kit's frozen first step (``dibao_common.kit_migrations.v0001``), not the
kit's current definitions: this migration must keep doing what it did.
"""

from collections.abc import Sequence

from dibao_common.kit_migrations import v0001

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    v0001.upgrade()


def downgrade() -> None:
    v0001.downgrade()
