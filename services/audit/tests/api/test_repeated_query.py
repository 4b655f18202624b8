"""Audit's routes refuse a query parameter of one value given twice, by the kit's rule
every kit-built app follows (ADR 0005, 3 Dec 2026): a listing of entries by
``household_id=A&household_id=B`` listed B's alone, and was recorded so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fastapi import FastAPI
from httpx import AsyncClient

from dibao_audit.main import create_app
from dibao_audit.testing import AuditDb, api_settings
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]


@pytest_asyncio.fixture(loop_scope="session")
async def app(audit_db: AuditDb) -> FastAPI:
    return create_app(api_settings(audit_db), auth=make_auth_settings())


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with api_client(app) as client:
        yield client


@pytest.mark.parametrize(
    ("query", "name"),
    [
        (f"household_id={uuid.UUID(int=1)}&household_id={uuid.UUID(int=2)}", "household_id"),
        ("limit=1&limit=500", "limit"),
        ("ce_type=a&actor=x&ce_type=b", "ce_type"),
    ],
)
async def test_an_entry_listing_with_a_filter_given_twice_is_refused(
    client: AsyncClient, token_factory: TokenFactory, query: str, name: str
) -> None:
    headers = token_factory.bearer(roles=["auditor"], regions=["62"])
    response = await client.get(f"/audit/entries?{query}", headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "pointer": f"/query/{name}",
            "detail": "given more than once: this parameter takes one value",
            "code": "repeated_parameter",
        }
    ]
    once = await client.get("/audit/entries?limit=1", headers=headers)
    assert once.status_code == 200, once.text
