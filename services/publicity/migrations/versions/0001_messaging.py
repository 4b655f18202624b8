"""The kit's tables (outbox, inbox, idempotency records, webhook ids) of the publicity service.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from dibao_common.http_schema import create_http_tables, drop_http_tables
from dibao_common.messaging.schema import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables()
    create_http_tables()


def downgrade() -> None:
    drop_http_tables()
    drop_messaging_tables()
