"""The benchmark runner: ``python -m bench.run <name> [options]``.

It finds the stack from the same variables as the tests (``DIBAO_TEST_PG_DSN``,
``DIBAO_TEST_KAFKA_BOOTSTRAP``, ``DIBAO_TEST_DB_PREFIX``; ``bench/run.sh`` starts an
isolated stack and sets them), prints a table and writes the figures as JSON to
``bench/results/<name>-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the benchmark's PostgreSQL and Kafka are."""

    pg_admin_dsn: str
    kafka_bootstrap: str
    db_prefix: str

    def database_url(self, name: str) -> str:
        base = self.pg_admin_dsn.rsplit("/", 1)[0]
        return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass(slots=True)
class Report:
    """What a benchmark returns: table rows, headline figures and the settings used."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


Benchmark = Callable[[Stack, argparse.Namespace], Coroutine[Any, Any, Report]]


def _stack_from_env() -> Stack:
    dsn = os.environ.get("DIBAO_TEST_PG_DSN")
    bootstrap = os.environ.get("DIBAO_TEST_KAFKA_BOOTSTRAP")
    if not dsn or not bootstrap:
        sys.exit(
            "no stack: run `bash bench/run.sh <name>` (it starts one), or set "
            "DIBAO_TEST_PG_DSN and DIBAO_TEST_KAFKA_BOOTSTRAP"
        )
    return Stack(dsn, bootstrap, os.environ.get("DIBAO_TEST_DB_PREFIX", "dibao_bench"))


def _table(report: Report) -> str:
    cells = [report.columns, *[[_cell(v) for v in row] for row in report.rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(report.columns))]
    lines = [report.title]
    for n, row in enumerate(cells):
        aligned = (c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True))
        lines.append("  ".join(aligned))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"{name}: {_cell(value)}" for name, value in report.figures.items())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def _benchmarks() -> dict[str, tuple[Benchmark, Callable[[argparse.ArgumentParser], None]]]:
    from bench import audit_log, intake_submit, outbox_relay

    return {
        "outbox": (outbox_relay.run, outbox_relay.add_arguments),
        "audit": (audit_log.run, audit_log.add_arguments),
        "intake": (intake_submit.run, intake_submit.add_arguments),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Run one benchmark, print its table, save its JSON."""
    known = _benchmarks()
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    sub = parser.add_subparsers(dest="name", required=True)
    for name, (_, add_arguments) in known.items():
        add_arguments(sub.add_parser(name))
    args = parser.parse_args(argv)
    benchmark, _ = known[args.name]
    report = asyncio.run(benchmark(_stack_from_env(), args))
    print(_table(report))
    at = datetime.now(UTC)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}-{at:%Y%m%dT%H%M%SZ}.json"
    document = {
        "benchmark": args.name,
        "at": at.isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": report.settings,
        "figures": report.figures,
        "columns": report.columns,
        "rows": report.rows,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
