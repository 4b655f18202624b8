"""Fixtures of the database tests: an engine on the intake database whose test rows (inbox
rows of the consumers named ``*-test``) are removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.testing.stack import TestStack


@pytest.fixture
async def engine(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    db = make_engine(stack.database_url("intake"), pool_size=2)
    try:
        yield db
    finally:
        async with db.begin() as conn:
            await conn.execute(
                text("DELETE FROM inbox_message WHERE consumer IN ('driver-test', 'held-test')")
            )
        await db.dispose()
