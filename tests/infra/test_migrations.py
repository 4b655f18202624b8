"""Every service database exists and its migration chain runs empty -> head -> empty -> head.

The chain runs on a database of its own for each service, empty as the chain starts: the
suite's shared one holds the other tests' rows, which a downgrade may rightly refuse to
drop (intake's 0016 refuses while an application is closed as `applicant_left`, a cause no
older revision can hold), and taking it to base would wipe what later tests read."""

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
    own = TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_chain")
    await own.recreate_database(service)
    try:
        assert await _tables(own, service) == set()
        await own.migrate(service, "head")
        assert await _tables(own, service) == at_head
        await own.downgrade(service, "base")
        assert await _tables(own, service) == set()
        await own.migrate(service, "head")
        assert await _tables(own, service) == at_head
    finally:
        await own.drop_database(service)
