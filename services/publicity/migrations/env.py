"""Alembic environment of the publicity service."""

from dibao_common.db.alembic_env import run_migrations
from dibao_publicity.models import migrated_schema

run_migrations(migrated_schema())
