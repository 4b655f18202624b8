"""Alembic environment of the intake service."""

from dibao_common.db.alembic_env import run_migrations
from dibao_intake.models import Base

run_migrations(Base.metadata)
