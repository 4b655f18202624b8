"""Resident ID numbers: the library's check digit, birth date and sex, and our plausibility."""

from __future__ import annotations

from datetime import date

import pytest
from stdnum.cn import ric

from dibao_intake.domain.codes import Sex
from dibao_intake.domain.resident_id import (
    InvalidResidentIdError,
    age_on,
    compose_resident_id,
    parse_resident_id,
)

TODAY = date(2026, 11, 28)


def _with_check_digit(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


def test_a_composed_number_parses_back_to_its_birth_date_and_sex() -> None:
    number = compose_resident_id("620123", date(1988, 7, 9), 457)
    parsed = parse_resident_id(number, today=TODAY)
    assert parsed.number == number
    assert parsed.birth_date == date(1988, 7, 9)
    assert parsed.sex is Sex.MALE  # 457 is odd
    assert parsed.place_code == "620123"
    female = parse_resident_id(compose_resident_id("620123", date(1990, 1, 2), 458), today=TODAY)
    assert female.sex is Sex.FEMALE


def test_the_published_example_with_x_check_digit_is_accepted_in_lower_case() -> None:
    parsed = parse_resident_id("11010519491231002x", today=TODAY)
    assert parsed.number == "11010519491231002X"
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.sex is Sex.FEMALE


def test_a_wrong_check_digit_is_refused() -> None:
    good = compose_resident_id("620102", date(1975, 5, 20), 31)
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(InvalidResidentIdError, match="check digit"):
        parse_resident_id(wrong, today=TODAY)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("62010219750520", "18 characters"),
        ("62010219750520A31X", "digits"),
        (_with_check_digit("62010219750230031"), "birth date or the place"),  # 30 February
        (_with_check_digit("62019919750520031"), "birth date or the place"),  # no such county
    ],
)
def test_malformed_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidResidentIdError, match=reason):
        parse_resident_id(raw, today=TODAY)


def test_a_place_code_created_after_the_birth_year_is_still_valid() -> None:
    # Chengguan's 620102 dates from 1983; people born earlier were registered under it later.
    number = compose_resident_id("620102", date(1952, 3, 1), 15)
    assert parse_resident_id(number, today=TODAY).birth_date == date(1952, 3, 1)


def test_future_and_implausibly_early_birth_dates_are_refused() -> None:
    with pytest.raises(InvalidResidentIdError, match="future"):
        parse_resident_id(compose_resident_id("620123", date(2026, 12, 1), 1), today=TODAY)
    with pytest.raises(InvalidResidentIdError, match="implausibly"):
        parse_resident_id(compose_resident_id("110105", date(1890, 1, 1), 1), today=TODAY)


def test_the_repr_never_shows_the_number() -> None:
    number = compose_resident_id("620123", date(1988, 7, 9), 457)
    assert number not in repr(parse_resident_id(number, today=TODAY))


def test_age_counts_full_years() -> None:
    assert age_on(date(2008, 11, 29), TODAY) == 17
    assert age_on(date(2008, 11, 28), TODAY) == 18


def test_every_spelling_the_keyed_hash_equates_parses_to_one_number() -> None:
    """Spaces around or between the groups, full-width characters (an input method's) and
    a lower-case check digit x are the number the hash takes them for: parsed to its one
    spelling, which is what is stored, masked and hashed."""
    number = next(
        n
        for n in (compose_resident_id("620102", date(1980, 1, 1), s) for s in range(1000))
        if n.endswith("X")
    )
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number.lower())
    for spelling in (
        f" {number.lower()} ",
        f"\t{number}\n",
        f"\u3000{number}",
        f"{number[:6]} {number[6:14]} {number[14:]}",
        full_width,
    ):
        assert parse_resident_id(spelling, today=TODAY).number == number, repr(spelling)
