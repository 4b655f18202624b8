"""Alembic environment of the audit service."""

from dibao_audit.models import migrated_schema
from dibao_common.db.alembic_env import run_migrations

run_migrations(migrated_schema())
