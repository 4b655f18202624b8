"""Working days on China's official calendar, with local overrides and provisional years.

Official holidays and the swapped (调休) weekend workdays come from the ``chinese-calendar``
package, which carries the State Council's yearly notices. When next year's notice is out
before the package is updated, a local file can declare that year (see
``WorkingDayCalendar.from_file``).

A year after the package's last one that no file declares is *provisional*: its holidays
come from the statutory rule (《全国年节及纪念日放假办法》 as amended in 2024, in force from
2025), with lunar dates and the Qingming solar term from ``lunar-python``. The notice's
bridging days and swapped workdays cannot be known in advance, so a provisional year has
none. That is right on every statutory day, where "Monday to Friday" alone would be wrong
around Spring Festival and National Day, and misses only the notice's additions. Callers
learn which years a result rests on (``is_provisional``, ``provisional_years_in``,
``deadline``) and recompute once the notice is loaded. ``strict=True`` refuses provisional
years instead. Years before the package's first one are always an error: the rule then was
a different one.
See docs/adr/0008-working-day-calendar.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

import chinese_calendar
import structlog
from chinese_calendar import constants as _official
from lunar_python import Lunar  # type: ignore[import-untyped]
from pydantic_settings import BaseSettings, SettingsConfigDict

_ONE_DAY = timedelta(days=1)
_log = structlog.get_logger("dibao_common.calendar")


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

STATUTORY_RULE_FIRST_YEAR = 2025
"""The first year of the amended rule ``statutory_holidays`` computes (13 days off)."""


class StatutoryHoliday(StrEnum):
    """The holidays of the statutory rule; values are chinese-calendar's holiday names."""

    NEW_YEARS_DAY = "New Year's Day"
    SPRING_FESTIVAL = "Spring Festival"
    TOMB_SWEEPING_DAY = "Tomb-sweeping Day"
    LABOUR_DAY = "Labour Day"
    DRAGON_BOAT_FESTIVAL = "Dragon Boat Festival"
    MID_AUTUMN_FESTIVAL = "Mid-autumn Festival"
    NATIONAL_DAY = "National Day"


def _lunar_day(year: int, month: int, day: int) -> date:
    """The Gregorian date of a day of a lunar year (ordinary month, never the leap one)."""
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def _qingming(year: int) -> date:
    """The day (Beijing time) of the Qingming solar term, always early April of ``year``."""
    term = Lunar.fromYmd(year, 1, 1).getJieQiTable()["清明"]
    return date(term.getYear(), term.getMonth(), term.getDay())


@functools.cache
def statutory_holidays(year: int) -> Mapping[date, StatutoryHoliday]:
    """The statutory days off of ``year`` under the rule in force from 2025, without the
    bridging days and swapped workdays a yearly notice adds; a weekend holiday stays put."""
    if year < STATUTORY_RULE_FIRST_YEAR:
        raise ValueError(f"the rule computed here is in force from {STATUTORY_RULE_FIRST_YEAR}")
    spring = _lunar_day(year, 1, 1)
    days: dict[date, StatutoryHoliday] = {}
    for day, holiday in (
        (date(year, 1, 1), StatutoryHoliday.NEW_YEARS_DAY),
        # New Year's Eve is the day before the first of the first month, so a twelfth
        # month of 29 or 30 days needs no special case.
        *((spring + timedelta(days=i), StatutoryHoliday.SPRING_FESTIVAL) for i in range(-1, 3)),
        (_qingming(year), StatutoryHoliday.TOMB_SWEEPING_DAY),
        (date(year, 5, 1), StatutoryHoliday.LABOUR_DAY),
        (date(year, 5, 2), StatutoryHoliday.LABOUR_DAY),
        (_lunar_day(year, 5, 5), StatutoryHoliday.DRAGON_BOAT_FESTIVAL),
        (_lunar_day(year, 8, 15), StatutoryHoliday.MID_AUTUMN_FESTIVAL),
        *((date(year, 10, d), StatutoryHoliday.NATIONAL_DAY) for d in (1, 2, 3)),
    ):
        # Mid-Autumn can fall inside National Day: the day is off once, under either name.
        days.setdefault(day, holiday)
    return MappingProxyType(days)


@dataclass(frozen=True, slots=True)
class WorkingDayDeadline:
    """A deadline with the provisional years it rests on (empty: published calendars only)."""

    start: date
    working_days: int
    due: date
    provisional_years: tuple[int, ...]

    @property
    def provisional(self) -> bool:
        """True when ``due`` may move once a provisional year's notice is loaded."""
        return bool(self.provisional_years)


class CalendarSettings(BaseSettings):
    """``DIBAO_CALENDAR_OVERRIDES_FILE``: the local overrides file, if any;
    ``DIBAO_CALENDAR_STRICT``: refuse provisional years rather than compute on them."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_CALENDAR_", extra="ignore", frozen=True)

    overrides_file: Path | None = None
    strict: bool = False


class WorkingDayCalendar:
    """Answers "is this a working day" and counts working days, start day excluded."""

    def __init__(
        self,
        overrides: Mapping[date, bool] | None = None,
        *,
        declared_years: Iterable[int] = (),
        strict: bool = False,
    ) -> None:
        """``overrides`` maps a date to working (True) or not (False) and wins over the
        official data. ``declared_years`` are years outside the package for which the
        overrides list every holiday and swapped workday (other days: Monday to Friday).
        ``strict`` raises ``CalendarNotCoveredError`` for provisional years."""
        self._overrides: dict[date, bool] = dict(overrides or {})
        self._declared_years = frozenset(declared_years)
        self._strict = strict
        self._warned_years: set[int] = set()

    @classmethod
    def from_file(cls, path: Path, *, strict: bool = False) -> WorkingDayCalendar:
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
        return cls(overrides, declared_years=years, strict=strict)

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> WorkingDayCalendar:
        """The official calendar, with the overrides file of the settings if one is set."""
        if settings.overrides_file is None:
            return cls(strict=settings.strict)
        return cls.from_file(settings.overrides_file, strict=settings.strict)

    @property
    def strict(self) -> bool:
        """Whether provisional years are refused."""
        return self._strict

    def is_provisional(self, year: int) -> bool:
        """True when ``year`` is answered from the statutory rule alone: after the package's
        last year, declared by no overrides file, and the calendar is not strict."""
        return not self._strict and year > OFFICIAL_LAST_YEAR and year not in self._declared_years

    def provisional_years_in(self, start: date, end: date) -> tuple[int, ...]:
        """The provisional years from ``start``'s to ``end``'s (either order), ascending."""
        low, high = sorted((start.year, end.year))
        return tuple(year for year in range(low, high + 1) if self.is_provisional(year))

    def covers(self, day: date) -> bool:
        """Whether the calendar can answer for ``day`` (rather than raise)."""
        return (
            day in self._overrides
            or OFFICIAL_FIRST_YEAR <= day.year <= OFFICIAL_LAST_YEAR
            or day.year in self._declared_years
            or self.is_provisional(day.year)
        )

    def is_working_day(self, day: date) -> bool:
        """True on a working day: a weekday that is no holiday, or a swapped workday."""
        provisional = self.is_provisional(day.year)
        if provisional:
            self._warn_once(day.year)
        local = self._overrides.get(day)
        if local is not None:
            return local
        if OFFICIAL_FIRST_YEAR <= day.year <= OFFICIAL_LAST_YEAR:
            return bool(chinese_calendar.is_workday(day))
        if day.year in self._declared_years:
            return day.weekday() < 5
        if provisional:
            return day.weekday() < 5 and day not in statutory_holidays(day.year)
        raise CalendarNotCoveredError(day, OFFICIAL_FIRST_YEAR, OFFICIAL_LAST_YEAR)

    def _warn_once(self, year: int) -> None:
        if year in self._warned_years:
            return
        self._warned_years.add(year)
        _log.warning(
            "working days computed on a provisional calendar",
            year=year,
            official_last_year=OFFICIAL_LAST_YEAR,
            remedy="upgrade chinese-calendar or declare the year in the overrides file",
        )

    def deadline(self, start: date, n: int) -> WorkingDayDeadline:
        """``add_working_days(start, n)`` with the provisional years of the days it counted."""
        due = self.add_working_days(start, n)
        provisional = self.provisional_years_in(start + _ONE_DAY, due) if due > start else ()
        return WorkingDayDeadline(start, n, due, provisional)

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
