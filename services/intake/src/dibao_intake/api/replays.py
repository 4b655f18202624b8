"""What each keyed route's stored answer shows, read from the answer as it is sent again
(``service_layer.replays``): its region, its record and the people it names.

Only the fields needed are read (``json.loads``, no model validation): a replay costs one
parse of a few kilobytes, one indexed read of the people and the access record's insert.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dibao.access.v1 import events_pb2 as access
from dibao_common.errors import NotFound, ProblemError
from dibao_intake.service_layer.applications import application_fields
from dibao_intake.service_layer.households import ACCOUNT_FIELDS, HOUSEHOLD_FIELDS
from dibao_intake.service_layer.replays import ShownAgain, record_replay
from dibao_intake.service_layer.runtime import NOT_FOUND, Caller, Runtime, region_out_of_scope
from dibao_intake.service_layer.staff import ROSTER_FIELDS
from dibao_intake.service_layer.views import View

Replay = Callable[[AsyncSession, bytes], Awaitable[None]]
"""Checks the caller and records a stored answer (its body given) sent again."""


def replay(runtime: Runtime, caller: Caller, shown_of: Callable[[bytes], ShownAgain]) -> Replay:
    """The replay check of a route whose answer ``shown_of`` reads."""

    async def check(session: AsyncSession, body: bytes) -> None:
        await record_replay(session, runtime, caller, shown_of(body))

    return check


def _household(
    answer: dict[str, Any],
    refusal: ProblemError | None = None,
    household_left_id: uuid.UUID | None = None,
) -> ShownAgain:
    # The routes that answer a household are the clerk's, a case role: the case view.
    household_id = uuid.UUID(answer["id"])
    region_code = answer["region_code"]
    return ShownAgain(
        region_code=region_code,
        record_type=access.RECORD_TYPE_HOUSEHOLD,
        record_id=str(household_id),
        fields=HOUSEHOLD_FIELDS + (ACCOUNT_FIELDS if answer["bank_account"] else ()),
        refusal=refusal if refusal is not None else region_out_of_scope(region_code),
        household_id=household_id,
        person_ids={uuid.UUID(m["person_id"]) for m in answer["members"]},
        household_left_id=household_left_id,
    )


def registered(body: bytes) -> ShownAgain:
    """POST /households: the household as registered (a clerk no longer of its region is
    answered as a registration there would be, 403 region-out-of-scope)."""
    return _household(json.loads(body))


def changed(body: bytes) -> ShownAgain:
    """POST /households/{id}/changes: the household after the change (404 out of scope);
    a move in that named the household left (its details' ``from_household_id``, set only
    then) re-checks that household's region too (403, as the first request)."""
    answer = json.loads(body)
    household = answer["household"]
    change_id = answer["change_id"]
    recorded = next((c for c in household["changes"] if c["id"] == change_id), None)
    left = None if recorded is None else recorded["details"].get("from_household_id")
    return _household(household, NotFound(NOT_FOUND), None if left is None else uuid.UUID(left))


def application(body: bytes) -> ShownAgain:
    """POST /applications and its withdrawal: the application, recorded as its read is
    (every member of the household named)."""
    answer = json.loads(body)
    return ShownAgain(
        region_code=answer["region_code"],
        record_type=access.RECORD_TYPE_APPLICATION,
        record_id=answer["id"],
        fields=application_fields(View(answer["view"]), with_account=bool(answer["bank_account"])),
        refusal=NotFound(NOT_FOUND),
        household_id=uuid.UUID(answer["household_id"]),
    )


def document(body: bytes) -> ShownAgain:
    """POST /documents: the document's description (its type tells about the person)."""
    answer = json.loads(body)
    person_id = answer["person_id"]
    return ShownAgain(
        region_code=None,
        record_type=access.RECORD_TYPE_DOCUMENT,
        record_id=answer["id"],
        fields=(f"document:{answer['document_type']}",),
        refusal=NotFound(NOT_FOUND),
        household_id=uuid.UUID(answer["household_id"]),
        person_ids={uuid.UUID(person_id)} if person_id else None,
    )


def staff_added(body: bytes) -> ShownAgain:
    """POST /townships/{code}/staff: the staff member and their relatives, masked."""
    answer = json.loads(body)
    township = answer["township_code"]
    return ShownAgain(
        region_code=township,
        record_type=access.RECORD_TYPE_OTHER,
        record_id=f"staff:{answer['id']}",
        fields=ROSTER_FIELDS,
        refusal=region_out_of_scope(township),
        staff_id=uuid.UUID(answer["id"]),
    )
