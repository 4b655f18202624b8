"""Database access: async engine and sessions, naming conventions, Alembic helpers."""

from dibao_common.db.engine import (
    NAMING_CONVENTION,
    DriverStatement,
    connection_lost,
    driver_connection,
    driver_session,
    make_engine,
    make_sessionmaker,
    refuse_closed_connections,
    service_metadata,
)
from dibao_common.db.outage import is_database_outage, is_lost_connection

__all__ = [
    "NAMING_CONVENTION",
    "DriverStatement",
    "connection_lost",
    "driver_connection",
    "driver_session",
    "is_database_outage",
    "is_lost_connection",
    "make_engine",
    "make_sessionmaker",
    "refuse_closed_connections",
    "service_metadata",
]
