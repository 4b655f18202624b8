"""The injectable clock: UTC instants, China's calendar day, a frozen clock tests move."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from dibao_common.clock import CHINA_TZ, Clock, FrozenClock, SystemClock, china_date


def test_system_clock_is_utc_and_current() -> None:
    clock = SystemClock()
    before = datetime.now(UTC)
    now = clock.now()
    after = datetime.now(UTC)
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after
    assert clock.today() in {
        (before + timedelta(hours=8)).date(),
        (after + timedelta(hours=8)).date(),
    }


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), Clock)


def test_today_is_the_day_in_china() -> None:
    # 16:30 UTC on Jan 1 is already 00:30 on Jan 2 in Beijing.
    clock = FrozenClock(datetime(2026, 1, 1, 16, 30, tzinfo=UTC))
    assert clock.today() == date(2026, 1, 2)
    clock.set(datetime(2026, 1, 1, 15, 59, 59, tzinfo=UTC))
    assert clock.today() == date(2026, 1, 1)


def test_frozen_clock_stands_still_and_moves_when_told() -> None:
    start = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    clock = FrozenClock(start)
    assert clock.now() == clock.now() == start
    assert clock.advance(timedelta(days=7)) == start + timedelta(days=7)
    assert clock.now() == start + timedelta(days=7)
    clock.advance(timedelta(hours=-1))
    assert clock.now() == start + timedelta(days=7, hours=-1)


def test_frozen_clock_keeps_instants_in_utc() -> None:
    beijing = datetime(2026, 10, 1, 8, 0, tzinfo=CHINA_TZ)
    clock = FrozenClock(beijing)
    assert clock.now() == beijing
    assert clock.now().tzinfo is UTC
    assert clock.now().hour == 0
    clock.set(datetime(2026, 10, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5))))
    assert clock.now() == datetime(2026, 10, 1, 13, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 2, 9, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(naive)
    clock = FrozenClock(datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        clock.set(naive)
    with pytest.raises(ValueError, match="aware"):
        china_date(naive)
