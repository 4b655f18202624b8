"""`make test` listens below the kernel's ephemeral range (ADR 0001, 3 Dec 2026).

Linux gives each outgoing connection a local port from net.ipv4.ip_local_port_range
(32768-60999 unless set otherwise); while a client socket holds one, a server cannot listen
on it. The suite restarts PostgreSQL clusters and brokers of its own on fixed ports beside
hundreds of client connections, so every port it listens on, the test instance's own and
those the tests start at fixed offsets from them, lies outside that range. deploy/test.sh
warns when an instance given other ports (a second test instance) has some inside it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dibao_common.testing.stack import REPO_ROOT

LIB = REPO_ROOT / "deploy" / "lib.sh"
LINUX_DEFAULT_RANGE = range(32768, 60999 + 1)
PORT_SETTINGS = ("DIBAO_PG_PORT", "DIBAO_KAFKA_PORT", "DIBAO_SVC_PORT_BASE")


def _lib(instance: str, script: str, **ports: int) -> str:
    """Runs ``script`` with lib.sh sourced for ``instance``: the ports given, else its defaults."""
    env = {k: v for k, v in os.environ.items() if k not in PORT_SETTINGS}
    env |= {"DIBAO_INSTANCE": instance} | {k: str(v) for k, v in ports.items()}
    done = subprocess.run(
        ["bash", "-c", f'source "{LIB}"; {script}'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def test_the_test_instance_listens_below_the_default_ephemeral_range() -> None:
    ports = _lib("test", 'echo "$PG_PORT $KAFKA_PORT $SVC_PORT_BASE"')
    pg, kafka, services = map(int, ports.split())
    listened = [
        pg,
        pg + 1_000,  # tests/chaos/test_intake_event_path.py's own cluster
        pg + 1_100,  # libs/common/tests/errors/test_database_outage.py's socket cluster
        pg + 10_020,  # tests/e2e/test_script_test_servers.py's nested instance
        kafka,
        kafka + 1,  # its controller
        *(kafka + offset for offset in (10_000, 10_020, 10_040, 10_050, 10_090)),  # own brokers
        *(services + n for n in range(1, 6)),
        services + 15,  # the audit witness of an instance started with its services
        services + 50,  # tests/e2e/test_local_stack.py's other instance
        services + 10_020 + 5,
    ]
    assert [port for port in listened if port in LINUX_DEFAULT_RANGE] == []


def test_ports_of_an_instance_inside_the_machines_range_are_named() -> None:
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.is_file():
        pytest.skip("no ip_local_port_range on this system")
    low, high = map(int, range_file.read_text().split())
    inside, below = low + 10, max(low - 20_000, 1_024)
    named = _lib(
        "ports-probe",
        "ephemeral_test_ports",
        DIBAO_PG_PORT=inside,
        DIBAO_KAFKA_PORT=below,
        DIBAO_SVC_PORT_BASE=below + 200,
    ).split()
    assert str(inside) in named
    assert str(below) not in named
    assert all(low <= int(port) <= high for port in named)


def test_the_witness_port_inside_the_range_is_named() -> None:
    """An instance started with its services runs the audit witness 15 above the service
    base (deploy/stack.sh): a base just below the range puts it inside, and it is named."""
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.is_file():
        pytest.skip("no ip_local_port_range on this system")
    low, _ = map(int, range_file.read_text().split())
    below = max(low - 20_000, 1_024)
    named = _lib(
        "ports-probe",
        "ephemeral_test_ports",
        DIBAO_PG_PORT=below,
        DIBAO_KAFKA_PORT=below + 100,
        DIBAO_SVC_PORT_BASE=low - 10,
    ).split()
    assert str(low + 5) in named, named
    assert str(low - 9) not in named  # the first service's, below the range
