"""Audit's text parameters follow the kit's one rule for text (``dibao_common.text``, ADR
0005, 3 Dec 2026), as intake's free text does: no control character but a tab or a line
break, no direction embedding, override or isolate. A filter ``actor=clerk\\u202e7`` was
a search like any other (200), and the access record of the read kept it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from dibao_audit.main import create_app
from dibao_audit.testing import AuditDb, api_settings
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client
from dibao_common.text import TEXT_RULE

pytestmark = [pytest.mark.postgres]

FILTERS = ("household_id", "application_id", "case_id", "ce_type", "actor")
REFUSED = [
    "\u202e",  # right-to-left override: what follows shows reversed
    "\u2067",  # right-to-left isolate
    "\x1b",  # escape: a terminal's colour sequence
    "\x9b",  # C1 control sequence introducer
    "\x07",  # bell
]


@pytest_asyncio.fixture(loop_scope="session")
async def app(audit_db: AuditDb) -> FastAPI:
    return create_app(api_settings(audit_db), auth=make_auth_settings())


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with api_client(app) as client:
        yield client


async def _recorded(audit_db: AuditDb) -> int:
    """What the service has recorded: rows of its outbox (access records among them)."""
    async with audit_db.owner.connect() as conn:
        return int((await conn.scalar(sa.text("SELECT count(*) FROM outbox_message"))) or 0)


@pytest.mark.parametrize("character", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
async def test_a_text_filter_with_a_control_or_an_override_is_refused(
    client: AsyncClient, audit_db: AuditDb, token_factory: TokenFactory, character: str
) -> None:
    """Each text filter of the listing, and the timeline's household id, answered 200 (an
    empty page, recorded as a read) with such a character; now 422 at the parameter, the
    text not echoed, nothing recorded (a request refused by its parameters records none)."""
    headers = token_factory.bearer(roles=["auditor"], regions=["62"])
    before = await _recorded(audit_db)
    for name in FILTERS:
        value = f"clerk{character}7" if name != "ce_type" else f"dibao.intake{character}.v1"
        response = await client.get("/audit/entries", params={name: value}, headers=headers)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["pointer"] == f"/query/{name}", error
        assert error["code"] == "string_pattern_mismatch", error
        assert TEXT_RULE in error["detail"], error
        assert error["detail"].startswith("must not be empty"), error
        assert character not in response.text
    household = quote(f"hh{character}a", safe="")
    timeline = await client.get(f"/audit/households/{household}/timeline", headers=headers)
    assert timeline.status_code == 422, timeline.text
    assert timeline.headers["content-type"] == "application/problem+json"
    [error] = timeline.json()["errors"]
    assert error == {
        "pointer": "/path/household_id",
        "detail": f"must hold {TEXT_RULE}",
        "code": "string_pattern_mismatch",
    }
    assert await _recorded(audit_db) == before


async def test_a_tab_a_line_break_and_a_direction_mark_stay_a_search(
    client: AsyncClient, token_factory: TokenFactory
) -> None:
    """What free text may hold is searched for as any string is (an empty page here)."""
    headers = token_factory.bearer(roles=["auditor"], regions=["62"])
    for value in ("clerk\t7", "clerk\n7", "clerk\r\n7", "\u0626\u200f7"):
        response = await client.get("/audit/entries", params={"actor": value}, headers=headers)
        assert response.status_code == 200, (value, response.text)
        assert response.json()["items"] == []


def test_the_published_parameters_say_the_rule(app: FastAPI) -> None:
    """The OpenAPI document's patterns refuse what the service refuses, so that a client
    (or a fuzzer) knows before asking."""
    paths = app.openapi()["paths"]
    declared = {
        (path, p["name"]): p["schema"]
        for path in ("/audit/entries", "/audit/households/{household_id}/timeline")
        for p in paths[path]["get"]["parameters"]
        if p["name"] in (*FILTERS, "household_id")
    }
    assert len(declared) == 6
    for where, schema in declared.items():
        text = next(s for s in schema.get("anyOf", [schema]) if s["type"] == "string")
        assert re.search(text["pattern"], "dibao.intake.v1.HouseholdRegistered"), where
        for character in REFUSED:
            assert not re.search(text["pattern"], f"clerk{character}7"), (where, character)
