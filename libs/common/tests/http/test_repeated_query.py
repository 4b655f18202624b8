"""A query parameter of one value given twice is refused, on every route of a kit-built
app; one declared as a list takes repeats (ADR 0005, 3 Dec 2026)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from httpx import AsyncClient
from pydantic import BaseModel

from dibao_common.app import build_app
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client


class Purpose(StrEnum):
    REVIEW = "review"
    AUDIT = "audit"


async def noted(note: Annotated[str, Query(max_length=20)] = "") -> str:
    return note


class Window(BaseModel):
    since: int = 0
    kinds: list[str] = []


router = APIRouter()


@router.get("/persons/{person_id}/identity")
async def identity(
    person_id: int, purpose: Purpose, note: Annotated[str, Depends(noted)]
) -> dict[str, Any]:
    return {"purpose": purpose, "note": note}


@router.get("/search")
async def search(
    limit: int = 10,
    region: Annotated[str | None, Query(alias="region-code")] = None,
    tags: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    return {"limit": limit, "region": region, "tags": tags}


@router.get("/window")
async def window(query: Annotated[Window, Query()]) -> dict[str, Any]:
    return query.model_dump()


def _app() -> FastAPI:
    # Nothing here reaches the database or the broker; the URLs are never dialled.
    settings = CommonSettings(
        service_name="kit-query",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
    )
    return build_app(settings, title="kit query", description="test app", routers=[router])


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with api_client(_app()) as c:
        yield c


def _refused(response: Any, *names: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://dibao.gov.cn/problems/validation-failed"
    assert body["errors"] == [
        {
            "pointer": f"/query/{name}",
            "detail": "given more than once: this parameter takes one value",
            "code": "repeated_parameter",
        }
        for name in names
    ]


async def test_a_repeated_parameter_of_one_value_is_refused(client: AsyncClient) -> None:
    """``?purpose=review&purpose=audit`` was read as audit (the last), and recorded so;
    the first value, or both, may have been meant. Now 422 naming it, as a dependency's
    parameter (note), an aliased one (region-code) and a query model's field are."""
    once = await client.get("/persons/7/identity?purpose=review&note=x")
    assert once.status_code == 200, once.text
    assert once.json() == {"purpose": "review", "note": "x"}
    _refused(await client.get("/persons/7/identity?purpose=review&purpose=audit"), "purpose")
    _refused(await client.get("/persons/7/identity?purpose=audit&note=a&note=b"), "note")
    _refused(
        await client.get("/search?limit=5&region-code=62&limit=50&region-code=11"),
        "limit",
        "region-code",
    )
    _refused(await client.get("/search?limit=5&limit=5"), "limit")  # the same value too
    _refused(await client.get("/window?since=1&since=2"), "since")


async def test_a_list_parameter_takes_repeats_and_unknown_ones_are_let_be(
    client: AsyncClient,
) -> None:
    listed = await client.get("/search?tags=a&tags=b&limit=3")
    assert listed.json() == {"limit": 3, "region": None, "tags": ["a", "b"]}
    window = await client.get("/window?kinds=a&kinds=b")
    assert window.json() == {"since": 0, "kinds": ["a", "b"]}
    # A parameter no route declares is ignored, repeated or not, as FastAPI ignores it.
    assert (await client.get("/search?utm=a&utm=b")).status_code == 200
    assert (await client.get("/healthz?x=1&x=2")).status_code == 200
