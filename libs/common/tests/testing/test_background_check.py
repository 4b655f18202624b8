"""The kit's check that a relay or consumer lives no longer than the fixture (or test)
that started it (``dibao_common.testing.background_check``), run on small suites of
its own in a pytest subprocess: a task named like a relay, as ``OutboxRelay.start``
names its own, stands in for one (no broker or database is involved in the check)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

SERVICE_CONFTEST = """\
import asyncio
import pytest_asyncio

@pytest_asyncio.fixture(scope="{scope}", loop_scope="session")
async def relay():
    task = asyncio.create_task(asyncio.sleep(3600), name="outbox-relay-intake")
    yield task
    {stop}
"""

STOP = "task.cancel()\n    await asyncio.gather(task, return_exceptions=True)"


def _suite(tmp_path: Path, *, scope: str, stop: str = STOP, package: bool = False) -> Path:
    """``service/tests`` (a fixture starting a relay, one test using it, one not) and
    ``infra`` (one test) after it."""
    tests = tmp_path / "service" / "tests"
    tests.mkdir(parents=True)
    if package:
        (tests / "__init__.py").write_text("")
    (tests / "conftest.py").write_text(SERVICE_CONFTEST.format(scope=scope, stop=stop))
    (tests / "test_a_api.py").write_text("async def test_uses_the_relay(relay):\n    pass\n")
    (tests / "test_b_unit.py").write_text("def test_a_unit_test_beside_it():\n    pass\n")
    (tmp_path / "z_infra").mkdir()
    (tmp_path / "z_infra" / "test_later.py").write_text("def test_another_directory():\n    pass\n")
    (tmp_path / "pytest.ini").write_text(INI)
    return tmp_path


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    plugin = "dibao_common.testing.background_check"
    command = [sys.executable, "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "-q", "-rA", "service", "z_infra"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcomes(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each test's outcome as ``-rA`` lists it: PASSED or ERROR."""
    found = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "ERROR", "FAILED"):
            found[rest.split(" ")[0].split("::")[-1]] = word
    return found


@pytest.mark.parametrize("package", [False, True])
def test_a_session_fixtures_relay_fails_the_first_test_of_another_directory(
    tmp_path: Path, package: bool
) -> None:
    """The 3 Dec 2026 case: a session-scoped app of one service's tests, its relay
    running on while the tests of another directory (dropping its database) ran."""
    done = _run(_suite(tmp_path, scope="session", package=package))
    assert _outcomes(done) == {
        "test_uses_the_relay": "PASSED",
        "test_a_unit_test_beside_it": "PASSED",
        "test_another_directory": "ERROR",
    }, done.stdout
    assert (
        "outbox-relay-intake: started by fixture 'relay' (of service/tests), "
        "which is still set up" in done.stdout
    )


def test_a_package_fixtures_relay_stops_before_the_next_directory(tmp_path: Path) -> None:
    done = _run(_suite(tmp_path, scope="package", package=True))
    assert _outcomes(done) == {
        "test_uses_the_relay": "PASSED",
        "test_a_unit_test_beside_it": "PASSED",
        "test_another_directory": "PASSED",
    }, done.stdout
    assert done.returncode == 0, done.stdout


def test_a_fixture_that_does_not_stop_its_relay_fails_the_next_test(tmp_path: Path) -> None:
    done = _run(_suite(tmp_path, scope="function", stop="pass"))
    assert _outcomes(done) == {
        "test_uses_the_relay": "PASSED",
        "test_a_unit_test_beside_it": "ERROR",
        "test_another_directory": "PASSED",
    }, done.stdout
    assert (
        "outbox-relay-intake: started by fixture 'relay' (of service/tests), "
        "still running after its teardown" in done.stdout
    )


def test_a_test_that_does_not_stop_its_relay_fails_the_next_test(tmp_path: Path) -> None:
    root = _suite(tmp_path, scope="function")
    (root / "service" / "tests" / "test_a_api.py").write_text(
        textwrap.dedent(
            """\
            import asyncio

            async def test_uses_the_relay():
                asyncio.create_task(asyncio.sleep(3600), name="consumer-intake.timeline")
            """
        )
    )
    done = _run(root)
    assert _outcomes(done)["test_a_unit_test_beside_it"] == "ERROR", done.stdout
    assert "consumer-intake.timeline: started by a test that did not stop it" in done.stdout
