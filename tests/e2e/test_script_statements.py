"""The statements the operator scripts run on a PostgreSQL server (pg.sh ensure-dbs, on the
operator's DIBAO_PG_URL or the instance's own) are bounded: one that waits for a lock held
by another session fails after DIBAO_QUERY_TIMEOUT's lock timeout, naming the server, the
statement and what failed, instead of waiting with it. Migrations that outlast
DIBAO_MIGRATE_TIMEOUT fail `up`, naming each service. On the test stack's servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack

STACK_SH = str(REPO_ROOT / "deploy" / "stack.sh")

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

INSTANCE = "e2e-statements"
DB_PREFIX = "dibao_e2e_statements"


async def _databases(stack: TestStack) -> list[str]:
    conn = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{DB_PREFIX}%"
        )
    finally:
        await conn.close()
    return [r["datname"] for r in rows]


async def test_create_database_waiting_for_its_template_fails_in_bounded_time(
    stack: TestStack, tmp_path: Path
) -> None:
    """A session renaming template1 (uncommitted) holds the lock CREATE DATABASE needs on
    its template: ensure-dbs gives up after the lock timeout and creates nothing."""
    server = stack.pg_admin_dsn.split("@", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")} | {
        "DIBAO_INSTANCE": INSTANCE,
        "DIBAO_STATE_DIR": str(tmp_path),
        "DIBAO_PG_PORT": "1",
        "DIBAO_KAFKA_PORT": "1",
        "DIBAO_SVC_PORT_BASE": "1",
        # A password the trust login ignores: never shown in a message.
        "DIBAO_PG_URL": f"postgresql://dibao:pa55-word@{server}",
        "DIBAO_QUERY_TIMEOUT": "4",
    }
    assert await _databases(stack) == []
    holder = await asyncpg.connect(stack.pg_admin_dsn)
    held = holder.transaction()
    await held.start()
    try:
        await holder.execute("ALTER DATABASE template1 RENAME TO template1_held")
        started = time.monotonic()
        # Without a bound the script waits as long as the lock is held: past the
        # subprocess timeout here, which fails the test.
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", str(REPO_ROOT / "deploy" / "pg.sh"), "ensure-dbs"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started
    finally:
        await held.rollback()
        await holder.close()
    assert done.returncode != 0, done.stderr
    assert f"the PostgreSQL server at postgresql://{server}" in done.stderr, done.stderr
    assert f'`create database "{DB_PREFIX}_{SERVICES[0]}"`' in done.stderr, done.stderr
    assert "canceling statement due to lock timeout" in done.stderr, done.stderr
    assert "pa55-word" not in done.stderr
    assert took < 30, took
    assert await _databases(stack) == []


MIGRATE_INSTANCE = "e2e-migrate"


@pytest.fixture
async def migrate_databases_dropped(stack: TestStack) -> AsyncIterator[None]:
    yield
    conn = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        for service in SERVICES:
            await conn.execute(
                f'DROP DATABASE IF EXISTS "dibao_e2e_migrate_{service}" WITH (FORCE)'
            )
    finally:
        await conn.close()


@pytest.mark.kafka
async def test_migrations_that_outlast_their_bound_fail_up(
    stack: TestStack, tmp_path: Path, migrate_databases_dropped: None
) -> None:
    """With DIBAO_MIGRATE_TIMEOUT=1 no service's migrations end in time (the interpreter
    alone starts in about 2 s): `up` fails naming each service and the server, and starts
    no service."""
    base = int(os.environ.get("DIBAO_TEST_SVC_PORT_BASE", "8100")) + 70
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")} | {
        "DIBAO_INSTANCE": MIGRATE_INSTANCE,
        "DIBAO_STATE_DIR": str(tmp_path),
        "DIBAO_PG_URL": stack.pg_admin_dsn,
        "DIBAO_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "DIBAO_PG_PORT": "1",
        "DIBAO_KAFKA_PORT": "1",
        "DIBAO_SVC_PORT_BASE": str(base),
        "DIBAO_MIGRATE_TIMEOUT": "1",
    }
    try:
        up = await asyncio.to_thread(
            subprocess.run,
            ["bash", STACK_SH, "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        down = await asyncio.to_thread(
            subprocess.run,
            ["bash", STACK_SH, "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert up.returncode != 0, up.stderr[-3000:]
    server = stack.pg_admin_dsn.split("@", 1)[1]
    assert f"migrations failed on postgresql://{server}:" in up.stderr, up.stderr[-3000:]
    for service in SERVICES:
        assert f"{service} (did not end within 1 s)" in up.stderr, up.stderr[-3000:]
    assert "== services" not in up.stderr
    assert not list((tmp_path / "run").glob("*.pid"))
