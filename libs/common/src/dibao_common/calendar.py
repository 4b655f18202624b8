"""Working days on China's official calendar, with local overrides.

Official holidays and the swapped (调休) weekend workdays come from the ``chinese-calendar``
package, which carries the State Council's yearly notices. A date outside the years the
package knows is an error, never a guess: a deadline computed from "Monday to Friday"
would silently be wrong around Spring Festival and National Day. When next year's notice
is out before the package is updated, a local file can declare that year (see
``WorkingDayCalendar.from_file``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
from chinese_calendar import constants as _official
from pydantic_settings import BaseSettings, SettingsConfigDict

_ONE_DAY = timedelta(days=1)


class CalendarNotCoveredError(LookupError):
    """The date's year is in neither the official data nor a locally declared year."""

    def __init__(self, day: date, first_year: int, last_year: int) -> None:
        self.day = day
        super().__init__(
            f"no working-day calendar for {day.isoformat()}: the chinese-calendar package "
            f"covers {first_year}-{last_year}; upgrade it or declare the year in the local "
            "overrides"
        )


class CalendarFileError(ValueError):
    """A line of a local overrides file could not be read."""


OFFICIAL_FIRST_YEAR: int = min(_official.holidays).year
OFFICIAL_LAST_YEAR: int = max(_official.holidays).year


class CalendarSettings(BaseSettings):
    """``DIBAO_CALENDAR_OVERRIDES_FILE``: the local overrides file, if any."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_CALENDAR_", extra="ignore", frozen=True)

    overrides_file: Path | None = None


class WorkingDayCalendar:
    """Answers "is this a working day" and counts working days, start day excluded."""

    def __init__(
        self,
        overrides: Mapping[date, bool] | None = None,
        *,
        declared_years: Iterable[int] = (),
    ) -> None:
        """``overrides`` maps a date to working (True) or not (False) and wins over the
        official data. ``declared_years`` are years outside the package for which the
        overrides list every holiday and swapped workday (other days: Monday to Friday)."""
        self._overrides: dict[date, bool] = dict(overrides or {})
        self._declared_years = frozenset(declared_years)

    @classmethod
    def from_file(cls, path: Path) -> WorkingDayCalendar:
        """Read overrides from a text file, one entry a line, ``#`` starts a comment.

        ``2027-02-06 working`` / ``2027-02-10 off`` set one day; ``year 2027`` declares that
        the file lists every holiday and swapped workday of 2027.
        """
        overrides: dict[date, bool] = {}
        years: set[int] = set()
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                parsed = _parse_line(line)
            except ValueError as exc:
                raise CalendarFileError(f"{path}:{number}: {exc}") from None
            if isinstance(parsed, int):
                years.add(parsed)
            else:
                day, working = parsed
                if overrides.get(day, working) != working:
                    raise CalendarFileError(f"{path}:{number}: {day} is listed twice, differently")
                overrides[day] = working
        return cls(overrides, declared_years=years)

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> WorkingDayCalendar:
        """The official calendar, with the overrides file of the settings if one is set."""
        if settings.overrides_file is None:
            return cls()
        return cls.from_file(settings.overrides_file)

    def covers(self, day: date) -> bool:
        """Whether the calendar can answer for ``day`` (rather than raise)."""
        return (
            day in self._overrides
            or OFFICIAL_FIRST_YEAR <= day.year <= OFFICIAL_LAST_YEAR
            or day.year in self._declared_years
        )

    def is_working_day(self, day: date) -> bool:
        """True on a working day: a weekday that is no holiday, or a swapped workday."""
        local = self._overrides.get(day)
        if local is not None:
            return local
        if OFFICIAL_FIRST_YEAR <= day.year <= OFFICIAL_LAST_YEAR:
            return bool(chinese_calendar.is_workday(day))
        if day.year in self._declared_years:
            return day.weekday() < 5
        raise CalendarNotCoveredError(day, OFFICIAL_FIRST_YEAR, OFFICIAL_LAST_YEAR)

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted;
        ``n == 0`` gives ``start``)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        day = start
        remaining = n
        while remaining:
            day += _ONE_DAY
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end``; negative when ``end``
        is before ``start``. ``working_days_between(d, add_working_days(d, n)) == n``."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += _ONE_DAY
        return count


_DAY_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s+(\S+)$")
_YEAR_LINE = re.compile(r"^year\s+(\d{4})$")
_WORDS = {"working": True, "work": True, "off": False, "holiday": False}


def _parse_line(line: str) -> tuple[date, bool] | int:
    year = _YEAR_LINE.match(line)
    if year:
        return int(year.group(1))
    match = _DAY_LINE.match(line)
    if match is None:
        raise ValueError(f"expected 'YYYY-MM-DD working|off' or 'year YYYY', got {line!r}")
    word = match.group(2).lower()
    if word not in _WORDS:
        raise ValueError(f"expected working or off after the date, got {match.group(2)!r}")
    return date.fromisoformat(match.group(1)), _WORDS[word]
