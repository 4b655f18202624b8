"""Tests clean up what they start: a relay or consumer lives only as long as its fixture.

A relay (``outbox-relay-<name>``), a consumer (``consumer-<name>``) or audit's log
consumer (``audit-log-<group>``) runs as a task on the session's event loop. Each one a
fixture starts is noted with the fixture (``pytest_fixture_setup``). When a test starts,
every such task still running must belong to a fixture this test can see: one defined
in the kit's plugin, or in a conftest or module above the test. Otherwise the test
fails at setup, naming the task and who left it:

- a fixture torn down without stopping it (its lifespan or ``stop()`` not awaited);
- a test that started it and did not stop it;
- a fixture of another directory's tests, still set up: its scope outlives those tests
  (a session-scoped app of one service's tests ran on while ``tests/infra`` dropped and
  downgraded that service's database under its relay, 3 Dec 2026).

When the session's fixtures are torn down, none may be left (the event loop would
cancel it silently). Tasks on loops of other threads (``fuzz.served``) and processes
are not seen here: those helpers stop them on exit.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

BACKGROUND_TASK_PREFIXES = ("outbox-relay-", "consumer-", "audit-log-")


@dataclass(frozen=True)
class _Owner:
    fixture: str
    where: str
    """The nodeid the fixture is visible under ('' for the kit's own fixtures)."""

    def visible_to(self, nodeid: str) -> bool:
        return self.where == "" or nodeid.startswith((f"{self.where}/", f"{self.where}::"))

    def __str__(self) -> str:
        return f"fixture {self.fixture!r} (of {self.where or 'the kit'})"


class _Tracker:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.owners: weakref.WeakKeyDictionary[asyncio.Task[object], _Owner] = (
            weakref.WeakKeyDictionary()
        )
        self.released: weakref.WeakKeyDictionary[asyncio.Task[object], _Owner] = (
            weakref.WeakKeyDictionary()
        )
        self.reported: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()

    def running(self) -> set[asyncio.Task[object]]:
        if self.loop is None or self.loop.is_closed():
            return set()
        return {
            task
            for task in asyncio.all_tasks(self.loop)
            if not task.done() and task.get_name().startswith(BACKGROUND_TASK_PREFIXES)
        }

    def strays(self, nodeid: str | None) -> list[str]:
        """The running tasks ``nodeid`` (None: no test, the session's end) may not see,
        each told once (the tests after the first that found it are not failed for it)."""
        found = []
        for task in sorted(self.running(), key=lambda t: t.get_name()):
            owner = self.owners.get(task)
            if owner is not None and nodeid is not None and owner.visible_to(nodeid):
                continue
            if task in self.reported:
                continue
            self.reported.add(task)
            if owner is not None:
                found.append(f"{task.get_name()}: started by {owner}, which is still set up")
            elif task in self.released:
                found.append(
                    f"{task.get_name()}: started by {self.released[task]}, "
                    "still running after its teardown"
                )
            else:
                found.append(f"{task.get_name()}: started by a test that did not stop it")
        return found


_TRACKER = _Tracker()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Iterator[None]:
    before = _TRACKER.running()
    try:
        return (yield)
    finally:
        for task in _TRACKER.running() - before:
            _TRACKER.owners[task] = _Owner(fixturedef.argname, fixturedef.baseid)


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> None:
    for task, owner in list(_TRACKER.owners.items()):
        if owner.fixture == fixturedef.argname and owner.where == fixturedef.baseid:
            del _TRACKER.owners[task]
            _TRACKER.released[task] = owner


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _background_tasks_loop() -> AsyncIterator[None]:
    """Notes the session's event loop (set up before any other session fixture, torn
    down after them), and fails if a relay or consumer outlives every fixture."""
    _TRACKER.loop = asyncio.get_running_loop()
    yield
    left = _TRACKER.strays(None)
    if left:
        pytest.fail("still running at the session's end:\n" + "\n".join(left), pytrace=False)


@pytest.fixture(autouse=True)
def _no_stray_background_tasks(request: pytest.FixtureRequest) -> None:
    """Fails the test at setup if a relay or consumer it cannot see is running."""
    left = _TRACKER.strays(request.node.nodeid)
    if left:
        pytest.fail(
            "a relay or consumer runs outside the tests that started it:\n" + "\n".join(left),
            pytrace=False,
        )
