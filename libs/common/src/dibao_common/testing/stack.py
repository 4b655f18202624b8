"""The isolated stack `make test` starts: where its PostgreSQL and Kafka are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

SERVICES = ("intake", "assessment", "publicity", "payments", "audit")
REPO_ROOT = Path(__file__).resolve().parents[5]


@dataclass(frozen=True, slots=True)
class TestStack:
    """Connection facts of the test stack, read from the environment `make test` sets."""

    __test__ = False  # not a test class, despite the name

    pg_admin_dsn: str
    """libpq DSN of a superuser connection to the server (database ``postgres``)."""
    kafka_bootstrap: str
    db_prefix: str

    def database_name(self, service: str) -> str:
        return f"{self.db_prefix}_{service}"

    def dsn(self, service: str) -> str:
        """libpq DSN of a service database (for asyncpg)."""
        base = self.pg_admin_dsn.rsplit("/", 1)[0]
        return f"{base}/{self.database_name(service)}"

    def database_url(self, service: str) -> str:
        """SQLAlchemy URL of a service database."""
        return self.dsn(service).replace("postgresql://", "postgresql+asyncpg://", 1)

    def alembic_config(self, service: str) -> Config:
        cfg = Config(str(REPO_ROOT / "services" / service / "alembic.ini"))
        cfg.set_main_option("sqlalchemy.url", self.database_url(service))
        return cfg

    async def recreate_database(self, service: str) -> None:
        name = self.database_name(service)
        conn = await asyncpg.connect(self.pg_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop_database(self, service: str) -> None:
        """The service's database and the runtime role audit's migrations make for it
        (``<database>_app``: cluster-wide, it would outlive the database on a kept server)."""
        name = self.database_name(service)
        conn = await asyncpg.connect(self.pg_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{name}_app"')
        finally:
            await conn.close()

    async def migrate(self, service: str, revision: str = "head") -> None:
        # Alembic's env runs its own event loop, so it gets a thread of its own.
        await asyncio.to_thread(command.upgrade, self.alembic_config(service), revision)

    async def downgrade(self, service: str, revision: str = "base") -> None:
        await asyncio.to_thread(command.downgrade, self.alembic_config(service), revision)


@asynccontextmanager
async def api_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An httpx client talking to ``app`` in-process, with its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client
