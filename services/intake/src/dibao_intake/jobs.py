"""What intake's operator commands share (``python -m dibao_intake.rekey``,
``python -m dibao_intake.verify_documents``): the service's own settings, a report on stdout
with the JSON log lines beside it on stderr, and batches of a size the operator chooses."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import IO, Any

from dibao_common import loop as event_loop
from dibao_common.observability import configure_logging
from dibao_intake.settings import IntakeSettings

Job = Callable[[argparse.Namespace, IntakeSettings, IO[str], IO[str]], Coroutine[Any, Any, int]]
"""A command's work: its arguments, the settings, stdout and stderr; its exit status."""


def batch_size(value: str) -> int:
    """``--batch-size``: a whole number of at least 1."""
    size = int(value)
    if size < 1:
        raise argparse.ArgumentTypeError("the batch size must be at least 1")
    return size


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> timedelta:
    """A length of time: a number of seconds, or one with a unit (``90s``, ``30m``, ``1h``,
    ``2d``)."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration (seconds, or a number with s, m, h or d: 30m)"
        )
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def describe_duration(length: timedelta) -> str:
    """``length`` as ``duration`` reads it, in the largest unit that divides it."""
    seconds = length.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // _UNIT_SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


def run_job(name: str, job: Job, args: argparse.Namespace) -> int:
    """Run ``job`` with the service's settings (its environment, as the service reads it),
    logging as ``<service>-<name>`` on stderr so that stdout holds the report alone."""
    settings = IntakeSettings()
    configure_logging(
        settings.log_level, service_name=f"{settings.service_name}-{name}", stream=sys.stderr
    )
    return event_loop.run(job(args, settings, sys.stdout, sys.stderr))
