"""settle_heap: the startup heap frozen out of the collector's sight, unless turned off.

Run in a child process each: freezing the test process's heap would keep its garbage.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import gc
from dibao_common.app import build_app  # a service's imports, roughly
from dibao_common.heap import settle_heap
frozen = settle_heap()
print(frozen, gc.get_freeze_count(), sum(gc.get_count()))
"""


def _probe(freeze: str | None) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "DIBAO_GC_FREEZE"}
    if freeze is not None:
        env["DIBAO_GC_FREEZE"] = freeze
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.split()[-3:]]


def test_the_startup_heap_is_frozen_by_default() -> None:
    frozen, count, _young = _probe(None)
    assert frozen == count
    assert frozen > 10_000


@pytest.mark.parametrize("freeze", ["0"])
def test_it_can_be_turned_off(freeze: str) -> None:
    frozen, count, _young = _probe(freeze)
    assert (frozen, count) == (0, 0)
