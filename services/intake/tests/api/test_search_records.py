"""A search's access record names every region whose rows it could show."""

from __future__ import annotations

import asyncio

import pytest

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _searches_by(
    stack: TestStack, reader: str, count: int
) -> list[access.PersonalDataAccessed]:
    for _ in range(60):
        decoded = [
            EventRegistry.default().decode(e) for e in await events(stack, "dibao.access.v1")
        ]
        mine = [
            r
            for r in decoded
            if isinstance(r, access.PersonalDataAccessed)
            and r.actor.subject == reader
            and r.action == access.ACCESS_ACTION_SEARCH
        ]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.2)
    return mine


async def test_a_search_over_several_regions_names_each_of_them(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A caller of two counties searching without a region filter could be shown either
    county's rows: the record names both (regions), so that "reads in the second county"
    finds it; region is still the first. With a filter that holds both, both again; with
    one inside a county, that filter alone."""
    reader = "searcher-two-counties"
    headers = intake.headers(Role.INTAKE_CLERK, ["620102", "620123"], subject=reader)
    for url in (
        "/households",
        "/applications",
        "/households?region=6201",
        "/households?region=620123101",
    ):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
    records = await _searches_by(intake_stack, reader, 4)
    # Each record has a key of its own (its access id), so the topic's order is not the
    # requests': compare by what each names.
    assert sorted((r.record_id, r.region.code, [c.code for c in r.regions]) for r in records) == [
        ("applications?", "620102000000", ["620102000000", "620123000000"]),
        ("households?", "620102000000", ["620102000000", "620123000000"]),
        ("households?region_prefix=6201", "620100000000", ["620102000000", "620123000000"]),
        ("households?region_prefix=620123101", "620123101000", ["620123101000"]),
    ]
