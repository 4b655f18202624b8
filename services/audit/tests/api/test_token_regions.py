"""A token naming a region under which the log holds no entry (ADR 0004, 3 Dec 2026).

Audit has no division table: the kit checks a region's form, and the log knows every
region in which anything was recorded. It cannot tell a mistyped code from a division where
nothing has been recorded yet, so it does not refuse the token (a fresh log, or an auditor
waiting for a county's first event, would be refused too); the listing says which of the
token's regions the log names nothing under (``regions_without_entries``), so that an
auditor of ``6201`` and a mistyped ``620199`` is not left reading Lanzhou's entries as all
there is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from httpx import AsyncClient

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.main import create_app
from dibao_audit.testing import AuditDb, api_settings, recorded_event
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]

VILLAGE = "620102001001"
"""Chengguan's: every household entry of the log is of this village."""
SEARCHED = "620104000000"
"""Anning, named only by a search's other regions."""
MISTYPED = "620199"
"""No county of Lanzhou, nor any region the log names."""


def _withdrawn(i: int) -> intake_pb2.ApplicationWithdrawn:
    return intake_pb2.ApplicationWithdrawn(
        household_id="hh-a",
        region=types_pb2.RegionCode(code=VILLAGE),
        application_id=f"app-{i}",
    )


def _search() -> access_pb2.PersonalDataAccessed:
    return access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code="620102000000"),
        regions=[types_pb2.RegionCode(code=c) for c in ("620102000000", SEARCHED)],
        actor=types_pb2.Actor(subject="clerk-of-two"),
        service="intake",
        record_type=access_pb2.RECORD_TYPE_LIST,
        record_id="households?page=1",
        operation="GET /households",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(audit_db: AuditDb) -> AsyncIterator[AsyncClient]:
    app = create_app(api_settings(audit_db, audit_checkpoint_every=2), auth=make_auth_settings())
    events = [recorded_event(_withdrawn(i), offset=i, key="hh-a") for i in range(3)]
    events.append(recorded_event(_search(), offset=3, key=""))
    async with api_client(app) as client:
        await app.state.audit.appender.append(events)
        yield client


async def _listing(client: AsyncClient, tokens: TokenFactory, regions: list[str]) -> Any:
    headers = tokens.bearer(roles=["auditor"], regions=regions)
    response = await client.get("/audit/entries", headers=headers)
    assert response.status_code == 200, (regions, response.text)
    return response.json()


async def test_a_listing_says_which_token_regions_the_log_never_named(
    client: AsyncClient, token_factory: TokenFactory
) -> None:
    good = await _listing(client, token_factory, ["6201"])
    assert good["regions_without_entries"] == []
    for regions in ([MISTYPED], ["6201", MISTYPED], ["62", "11"], ["26"]):
        page = await _listing(client, token_factory, regions)
        unknown = [r for r in regions if not VILLAGE.startswith(r)]
        assert page["regions_without_entries"] == unknown, regions
        # Not refused: the entries are those of the regions the log names, as before.
        known = [r for r in regions if VILLAGE.startswith(r)]
        assert page["items"] == (await _listing(client, token_factory, known))["items"]


async def test_every_level_the_log_names_is_known_a_search_s_other_regions_too(
    client: AsyncClient, token_factory: TokenFactory
) -> None:
    for region in ("62", "6201", "620102", "620102001", VILLAGE, "620104"):
        page = await _listing(client, token_factory, [region])
        assert page["regions_without_entries"] == [], region
    # A padded code names no division below it: no village of Anning is named.
    page = await _listing(client, token_factory, ["620104001"])
    assert page["regions_without_entries"] == ["620104001"]


async def test_a_region_is_known_once_the_log_names_it(
    audit_db: AuditDb, token_factory: TokenFactory
) -> None:
    """Not remembered while unnamed: the first entry of the region is seen at once."""
    app = create_app(api_settings(audit_db), auth=make_auth_settings())
    async with api_client(app) as client:
        page = await _listing(client, token_factory, ["620102"])
        assert page == {"items": [], "next_cursor": None, "regions_without_entries": ["620102"]}
        await app.state.audit.appender.append([recorded_event(_withdrawn(0), offset=0, key="hh")])
        page = await _listing(client, token_factory, ["620102"])
        assert page["regions_without_entries"] == []
        assert len(page["items"]) == 1
