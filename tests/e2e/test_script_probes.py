"""The operator scripts' checks of an external PostgreSQL or Kafka given by the operator
(DIBAO_PG_URL, DIBAO_KAFKA_BOOTSTRAP) give up in bounded time: against a server that
accepts a connection and never answers, and against one whose connections hang (a full
accept queue drops the SYNs, as a firewall or a dead host does). No stack is needed."""

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


def test_a_database_url_that_never_answers_is_given_up(tmp_path: Path, silent_port: int) -> None:
    env = _env(tmp_path, DIBAO_PG_URL=f"postgresql://dibao@127.0.0.1:{silent_port}/postgres")
    done, took = _run(env, str(REPO_ROOT / "deploy" / "pg.sh"), "dsn", timeout=60)
    assert done.returncode == 0, done.stderr
    # Not the operator's server, which did not answer: the instance's own.
    assert done.stdout.strip() == "postgresql://dibao@127.0.0.1:1/postgres"
    assert took < 30, took


def test_a_broker_that_cannot_be_reached_is_given_up(tmp_path: Path, dropping_port: int) -> None:
    env = _env(tmp_path, DIBAO_KAFKA_BOOTSTRAP=f"127.0.0.1:{dropping_port}")
    done, took = _run(env, str(REPO_ROOT / "deploy" / "stack.sh"), "status", timeout=60)
    assert "kafka: stopped" in done.stdout, done.stdout + done.stderr
    assert "external" not in done.stdout
    assert took < 30, took


def test_topics_on_a_broker_that_never_answers_fail(tmp_path: Path, silent_port: int) -> None:
    env = _env(tmp_path)
    kafka_sh = str(REPO_ROOT / "deploy" / "kafka" / "kafka.sh")
    bootstrap = f"127.0.0.1:{silent_port}"
    done, took = _run(env, kafka_sh, "topics", "--bootstrap", bootstrap, timeout=180)
    assert done.returncode != 0
    assert bootstrap in done.stderr, done.stderr
    assert took < 90, took
