"""Fixtures of the housekeeping tests: the kit tables of the intake database, rows of
these tests only (signed and completed in January 2000, older than any other test's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.testing.stack import TestStack

NOW = datetime(2000, 1, 10, 12, 0, tzinfo=UTC)
SCOPE = "housekeeping-test"
WEBHOOK_PREFIX = "hk-test-"


async def forget_test_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM idempotency_record WHERE scope = :s"), {"s": SCOPE})
        await conn.execute(
            sa.text("DELETE FROM webhook_message WHERE starts_with(webhook_id, :p)"),
            {"p": WEBHOOK_PREFIX},
        )


@pytest.fixture
async def engine(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(stack.database_url("intake"), pool_size=4)
    await forget_test_rows(engine)
    try:
        yield engine
    finally:
        await forget_test_rows(engine)
        await engine.dispose()


@pytest.fixture
def hk_clock() -> FrozenClock:
    return FrozenClock(NOW)
