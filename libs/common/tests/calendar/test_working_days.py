"""The working-day calendar against China's published 2025 and 2026 schedules."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from dibao_common.calendar import (
    OFFICIAL_FIRST_YEAR,
    OFFICIAL_LAST_YEAR,
    CalendarFileError,
    CalendarNotCoveredError,
    CalendarSettings,
    WorkingDayCalendar,
)

CAL = WorkingDayCalendar()


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2025, 9, 28), True),  # Sunday worked for National Day
        (date(2025, 10, 1), False),
        (date(2025, 10, 6), False),  # Mid-Autumn inside the National Day week
        (date(2025, 10, 8), False),
        (date(2025, 10, 9), True),
        (date(2025, 10, 11), True),  # Saturday worked
        (date(2025, 10, 12), False),
        (date(2025, 1, 26), True),  # Sunday worked for Spring Festival
        (date(2025, 1, 28), False),  # Spring Festival eve, a holiday since 2025
        (date(2025, 2, 4), False),
        (date(2025, 2, 5), True),
        (date(2025, 2, 8), True),  # Saturday worked
        (date(2026, 1, 4), True),  # Sunday worked for New Year
        (date(2026, 2, 14), True),  # Saturday worked
        (date(2026, 2, 23), False),  # last day of the nine-day Spring Festival
        (date(2026, 2, 28), True),  # Saturday worked
        (date(2026, 9, 20), True),  # Sunday worked for National Day
        (date(2026, 10, 7), False),
        (date(2026, 10, 10), True),  # Saturday worked
        (date(2025, 3, 4), True),  # ordinary Tuesday
        (date(2025, 3, 8), False),  # ordinary Saturday
    ],
)
def test_official_days(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


@pytest.mark.parametrize(
    ("accepted", "n", "deadline"),
    [
        # Accepted on the eve of National Day 2025: Oct 9, Oct 10, then Saturday Oct 11.
        (date(2025, 9, 30), 3, date(2025, 10, 11)),
        # Friday before Spring Festival 2025: Sunday Jan 26, Monday Jan 27, then Feb 5.
        (date(2025, 1, 24), 3, date(2025, 2, 5)),
        # Friday before Spring Festival 2026: Saturday Feb 14, then Feb 24 and Feb 25.
        (date(2026, 2, 13), 3, date(2026, 2, 25)),
        # National Day 2026: Oct 8, Oct 9, then Saturday Oct 10.
        (date(2026, 9, 30), 3, date(2026, 10, 10)),
        # Friday Sept 18 2026: Sunday Sept 20 is worked.
        (date(2026, 9, 18), 1, date(2026, 9, 20)),
        # An ordinary week: the start day is not counted, the weekend is skipped.
        (date(2025, 3, 3), 3, date(2025, 3, 6)),
        (date(2025, 3, 7), 1, date(2025, 3, 10)),
        # Started on a holiday: counting begins after it.
        (date(2025, 10, 3), 1, date(2025, 10, 9)),
        (date(2025, 3, 5), 0, date(2025, 3, 5)),
    ],
)
def test_add_working_days(accepted: date, n: int, deadline: date) -> None:
    assert CAL.add_working_days(accepted, n) == deadline
    assert CAL.working_days_between(accepted, deadline) == n


def test_thirty_working_days_across_national_day_2025() -> None:
    # Sept 15 2025 (Mon) + 30 WD: Sept 16-30 has 11 weekdays plus Sunday Sept 28 = 12;
    # Oct 9, 10, 11 = 15; Oct 13-17 = 20; Oct 20-24 = 25; Oct 27-31 = 30.
    assert CAL.add_working_days(date(2025, 9, 15), 30) == date(2025, 10, 31)


def test_working_days_in_a_year() -> None:
    # 365 days - 104 weekend days - 13 statutory holidays; swaps cancel out.
    assert CAL.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 248
    assert CAL.working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 248
    # October 2025: 23 days after the holiday week, 5 of them weekend days off.
    assert CAL.working_days_between(date(2025, 9, 30), date(2025, 10, 31)) == 18


def test_between_is_signed_and_excludes_the_start() -> None:
    a, b = date(2025, 9, 30), date(2025, 10, 11)
    assert CAL.working_days_between(a, b) == 3
    assert CAL.working_days_between(b, a) == -3
    assert CAL.working_days_between(a, a) == 0
    assert CAL.working_days_between(date(2025, 10, 1), date(2025, 10, 8)) == 0


def test_add_and_between_agree_over_two_years() -> None:
    start = date(2025, 1, 1)
    for offset in range(0, 600, 5):
        day = start + timedelta(days=offset)
        for n in (1, 3, 10, 30):
            deadline = CAL.add_working_days(day, n)
            assert CAL.is_working_day(deadline)
            assert CAL.working_days_between(day, deadline) == n
            assert CAL.working_days_between(day, deadline - timedelta(days=1)) == n - 1


def test_negative_n_is_refused() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        CAL.add_working_days(date(2025, 3, 3), -1)


def test_years_outside_the_package_are_an_error_when_strict() -> None:
    # Later years are provisional by default (test_provisional.py); strict refuses them.
    strict = WorkingDayCalendar(strict=True)
    after = date(OFFICIAL_LAST_YEAR + 1, 1, 4)
    with pytest.raises(
        CalendarNotCoveredError, match=f"{OFFICIAL_FIRST_YEAR}-{OFFICIAL_LAST_YEAR}"
    ):
        strict.is_working_day(after)
    # Earlier years are an error either way.
    for cal in (strict, CAL):
        with pytest.raises(CalendarNotCoveredError):
            cal.is_working_day(date(OFFICIAL_FIRST_YEAR - 1, 6, 1))
    # A deadline that runs past the last covered year fails rather than guesses.
    with pytest.raises(CalendarNotCoveredError):
        strict.add_working_days(date(OFFICIAL_LAST_YEAR, 12, 24), 10)
    assert not strict.covers(after)
    assert strict.covers(date(OFFICIAL_LAST_YEAR, 12, 31))
    assert CAL.covers(after)


def test_package_covers_the_years_the_tests_rely_on() -> None:
    assert OFFICIAL_FIRST_YEAR <= 2025
    assert OFFICIAL_LAST_YEAR >= 2026


def test_local_overrides_win() -> None:
    cal = WorkingDayCalendar({date(2025, 10, 9): False, date(2025, 3, 8): True})
    assert not cal.is_working_day(date(2025, 10, 9))
    assert cal.is_working_day(date(2025, 3, 8))
    # Oct 9 closed locally: Oct 10, Saturday Oct 11, Monday Oct 13.
    assert cal.add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 13)
    assert cal.add_working_days(date(2025, 3, 7), 1) == date(2025, 3, 8)


def test_a_declared_year_from_a_file(tmp_path: Path) -> None:
    year = 2099
    assert year > OFFICIAL_LAST_YEAR
    path = tmp_path / "calendar.txt"
    path.write_text(
        "# local calendar\n"
        f"year {year}   # this file lists every holiday and swapped workday of {year}\n"
        f"{year}-01-01 off\n"
        f"{year}-01-02 OFF  # bridging day\n"
        f"{year}-01-03 working\n"
        "\n"
        "2025-10-09 off\n",
        encoding="utf-8",
    )
    cal = WorkingDayCalendar.from_file(path)
    assert date(year, 1, 1).weekday() == 3  # Thursday
    assert not cal.is_working_day(date(year, 1, 1))
    assert not cal.is_working_day(date(year, 1, 2))
    assert cal.is_working_day(date(year, 1, 3))  # a Saturday made a working day
    assert not cal.is_working_day(date(year, 1, 4))  # an ordinary Sunday
    assert cal.is_working_day(date(year, 1, 5))  # an ordinary Monday
    assert not cal.is_working_day(date(2025, 10, 9))
    assert cal.is_working_day(date(2025, 10, 10))
    with pytest.raises(CalendarNotCoveredError):
        WorkingDayCalendar.from_file(path, strict=True).is_working_day(date(2098, 6, 1))
    assert cal.is_provisional(2098)
    assert not cal.is_provisional(year)
    declared = CalendarSettings(overrides_file=path, strict=True)
    assert WorkingDayCalendar.from_settings(declared).covers(date(year, 7, 1))
    assert not WorkingDayCalendar.from_settings(CalendarSettings(strict=True)).covers(
        date(year, 7, 1)
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2025-10-09 maybe\n", r"calendar\.txt:1: expected working or off"),
        ("# ok\n2025/10/09 off\n", r"calendar\.txt:2: expected 'YYYY-MM-DD"),
        ("2025-02-30 off\n", r"calendar\.txt:1:"),
        ("2025-10-09 off\n2025-10-09 working\n", "listed twice"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "calendar.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CalendarFileError, match=message):
        WorkingDayCalendar.from_file(path)


def test_the_stdlib_calendar_is_not_shadowed() -> None:
    import calendar

    assert calendar.monthrange(2026, 2) == (6, 28)
