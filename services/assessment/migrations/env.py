"""Alembic environment of the assessment service."""

from dibao_assessment.models import Base
from dibao_common.db.alembic_env import run_migrations

run_migrations(Base.metadata)
