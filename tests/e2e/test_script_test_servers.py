"""`make test` (deploy/test.sh) never runs the suite against an operator's servers: with
DIBAO_PG_URL and DIBAO_KAFKA_BOOTSTRAP set (the servers `make up` uses) it starts the
instance's own PostgreSQL and Kafka and creates nothing on the operator's; servers for tests
are used only when named for tests (DIBAO_TEST_PG_DSN, DIBAO_TEST_KAFKA_BOOTSTRAP).

A test.sh of its own is run here, its pytest given one test that records the servers it was
handed. The "operator's" servers are this test stack's own (with a password, which trust
login ignores); the nested instance's own servers, when it starts them, are on this
instance's ports plus 10,020 (as kafka_fixtures.own_broker spaces its brokers), so parallel
test instances never collide."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

INSTANCE = "testsh"
PREFIX = f"dibao_{INSTANCE}"
OFFSET = 10_020
STATE_DIR = Path(os.environ.get("DIBAO_TEST_STATE", REPO_ROOT / ".local" / "test")) / INSTANCE

SEEN = """
import json, os, pathlib

def test_record_the_servers():
    names = ("DIBAO_TEST_PG_DSN", "DIBAO_TEST_KAFKA_BOOTSTRAP", "DIBAO_TEST_DB_PREFIX")
    pathlib.Path(os.environ["SEEN_FILE"]).write_text(
        json.dumps({name: os.environ.get(name) for name in names})
    )
"""
"""The nested suite: records the servers test.sh hands the tests."""


def _with_password(dsn: str) -> str:
    scheme, rest = dsn.split("://", 1)
    user, server = rest.split("@", 1)
    return f"{scheme}://{user}:operator-pa55@{server}"


async def _databases(stack: TestStack) -> list[str]:
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1", f"{PREFIX}_%"
        )
        return [row["datname"] for row in rows]
    finally:
        await admin.close()


@pytest.fixture
async def clean_server(stack: TestStack) -> AsyncIterator[None]:
    """No database of the nested instance on this stack's server before or after."""

    async def drop() -> None:
        admin = await asyncpg.connect(stack.pg_admin_dsn)
        try:
            for name in await _databases(stack):
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    await drop()
    yield
    await drop()


def _run_test_sh(
    tmp_path: Path, **extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str | None]]:
    """deploy/test.sh of instance INSTANCE on this instance's ports plus OFFSET, nothing of
    this run's DIBAO_ variables inherited (nor its uv environment); its pytest runs SEEN."""
    pg_port = urlsplit(os.environ["DIBAO_TEST_PG_DSN"]).port
    assert pg_port is not None
    kafka_port = int(os.environ.get("DIBAO_TEST_KAFKA_PORT", "9192"))
    svc_base = int(os.environ.get("DIBAO_TEST_SVC_PORT_BASE", "8100"))
    for port in (pg_port + OFFSET, kafka_port + OFFSET, kafka_port + OFFSET + 1):
        with socket.socket() as s:  # the nested instance's ports are free
            assert s.connect_ex(("127.0.0.1", port)) != 0, port
    suite = tmp_path / "nested" / "test_seen.py"
    suite.parent.mkdir()
    suite.write_text(SEEN)
    seen = tmp_path / "seen.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DIBAO_") and k not in ("UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV")
    }
    env |= {
        "DIBAO_TEST_INSTANCE": INSTANCE,
        "DIBAO_STATE_DIR": str(STATE_DIR),
        "DIBAO_PG_PORT": str(pg_port + OFFSET),
        "DIBAO_KAFKA_PORT": str(kafka_port + OFFSET),
        "DIBAO_SVC_PORT_BASE": str(svc_base + OFFSET),
        "DIBAO_LOCK_WAIT": "5",
        "SEEN_FILE": str(seen),
        **extra,
    }
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "test.sh"), "-p", "no:cacheprovider", str(suite)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    recorded: dict[str, str | None] = json.loads(seen.read_text()) if seen.exists() else {}
    return done, recorded


async def test_make_test_leaves_the_operators_servers_alone(
    tmp_path: Path, stack: TestStack, clean_server: None
) -> None:
    """DIBAO_PG_URL and DIBAO_KAFKA_BOOTSTRAP name servers that answer (an operator's, for
    `make up`): the suite still gets the instance's own, said once; nothing of the instance
    is created on the operator's server, and its own are gone after teardown."""
    operators_pg = _with_password(stack.pg_admin_dsn)
    kafka_port = int(os.environ.get("DIBAO_TEST_KAFKA_PORT", "9192"))
    done, seen = _run_test_sh(
        tmp_path, DIBAO_PG_URL=operators_pg, DIBAO_KAFKA_BOOTSTRAP=stack.kafka_bootstrap
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pg_port = urlsplit(stack.pg_admin_dsn).port
    assert pg_port is not None
    assert seen == {
        "DIBAO_TEST_PG_DSN": f"postgresql://dibao@127.0.0.1:{pg_port + OFFSET}/postgres",
        "DIBAO_TEST_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port + OFFSET}",
        "DIBAO_TEST_DB_PREFIX": PREFIX,
    }, done.stderr[-3000:]
    assert await _databases(stack) == []
    server = stack.pg_admin_dsn.split("@", 1)[1].rsplit("/", 1)[0]
    said = f"DIBAO_PG_URL (postgresql://{server}/postgres) is left alone"
    assert done.stderr.count(said) == 1, done.stderr[-3000:]
    assert done.stderr.count(f"DIBAO_KAFKA_BOOTSTRAP ({stack.kafka_bootstrap}) is left alone") == 1
    assert "operator-pa55" not in done.stderr + done.stdout
    # Teardown removed the instance's own servers.
    for port in (pg_port + OFFSET, kafka_port + OFFSET):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, port


async def test_servers_named_for_tests_are_used(
    tmp_path: Path, stack: TestStack, clean_server: None
) -> None:
    """DIBAO_TEST_PG_DSN and DIBAO_TEST_KAFKA_BOOTSTRAP name the servers for tests: used
    (the instance starts none of its own), whatever DIBAO_PG_URL says (here a server that
    refuses connections, which is not even probed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    done, seen = _run_test_sh(
        tmp_path,
        DIBAO_TEST_PG_DSN=stack.pg_admin_dsn,
        DIBAO_TEST_KAFKA_BOOTSTRAP=stack.kafka_bootstrap,
        DIBAO_PG_URL=f"postgresql://operator:pw@127.0.0.1:{refused}/dibao",
        DIBAO_KAFKA_BOOTSTRAP=f"127.0.0.1:{refused}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert seen == {
        "DIBAO_TEST_PG_DSN": stack.pg_admin_dsn,
        "DIBAO_TEST_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "DIBAO_TEST_DB_PREFIX": PREFIX,
    }, done.stderr[-3000:]
    assert "(DIBAO_TEST_PG_DSN)" in done.stderr
    assert "(DIBAO_TEST_KAFKA_BOOTSTRAP)" in done.stderr
    assert f"127.0.0.1:{refused}" not in done.stderr
    # No server of the instance's own was started.
    assert "PostgreSQL started on" not in done.stderr, done.stderr[-3000:]
    assert " starting (pid " not in done.stderr, done.stderr[-3000:]
    # stack.sh up made the instance's databases on the server named for tests.
    assert await _databases(stack) == sorted(f"{PREFIX}_{s}" for s in SERVICES)
