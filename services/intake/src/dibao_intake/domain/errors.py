"""How the rules report what is wrong: every problem at once, each with a JSON pointer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule; ``pointer`` is a JSON pointer into the request body (``/members/0``)."""

    pointer: str
    detail: str


class RulesViolatedError(Exception):
    """The input breaks one or more rules; nothing may be written."""

    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.pointer}: {v.detail}" for v in self.violations))


def raise_if_any(violations: list[Violation]) -> None:
    if violations:
        raise RulesViolatedError(violations)
