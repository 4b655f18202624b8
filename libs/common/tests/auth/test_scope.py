"""Roles (403) and region scoping (404 for another region's records, as for absent ones)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from httpx import AsyncClient

from dibao_common.auth import Principal, Role, ensure_in_scope, region_filter, require_roles
from dibao_common.db import make_engine
from dibao_common.errors import PROBLEM_MEDIA_TYPE, NotFound
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.stack import TestStack


async def test_missing_role_is_403(client: AsyncClient, tokens: TokenFactory) -> None:
    headers = tokens.bearer(roles=[Role.AUDITOR], regions=["62"])
    response = await client.get("/households/h-lanzhou", headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["type"] == "https://dibao.gov.cn/problems/missing-role"
    assert body["required_roles"] == ["intake_clerk", "investigator"]


async def test_any_listed_role_is_enough(client: AsyncClient, tokens: TokenFactory) -> None:
    headers = tokens.bearer(roles=[Role.INVESTIGATOR], regions=["620102"])
    response = await client.get("/households/h-lanzhou", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"id": "h-lanzhou", "region_code": "620102001001"}


async def test_no_token_is_401_before_roles(client: AsyncClient) -> None:
    response = await client.get("/households/h-lanzhou")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_foreign_region_answers_404_like_an_absent_record(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    # Chengguan district of Lanzhou (620102) does not see Tianshui (6205).
    headers = tokens.bearer(roles=[Role.INTAKE_CLERK], regions=["620102"])
    foreign = await client.get("/households/h-tianshui", headers=headers)
    absent = await client.get("/households/h-nowhere", headers=headers)
    assert foreign.status_code == absent.status_code == 404
    assert foreign.headers["content-type"] == absent.headers["content-type"]
    foreign_body, absent_body = foreign.json(), absent.json()
    assert foreign_body.pop("instance") == "/households/h-tianshui"
    assert absent_body.pop("instance") == "/households/h-nowhere"
    assert foreign_body == absent_body
    # A province-wide principal sees both.
    province = tokens.bearer(roles=[Role.INTAKE_CLERK], regions=["62"])
    assert (await client.get("/households/h-tianshui", headers=province)).status_code == 200


async def test_no_regions_sees_nothing(client: AsyncClient, tokens: TokenFactory) -> None:
    headers = tokens.bearer(roles=[Role.INTAKE_CLERK], regions=[])
    assert (await client.get("/households/h-lanzhou", headers=headers)).status_code == 404


def test_can_see_is_by_prefix() -> None:
    p = Principal("u", frozenset({Role.INVESTIGATOR}), ("620102", "6205"))
    assert p.has(Role.INVESTIGATOR)
    assert not p.has(Role.COUNTY_APPROVER)
    assert p.can_see("620102")
    assert p.can_see("620102001001")
    assert p.can_see("620503")
    assert not p.can_see("620103001")
    assert not p.can_see("6201")  # the city is above the district the principal holds
    with pytest.raises(NotFound):
        ensure_in_scope(p, "110101")
    ensure_in_scope(p, "620502003004")


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()


@pytest.mark.postgres
async def test_region_filter_in_sql(stack: TestStack) -> None:
    engine = make_engine(stack.database_url("intake"), pool_size=1)
    household = sa.table("household_scope_probe", sa.column("id"), sa.column("region_code"))
    try:
        async with engine.connect() as conn:
            await conn.execute(
                sa.text(
                    "CREATE TEMP TABLE household_scope_probe (id text, region_code text)"
                    " ON COMMIT DROP"
                )
            )
            await conn.execute(
                sa.text("INSERT INTO household_scope_probe VALUES (:id, :region)"),
                [
                    {"id": "a", "region": "620102001001"},
                    {"id": "b", "region": "620103002001"},
                    {"id": "c", "region": "620502003004"},
                ],
            )

            async def visible(*regions: str) -> set[str]:
                p = Principal("u", frozenset({Role.AUDITOR}), regions)
                query = sa.select(household.c.id).where(region_filter(household.c.region_code, p))
                return set((await conn.execute(query)).scalars())

            assert await visible("620102") == {"a"}
            assert await visible("620102", "6205") == {"a", "c"}
            assert await visible("6201") == {"a", "b"}
            assert await visible() == set()
            await conn.rollback()
    finally:
        await engine.dispose()
