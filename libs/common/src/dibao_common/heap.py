"""The Python heap of a long-running service process.

A service imports FastAPI, SQLAlchemy, pydantic, protobuf, its division tables and so on:
some 130,000 objects that live as long as the process. CPython's collector walks all of
them on every full collection, which took 170-300 ms here: a pause every request in
flight at that moment waits through, and the tail of the latency (p99) is made of such
pauses. Once startup is done, :func:`settle_heap` collects what startup left behind and
freezes the rest (``gc.freeze``): later collections look only at what requests create.

``DIBAO_GC_FREEZE=0`` turns it off; the test suite does, since it builds hundreds of apps
in one process and freezing would keep each one's cycles for good.
"""

from __future__ import annotations

import gc
import os
import time

import structlog

log = structlog.get_logger(__name__)


def settle_heap() -> int:
    """Collect, then freeze every object still alive; how many are frozen (0: turned off)."""
    if os.environ.get("DIBAO_GC_FREEZE", "1") == "0":
        return 0
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "startup heap frozen",
        objects=frozen,
        took_ms=round(1000 * (time.perf_counter() - started), 1),
    )
    return frozen
