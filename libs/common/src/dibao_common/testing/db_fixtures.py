"""Database fixtures: a session per test rolled back at the end.

A service's tests get one with a line in their ``conftest.py``::

    from dibao_common.testing.db_fixtures import db_session_for

    db_session = db_session_for("intake")

Each test then runs inside a transaction on one connection that is rolled back when the
test ends. Sessions join it through a savepoint, so code under test that calls
``commit()`` (or ``rollback()``) still leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao_common.db import make_engine
from dibao_common.testing.stack import SERVICES, TestStack


class ServiceEngines:
    """One engine per service database of the test stack, made on first use."""

    def __init__(self, stack: TestStack) -> None:
        self._stack = stack
        self._engines: dict[str, AsyncEngine] = {}

    def engine(self, service: str) -> AsyncEngine:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        found = self._engines.get(service)
        if found is None:
            found = make_engine(self._stack.database_url(service), pool_size=4)
            self._engines[service] = found
        return found

    async def dispose(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def service_engines(stack: TestStack) -> AsyncIterator[ServiceEngines]:
    """Engines to the migrated service databases of the test stack, for the whole run."""
    engines = ServiceEngines(stack)
    try:
        yield engines
    finally:
        await engines.dispose()


@asynccontextmanager
async def rolled_back(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions bound to one connection whose transaction is rolled back on exit.

    The sessions share the connection: use them one after another, not concurrently.
    """
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield async_sessionmaker(
                bind=connection,
                expire_on_commit=False,
                autoflush=False,
                join_transaction_mode="create_savepoint",
            )
        finally:
            if outer.is_active:
                await outer.rollback()


def db_sessionmaker_for(
    service: str, *, name: str = "db_sessionmaker"
) -> Callable[[ServiceEngines], AsyncIterator[async_sessionmaker[AsyncSession]]]:
    """A fixture (named ``name``) yielding a sessionmaker whose every session is rolled
    back with the test, e.g. to stand in for a service's own sessionmaker in API tests."""

    @pytest_asyncio.fixture(name=name, loop_scope="session")
    async def fixture(
        service_engines: ServiceEngines,
    ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        async with rolled_back(service_engines.engine(service)) as maker:
            yield maker

    return fixture


def db_session_for(
    service: str, *, name: str = "db_session"
) -> Callable[[ServiceEngines], AsyncIterator[AsyncSession]]:
    """A fixture (named ``name``) yielding an ``AsyncSession`` on ``service``'s test
    database, everything it did rolled back when the test ends."""

    @pytest_asyncio.fixture(name=name, loop_scope="session")
    async def fixture(service_engines: ServiceEngines) -> AsyncIterator[AsyncSession]:
        async with (
            rolled_back(service_engines.engine(service)) as maker,
            maker() as session,
        ):
            yield session

    return fixture
