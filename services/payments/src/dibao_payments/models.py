"""ORM models of the payments service (its own database, its own metadata)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from dibao_common.db import service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()
