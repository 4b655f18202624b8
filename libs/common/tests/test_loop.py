"""Workers and tools run on the same event loop as the HTTP services (uvloop)."""

from __future__ import annotations

import asyncio

import uvloop

from dibao_common import loop


def test_the_loop_is_uvloops() -> None:
    assert loop.loop_factory() is uvloop.new_event_loop


def test_run_returns_the_result_from_a_uvloop_loop() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert loop.run(main()).startswith("uvloop")
