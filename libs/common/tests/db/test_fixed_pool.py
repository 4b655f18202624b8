"""A pool is fixed (ADR 0014): a burst beyond it waits for the connections it has,
instead of opening, using once and closing more."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from dibao_common.db import make_engine
from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.postgres


async def _backends_started(stack: TestStack, application_name: str) -> set[int]:
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        return {int(r["pid"]) for r in rows}
    finally:
        await conn.close()


async def test_a_burst_beyond_the_pool_reuses_its_connections(stack: TestStack) -> None:
    name = f"fixed-pool-test-{uuid.uuid4().hex[:8]}"
    engine = make_engine(stack.database_url("intake"), pool_size=2, application_name=name)
    seen: set[int] = set()

    async def one() -> None:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            seen.add(int(pid))
            await asyncio.sleep(0.05)  # held long enough that the burst overlaps

    try:
        # Three waves of eight at once against a pool of two: every request is served,
        # by the same two backends throughout.
        for _ in range(3):
            await asyncio.gather(*(one() for _ in range(8)))
        assert len(seen) == 2
        assert await _backends_started(stack, name) == seen
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
