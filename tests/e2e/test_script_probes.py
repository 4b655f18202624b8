"""The operator scripts' checks of an external PostgreSQL or Kafka given by the operator
(DIBAO_PG_URL, DIBAO_KAFKA_BOOTSTRAP) give up in bounded time: against a server that
accepts a connection and never answers, and against one whose connections hang (a full
accept queue drops the SYNs, as a firewall or a dead host does). A server the operator
named that does not answer is an error naming it and what failed (never its password),
and nothing is written: no cluster or broker of the instance's own in its stead. No stack
is needed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dibao_common.testing.stack import REPO_ROOT

pytestmark = [pytest.mark.slow]

PG_SH = str(REPO_ROOT / "deploy" / "pg.sh")
STACK_SH = str(REPO_ROOT / "deploy" / "stack.sh")
KAFKA_SH = str(REPO_ROOT / "deploy" / "kafka" / "kafka.sh")

SILENT = """
import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
held = []
while True:
    held.append(srv.accept()[0])
"""
"""Accepts every connection and never sends a byte."""

DROPPING = """
import socket, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(0)
filler = socket.create_connection(srv.getsockname())
print(srv.getsockname()[1], flush=True)
time.sleep(3600)
"""
"""Never accepts; its one queued connection fills the queue, so the kernel drops every
later SYN and a connect waits for its retries (about two minutes)."""


def _server(code: str) -> Iterator[int]:
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            yield int(process.stdout.readline())
        finally:
            process.kill()


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _server(SILENT)


@pytest.fixture
def dropping_port() -> Iterator[int]:
    for port in _server(DROPPING):
        # The premise: a connect here hangs rather than succeeding or being refused.
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        yield port


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    return env | {
        "DIBAO_INSTANCE": "probe",
        "DIBAO_STATE_DIR": str(state),
        # No server of this instance is started: the ports only have to be given.
        "DIBAO_PG_PORT": "1",
        "DIBAO_KAFKA_PORT": "1",
        "DIBAO_SVC_PORT_BASE": "1",
        **extra,
    }


def _run(
    env: dict[str, str], *args: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs a script in a session of its own: what it left waiting is killed with it when
    it outlasts ``timeout`` (the test then fails)."""
    started = time.monotonic()
    with subprocess.Popen(
        ["bash", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{args} did not end within {timeout} s")
    took = time.monotonic() - started
    return subprocess.CompletedProcess(args, process.returncode, out, err), took


PASSWORD = "pa55-word"


def test_a_database_url_that_never_answers_fails(tmp_path: Path, silent_port: int) -> None:
    url = f"postgresql://dibao:{PASSWORD}@127.0.0.1:{silent_port}/postgres"
    done, took = _run(_env(tmp_path, DIBAO_PG_URL=url), PG_SH, "dsn", timeout=60)
    assert done.returncode != 0, done.stdout
    # Not the instance's own server in its stead: nothing on stdout.
    assert done.stdout == ""
    assert f"127.0.0.1:{silent_port}" in done.stderr, done.stderr
    # libpq's connect_timeout (PGCONNECT_TIMEOUT, DIBAO_PROBE_TIMEOUT) or, past it, the
    # probe's own limit.
    assert "timeout expired" in done.stderr or "no answer within" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr
    assert took < 30, took


@pytest.fixture
def refused_port() -> int:
    """A port nothing listens on (bound, never listening, closed: refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_start_on_a_database_url_that_refuses_writes_nothing(
    tmp_path: Path, refused_port: int
) -> None:
    pgdata = tmp_path / "pg"
    url = f"postgresql://dibao:{PASSWORD}@127.0.0.1:{refused_port}/postgres"
    env = _env(tmp_path / "state", DIBAO_PG_URL=url, DIBAO_PGDATA_ROOT=str(pgdata))
    done, _ = _run(env, PG_SH, "start", timeout=120)
    assert done.returncode != 0, done.stderr
    assert f"postgresql://127.0.0.1:{refused_port}/postgres (DIBAO_PG_URL)" in done.stderr
    assert "Connection refused" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr
    assert not pgdata.exists(), list(pgdata.rglob("*"))[:5]
    status, _ = _run(env, PG_SH, "status", timeout=60)
    assert status.returncode != 0
    assert f"external server postgresql://127.0.0.1:{refused_port}/postgres" in status.stdout
    assert "Connection refused" in status.stdout, status.stdout


def test_up_on_a_database_url_that_refuses_fails_before_anything(
    tmp_path: Path, refused_port: int
) -> None:
    state, pgdata = tmp_path / "state", tmp_path / "pg"
    url = f"postgresql://dibao:{PASSWORD}@127.0.0.1:{refused_port}/postgres"
    env = _env(state, DIBAO_PG_URL=url, DIBAO_PGDATA_ROOT=str(pgdata))
    done, took = _run(env, STACK_SH, "up", "--no-services", timeout=300)
    assert done.returncode != 0
    assert f"postgresql://127.0.0.1:{refused_port}/postgres (DIBAO_PG_URL)" in done.stderr
    assert "Connection refused" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr
    assert "== install" not in done.stderr
    assert not pgdata.exists()
    assert not (state / "kafka").exists()
    assert not (state / "secrets.env").exists()
    assert took < 30, took


def test_a_broker_that_cannot_be_reached_fails(tmp_path: Path, dropping_port: int) -> None:
    broker = f"127.0.0.1:{dropping_port}"
    env = _env(tmp_path, DIBAO_KAFKA_BOOTSTRAP=broker)
    done, took = _run(env, STACK_SH, "status", timeout=60)
    assert done.returncode != 0
    assert f"kafka: external broker {broker} does not answer" in done.stdout, done.stdout
    assert "no connection within 5 s" in done.stdout, done.stdout
    assert took < 30, took
    # The environment a service would be given names no broker: the command fails.
    done, took = _run(env, STACK_SH, "env", "intake", timeout=60)
    assert done.returncode != 0
    assert "DIBAO_KAFKA_BOOTSTRAP=" not in done.stdout
    assert f"{broker}: no connection within 5 s" in done.stderr, done.stderr
    assert took < 30, took


def test_up_on_a_broker_that_never_answers_fails_before_anything(
    tmp_path: Path, silent_port: int, refused_port: int
) -> None:
    """A broker that accepts connections and never answers a request is no broker; named
    with a second that refuses, `up` fails naming both, before installing or starting
    anything."""
    state, pgdata = tmp_path / "state", tmp_path / "pg"
    bootstrap = f"127.0.0.1:{refused_port},127.0.0.1:{silent_port}"
    env = _env(
        state,
        DIBAO_KAFKA_BOOTSTRAP=bootstrap,
        DIBAO_PGDATA_ROOT=str(pgdata),
        DIBAO_KAFKA_PORT=str(refused_port),
    )
    done, took = _run(env, STACK_SH, "up", "--no-services", timeout=300)
    assert done.returncode != 0
    assert f"127.0.0.1:{refused_port}: Connection refused" in done.stderr, done.stderr
    assert (
        f"127.0.0.1:{silent_port}: accepted a connection but did not answer within 5 s"
        in done.stderr
    ), done.stderr
    assert "== install" not in done.stderr
    assert not pgdata.exists()
    assert not (state / "kafka").exists()
    assert not (state / "secrets.env").exists()
    assert took < 30, took


def test_topics_on_a_broker_that_never_answers_fail(tmp_path: Path, silent_port: int) -> None:
    env = _env(tmp_path)
    bootstrap = f"127.0.0.1:{silent_port}"
    done, took = _run(env, KAFKA_SH, "topics", "--bootstrap", bootstrap, timeout=180)
    assert done.returncode != 0
    assert bootstrap in done.stderr, done.stderr
    assert took < 90, took


@pytest.mark.parametrize("server", ["DIBAO_KAFKA_BOOTSTRAP", "DIBAO_PG_URL"])
def test_reset_with_an_operators_server_refuses_before_anything(
    tmp_path: Path, server: str
) -> None:
    """`make reset` deletes the instance's own data only: with an operator's broker it
    would leave the old events there beside fresh databases (the next `up` loads the demo
    again beside them), with an operator's PostgreSQL it would leave the databases. It
    refuses, saying what to delete there, and stops or deletes nothing (nothing is probed:
    the server is never reached)."""
    state, pgdata = tmp_path / "state", tmp_path / "pg"
    value = (
        "127.0.0.1:1"
        if server == "DIBAO_KAFKA_BOOTSTRAP"
        else f"postgresql://dibao:{PASSWORD}@127.0.0.1:1/postgres"
    )
    env = _env(state, DIBAO_PGDATA_ROOT=str(pgdata), **{server: value})
    # What `up` left of the instance's own: its cluster, broker logs, logs, the demo's file.
    kept = [
        pgdata / "data" / "PG_VERSION",
        state / "kafka" / "meta.properties",
        state / "logs" / "intake.log",
        state / "intake-demo-application.json",
    ]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kept\n")
    done, took = _run(env, STACK_SH, "reset", timeout=60)
    assert done.returncode != 0
    assert "nothing was stopped or deleted" in done.stderr, done.stderr
    said = {
        "DIBAO_KAFKA_BOOTSTRAP": "DIBAO_KAFKA_BOOTSTRAP names an operator's Kafka (127.0.0.1:1),"
        " whose topics would keep the old events beside the fresh databases: delete the"
        " topics of deploy/kafka/topics.conf there yourself",
        "DIBAO_PG_URL": "DIBAO_PG_URL names an operator's PostgreSQL server: drop its"
        " databases there yourself",
    }
    assert said[server] in done.stderr, done.stderr
    assert PASSWORD not in done.stderr
    assert [p for p in kept if not p.exists()] == []
    assert took < 30, took
