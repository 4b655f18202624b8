"""Every answer of a kit-built app carries the security headers of a JSON API that
handles personal data: no cache keeps it, no browser sniffs or frames it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter
from httpx import AsyncClient, Response
from starlette.responses import Response as StarletteResponse

from dibao_common.app import build_app
from dibao_common.errors import NotFound
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

router = APIRouter()


@router.get("/households/{household_id}")
async def household(household_id: str) -> dict[str, str]:
    if household_id != "h-1":
        raise NotFound("No such record, or not in your regions")
    return {"id": household_id, "name": "马建国", "id_number": "620102198001011230"}


@router.post("/households", status_code=201)
async def register(body: dict[str, str]) -> dict[str, str]:
    return body


@router.get("/crash")
async def crash() -> dict[str, str]:
    raise RuntimeError("boom")


@router.get("/download")
async def download() -> StarletteResponse:
    # A route that chose its own caching (a document's content) keeps its choice.
    return StarletteResponse(
        b"%PDF-1.4", media_type="application/pdf", headers={"Cache-Control": "private, no-store"}
    )


EXPECTED = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    settings = CommonSettings(
        service_name="kit-headers",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        max_request_body_bytes=1024,
        **common_secret_values(),
    )
    app = build_app(settings, title="kit headers", description="test app", routers=[router])
    async with api_client(app) as c:
        yield c


def _secured(response: Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (response.status_code, name)
    assert "access-control-allow-origin" not in response.headers
    assert "server" not in response.headers


async def test_every_answer_carries_the_security_headers(client: AsyncClient) -> None:
    """A household's JSON, its 404, a 413 of the body limit, a 500, a 405, an unknown
    route, a validation problem and the operations endpoints: before 3 Dec 2026 none had
    Cache-Control or nosniff, so a shared proxy could keep a household's answer."""
    answers = [
        (200, await client.get("/households/h-1")),
        (404, await client.get("/households/h-2")),
        (413, await client.post("/households", json={"a": "x" * 2000})),
        (500, await client.get("/crash")),
        (405, await client.delete("/households/h-1")),
        (422, await client.post("/households", json=[1])),
        (404, await client.get("/nowhere")),
        (200, await client.get("/healthz")),
        (200, await client.get("/openapi.json")),
        (200, await client.get("/docs")),
        (200, await client.get("/metrics")),
    ]
    for status, response in answers:
        assert response.status_code == status, response.text
        _secured(response)


async def test_a_route_that_sets_its_own_cache_control_keeps_it(client: AsyncClient) -> None:
    response = await client.get("/download")
    assert response.headers.get_list("cache-control") == ["private, no-store"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_no_cors_answer_to_another_origin(client: AsyncClient) -> None:
    """No CORS is configured: a browser page of another origin gets no permission to read
    an answer, and a preflight is not allowed."""
    asked = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    preflight = await client.options("/households/h-1", headers=asked)
    assert preflight.status_code == 405
    simple = await client.get("/households/h-1", headers={"Origin": "https://evil.example"})
    assert not [h for h in simple.headers if h.startswith("access-control-")]
