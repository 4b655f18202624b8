"""A small app with role- and region-guarded routes, built with the kit's ``build_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from httpx import AsyncClient

from dibao_common.app import build_app
from dibao_common.auth import (
    AuthSettings,
    CurrentPrincipal,
    Principal,
    Role,
    ensure_in_scope,
    require_roles,
)
from dibao_common.clock import FrozenClock
from dibao_common.errors import NotFound, problem_responses
from dibao_common.settings import CommonSettings
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

# The households this app knows, with their village codes.
HOUSEHOLDS = {"h-lanzhou": "620102001001", "h-tianshui": "620502003004"}
ABSENT = "no household with this id"

router = APIRouter()


@router.get("/whoami", responses=problem_responses(401))
async def whoami(principal: CurrentPrincipal) -> dict[str, object]:
    return {
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "regions": list(principal.regions),
    }


@router.get("/households/{household_id}", responses=problem_responses(401, 403, 404))
async def get_household(
    household_id: str,
    principal: Annotated[Principal, Depends(require_roles(Role.INTAKE_CLERK, Role.INVESTIGATOR))],
) -> dict[str, str]:
    region = HOUSEHOLDS.get(household_id)
    if region is None:
        raise NotFound(ABSENT)
    ensure_in_scope(principal, region, ABSENT)
    return {"id": household_id, "region_code": region}


def auth_app(auth: AuthSettings, clock: FrozenClock | None = None) -> FastAPI:
    settings = CommonSettings(
        service_name="kit-auth",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
    )
    return build_app(
        settings, title="kit auth", description="test app", routers=[router], auth=auth, clock=clock
    )


AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@pytest.fixture
def frozen() -> FrozenClock:
    return FrozenClock(AT)


@pytest.fixture
def tokens(frozen: FrozenClock) -> TokenFactory:
    """Tokens issued at the frozen clock's time."""
    return TokenFactory(now=frozen.now)


@pytest.fixture
async def client(auth_settings: AuthSettings, frozen: FrozenClock) -> AsyncIterator[AsyncClient]:
    async with api_client(auth_app(auth_settings, frozen)) as c:
        yield c
