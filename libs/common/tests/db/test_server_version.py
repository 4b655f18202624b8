"""Migrations refuse a PostgreSQL older than the schemas are written for, before the first
one runs, naming both versions (intake's migration 0014 needs 15: a unique index with NULLS
NOT DISTINCT; on 14 the upgrade stopped midway on a syntax error that named no version)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db.alembic_env import (
    MINIMUM_SERVER_VERSION,
    UnsupportedServerError,
    check_server_version,
)


@pytest.mark.parametrize("version", [(14, 11), (13, 16), (9, 6, 24)])
def test_an_older_server_is_refused_naming_both_versions(version: tuple[int, ...]) -> None:
    found = ".".join(map(str, version))
    with pytest.raises(UnsupportedServerError) as refused:
        check_server_version(version)
    assert str(refused.value) == (
        f"dibao's migrations need PostgreSQL 15 or later; the server is {found}"
    )


@pytest.mark.parametrize("version", [(15, 0), (15, 8), (16, 4), (17, 2), (18,)])
def test_fifteen_and_later_are_accepted(version: tuple[int, ...]) -> None:
    check_server_version(version)


def test_a_dialect_that_reports_no_version_is_not_refused() -> None:
    check_server_version(None)


@pytest.mark.postgres
async def test_the_suites_server_is_supported(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        version = connection.dialect.server_version_info
    assert version is not None
    assert version[:1] >= MINIMUM_SERVER_VERSION
    check_server_version(version)
