"""Alembic environment of the payments service."""

from dibao_common.db.alembic_env import run_migrations
from dibao_payments.models import migrated_schema

run_migrations(migrated_schema())
