"""The event loop of a service's own processes (workers, the relay, tools).

uvicorn runs the HTTP services on uvloop (it comes with ``uvicorn[standard]``); a process
started with ``asyncio.run`` would get the standard library's loop instead, whose every
iteration (a wake-up for each database reply or broker response) costs several times
uvloop's. :func:`run` gives those processes the same loop as the services.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed, else None (the standard library's)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - every supported platform has it
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the services' loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
