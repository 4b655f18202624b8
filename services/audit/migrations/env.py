"""Alembic environment of the audit service."""

from dibao_audit.models import Base
from dibao_common.db.alembic_env import run_migrations

run_migrations(Base.metadata)
