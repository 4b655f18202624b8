"""The body of every service's Alembic ``env.py``: online, async, one transaction per run."""

from __future__ import annotations

import asyncio

from alembic import context
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

MINIMUM_SERVER_VERSION = (15,)
"""The oldest PostgreSQL the schemas are written for: unique constraints with NULLS NOT
DISTINCT (intake's migration 0014) came with 15, Debian 12's release; compose runs 16."""


class UnsupportedServerError(RuntimeError):
    """The database server is older than MINIMUM_SERVER_VERSION."""


def check_server_version(version: tuple[int | str, ...] | None) -> None:
    """Refuse, before any migration runs, a server too old for one of them: otherwise an
    upgrade stops midway at the first statement the server cannot parse, with a syntax
    error that names no version."""
    numbers = tuple(part for part in version or () if isinstance(part, int))
    if not numbers or numbers >= MINIMUM_SERVER_VERSION:
        return
    found = ".".join(map(str, numbers))
    needed = ".".join(map(str, MINIMUM_SERVER_VERSION))
    raise UnsupportedServerError(
        f"dibao's migrations need PostgreSQL {needed} or later; the server is {found}"
    )


class MigrationSettings(BaseSettings):
    """Only the database URL: migrations need nothing else."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore")
    database_url: str


def _do_run(connection: Connection, target_metadata: MetaData) -> None:
    check_server_version(connection.dialect.server_version_info)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # A changed server default is a schema change too: autogenerate and `alembic
        # check` see it (tests/infra/test_schema_drift.py runs the check).
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        # A migration must never wait behind a long lock on a live system.
        connection.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        context.run_migrations()


async def _run_async(url: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_do_run, target_metadata)
    await engine.dispose()


def run_migrations(target_metadata: MetaData) -> None:
    """Run the migrations Alembic was asked for against ``DIBAO_DATABASE_URL``.

    ``-x url=...`` on the command line overrides the environment (used by tests).
    """
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        url = context.config.get_main_option("sqlalchemy.url") or MigrationSettings().database_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(url, target_metadata))
