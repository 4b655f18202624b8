"""`make up` in miniature: the stack script starts the five services (on the test stack's
PostgreSQL and Kafka, with its own databases and ports), every /healthz answers 200, and
`down` leaves none of the processes it started, and no process it did not start is taken
for a service or stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

INSTANCE = "e2e"
STATE_DIR = Path(os.environ.get("DIBAO_TEST_STATE", REPO_ROOT / ".local" / "test")) / INSTANCE
"""Inside the test instance's own state directory: two test instances side by side (each
with its DIBAO_TEST_INSTANCE) would otherwise share and delete each other's pid files."""


def _env(stack: TestStack) -> dict[str, str]:
    base = int(os.environ.get("DIBAO_TEST_SVC_PORT_BASE", "8100"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    server = stack.pg_admin_dsn.rsplit("/", 1)[0].split("@", 1)[1]
    database = f"dibao_{INSTANCE}_audit"
    return env | {
        "DIBAO_INSTANCE": INSTANCE,
        "DIBAO_STATE_DIR": str(STATE_DIR),
        # A password with a quote (legal in a URL): the service's environment is passed as
        # written (xargs refused it, and audit then started without its keys). The test
        # stack trusts loopback logins, so the password itself is not checked.
        "DIBAO_AUDIT_RUNTIME_DATABASE_URL": (
            f"postgresql+asyncpg://{database}_app:it's-secret@{server}/{database}"
        ),
        "DIBAO_PG_URL": stack.pg_admin_dsn,
        "DIBAO_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        # Unused ports (the servers are the test stack's), required by the script.
        "DIBAO_PG_PORT": "1",
        "DIBAO_KAFKA_PORT": "1",
        "DIBAO_SVC_PORT_BASE": str(base),
    }


def _stack_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "stack.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its reaper is gone for every purpose here.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


async def _audit_cannot_leave_its_role(stack: TestStack) -> None:
    """The running audit service logs in as no superuser, and its login cannot edit the log
    or turn its trigger off even after SET ROLE NONE (the append-only guarantee)."""
    database = f"dibao_{INSTANCE}_audit"
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        logins = await admin.fetch(
            """SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a
               JOIN pg_roles r ON r.rolname = a.usename
               WHERE a.datname = $1 AND a.application_name = 'dibao-audit'""",
            database,
        )
    finally:
        await admin.close()
    assert [(r["usename"], r["rolsuper"]) for r in logins] == [(f"{database}_app", False)]
    base = stack.pg_admin_dsn.rsplit("/", 1)[0].split("@", 1)[1]
    conn = await asyncpg.connect(f"postgresql://{database}_app@{base}/{database}")
    try:
        await conn.execute("SET ROLE NONE")
        for statement in (
            "UPDATE log_entry SET ce_type = ce_type",
            "DELETE FROM log_entry",
            "ALTER TABLE log_entry DISABLE TRIGGER USER",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    yield STATE_DIR
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture
def unrelated_process() -> Iterator[int]:
    """A process of no service, leader of its own process group, like one a reboot gave
    a pid that an old pid file still names."""
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


async def test_up_serves_every_service_and_down_stops_them(
    stack: TestStack, state_dir: Path, unrelated_process: int
) -> None:
    env = _env(stack)
    # A pid file left behind (a crash, a reboot) naming a pid now used by another process:
    # `up` must start the service all the same, and `down` must not stop that process.
    (state_dir / "run").mkdir(parents=True)
    (state_dir / "run" / "publicity.pid").write_text(f"{unrelated_process}\n")
    started = time.monotonic()
    pids: list[int] = []
    up = _stack_sh(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"stack up (services, migrations, demo data) in {time.monotonic() - started:.1f} s")  # noqa: T201
        base = int(env["DIBAO_SVC_PORT_BASE"])
        async with httpx.AsyncClient(timeout=5) as client:
            for i, service in enumerate(SERVICES, start=1):
                health = await client.get(f"http://127.0.0.1:{base + i}/healthz")
                assert health.status_code == 200
                assert health.json()["service"] == service
                ready = await client.get(f"http://127.0.0.1:{base + i}/readyz")
                assert ready.status_code == 200, ready.text
        await _audit_cannot_leave_its_role(stack)
        status = _stack_sh(env, "status")
        assert status.returncode == 0, status.stdout
        pids = [int((state_dir / "run" / f"{s}.pid").read_text()) for s in SERVICES]
        assert all(_alive(p) for p in pids)
        assert unrelated_process not in pids
    finally:
        down = _stack_sh(env, "down")
    assert down.returncode == 0, down.stderr
    assert _alive(unrelated_process)
    # `down` waits for each process group; a short grace covers the reaper's delay.
    for _ in range(50):
        if not any(_alive(p) for p in pids):
            break
        await asyncio.sleep(0.2)
    assert not [p for p in pids if _alive(p)]
    assert not list((state_dir / "run").glob("*.pid"))
    conn = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        for service in SERVICES:
            await conn.execute(f'DROP DATABASE IF EXISTS "dibao_{INSTANCE}_{service}" WITH (FORCE)')
    finally:
        await conn.close()
