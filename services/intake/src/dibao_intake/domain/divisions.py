"""The statistical division table: which 12-digit region codes exist and what they are called.

Codes are the National Bureau of Statistics' 统计用区划代码: province (2 digits), prefecture
(2), county (2), township (3), village or community (3), coarser levels padded with zeros.
The table is a data file shipped with the package (``data/divisions_62.csv``, Gansu); a
province adds its own rows with further CSV files in the same format (see ADR 0009).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from importlib import resources
from pathlib import Path


class DivisionLevel(IntEnum):
    PROVINCE = 1
    PREFECTURE = 2
    COUNTY = 3
    TOWNSHIP = 4
    VILLAGE = 5


_PREFIX_LENGTH = {
    DivisionLevel.PROVINCE: 2,
    DivisionLevel.PREFECTURE: 4,
    DivisionLevel.COUNTY: 6,
    DivisionLevel.TOWNSHIP: 9,
    DivisionLevel.VILLAGE: 12,
}

VILLAGE_COMMITTEE_FIRST = 200
"""Village codes 001-199 are residents' (community) committees, 200-399 village committees."""


class InvalidRegionCodeError(ValueError):
    """Not a well-formed 12-digit division code."""


def is_region_code(code: str) -> bool:
    return len(code) == 12 and code.isascii() and code.isdigit()


def level_of(code: str) -> DivisionLevel:
    """The level a 12-digit code denotes, from where its zero padding starts."""
    if not is_region_code(code) or code[:2] == "00":
        raise InvalidRegionCodeError(f"{code!r} is not a 12-digit division code")
    if code[2:] == "0" * 10:
        return DivisionLevel.PROVINCE
    if code[4:] == "0" * 8:
        return DivisionLevel.PREFECTURE
    if code[6:] == "0" * 6:
        return DivisionLevel.COUNTY
    if code[9:] == "000":
        return DivisionLevel.TOWNSHIP
    return DivisionLevel.VILLAGE


def prefix_of(code: str, level: DivisionLevel | None = None) -> str:
    """The significant digits of ``code`` (at ``level``, default its own level)."""
    return code[: _PREFIX_LENGTH[level if level is not None else level_of(code)]]


def ancestor_code(code: str, level: DivisionLevel) -> str:
    """The code of the division at ``level`` that contains ``code``."""
    digits = _PREFIX_LENGTH[level]
    return code[:digits] + "0" * (12 - digits)


def township_of(code: str) -> str:
    """The township (street office, town or township) a village or community belongs to."""
    return ancestor_code(code, DivisionLevel.TOWNSHIP)


def is_village_committee(code: str) -> bool:
    """A rural village committee (村委会) rather than an urban residents' committee."""
    return level_of(code) is DivisionLevel.VILLAGE and int(code[9:]) >= VILLAGE_COMMITTEE_FIRST


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name: str
    level: DivisionLevel
    parent_code: str | None


class UnknownDivisionError(LookupError):
    """The code is well formed but not in the table."""


class DivisionTable:
    """All known divisions, in memory (a province is a few tens of thousands of rows)."""

    def __init__(self, divisions: Iterable[Division]) -> None:
        self._by_code: dict[str, Division] = {}
        self._children: dict[str, list[str]] = {}
        for division in divisions:
            self._by_code[division.code] = division
        for division in self._by_code.values():
            if division.parent_code is not None:
                self._children.setdefault(division.parent_code, []).append(division.code)
        for codes in self._children.values():
            codes.sort()

    @classmethod
    def load(cls, extra_files: Iterable[Path] = ()) -> DivisionTable:
        """The packaged table plus a province's own files (later rows replace earlier ones)."""
        packaged = resources.files("dibao_intake.data").joinpath("divisions_62.csv")
        rows = list(read_divisions_csv(packaged.read_text(encoding="utf-8").splitlines()))
        for path in extra_files:
            with path.open(encoding="utf-8", newline="") as handle:
                rows.extend(read_divisions_csv(handle))
        return cls(rows)

    def __len__(self) -> int:
        return len(self._by_code)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def get(self, code: str) -> Division | None:
        return self._by_code.get(code)

    def require(self, code: str, level: DivisionLevel | None = None) -> Division:
        """The division of ``code``; ``UnknownDivisionError`` if absent or at another level."""
        division = self._by_code.get(code)
        if division is None:
            raise UnknownDivisionError(f"{code} is not in the division table")
        if level is not None and division.level is not level:
            raise UnknownDivisionError(
                f"{code} is a {division.level.name.lower()}, not a {level.name.lower()}"
            )
        return division

    def children(self, code: str) -> list[Division]:
        return [self._by_code[c] for c in self._children.get(code, [])]

    def lineage(self, code: str) -> list[Division]:
        """The division and its ancestors, province first."""
        chain: list[Division] = []
        current = self._by_code.get(code)
        while current is not None:
            chain.append(current)
            current = self._by_code.get(current.parent_code) if current.parent_code else None
        return list(reversed(chain))

    def full_name(self, code: str) -> str:
        """E.g. ``甘肃省兰州市城关区酒泉路街道畅家巷社区居委会``."""
        return "".join(d.name for d in self.lineage(code))


def read_divisions_csv(handle: Iterable[str]) -> Iterator[Division]:
    """Rows ``code,name,level,parent_code``; the level and parent must agree with the code."""
    for line_no, row in enumerate(csv.DictReader(handle), start=2):
        code = row["code"].strip()
        level = DivisionLevel(int(row["level"]))
        if level_of(code) is not level:
            raise ValueError(f"line {line_no}: {code} is not at level {level}")
        parent = row["parent_code"].strip() or None
        if level is DivisionLevel.PROVINCE:
            if parent is not None:
                raise ValueError(f"line {line_no}: a province has no parent")
        elif parent is None or not code.startswith(prefix_of(parent)) or level_of(parent) >= level:
            raise ValueError(f"line {line_no}: {parent} cannot be the parent of {code}")
        yield Division(code=code, name=row["name"].strip(), level=level, parent_code=parent)
