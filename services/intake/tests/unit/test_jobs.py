"""What intake's operator commands share: the argument types."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from dibao_intake.jobs import describe_duration, duration


@pytest.mark.parametrize(
    ("given", "length", "described"),
    [
        ("3600", timedelta(hours=1), "1h"),
        ("90s", timedelta(seconds=90), "90s"),
        ("30m", timedelta(minutes=30), "30m"),
        ("1h", timedelta(hours=1), "1h"),
        ("1.5h", timedelta(minutes=90), "90m"),
        ("2d", timedelta(days=2), "2d"),
        ("0", timedelta(0), "0s"),
        ("0.5", timedelta(milliseconds=500), "0.5s"),
    ],
)
def test_a_duration(given: str, length: timedelta, described: str) -> None:
    assert duration(given) == length
    assert describe_duration(length) == described
    assert duration(described) == length


@pytest.mark.parametrize("given", ["", "-1", "1w", "h", "1 h", "1h30m", "1e3"])
def test_what_is_not_a_duration(given: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(given)
