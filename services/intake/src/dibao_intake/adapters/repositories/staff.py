"""SQL for the staff roster: staff, their relatives, the responsible caseworkers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_intake.adapters.records import StaffRecord, StaffRelativeRecord
from dibao_intake.domain.codes import StaffRole
from dibao_intake.models import StaffMember, StaffRelative, table_of

staff_t = table_of(StaffMember)
relative_t = table_of(StaffRelative)


@dataclass(frozen=True, slots=True)
class NewRelative:
    id: uuid.UUID
    relation: str
    name: str
    id_hash: str
    id_number_cipher: bytes
    masked_id: str


@dataclass(frozen=True, slots=True)
class NewStaff:
    id: uuid.UUID
    township_code: str
    name: str
    role: StaffRole
    subject: str | None
    responsible_caseworker: bool
    id_hash: str | None
    id_number_cipher: bytes | None
    masked_id: str | None
    relatives: Sequence[NewRelative]


CASEWORKER_INDEX = "uq_staff_member_responsible_caseworker"
"""The index that keeps one active responsible caseworker per township."""

CASEWORKER_ELSEWHERE_INDEXES = (
    "uq_staff_member_caseworker_subject",
    "uq_staff_member_caseworker_id_hash",
)
"""The indexes that keep one person the responsible caseworker of one township."""


ROSTER_LOCK = (0x726F7374, 0)
"""The staff roster's advisory lock (``b"rost"``, key 0; the two-key form, apart from the
one-key locks of idempotency keys and the content locks of ``b"docs"``): a submission's
write takes it shared (migration 0021's trigger ``application_roster_current``, which
names the same numbers), a roster change exclusive (``lock_roster``)."""

_LOCK_ROSTER = sa.text(
    "SELECT pg_advisory_xact_lock(CAST(:lock_class AS integer), CAST(:lock_key AS integer))"
)


async def lock_roster(session: AsyncSession) -> None:
    """Hold the roster's lock, exclusive, until the transaction ends (ADR 0009, 3 Dec
    2026). A roster change takes it before it reads the clock: it waits for submissions
    being written (they hold it shared), and those that come to their write after it wait
    for its commit, then find the roster's version moved and are refused (409). So no
    application is accepted from a roster that a change committed before it, nor with a
    time after the change's while still made from the roster before it."""
    lock_class, lock_key = ROSTER_LOCK
    await session.execute(_LOCK_ROSTER, {"lock_class": lock_class, "lock_key": lock_key})


async def responsible_elsewhere(
    session: AsyncSession, township_code: str, subject: str, id_hash: str | None
) -> str | None:
    """The other township whose active responsible caseworker is this person (by token
    subject or ID number), if any."""
    same_person = staff_t.c.subject == subject
    if id_hash is not None:
        same_person = sa.or_(same_person, staff_t.c.id_hash == id_hash)
    found: str | None = await session.scalar(
        sa.select(staff_t.c.township_code)
        .where(
            staff_t.c.responsible_caseworker,
            staff_t.c.active,
            staff_t.c.township_code != township_code,
            same_person,
        )
        .order_by(staff_t.c.township_code)
        .limit(1)
    )
    return found


async def insert_staff(
    session: AsyncSession, staff: NewStaff, *, created_by: str, at: datetime
) -> uuid.UUID | None:
    """Insert a roster entry; the id of the responsible caseworker it replaces, if any."""
    replaced = None
    if staff.responsible_caseworker:
        # One responsible caseworker per township: the new one takes over.
        replaced = (
            await session.execute(
                sa.update(staff_t)
                .where(
                    staff_t.c.township_code == staff.township_code,
                    staff_t.c.responsible_caseworker,
                    staff_t.c.active,
                )
                .values(responsible_caseworker=False)
                .returning(staff_t.c.id)
            )
        ).scalar_one_or_none()
    await session.execute(
        sa.insert(staff_t).values(
            id=staff.id,
            township_code=staff.township_code,
            name=staff.name,
            role=staff.role.value,
            subject=staff.subject,
            responsible_caseworker=staff.responsible_caseworker,
            id_hash=staff.id_hash,
            id_number_cipher=staff.id_number_cipher,
            masked_id=staff.masked_id,
            active=True,
            created_at=at,
            created_by=created_by,
        )
    )
    if staff.relatives:
        await session.execute(
            sa.insert(relative_t),
            [
                {
                    "id": r.id,
                    "staff_id": staff.id,
                    "relation": r.relation,
                    "name": r.name,
                    "id_hash": r.id_hash,
                    "id_number_cipher": r.id_number_cipher,
                    "masked_id": r.masked_id,
                }
                for r in staff.relatives
            ],
        )
    return replaced


_STAFF_COLUMNS = (
    staff_t.c.id,
    staff_t.c.township_code,
    staff_t.c.name,
    staff_t.c.role,
    staff_t.c.subject,
    staff_t.c.responsible_caseworker,
    staff_t.c.masked_id,
    staff_t.c.active,
    staff_t.c.created_at,
    staff_t.c.id_hash,
    staff_t.c.deactivated_at,
    staff_t.c.deactivated_by,
)


async def list_staff(
    session: AsyncSession, township_code: str, *, staff_id: uuid.UUID | None = None
) -> list[StaffRecord]:
    """The township's roster with each entry's relatives; with ``staff_id``, that entry
    alone (none when it is on another township's roster)."""
    where = [staff_t.c.township_code == township_code]
    if staff_id is not None:
        where.append(staff_t.c.id == staff_id)
    staff_rows = (
        await session.execute(
            sa.select(*_STAFF_COLUMNS)
            .where(*where)
            .order_by(staff_t.c.active.desc(), staff_t.c.created_at, staff_t.c.id)
        )
    ).all()
    ids = [r[0] for r in staff_rows]
    relatives: dict[uuid.UUID, list[StaffRelativeRecord]] = {i: [] for i in ids}
    if ids:
        for r in await session.execute(
            sa.select(
                relative_t.c.staff_id,
                relative_t.c.id,
                relative_t.c.relation,
                relative_t.c.name,
                relative_t.c.masked_id,
                relative_t.c.id_hash,
            )
            .where(relative_t.c.staff_id.in_(ids))
            .order_by(relative_t.c.id)
        ):
            relatives[r[0]].append(StaffRelativeRecord(r[1], r[2], r[3], r[4], r[5]))
    return [
        StaffRecord(
            id=r[0],
            township_code=r[1],
            name=r[2],
            role=StaffRole(r[3]),
            subject=r[4],
            responsible_caseworker=r[5],
            masked_id=r[6],
            active=r[7],
            created_at=r[8],
            relatives=tuple(relatives[r[0]]),
            id_hash=r[9],
            deactivated_at=r[10],
            deactivated_by=r[11],
        )
        for r in staff_rows
    ]


async def get_staff(
    session: AsyncSession, staff_id: uuid.UUID, *, for_update: bool = False
) -> StaffRecord | None:
    """A roster entry (without its relatives); ``for_update``: locked until the
    transaction ends."""
    statement = sa.select(*_STAFF_COLUMNS).where(staff_t.c.id == staff_id)
    if for_update:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    return StaffRecord(
        id=row[0],
        township_code=row[1],
        name=row[2],
        role=StaffRole(row[3]),
        subject=row[4],
        responsible_caseworker=row[5],
        masked_id=row[6],
        active=row[7],
        created_at=row[8],
        relatives=(),
        id_hash=row[9],
        deactivated_at=row[10],
        deactivated_by=row[11],
    )


async def deactivate_staff(
    session: AsyncSession, staff_id: uuid.UUID, *, by: str, at: datetime
) -> bool:
    """Take an active member off the roster, recording who and when; a member already
    off it keeps the record of their deactivation (False: nothing changed)."""
    result = await session.execute(
        sa.update(staff_t)
        .where(staff_t.c.id == staff_id, staff_t.c.active)
        .values(active=False, responsible_caseworker=False, deactivated_at=at, deactivated_by=by)
        .returning(staff_t.c.id)
    )
    return result.scalar_one_or_none() is not None
