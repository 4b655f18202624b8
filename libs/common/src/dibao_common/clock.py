"""An injectable clock: instants are UTC, calendar days are China's (UTC+8).

Code that needs the time takes a ``Clock`` instead of calling ``datetime.now()`` so that
tests can freeze and move time (publicity windows, deadlines, payroll months).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

# China Standard Time has been UTC+8 without daylight saving since 1991; a fixed offset
# avoids depending on the host's tz database (absent from slim container images).
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


@runtime_checkable
class Clock(Protocol):
    """Where the time comes from."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def today(self) -> date:
        """The current calendar day in China (Asia/Shanghai)."""
        ...


def has_utc_instant(at: datetime) -> bool:
    """Whether an aware datetime names an instant Python (and the database driver) can
    hold in UTC: ``0001-01-01T00:00+08:00`` is before the first one, and
    ``9999-12-31T23:00-05:00`` after the last. Input from outside may be either."""
    try:
        at.astimezone(UTC)
    except OverflowError:
        return False
    return True


def china_date(at: datetime) -> date:
    """The calendar day in China of an aware instant."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an aware datetime is required, got a naive one")
    return at.astimezone(CHINA_TZ).date()


class SystemClock:
    """The real clock of the machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return china_date(self.now())


class FrozenClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self._at = _as_utc(at)

    def now(self) -> datetime:
        return self._at

    def today(self) -> date:
        return china_date(self._at)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` (backward if negative) and return the new instant."""
        self._at = self._at + delta
        return self._at

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (an aware datetime)."""
        self._at = _as_utc(at)

    def __repr__(self) -> str:
        return f"FrozenClock({self._at.isoformat()})"


def _as_utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an aware datetime is required, got a naive one")
    return at.astimezone(UTC)
