"""Every service database exists and its migration chain runs empty -> head -> empty -> head."""

from __future__ import annotations

import asyncpg
import pytest

from dibao_common.testing.stack import SERVICES, TestStack

pytestmark = pytest.mark.postgres


async def _tables(stack: TestStack, service: str) -> set[str]:
    conn = await asyncpg.connect(stack.dsn(service))
    try:
        rows = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public' "
            "and tablename <> 'alembic_version'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


@pytest.mark.parametrize("service", SERVICES)
async def test_migration_chain_up_down_up(stack: TestStack, service: str) -> None:
    at_head = await _tables(stack, service)
    assert "outbox_message" in at_head
    # The audit log's own unique ce_id is its inbox (ADR 0011); the others keep the kit's.
    assert ("inbox_message" in at_head) == (service != "audit")
    await stack.downgrade(service, "base")
    assert await _tables(stack, service) == set()
    await stack.migrate(service, "head")
    assert await _tables(stack, service) == at_head
