"""The people a stored answer names, as an access record names them (a replay's record)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.db import DriverStatement, driver_connection


@dataclass(frozen=True, slots=True)
class PersonNamed:
    person_id: uuid.UUID
    id_hash: str
    masked_id: str
    name: str


_MEMBERS = DriverStatement(
    """
SELECT DISTINCT p.id, p.id_hash, p.masked_id, p.name
FROM household_member hm JOIN person p ON p.id = hm.person_id
WHERE hm.household_id = :household_id
  AND (CAST(:person_ids AS uuid[]) IS NULL OR p.id = ANY(CAST(:person_ids AS uuid[])))
ORDER BY p.id
"""
)


async def members_named(
    session: AsyncSession, household_id: uuid.UUID, person_ids: Collection[uuid.UUID] | None
) -> list[PersonNamed]:
    """The household's members (ever) among ``person_ids`` (all of them for None), each
    once: one statement straight on the driver."""
    rows = await _MEMBERS.fetch(
        await driver_connection(session),
        {
            "household_id": household_id,
            "person_ids": list(person_ids) if person_ids is not None else None,
        },
    )
    return [PersonNamed(r[0], r[1], r[2], r[3]) for r in rows]
