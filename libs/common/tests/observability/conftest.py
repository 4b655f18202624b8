"""Log capture for the observability tests: the real pipeline, written to a buffer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dibao_common import observability

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Configures logging (DEBUG) into a buffer; returns a reader of the JSON lines."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("DEBUG", service_name="obs-test", stream=stream, force=True)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    # Put back whatever was there before, so later tests see the process as it was.
    root = logging.getLogger()
    if observability._handler is not None:
        root.removeHandler(observability._handler)
    observability._configured, observability._handler = previous
    if previous[1] is not None:
        root.addHandler(previous[1])
