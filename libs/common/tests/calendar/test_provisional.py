"""Provisional years: the statutory rule, checked against published years, and its flags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from structlog.testing import capture_logs

from dibao_common.calendar import (
    OFFICIAL_FIRST_YEAR,
    OFFICIAL_LAST_YEAR,
    STATUTORY_RULE_FIRST_YEAR,
    CalendarNotCoveredError,
    CalendarSettings,
    StatutoryHoliday,
    WorkingDayCalendar,
    _lunar_day,
    _qingming,
    statutory_holidays,
)

NEXT = OFFICIAL_LAST_YEAR + 1
"""The first year the package does not publish: provisional by default."""

needs_2027_provisional = pytest.mark.skipif(
    OFFICIAL_LAST_YEAR >= 2027,
    reason="chinese-calendar now publishes 2027; the rule is checked against it instead",
)

_EVENT = "working days computed on a provisional calendar"


def _warned_years(logs: Iterable[Mapping[str, object]]) -> list[object]:
    return [entry["year"] for entry in logs if entry["event"] == _EVENT]


@pytest.mark.parametrize("year", range(STATUTORY_RULE_FIRST_YEAR, OFFICIAL_LAST_YEAR + 1))
def test_the_rule_is_within_the_published_holidays(year: int) -> None:
    # Every day the rule gives is a published holiday of the same festival; the notices
    # only add bridging days (and swap weekends), which the rule cannot know.
    holidays = statutory_holidays(year)
    assert len(holidays) == 13
    for day, holiday in holidays.items():
        assert chinese_calendar.get_holiday_detail(day) == (True, holiday.value), day
    published = {
        day
        for day in chinese_calendar.holidays
        if day.year == year and chinese_calendar.get_holiday_detail(day)[1] is not None
    }
    assert set(holidays) <= published
    assert len(published) > len(holidays)  # the bridging days the rule leaves out


def test_lunar_dates_match_every_published_year_since_2008() -> None:
    # Qingming, Dragon Boat and Mid-Autumn became holidays on their own day in 2008, and
    # the first three days of the lunar year were holidays throughout: 19 years of
    # published notices check the lunar package, not only the two years of the new rule.
    known_exceptions = {
        date(2012, 6, 23): None,  # a Saturday the package lists as off but unnamed
        date(2020, 10, 1): "National Day",  # Mid-Autumn fell on National Day
    }
    checked = 0
    for year in range(2008, OFFICIAL_LAST_YEAR + 1):
        new_year = _lunar_day(year, 1, 1)
        expected = {
            new_year: StatutoryHoliday.SPRING_FESTIVAL,
            new_year + timedelta(days=1): StatutoryHoliday.SPRING_FESTIVAL,
            new_year + timedelta(days=2): StatutoryHoliday.SPRING_FESTIVAL,
            _qingming(year): StatutoryHoliday.TOMB_SWEEPING_DAY,
            _lunar_day(year, 5, 5): StatutoryHoliday.DRAGON_BOAT_FESTIVAL,
            _lunar_day(year, 8, 15): StatutoryHoliday.MID_AUTUMN_FESTIVAL,
        }
        for day, holiday in expected.items():
            name = known_exceptions.get(day, holiday.value)
            assert chinese_calendar.get_holiday_detail(day) == (True, name), (year, day)
            checked += 1
    assert checked == 6 * (OFFICIAL_LAST_YEAR - 2007)


def test_the_rule_for_2027() -> None:
    holidays = statutory_holidays(2027)
    assert sorted(holidays) == [
        date(2027, 1, 1),
        # Lunar New Year 2027 is Saturday Feb 6: its eve and the first three days.
        date(2027, 2, 5),
        date(2027, 2, 6),
        date(2027, 2, 7),
        date(2027, 2, 8),
        date(2027, 4, 5),  # the Qingming solar term
        date(2027, 5, 1),
        date(2027, 5, 2),
        date(2027, 6, 9),  # lunar 5/5
        date(2027, 9, 15),  # lunar 8/15
        date(2027, 10, 1),
        date(2027, 10, 2),
        date(2027, 10, 3),
    ]
    assert holidays[date(2027, 2, 5)] is StatutoryHoliday.SPRING_FESTIVAL
    assert holidays[date(2027, 4, 5)] is StatutoryHoliday.TOMB_SWEEPING_DAY
    assert holidays[date(2027, 9, 15)] is StatutoryHoliday.MID_AUTUMN_FESTIVAL


def test_a_twelfth_lunar_month_of_29_days() -> None:
    # Lunar year 2025's twelfth month has 29 days: the eve is its 29th, Feb 16 2026.
    assert _lunar_day(2026, 1, 1) == date(2026, 2, 17)
    assert statutory_holidays(2026)[date(2026, 2, 16)] is StatutoryHoliday.SPRING_FESTIVAL


def test_mid_autumn_inside_national_day_counts_once() -> None:
    # Lunar 8/15 of 2039 is Oct 2, a National Day holiday already: 12 distinct days.
    assert _lunar_day(2039, 8, 15) == date(2039, 10, 2)
    holidays = statutory_holidays(2039)
    assert len(holidays) == 12
    assert date(2039, 10, 2) in holidays


def test_the_rule_is_not_applied_before_it_was_in_force() -> None:
    with pytest.raises(ValueError, match="in force from 2025"):
        statutory_holidays(2024)


@needs_2027_provisional
@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2027, 1, 1), False),  # Friday, New Year's Day
        (date(2027, 1, 4), True),
        (date(2027, 2, 4), True),  # Thursday before the eve: no bridging days are guessed
        (date(2027, 2, 5), False),  # Friday, New Year's Eve
        (date(2027, 2, 6), False),
        (date(2027, 2, 7), False),
        (date(2027, 2, 8), False),  # Monday, third day of the lunar year
        (date(2027, 2, 9), True),
        (date(2027, 4, 5), False),  # Monday, Qingming
        (date(2027, 4, 6), True),
        (date(2027, 5, 3), True),  # May 1-2 are a weekend: holidays are not moved
        (date(2027, 6, 9), False),
        (date(2027, 9, 15), False),
        (date(2027, 9, 30), True),
        (date(2027, 10, 1), False),  # Friday, National Day; Oct 2-3 are the weekend
        (date(2027, 10, 2), False),
        (date(2027, 10, 3), False),
        (date(2027, 10, 4), True),  # the notice will likely close it; the rule cannot know
        (date(2027, 3, 6), False),  # an ordinary Saturday
    ],
)
def test_provisional_2027_days(day: date, working: bool) -> None:
    cal = WorkingDayCalendar()
    assert cal.is_provisional(2027)
    assert cal.covers(day)
    assert cal.is_working_day(day) is working


@needs_2027_provisional
def test_working_days_in_provisional_2027() -> None:
    # 365 days - 104 weekend days - 7 holidays on weekdays (Jan 1, Feb 5, Feb 8, Apr 5,
    # Jun 9, Sep 15, Oct 1); no swaps.
    cal = WorkingDayCalendar()
    assert cal.working_days_between(date(2026, 12, 31), date(2027, 12, 31)) == 254


@needs_2027_provisional
def test_a_deadline_into_2027_is_computed_and_flagged() -> None:
    cal = WorkingDayCalendar()
    # Tue Dec 15 2026: Dec 16-18 = 3, Dec 21-25 = 8, Dec 28-31 = 12; Jan 1 off;
    # Jan 4-8 = 17, 11-15 = 22, 18-22 = 27, then Jan 25, 26, 27.
    with capture_logs() as logs:
        deadline = cal.deadline(date(2026, 12, 15), 30)
    assert deadline.due == date(2027, 1, 27)
    assert deadline.due == cal.add_working_days(date(2026, 12, 15), 30)
    assert deadline.start == date(2026, 12, 15)
    assert deadline.working_days == 30
    assert deadline.provisional_years == (2027,)
    assert deadline.provisional
    assert cal.working_days_between(date(2026, 12, 15), deadline.due) == 30
    assert cal.provisional_years_in(date(2026, 12, 15), deadline.due) == (2027,)
    assert _warned_years(logs) == [2027]
    warning = next(entry for entry in logs if entry["event"] == _EVENT)
    assert warning["log_level"] == "warning"


@needs_2027_provisional
def test_a_deadline_across_spring_festival_2027() -> None:
    # Thu Feb 4 2027 + 3: Feb 5-8 off (eve to the third day), so Feb 9, 10, 11.
    assert WorkingDayCalendar().add_working_days(date(2027, 2, 4), 3) == date(2027, 2, 11)


def test_a_deadline_on_published_days_is_not_provisional() -> None:
    cal = WorkingDayCalendar()
    with capture_logs() as logs:
        inside = cal.deadline(date(OFFICIAL_LAST_YEAR, 3, 2), 30)
        # Nothing after the start is counted for n == 0, whatever year it is in.
        nothing = cal.deadline(date(NEXT, 3, 2), 0)
    assert inside.due.year == OFFICIAL_LAST_YEAR
    assert inside.provisional_years == ()
    assert not inside.provisional
    assert nothing.due == date(NEXT, 3, 2)
    assert not nothing.provisional
    assert _warned_years(logs) == []


def test_warned_once_per_provisional_year() -> None:
    cal = WorkingDayCalendar()
    with capture_logs() as logs:
        for _ in range(3):
            cal.add_working_days(date(NEXT, 12, 1), 40)  # runs into NEXT + 1
            cal.is_working_day(date(NEXT, 6, 1))
            cal.is_working_day(date(OFFICIAL_LAST_YEAR, 6, 1))
    assert _warned_years(logs) == [NEXT, NEXT + 1]


def test_provisional_years_in_a_span() -> None:
    cal = WorkingDayCalendar(declared_years=[NEXT + 1])
    a, b = date(OFFICIAL_LAST_YEAR, 12, 1), date(NEXT + 2, 1, 1)
    assert cal.provisional_years_in(a, b) == (NEXT, NEXT + 2)
    assert cal.provisional_years_in(b, a) == (NEXT, NEXT + 2)
    assert cal.provisional_years_in(a, a) == ()
    assert not cal.is_provisional(OFFICIAL_LAST_YEAR)
    assert not cal.is_provisional(NEXT + 1)
    # Years before the package are not in force under today's rule: never provisional.
    assert not cal.is_provisional(OFFICIAL_FIRST_YEAR - 1)


def test_years_before_the_package_still_raise() -> None:
    cal = WorkingDayCalendar()
    before = date(OFFICIAL_FIRST_YEAR - 1, 6, 1)
    assert not cal.covers(before)
    with pytest.raises(CalendarNotCoveredError):
        cal.is_working_day(before)


def test_strict_mode_raises_for_provisional_years() -> None:
    cal = WorkingDayCalendar(strict=True)
    assert cal.strict
    assert not cal.is_provisional(NEXT)
    assert not cal.covers(date(NEXT, 1, 4))
    assert cal.provisional_years_in(date(OFFICIAL_LAST_YEAR, 1, 1), date(NEXT + 3, 1, 1)) == ()
    with capture_logs() as logs:
        with pytest.raises(CalendarNotCoveredError, match=f"{OFFICIAL_LAST_YEAR}"):
            cal.is_working_day(date(NEXT, 1, 4))
        with pytest.raises(CalendarNotCoveredError):
            cal.add_working_days(date(OFFICIAL_LAST_YEAR, 12, 15), 30)
        with pytest.raises(CalendarNotCoveredError):
            cal.deadline(date(OFFICIAL_LAST_YEAR, 12, 15), 30)
    assert _warned_years(logs) == []
    # Published days still answer.
    assert cal.add_working_days(date(OFFICIAL_LAST_YEAR, 3, 2), 5).year == OFFICIAL_LAST_YEAR


def test_strict_from_settings_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not WorkingDayCalendar.from_settings(CalendarSettings()).strict
    assert WorkingDayCalendar.from_settings(CalendarSettings(strict=True)).strict
    path = tmp_path / "calendar.txt"
    path.write_text(f"year {NEXT}\n", encoding="utf-8")
    monkeypatch.setenv("DIBAO_CALENDAR_STRICT", "true")
    monkeypatch.setenv("DIBAO_CALENDAR_OVERRIDES_FILE", str(path))
    cal = WorkingDayCalendar.from_settings(CalendarSettings())
    assert cal.strict
    assert cal.covers(date(NEXT, 6, 1))  # declared by the file
    assert not cal.covers(date(NEXT + 1, 6, 1))
    assert WorkingDayCalendar.from_file(path, strict=True).strict


def test_a_declared_year_is_not_provisional(tmp_path: Path) -> None:
    # Once the notice is loaded (``year`` line), the file decides and the rule is not used:
    # here New Year's Day is declared working, which only the file can say.
    path = tmp_path / "calendar.txt"
    path.write_text(f"year {NEXT}\n{NEXT}-01-01 working\n", encoding="utf-8")
    cal = WorkingDayCalendar.from_file(path)
    assert not cal.is_provisional(NEXT)
    with capture_logs() as logs:
        deadline = cal.deadline(date(OFFICIAL_LAST_YEAR, 12, 31), 1)
    assert deadline.provisional_years == ()
    assert _warned_years(logs) == []
    assert deadline.due == date(NEXT, 1, 1)
    assert cal.is_working_day(date(NEXT, 1, 1))


def test_single_overrides_in_an_undeclared_year_stay_provisional() -> None:
    # A day set without the ``year`` line wins, but the rest of the year is still the rule.
    spring_eve = next(
        day
        for day, holiday in sorted(statutory_holidays(NEXT).items())
        if holiday is StatutoryHoliday.SPRING_FESTIVAL
    )
    cal = WorkingDayCalendar({spring_eve: True})
    assert cal.is_provisional(NEXT)
    assert cal.is_working_day(spring_eve)
    assert not cal.is_working_day(date(NEXT, 10, 1))
    assert WorkingDayCalendar().is_working_day(spring_eve) is False
