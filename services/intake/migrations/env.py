"""Alembic environment of the intake service."""

from dibao_common.db.alembic_env import run_migrations
from dibao_intake.models import migrated_schema

run_migrations(migrated_schema())
