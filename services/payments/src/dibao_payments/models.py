"""ORM models of the payments service (its own database, its own metadata)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from dibao_common.db import service_metadata
from dibao_common.db.schema import service_schema


class Base(DeclarativeBase):
    metadata = service_metadata()


def migrated_schema() -> MetaData:
    """What this service's migrations build, as one metadata: these models and the kit's
    tables. Alembic's ``target_metadata`` (``migrations/env.py``) and the schema test's
    reference (``dibao_common.db.schema``)."""
    return service_schema(Base.metadata)
