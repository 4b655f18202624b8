"""Resident ID numbers (GB 11643): validated with ``python-stdnum``, never by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    ValidationError,
)

from dibao_common.crypto import normalise_id_number
from dibao_intake.domain.codes import Sex

OLDEST_AGE_YEARS = 130
"""No living person is older; an ID number claiming so was mistyped."""


class InvalidResidentIdError(ValueError):
    """The number is not a valid resident ID number; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A validated 18-character resident ID number and what it encodes."""

    number: str
    birth_date: date
    sex: Sex
    place_code: str
    """The six-digit division code of the place of first registration."""

    def __repr__(self) -> str:
        # Never let the raw number reach a log line through a repr.
        return f"ResidentId(birth_date={self.birth_date}, sex={self.sex})"


def parse_resident_id(raw: str, *, today: date) -> ResidentId:
    """Validate ``raw`` (check digit, birth date, place) and derive birth date and sex.

    ``raw`` is taken in any spelling the keyed hash takes as the same number
    (``normalise_id_number``: white space, full-width characters, a lower-case ``x``);
    ``number`` is its one spelling, what is stored, masked and hashed."""
    try:
        number = _validate(normalise_id_number(raw))
    except InvalidLength:
        raise InvalidResidentIdError("a resident ID number has 18 characters") from None
    except InvalidFormat:
        raise InvalidResidentIdError("the first 17 characters must be digits") from None
    except InvalidChecksum:
        raise InvalidResidentIdError(
            "the check digit does not match (GB 11643, MOD 11-2)"
        ) from None
    except InvalidComponent:
        raise InvalidResidentIdError(
            "the birth date or the place code in the number does not exist"
        ) from None
    except ValidationError:
        raise InvalidResidentIdError("not a valid resident ID number") from None
    birth = ric.get_birth_date(number)
    if birth > today:
        raise InvalidResidentIdError("the birth date in the number is in the future")
    if today.year - birth.year > OLDEST_AGE_YEARS:
        raise InvalidResidentIdError("the birth date in the number is implausibly early")
    sex = Sex.MALE if int(number[16]) % 2 == 1 else Sex.FEMALE
    return ResidentId(number=number, birth_date=birth, sex=sex, place_code=number[:6])


def _validate(raw: str) -> str:
    try:
        return str(ric.validate(raw))
    except (InvalidComponent, KeyError):
        # KeyError: stdnum 2.x fails that way on an unknown county of a known province.
        number = str(ric.compact(raw))
        ric.get_birth_date(number)  # a date that does not exist is still refused
        # The library also wants the place code to have existed in the birth year, but the
        # code is that of the first registration, often years after birth (ID cards came
        # in 1984; Chengguan's 620102 dates from 1983): a code that ever existed is enough.
        if not _place_code_known(number[:6]):
            raise InvalidComponent() from None
        return number


def _place_code_known(place_code: str) -> bool:
    found = numdb.get("cn/loc").info(place_code)
    return any("county" in props for _part, props in found)


def compose_resident_id(place_code: str, birth_date: date, sequence: int) -> str:
    """A valid number for ``place_code``, ``birth_date`` and a 3-digit sequence (odd = male).

    For synthetic test and demonstration data: the check digit is computed by the library.
    """
    if len(place_code) != 6 or not place_code.isdigit():
        raise ValueError("place_code must be six digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be 0..999")
    body = f"{place_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def age_on(birth_date: date, day: date) -> int:
    """Full years of age on ``day``."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years
