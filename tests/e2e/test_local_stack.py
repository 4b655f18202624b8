"""`make up` in miniature: the stack script starts the five services (on the test stack's
PostgreSQL and Kafka, with its own databases and ports), every /healthz answers 200, and
`down` leaves none of the processes it started, and no process it did not start is taken
for a service or stopped. A service whose pid file is gone is still the instance's; two
commands changing one instance do not run at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from dibao_audit.cosignature import WitnessKey, with_cosignatures
from dibao_common.testing.local_stack import (
    drop_instance_databases,
    instance_env,
    instance_state_dir,
    process_alive,
    read_env_file,
    stack_sh,
    wait_healthy,
)
from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

INSTANCE = "e2e"
STATE_DIR = instance_state_dir(INSTANCE)


PG_PASSWORD = "pg-pa55word"


def _with_password(dsn: str) -> str:
    scheme, rest = dsn.split("://", 1)
    user, server = rest.split("@", 1)
    return f"{scheme}://{user}:{PG_PASSWORD}@{server}"


def _env(stack: TestStack) -> dict[str, str]:
    server = stack.pg_admin_dsn.rsplit("/", 1)[0].split("@", 1)[1]
    database = f"dibao_{INSTANCE}_audit"
    return instance_env(
        stack,
        INSTANCE,
        STATE_DIR,
        {
            # A password with a quote (legal in a URL): the service's environment is passed
            # as written (xargs refused it, and audit then started without its keys). The
            # test stack trusts loopback logins, so the password itself is not checked.
            "DIBAO_AUDIT_RUNTIME_DATABASE_URL": (
                f"postgresql+asyncpg://{database}_app:it's-secret@{server}/{database}"
            ),
            # With a password (the test stack trusts loopback logins and ignores it), which
            # no message may show.
            "DIBAO_PG_URL": _with_password(stack.pg_admin_dsn),
        },
    )


def _pid(state_dir: Path, service: str) -> int:
    return int((state_dir / "run" / f"{service}.pid").read_text())


async def _forget_idempotent_answers(stack: TestStack) -> None:
    """Delete intake's stored idempotent answers, as their seven-day expiry does."""
    admin = await asyncpg.connect(
        stack.pg_admin_dsn.rsplit("/", 1)[0] + f"/dibao_{INSTANCE}_intake"
    )
    try:
        deleted = await admin.execute("DELETE FROM idempotency_record")
    finally:
        await admin.close()
    assert deleted != "DELETE 0"


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
async def state_dir(stack: TestStack) -> AsyncIterator[Path]:
    """The instance's state directory, empty; afterwards it and the instance's databases
    are gone."""
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    STATE_DIR.mkdir(parents=True)
    yield STATE_DIR
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    await drop_instance_databases(stack, INSTANCE)


@pytest.fixture
def unrelated_process() -> Iterator[int]:
    """A process of no service, leader of its own process group, like one a reboot gave
    a pid that an old pid file still names."""
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def other_instance_payments(stack: TestStack) -> Iterator[Callable[[], tuple[int, int]]]:
    """Starts this checkout's payments uvicorn as another instance (its own state
    directory) would: on a port of its own, with no pid file of this instance. The
    starter returns its pid and port."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[int, int]:
        env = _env(stack)
        port = int(env["DIBAO_SVC_PORT_BASE"]) + 50
        own = stack_sh(env, "env", "payments")
        assert own.returncode == 0, own.stderr
        service_env = dict(line.split("=", 1) for line in own.stdout.splitlines() if line)
        other_state = str(STATE_DIR.parent / f"{INSTANCE}-other")
        uvicorn = str(Path(sys.executable).parent / "uvicorn")
        app = ["--factory", "dibao_payments.main:create_app", "--host", "127.0.0.1"]
        processes.append(
            subprocess.Popen(
                [uvicorn, *app, "--port", str(port), "--no-access-log"],
                env=env | service_env | {"DIBAO_STACK_STATE": other_state},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        return processes[-1].pid, port

    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.fixture
def port_squatter(stack: TestStack) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is no service listening on assessment's port."""
    port = int(_env(stack)["DIBAO_SVC_PORT_BASE"]) + 2
    code = (
        "import socket, time\n"
        "s = socket.socket()\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield process
    process.kill()
    process.wait()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(v.split("=", 1) for v in raw.split("\0") if "=" in v)


async def _checkpoints_cosigned_by_the_witness(stack: TestStack, state_dir: Path) -> None:
    """The instance's witness runs with a key of its own (not in any service's
    environment, nor the log's seed in its), and the log's checkpoints of the demo come
    out cosigned by it: rows of checkpoint_cosignature naming its key, which verify over
    the checkpoint, and the witness's state file holding the latest it cosigned."""
    witness_env = read_env_file(state_dir / "witness.env")
    vkey = witness_env["DIBAO_AUDIT_WITNESSES"].split()[1]
    key = WitnessKey.parse(vkey)
    witness_pid, audit_pid = _pid(state_dir, "witness"), _pid(state_dir, "audit")
    assert "DIBAO_WITNESS_SIGNING_KEY" not in _environ(audit_pid)
    assert _environ(audit_pid)["DIBAO_AUDIT_WITNESSES"] == witness_env["DIBAO_AUDIT_WITNESSES"]
    assert not [k for k in _environ(witness_pid) if k.startswith("DIBAO_AUDIT_")]
    database = f"dibao_{INSTANCE}_audit"
    admin = await asyncpg.connect(stack.pg_admin_dsn.rsplit("/", 1)[0] + f"/{database}")
    try:
        deadline = time.monotonic() + 90
        while True:
            rows = await admin.fetch(
                """SELECT c.tree_size, c.signed_note, s.witness, s.signature_line
                   FROM checkpoint_cosignature s JOIN checkpoint c USING (tree_size)
                   ORDER BY c.tree_size DESC"""
            )
            if rows or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    assert rows, "no checkpoint of the demo was cosigned by the instance's witness"
    assert {r["witness"] for r in rows} == {vkey}
    for r in rows:
        assert key.verify(with_cosignatures(r["signed_note"], [r["signature_line"]]))
    held = json.loads((state_dir / "witness" / "state.json").read_text())["logs"]
    assert [h["size"] for h in held.values()] == [rows[0]["tree_size"]]


async def test_up_serves_every_service_and_down_stops_them(
    stack: TestStack,
    state_dir: Path,
    unrelated_process: int,
    other_instance_payments: Callable[[], tuple[int, int]],
) -> None:
    # A checkpoint each second, for the witness to cosign within the test.
    env = _env(stack) | {"DIBAO_AUDIT_CHECKPOINT_INTERVAL_S": "1"}
    # A pid file left behind (a crash, a reboot) naming a pid now used by another process:
    # `up` must start the service all the same, and `down` must not stop that process.
    (state_dir / "run").mkdir()
    (state_dir / "run" / "publicity.pid").write_text(f"{unrelated_process}\n")
    started = time.monotonic()
    pids: list[int] = []
    up = stack_sh(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        server = stack.pg_admin_dsn.split("@", 1)[1]
        assert f"postgres    postgresql://{server}\n" in up.stdout, up.stdout
        assert PG_PASSWORD not in up.stdout + up.stderr
        print(f"stack up (services, migrations, demo data) in {time.monotonic() - started:.1f} s")  # noqa: T201
        base = int(env["DIBAO_SVC_PORT_BASE"])
        async with httpx.AsyncClient(timeout=5) as client:
            for i, service in enumerate(SERVICES, start=1):
                health = await client.get(f"http://127.0.0.1:{base + i}/healthz")
                assert health.status_code == 200
                assert health.json()["service"] == service
                ready = await client.get(f"http://127.0.0.1:{base + i}/readyz")
                assert ready.status_code == 200, ready.text
            witness = await client.get(f"http://127.0.0.1:{base + 15}/healthz")
            assert witness.status_code == 200
        await _audit_cannot_leave_its_role(stack)
        status = stack_sh(env, "status")
        assert status.returncode == 0, status.stdout
        assert f"witness: running on 127.0.0.1:{base + 15}" in status.stdout, status.stdout
        await _checkpoints_cosigned_by_the_witness(stack, state_dir)
        pids = [_pid(state_dir, s) for s in (*SERVICES, "witness")]
        assert all(process_alive(p) for p in pids)
        assert unrelated_process not in pids

        # Services whose pid files are gone (deleted, or never written: `up` killed
        # between a start and the write), beside another instance's payments: `up`
        # takes this instance's back, the other one is not this instance's.
        other_pid, other_port = other_instance_payments()
        await wait_healthy(other_port)
        (state_dir / "run" / "intake.pid").unlink()
        (state_dir / "run" / "payments.pid").unlink()
        (state_dir / "run" / "witness.pid").unlink()
        status = stack_sh(env, "status")
        assert f"intake: running on 127.0.0.1:{base + 1}" in status.stdout, status.stdout
        # The demo's idempotent answers are gone (kept seven days, or sent by an earlier
        # loader with other bodies): `up` finds the demo on file and sends nothing again.
        await _forget_idempotent_answers(stack)
        again = stack_sh(env, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "intake demo: already loaded" in again.stdout, again.stdout
        assert "adopted" in again.stderr
        assert [_pid(state_dir, s) for s in (*SERVICES, "witness")] == pids
        # Without the example file (a load cut short, its answers expired) the loader
        # cannot finish over data already on file: `up` fails, saying how to start afresh.
        (state_dir / "intake-demo-application.json").unlink()
        stuck = stack_sh(env, "up")
        assert stuck.returncode != 0
        assert "`make reset` deletes this instance's data" in stuck.stderr, stuck.stderr
        (state_dir / "run" / "intake.pid").unlink()
    finally:
        down = stack_sh(env, "down")
    assert down.returncode == 0, down.stderr
    assert process_alive(unrelated_process)
    assert process_alive(other_pid)
    # `down` waits for each process group; a short grace covers the reaper's delay.
    for _ in range(50):
        if not any(process_alive(p) for p in pids):
            break
        await asyncio.sleep(0.2)
    assert not [p for p in pids if process_alive(p)]
    assert not list((state_dir / "run").glob("*.pid"))


class GatedProxy:
    """A TCP proxy to PostgreSQL that holds every connection until ``open()``: a command
    reaching its server through it waits there, holding whatever it took before. Bytes
    pass unchanged once open; ``close()`` ends it and its connections."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.gate = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.gate.wait()
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self.sockets.append(server)
        threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()
        self._pipe(client, server)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_a_second_command_waits_for_the_lock_then_fails(stack: TestStack, state_dir: Path) -> None:
    """`up` holds the instance's lock from start to end: a `down` or a second `up` meanwhile
    waits DIBAO_LOCK_WAIT seconds, then fails naming the lock and who holds it; `status`
    does not wait. Once `up` has ended the lock is free.

    The first `up` reaches PostgreSQL through a proxy that holds its connection until the
    checks are done, so it is still running (lock held) whatever the machine's speed; its
    probe's timeout is raised to outlast them. The second `up` is without services: were the
    lock not honoured, it must not leave a stack running."""
    env = _env(stack) | {"DIBAO_LOCK_WAIT": "2"}
    host, port = stack.pg_admin_dsn.rsplit("/", 1)[0].split("@", 1)[1].rsplit(":", 1)
    proxy = GatedProxy(host, int(port))
    held = env | {
        "DIBAO_PG_URL": env["DIBAO_PG_URL"].replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}"),
        "DIBAO_PROBE_TIMEOUT": "120",
    }
    lock = state_dir / "lock"
    try:
        with subprocess.Popen(
            ["bash", str(REPO_ROOT / "deploy" / "stack.sh"), "up", "--no-services"],
            env=held,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as first:
            try:
                # Until `up` names itself in the lock file (scripts without a lock never do:
                # the checks below then run beside it all the same).
                for _ in range(100):
                    if lock.exists() and f"pid {first.pid} " in lock.read_text():
                        break
                    time.sleep(0.1)
                status = stack_sh(env, "status")
                assert "intake: stopped" in status.stdout, status.stdout + status.stderr
                for command in (("down",), ("up", "--no-services")):
                    started = time.monotonic()
                    second = stack_sh(env, *command)
                    took = time.monotonic() - started
                    assert first.poll() is None, "up ended before the test was done with it"
                    assert second.returncode != 0, f"{command} ran beside up: {second.stderr}"
                    assert str(lock) in second.stderr, second.stderr
                    assert f"pid {first.pid} " in second.stderr, second.stderr
                    assert 2 <= took < 30, took
                proxy.open()
                _, err = first.communicate(timeout=600)
                assert first.returncode == 0, err
            finally:
                if first.poll() is None:
                    os.killpg(first.pid, signal.SIGKILL)
                    first.communicate()
    finally:
        proxy.close()
        down = stack_sh(env, "down")
    assert down.returncode == 0, down.stderr


def test_a_port_taken_by_another_process_fails_up(
    stack: TestStack, state_dir: Path, port_squatter: subprocess.Popen[bytes]
) -> None:
    """A process that is no service of the instance on a service's port: `up` stops short,
    naming it, and neither `up` nor `down` stops it."""
    env = _env(stack)
    port = int(env["DIBAO_SVC_PORT_BASE"]) + 2
    try:
        up = stack_sh(env, "up")
        assert up.returncode != 0
        assert f"port {port}" in up.stderr, up.stderr
        assert f"pid {port_squatter.pid} " in up.stderr, up.stderr
    finally:
        down = stack_sh(env, "down")
    assert down.returncode == 0, down.stderr
    assert port_squatter.poll() is None
