"""The intake benchmark writes a district's past straight into intake's tables
(bench/intake_history.py) before it measures. Written in SQL, it is not checked by the
service's code: a migration that adds a constraint breaks the benchmark unseen (migration
0010's check on withdrawn applications did, found only when the benchmark ran). This runs
it against intake's migrated schema, with a few households."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from dibao_common.testing.stack import REPO_ROOT
from dibao_intake.testing import intake_database_of_its_own

pytestmark = [pytest.mark.postgres]


def _bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` (the benchmarks are run from the repository root, not installed)."""
    path = Path(REPO_ROOT) / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_benchmarks_history_fits_intakes_schema() -> None:
    history = _bench_module("intake_history")
    baseline = _bench_module("intake_baseline")
    stack = await intake_database_of_its_own("bench_history")
    dsn = stack.dsn("intake")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(baseline.TABLE_DDL)
    finally:
        await conn.close()
    try:
        rows = await history.prefill(
            dsn,
            40,
            regions=("620102001001", "620123101203"),
            baseline_body={"household_id": "x"},
        )
        assert rows["household"] == 40
        assert rows["application"] == 40
        assert rows["baseline_submission"] == 40
        conn = await asyncpg.connect(dsn)
        try:
            found = await conn.fetch(
                "SELECT status, count(*) AS n FROM application GROUP BY status"
            )
            statuses = {str(r["status"]): int(r["n"]) for r in found}
        finally:
            await conn.close()
        assert statuses == {"returned": 4, "withdrawn": 4, "submitted": 32}
    finally:
        admin = await asyncpg.connect(stack.pg_admin_dsn)
        try:
            await admin.execute(
                f'DROP DATABASE IF EXISTS "{stack.database_name("intake")}" WITH (FORCE)'
            )
        finally:
            await admin.close()
