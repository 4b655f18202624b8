"""Fixtures of the idempotency tests: the test app on the intake database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import AuthSettings
from dibao_common.bank import BankSettings
from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.testing.stack import TestStack, api_client

from .http_app import create_effect_table, drop_effect_table, http_app


@pytest.fixture
async def engine(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(stack.database_url("intake"), pool_size=2)
    await create_effect_table(engine)
    try:
        yield engine
    finally:
        await drop_effect_table(engine)
        await engine.dispose()


@pytest.fixture
def app(
    stack: TestStack,
    engine: AsyncEngine,
    clock: FrozenClock,
    auth_settings: AuthSettings,
    bank_settings: BankSettings,
) -> Iterator[FastAPI]:
    """The app; a gate a test left closed (it failed before opening it) is opened after
    it, so that its held requests end, and with them their transactions, before the
    engine's teardown drops the effects table (which would wait on their locks for ever)."""
    app = http_app(stack, clock, auth=auth_settings, bank=bank_settings)
    yield app
    if app.state.gate is not None:
        app.state.gate.set()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with api_client(app) as c:
        yield c
