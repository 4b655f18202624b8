"""The audit service's runtime engine: every connection runs as the append-only role."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine


def runtime_role(database_url: str, configured: str | None = None) -> str:
    """The role of migration 0002 for this database (``<database>_app``) unless configured."""
    if configured:
        return configured
    database = make_url(database_url).database
    if not database:
        raise ValueError("the database URL names no database")
    return f"{database}_app"


def make_runtime_engine(database_url: str, role: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine whose sessions run as ``role`` from their first statement.

    ``role`` is a startup parameter, so it is also the value RESET ROLE / RESET ALL return
    to; but SET ROLE NONE returns to the login of ``database_url``, so that login must be
    ``role`` itself (``DIBAO_AUDIT_RUNTIME_DATABASE_URL``, as the stack and the tests
    connect) or a plain member of it, never the owner or a superuser.
    """
    return make_engine(
        database_url,
        pool_size=pool_size,
        application_name="dibao-audit",
        server_settings={"role": role},
    )
