"""A stored idempotent answer sent again is a read of what it shows (ADR 0005, ADR 0010).

A retry with the same ``Idempotency-Key`` and body gets the first run's answer back
(``Idempotent-Replayed: true``) without the work running again. When that answer shows
personal data (a household as registered or changed, an application as submitted or
withdrawn, a document's description, a staff member and their relatives), sending it
again is a read: the caller is checked against their regions as they are now (their token
may no longer cover the record's), and the replay is recorded on ``dibao.access.v1`` with
action ``REPLAY``: who was sent it, when, the record, the persons and the fields the
answer shows. A caller whose regions no longer cover it gets the refusal the route gives
now (403 or 404), recorded DENIED as every refused read is.

What the answer shows is read from the stored answer itself (its region, record and the
people it names), so the record is of the answer sent; the people are named by keyed hash
from one indexed read of the household's members (or the township's roster), as any read
names them. Nothing else is read or run again.

A move in that named the household left (``leaves_household_id``, ADR 0016) changed that
household too, which the answer does not show: its replay checks the caller against that
household's region as well, as the first request did (403 region-out-of-scope naming it by
its masked reference alone, recorded DENIED as a refused read of it; ADR 0016, 3 Dec 2026,
helper hAX).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_common.crypto import mask_name
from dibao_common.errors import ProblemError
from dibao_intake.adapters import contracts
from dibao_intake.adapters.repositories import households as household_repo
from dibao_intake.adapters.repositories import people as people_repo
from dibao_intake.adapters.repositories import staff as staff_repo
from dibao_intake.domain.household import masked_household_ref
from dibao_intake.service_layer.access import (
    AccessTarget,
    RecordType,
    record_access,
    refused,
)
from dibao_intake.service_layer.households import household_left_out_of_scope
from dibao_intake.service_layer.runtime import Caller, Runtime


@dataclass(frozen=True, slots=True)
class ShownAgain:
    """What a stored answer shows, as its replay's access record names it.

    ``person_ids`` are the household's members the answer names (None: every member, as
    a read of an application or of a document about the whole household names them);
    ``staff_id`` names a roster entry and its relatives instead. ``refusal`` is what a
    caller whose regions no longer cover the region is answered."""

    region_code: str | None
    """None for an answer that does not say it (a document's): the household's is read."""
    record_type: RecordType
    record_id: str
    fields: tuple[str, ...]
    refusal: ProblemError
    household_id: uuid.UUID | None = None
    person_ids: Collection[uuid.UUID] | None = None
    staff_id: uuid.UUID | None = None
    household_left_id: uuid.UUID | None = None
    """The household a move in named as left (``from_household_id`` in its details): the
    change was recorded there too, so its region is checked as the first request's was."""


async def record_replay(
    session: AsyncSession, runtime: Runtime, caller: Caller, shown: ShownAgain
) -> None:
    """Check the caller against the answer's region as their token now stands, and record
    the answer sent again (action REPLAY); raise the refusal, recorded DENIED, otherwise."""
    region_code = shown.region_code
    if region_code is None:
        household = (
            await household_repo.get_household(session, shown.household_id)
            if shown.household_id is not None
            else None
        )
        # Households are never deleted: an answer naming one always finds it.
        assert household is not None
        region_code = household.region_code
    target = AccessTarget(
        shown.household_id,
        region_code,
        shown.record_type,
        shown.record_id,
        action=access.ACCESS_ACTION_REPLAY,
    )
    if not caller.principal.can_see(region_code):
        raise refused(shown.refusal, runtime, caller, target)
    if shown.household_left_id is not None:
        await _household_left_in_scope(session, runtime, caller, shown.household_left_id)
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=await _persons(session, runtime, shown, target),
        fields=shown.fields,
    )


async def _household_left_in_scope(
    session: AsyncSession, runtime: Runtime, caller: Caller, household_id: uuid.UUID
) -> None:
    """The household a transfer's move in left, within the caller's regions as they now
    stand and where it now is (an address_change may have moved it), else the first
    request's refusal: 403 naming it by its masked reference, recorded DENIED as a refused
    read of it (``households._household_left``)."""
    left = await household_repo.get_household(session, household_id)
    # Households are never deleted: the household a stored answer names is found.
    assert left is not None
    if caller.principal.can_see(left.region_code):
        return
    target = AccessTarget(
        household_id,
        left.region_code,
        access.RECORD_TYPE_HOUSEHOLD,
        str(household_id),
        action=access.ACCESS_ACTION_REPLAY,
    )
    ref = masked_household_ref(household_id, left.region_code)
    raise refused(household_left_out_of_scope(ref), runtime, caller, target)


async def _persons(
    session: AsyncSession, runtime: Runtime, shown: ShownAgain, target: AccessTarget
) -> list[common.PersonRef]:
    key_id = runtime.pii.hash_key_id
    if shown.staff_id is not None:
        # The entry alone (none when it is not on this township's roster).
        entry = await staff_repo.list_staff(session, target.region_code, staff_id=shown.staff_id)
        return contracts.roster_refs(entry, key_id)
    if shown.household_id is None:
        return []
    # One ref per person, who may have left and rejoined (one indexed statement).
    return [
        common.PersonRef(
            person_id=str(p.person_id),
            keyed_hash=p.id_hash,
            hash_key_id=key_id,
            masked_id=p.masked_id,
            masked_name=mask_name(p.name),
        )
        for p in await people_repo.members_named(session, shown.household_id, shown.person_ids)
    ]
