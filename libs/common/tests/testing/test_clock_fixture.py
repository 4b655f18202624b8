"""The ``clock`` fixture: a fresh frozen clock at a fixed working-day instant."""

from __future__ import annotations

from datetime import date, timedelta

from dibao_common.calendar import WorkingDayCalendar
from dibao_common.clock import FrozenClock
from dibao_common.testing.clock_fixtures import FROZEN_AT


def test_the_clock_starts_at_the_fixed_instant(clock: FrozenClock) -> None:
    assert clock.now() == FROZEN_AT
    assert clock.today() == date(2026, 3, 2)
    assert WorkingDayCalendar().is_working_day(clock.today())
    clock.advance(timedelta(days=30))  # the next test must not see this


def test_each_test_gets_its_own_clock(clock: FrozenClock) -> None:
    assert clock.now() == FROZEN_AT
