"""A list's cursor continues the query that gave it: the same list with the same filters
(the page size may change). One of another list or search is 400 invalid-cursor, in words,
and nothing is recorded on dibao.access.v1 (nothing was searched)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import pytest

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

VILLAGE = "620123105213"  # 甘草店镇好地岔村: this file's own
TOWNSHIP = VILLAGE[:9]
ANOTHER_LIST = "belongs to another list or search"


async def _records_of(stack: TestStack, reader: str) -> list[access.PersonalDataAccessed]:
    decoded = [EventRegistry.default().decode(e) for e in await events(stack, "dibao.access.v1")]
    return [
        r
        for r in decoded
        if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == reader
    ]


async def _settled_records(
    stack: TestStack, reader: str, count: int
) -> list[access.PersonalDataAccessed]:
    """The reader's records once ``count`` are published, and a second later (a refused
    request's would have been committed before the last granted one's, so published by
    then: the relay claims in outbox order)."""
    for _ in range(60):
        if len(await _records_of(stack, reader)) >= count:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    return await _records_of(stack, reader)


def _refused_as_foreign(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/invalid-cursor")
    assert ANOTHER_LIST in body["detail"], body
    assert "without cursor" in body["detail"], body


async def test_a_cursor_continues_only_the_list_and_filters_that_gave_it(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A households cursor on /applications, an applications cursor on /households, or on
    a search with another status, region, kind or day: each was the last row's id alone,
    so it was taken and paged another query from some row of its own. Now 400, with what
    to do; the same query with another limit goes on where the page left off."""
    # The file's village keeps the rows of an earlier run in the session: its applications
    # follow this run's (read as another reviewer: the records below are this run's).
    earlier_search = await intake.http.get(
        "/applications",
        params={"region": VILLAGE, "status": "submitted", "limit": 200},
        headers=intake.headers(Role.TOWNSHIP_REVIEWER, [TOWNSHIP], subject=f"r-{uuid.uuid4()}"),
    )
    earlier = [i["id"] for i in earlier_search.json()["items"]]
    households = [await intake.register(intake.plan(VILLAGE)) for _ in range(3)]
    applications = [
        (await intake.submit(await intake.complete_application_body(h))).json()["id"]
        for h in households
    ]
    reader = f"cursor-reader-{uuid.uuid4()}"
    headers = intake.headers(Role.TOWNSHIP_REVIEWER, [TOWNSHIP], subject=reader)

    async def get(path: str, params: dict[str, Any]) -> Any:
        return await intake.http.get(path, params=params, headers=headers)

    listed = await get("/households", {"region": VILLAGE, "limit": 1})
    assert listed.status_code == 200, listed.text
    households_cursor = listed.json()["next_cursor"]
    assert households_cursor is not None
    searched = await get("/applications", {"region": VILLAGE, "status": "submitted", "limit": 1})
    assert searched.status_code == 200, searched.text
    assert [i["id"] for i in searched.json()["items"]] == [applications[-1]]
    cursor = searched.json()["next_cursor"]
    assert cursor is not None
    # Opaque and URL-safe.
    assert all(c.isalnum() or c in "-_" for c in cursor), cursor

    # Another list.
    _refused_as_foreign(
        await get("/applications", {"region": VILLAGE, "cursor": households_cursor})
    )
    _refused_as_foreign(await get("/households", {"region": VILLAGE, "cursor": cursor}))
    # The same list with other filters: status left out or changed, region, kind, days.
    same = {"region": VILLAGE, "status": "submitted"}
    for changed in (
        {"region": VILLAGE},
        {"region": VILLAGE, "status": "returned"},
        {"region": TOWNSHIP, "status": "submitted"},
        same | {"kind": "dibao"},
        same | {"submitted_from": "2026-03-01"},
        same | {"submitted_to": "2026-03-31"},
        same | {"household_id": households[0].id},
    ):
        _refused_as_foreign(await get("/applications", changed | {"cursor": cursor}))

    # The same query goes on, its page size changed or not.
    wider = await get("/applications", same | {"limit": 200, "cursor": cursor})
    assert wider.status_code == 200, wider.text
    assert [i["id"] for i in wider.json()["items"]] == applications[-2::-1] + earlier
    assert wider.json()["next_cursor"] is None
    again = await get("/applications", same | {"limit": 1, "cursor": cursor})
    assert [i["id"] for i in again.json()["items"]] == [applications[-2]]
    # Parameters in another order are the same query.
    reordered = await intake.http.get(
        f"/applications?status=submitted&cursor={cursor}&region={VILLAGE}", headers=headers
    )
    assert [i["id"] for i in reordered.json()["items"]] == applications[-2::-1] + earlier
    more = await get("/households", {"region": VILLAGE, "limit": 2, "cursor": households_cursor})
    assert more.status_code == 200, more.text

    # Granted: the two first pages, the three continued searches and the households page.
    records = await _settled_records(intake_stack, reader, 6)
    assert len(records) == 6, [r.record_id for r in records]
    assert {r.outcome for r in records} == {access.ACCESS_OUTCOME_GRANTED}
    # A continued page's record names its cursor, as it did.
    assert sorted(r.record_id for r in records if "cursor=" in r.record_id) == sorted(
        [f"applications?region_prefix={VILLAGE}&status=submitted&cursor={cursor}"] * 3
        + [f"households?region_prefix={VILLAGE}&cursor={households_cursor}"]
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_an_altered_or_made_up_cursor_is_refused_and_not_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A cursor with one character changed, cut short or made longer, the bare row id a
    cursor used to be, or text that is no cursor: 400 invalid-cursor, nothing recorded."""
    for _ in range(2):
        await intake.register(intake.plan(VILLAGE))
    reader = f"cursor-tamperer-{uuid.uuid4()}"
    headers = intake.headers(Role.AUDITOR, [TOWNSHIP], subject=reader)
    params: dict[str, str | int] = {"region": VILLAGE, "limit": 1}
    first = await intake.http.get("/households", params=params, headers=headers)
    cursor = first.json()["next_cursor"]
    last_id = uuid.UUID(first.json()["items"][0]["id"])
    flipped = [
        cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1 :]
        for i in (*range(0, len(cursor), 7), len(cursor) - 1)
    ]
    for bad in (
        *flipped,
        cursor[:-1],
        cursor + "A",
        _b64(last_id.bytes),  # the cursor before it was bound to its query
        _b64(uuid.uuid4().bytes + bytes(8)),
        "!!",
        "a\x00b",
        cursor.replace(cursor[3], "+"),
    ):
        response = await intake.http.get(
            "/households", params=params | {"cursor": bad}, headers=headers
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["type"].endswith("/invalid-cursor"), bad
    good = await intake.http.get("/households", params=params | {"cursor": cursor}, headers=headers)
    assert good.status_code == 200, good.text
    records = await _settled_records(intake_stack, reader, 2)
    assert len(records) == 2, [r.record_id for r in records]
    assert {r.outcome for r in records} == {access.ACCESS_OUTCOME_GRANTED}
