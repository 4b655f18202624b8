"""Alembic environment of the assessment service."""

from dibao_assessment.models import migrated_schema
from dibao_common.db.alembic_env import run_migrations

run_migrations(migrated_schema())
