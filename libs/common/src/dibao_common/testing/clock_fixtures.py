"""Clock fixtures: a frozen clock that tests can move."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dibao_common.clock import FrozenClock

FROZEN_AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
"""Where the ``clock`` fixture starts: Monday 2 March 2026, 09:30 in China, a working day
well inside the years the official calendar covers."""


@pytest.fixture
def clock() -> FrozenClock:
    """A fresh ``FrozenClock`` at ``FROZEN_AT`` for each test; move it with ``advance``/``set``."""
    return FrozenClock(FROZEN_AT)
