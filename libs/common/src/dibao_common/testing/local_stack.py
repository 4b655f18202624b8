"""A whole local stack in a test: ``deploy/stack.sh`` of an instance of the test's own, its
services running as processes on the test stack's PostgreSQL and Kafka.

``instance_env`` is the environment ``stack.sh`` is run with (the test stack's servers,
the instance's own state directory, databases ``dibao_<instance>_*`` and the test
instance's service ports); ``stack_sh`` runs the script; ``running_stack`` brings the
instance up (services, migrations, demo data) and, whatever happens, down again, its
state directory and databases deleted. Used by ``tests/e2e`` (the script itself) and
``tests/flows`` (what users see across services).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack


def instance_state_dir(instance: str) -> Path:
    """The instance's state directory, inside the test instance's own: two test instances
    side by side (each with its DIBAO_TEST_INSTANCE) would otherwise share and delete each
    other's pid files."""
    return Path(os.environ.get("DIBAO_TEST_STATE", REPO_ROOT / ".local" / "test")) / instance


def service_port_base() -> int:
    """The test instance's service port base (``deploy/test.sh`` exports it): its services
    are not running (``up --no-services``), so a stack of the test's own uses its ports."""
    return int(os.environ.get("DIBAO_TEST_SVC_PORT_BASE", "8100"))


def service_port(service: str, base: int | None = None) -> int:
    """The port ``stack.sh`` gives ``service`` (lib.sh service_port)."""
    return (service_port_base() if base is None else base) + SERVICES.index(service) + 1


def instance_env(
    stack: TestStack, instance: str, state_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment ``stack.sh`` runs with for ``instance``: this process's without its
    ``DIBAO_*`` variables, then the test stack's servers, ``state_dir`` and the test
    instance's service ports, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    return (
        env
        | {
            "DIBAO_INSTANCE": instance,
            "DIBAO_STATE_DIR": str(state_dir),
            "DIBAO_PG_URL": stack.pg_admin_dsn,
            "DIBAO_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            # Unused ports (the servers are the test stack's), required by the script.
            "DIBAO_PG_PORT": "1",
            "DIBAO_KAFKA_PORT": "1",
            "DIBAO_SVC_PORT_BASE": str(service_port_base()),
            # A command waiting for the instance's lock gives up soon: a lock still held
            # by something `up` left running shows as a failure, not as a long wait.
            "DIBAO_LOCK_WAIT": "5",
            # Consumer groups of the instance's own: the broker is the test run's, where the
            # session-wide test apps consume too. In the same group as theirs, the
            # instance's consumers had a share of the partitions only, and an event on the
            # others' share went to the test app's database (in a full run, a flow waited
            # 90 s for an anomaly in a timeline; the instance alone never did).
            "DIBAO_INTAKE_TIMELINE_GROUP": f"{instance}.intake.timeline",
            "DIBAO_AUDIT_CONSUMER_GROUP": f"{instance}.dibao-audit",
        }
        | dict(extra or {})
    )


def stack_sh(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``deploy/stack.sh <args>`` with ``env`` (at most ten minutes)."""
    return subprocess.run(  # noqa: S603 - our own script, arguments from the test
        ["bash", str(REPO_ROOT / "deploy" / "stack.sh"), *args],  # noqa: S607
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (the instance's ``secrets.env``), as ``dibao_common.devtoken``
    reads them."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


async def wait_healthy(port: int, *, timeout_s: float = 60.0) -> None:
    """Until ``/healthz`` on ``port`` answers 200 (an ``AssertionError`` after the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while loop.time() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"nothing answers /healthz on {port} after {timeout_s} s")


def process_alive(pid: int) -> bool:
    """The process runs; a zombie waiting for its reaper is gone for every purpose here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return not stat.read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return False


async def drop_instance_databases(stack: TestStack, instance: str) -> None:
    """The instance's databases (``dibao_<instance>_<service>``) are gone."""
    conn = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        for service in SERVICES:
            name = f"dibao_{instance.replace('-', '_')}_{service}"
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class RunningStack:
    """An instance ``stack.sh up`` started: where its services answer and its state lives."""

    instance: str
    state_dir: Path
    env: dict[str, str] = field(repr=False)
    up_output: str = field(repr=False)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{service_port(service, int(self.env['DIBAO_SVC_PORT_BASE']))}"

    def secrets(self) -> dict[str, str]:
        """The development secrets ``stack.sh up`` wrote (``secrets.env``)."""
        return read_env_file(self.state_dir / "secrets.env")

    def signing_key(self) -> bytes:
        """The development token signing key ``stack.sh up`` wrote (PEM)."""
        return (self.state_dir / "dev-jwt-signing-key.pem").read_bytes()

    def pids(self) -> list[int]:
        return [int((self.state_dir / "run" / f"{s}.pid").read_text()) for s in SERVICES]


@asynccontextmanager
async def running_stack(
    stack: TestStack, instance: str, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningStack]:
    """``stack.sh up`` of ``instance`` (an empty state directory, services, migrations, demo
    data); afterwards ``stack.sh down`` and the processes it started are gone (checked),
    and so are the state directory and the instance's databases."""
    state_dir = instance_state_dir(instance)
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    env = instance_env(stack, instance, state_dir, extra_env)
    pids: list[int] = []
    try:
        up = await asyncio.to_thread(stack_sh, env, "up")
        if up.returncode != 0:
            logs = "".join(
                f"\n--- {p.name}\n{p.read_text()[-4000:]}"
                for p in sorted((state_dir / "logs").glob("*.log"))
            )
            raise AssertionError(f"stack.sh up failed:\n{up.stdout}{up.stderr}{logs}")
        running = RunningStack(instance, state_dir, env, up.stdout)
        pids = running.pids()
        yield running
    finally:
        down = await asyncio.to_thread(stack_sh, env, "down")
        # `down` waits for each process group; a short grace covers the reaper's delay.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            if not any(process_alive(p) for p in pids):
                break
            await asyncio.sleep(0.2)
        left = [p for p in pids if process_alive(p)]
        shutil.rmtree(state_dir, ignore_errors=True)
        await drop_instance_databases(stack, instance)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not left, f"stack.sh down left {left} running"
