"""SQL for persons, households, memberships, bank accounts and household changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.auth import Principal
from dibao_common.db import DriverStatement
from dibao_common.db.held import holding, write
from dibao_intake.adapters.records import (
    BankAccountRecord,
    ChangeRecord,
    HouseholdAggregate,
    HouseholdRecord,
    HouseholdSummary,
    MemberRecord,
)
from dibao_intake.adapters.repositories.lists import newest_first
from dibao_intake.domain.changes import MemberDetails
from dibao_intake.domain.codes import (
    AreaType,
    ChangeKind,
    DisabilityGrade,
    EmploymentStatus,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    MarriageAgeBasis,
    Relationship,
    Sex,
)
from dibao_intake.models import (
    BankAccount,
    Household,
    HouseholdChange,
    HouseholdMember,
    Person,
    table_of,
)

person_t = table_of(Person)
household_t = table_of(Household)
member_t = table_of(HouseholdMember)
account_t = table_of(BankAccount)
change_t = table_of(HouseholdChange)


@dataclass(frozen=True, slots=True)
class NewPerson:
    id: uuid.UUID
    id_hash: str
    hash_key_id: str
    id_number_cipher: bytes
    masked_id: str
    name: str
    birth_date: date
    sex: Sex


@dataclass(frozen=True, slots=True)
class NewMembership:
    id: uuid.UUID
    person_id: uuid.UUID
    relationship: Relationship
    disability_grade: DisabilityGrade
    seriously_ill: bool
    employment_status: EmploymentStatus
    student: bool
    counted: bool
    exclusion_reason: ExclusionReason | None
    exclusion_note: str | None
    joined_on: date
    marriage_age_basis: MarriageAgeBasis | None = None


@dataclass(frozen=True, slots=True)
class PastMembership:
    """A membership, active or ended, of a person (what the person's history says: the
    one-household rule, deaths, when they left)."""

    id_hash: str
    household_id: uuid.UUID
    region_code: str
    active: bool
    left_on: date | None
    left_reason: LeaveReason | None


async def search_households(
    session: AsyncSession,
    principal: Principal,
    *,
    region_prefix: str | None,
    status: HouseholdStatus | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> list[HouseholdSummary]:
    """Newest first, within the principal's regions; ``limit`` rows after ``after_id``."""
    active_members = (
        sa.select(sa.func.count())
        .select_from(member_t)
        .where(member_t.c.household_id == household_t.c.id, member_t.c.active)
        .scalar_subquery()
    )
    statement = sa.select(
        household_t.c.id,
        household_t.c.region_code,
        household_t.c.area_type,
        household_t.c.status,
        household_t.c.head_person_id,
        person_t.c.name,
        active_members,
        household_t.c.created_at,
        household_t.c.updated_at,
        person_t.c.id_hash,
        person_t.c.masked_id,
    ).select_from(household_t.outerjoin(person_t, person_t.c.id == household_t.c.head_person_id))
    statement = newest_first(
        statement,
        household_t,
        principal,
        region_prefix=region_prefix,
        after_id=after_id,
        limit=limit,
    )
    if status is not None:
        statement = statement.where(household_t.c.status == status.value)
    rows = await session.execute(statement)
    return [
        HouseholdSummary(
            id=r[0],
            region_code=r[1],
            area_type=AreaType(r[2]),
            status=HouseholdStatus(r[3]),
            head_person_id=r[4],
            head_name=r[5],
            active_members=r[6],
            created_at=r[7],
            updated_at=r[8],
            head_id_hash=r[9],
            head_masked_id=r[10],
        )
        for r in rows
    ]


async def find_memberships(session: AsyncSession, id_hashes: Sequence[str]) -> list[PastMembership]:
    """Every membership, in any household, of the persons with these ID hashes."""
    if not id_hashes:
        return []
    rows = await session.execute(
        sa.select(
            person_t.c.id_hash,
            member_t.c.household_id,
            household_t.c.region_code,
            member_t.c.active,
            member_t.c.left_on,
            member_t.c.left_reason,
        )
        .join(member_t, member_t.c.person_id == person_t.c.id)
        .join(household_t, household_t.c.id == member_t.c.household_id)
        .where(person_t.c.id_hash.in_(id_hashes))
    )
    return [
        PastMembership(r[0], r[1], r[2], r[3], r[4], LeaveReason(r[5]) if r[5] else None)
        for r in rows
    ]


async def upsert_persons(
    session: AsyncSession, persons: Sequence[NewPerson], at: datetime
) -> dict[str, tuple[uuid.UUID, str]]:
    """Insert new persons; the id and recorded name of each person by ID hash.

    A person registered before (moved out, a former household) keeps their person id and
    their name as recorded: a person is the ID number, and another name given for it is
    the caller's to refuse (a name is corrected only by a member change). The known row
    is locked all the same (a no-op update), so a concurrent insert of the same number
    is waited for and its name returned.
    """
    if not persons:
        return {}
    values = pg_insert(person_t).values(
        [
            {
                "id": p.id,
                "id_hash": p.id_hash,
                "hash_key_id": p.hash_key_id,
                "id_number_cipher": p.id_number_cipher,
                "masked_id": p.masked_id,
                "name": p.name,
                "birth_date": p.birth_date,
                "sex": p.sex.value,
                "created_at": at,
            }
            for p in persons
        ]
    )
    statement = values.on_conflict_do_update(
        index_elements=[person_t.c.id_hash], set_={"name": person_t.c.name}
    ).returning(person_t.c.id_hash, person_t.c.id, person_t.c.name)
    return {row[0]: (row[1], row[2]) for row in await session.execute(statement)}


async def set_person_name(session: AsyncSession, person_id: uuid.UUID, name: str) -> None:
    """Correct a person's recorded name, and the holder's name on the current accounts
    they hold as a member (a copy of it)."""
    await session.execute(sa.update(person_t).where(person_t.c.id == person_id).values(name=name))
    await session.execute(
        sa.update(account_t)
        .where(account_t.c.holder_person_id == person_id, account_t.c.superseded_at.is_(None))
        .values(holder_name=name)
    )


async def insert_household(
    session: AsyncSession,
    *,
    household_id: uuid.UUID,
    region_code: str,
    area_type: AreaType,
    address: str,
    head_person_id: uuid.UUID,
    created_by: str,
    at: datetime,
) -> None:
    await session.execute(
        sa.insert(household_t).values(
            id=household_id,
            region_code=region_code,
            area_type=area_type.value,
            address=address,
            status=HouseholdStatus.ACTIVE.value,
            head_person_id=head_person_id,
            version=1,
            created_at=at,
            created_by=created_by,
            updated_at=at,
        )
    )


async def insert_memberships(
    session: AsyncSession, household_id: uuid.UUID, members: Iterable[NewMembership]
) -> None:
    rows = [
        {
            "id": m.id,
            "household_id": household_id,
            "person_id": m.person_id,
            "relationship": m.relationship.value,
            "disability_grade": m.disability_grade.value,
            "seriously_ill": m.seriously_ill,
            "employment_status": m.employment_status.value,
            "student": m.student,
            "counted": m.counted,
            "exclusion_reason": m.exclusion_reason.value if m.exclusion_reason else None,
            "exclusion_note": m.exclusion_note,
            "active": True,
            "joined_on": m.joined_on,
            "left_on": None,
            "left_reason": None,
            "marriage_age_basis": m.marriage_age_basis.value if m.marriage_age_basis else None,
        }
        for m in members
    ]
    if rows:
        await session.execute(sa.insert(member_t), rows)


_HOUSEHOLD_COLUMNS = (
    household_t.c.id,
    household_t.c.region_code,
    household_t.c.area_type,
    household_t.c.address,
    household_t.c.status,
    household_t.c.head_person_id,
    household_t.c.version,
    household_t.c.created_at,
    household_t.c.updated_at,
)
_MEMBER_COLUMNS = (
    member_t.c.id,
    person_t.c.id,
    person_t.c.name,
    person_t.c.masked_id,
    person_t.c.id_hash,
    person_t.c.birth_date,
    person_t.c.sex,
    member_t.c.relationship,
    member_t.c.disability_grade,
    member_t.c.seriously_ill,
    member_t.c.employment_status,
    member_t.c.student,
    member_t.c.counted,
    member_t.c.exclusion_reason,
    member_t.c.exclusion_note,
    member_t.c.active,
    member_t.c.joined_on,
    member_t.c.left_on,
    member_t.c.left_reason,
    member_t.c.marriage_age_basis,
)
_ACCOUNT_COLUMNS = (
    account_t.c.id,
    account_t.c.household_id,
    account_t.c.number_hash,
    account_t.c.masked_number,
    account_t.c.bank_code,
    account_t.c.bank_name,
    account_t.c.holder_name,
    account_t.c.holder_person_id,
    account_t.c.custody_agreement,
    account_t.c.custody_document_id,
    account_t.c.custodian_subject,
    account_t.c.created_at,
)


def _household(row: Sequence[Any]) -> HouseholdRecord:
    return HouseholdRecord(
        id=row[0],
        region_code=row[1],
        area_type=AreaType(row[2]),
        address=row[3],
        status=HouseholdStatus(row[4]),
        head_person_id=row[5],
        version=row[6],
        created_at=row[7],
        updated_at=row[8],
    )


def _member(row: Sequence[Any]) -> MemberRecord:
    return MemberRecord(
        membership_id=row[0],
        person_id=row[1],
        name=row[2],
        masked_id=row[3],
        id_hash=row[4],
        birth_date=row[5],
        sex=Sex(row[6]),
        relationship=Relationship(row[7]),
        disability_grade=DisabilityGrade(row[8]),
        seriously_ill=row[9],
        employment_status=EmploymentStatus(row[10]),
        student=row[11],
        counted=row[12],
        exclusion_reason=ExclusionReason(row[13]) if row[13] else None,
        exclusion_note=row[14],
        active=row[15],
        joined_on=row[16],
        left_on=row[17],
        left_reason=LeaveReason(row[18]) if row[18] else None,
        marriage_age_basis=MarriageAgeBasis(row[19]) if row[19] else None,
    )


def _account(row: Sequence[Any]) -> BankAccountRecord:
    return BankAccountRecord(*row)


async def get_household(
    session: AsyncSession, household_id: uuid.UUID, *, for_update: bool = False
) -> HouseholdRecord | None:
    statement = sa.select(*_HOUSEHOLD_COLUMNS).where(household_t.c.id == household_id)
    if for_update:
        # Changes to one household are serialised: version, head and members stay coherent.
        statement = statement.with_for_update()
    row = (await session.execute(statement)).first()
    return _household(row) if row is not None else None


async def load_members(session: AsyncSession, household_id: uuid.UUID) -> list[MemberRecord]:
    rows = await session.execute(
        sa.select(*_MEMBER_COLUMNS)
        .join(person_t, person_t.c.id == member_t.c.person_id)
        .where(member_t.c.household_id == household_id)
        .order_by(member_t.c.active.desc(), member_t.c.joined_on, member_t.c.id)
    )
    return [_member(r) for r in rows]


async def current_bank_account(
    session: AsyncSession, household_id: uuid.UUID
) -> BankAccountRecord | None:
    row = (
        await session.execute(
            sa.select(*_ACCOUNT_COLUMNS).where(
                account_t.c.household_id == household_id, account_t.c.superseded_at.is_(None)
            )
        )
    ).first()
    return _account(row) if row is not None else None


async def get_bank_account(
    session: AsyncSession, account_id: uuid.UUID
) -> tuple[BankAccountRecord, bytes] | None:
    """An account (current or superseded) with its ciphertext, for disclosure."""
    row = (
        await session.execute(
            sa.select(*_ACCOUNT_COLUMNS, account_t.c.number_cipher).where(
                account_t.c.id == account_id
            )
        )
    ).first()
    return (_account(row[:-1]), row[-1]) if row is not None else None


_CHANGE_COLUMNS = (
    change_t.c.id,
    change_t.c.kind,
    change_t.c.effective_on,
    change_t.c.details,
    change_t.c.note,
    change_t.c.recorded_by,
    change_t.c.recorded_at,
)


async def load_changes(session: AsyncSession, household_id: uuid.UUID) -> list[ChangeRecord]:
    rows = await session.execute(
        sa.select(*_CHANGE_COLUMNS)
        .where(change_t.c.household_id == household_id)
        .order_by(change_t.c.recorded_at, change_t.c.id)
    )
    return [ChangeRecord(*r) for r in rows]


async def get_change(
    session: AsyncSession, household_id: uuid.UUID, change_id: uuid.UUID
) -> ChangeRecord | None:
    """One change of the household (None: no such change, or another household's)."""
    row = (
        await session.execute(
            sa.select(*_CHANGE_COLUMNS).where(
                change_t.c.id == change_id, change_t.c.household_id == household_id
            )
        )
    ).first()
    return ChangeRecord(*row) if row is not None else None


async def load_aggregate(
    session: AsyncSession,
    household_id: uuid.UUID,
    *,
    for_update: bool = False,
    with_changes: bool = False,
) -> HouseholdAggregate | None:
    household = await get_household(session, household_id, for_update=for_update)
    if household is None:
        return None
    members = await load_members(session, household_id)
    account = await current_bank_account(session, household_id)
    changes = await load_changes(session, household_id) if with_changes else []
    return HouseholdAggregate(household, tuple(members), account, tuple(changes))


CURRENT_ACCOUNT_INDEX = "uq_bank_account_current"
"""The index that keeps one current account per household (migration 0002)."""

_INSERT_ACCOUNT = DriverStatement(
    """
INSERT INTO bank_account (id, household_id, number_cipher, number_hash, masked_number,
    bank_code, bank_name, holder_name, holder_person_id, custody_agreement,
    custody_document_id, custodian_subject, created_at, superseded_at)
VALUES (:id, :household_id, :number_cipher, :number_hash, :masked_number, :bank_code,
    :bank_name, :holder_name, :holder_person_id, :custody_agreement, :custody_document_id,
    :custodian_subject, :created_at, NULL)
"""
)


def _account_params(account: BankAccountRecord, number_cipher: bytes) -> dict[str, Any]:
    return {
        "id": account.id,
        "household_id": account.household_id,
        "number_cipher": number_cipher,
        "number_hash": account.number_hash,
        "masked_number": account.masked_number,
        "bank_code": account.bank_code,
        "bank_name": account.bank_name,
        "holder_name": account.holder_name,
        "holder_person_id": account.holder_person_id,
        "custody_agreement": account.custody_agreement,
        "custody_document_id": account.custody_document_id,
        "custodian_subject": account.custodian_subject,
        "created_at": account.created_at,
    }


async def insert_first_bank_account(
    session: AsyncSession, account: BankAccountRecord, *, number_cipher: bytes
) -> None:
    """The account of a household that has none (a second current one fails the unique
    index); held with the request's other writes when they are (``db.held``)."""
    await write(session, (_INSERT_ACCOUNT, _account_params(account, number_cipher)))


async def insert_bank_account(
    session: AsyncSession, account: BankAccountRecord, *, number_cipher: bytes
) -> None:
    """The household's new current account; the previous one is superseded."""
    assert not holding(session), "two statements: not for a request whose writes are held"
    await session.execute(
        sa.update(account_t)
        .where(
            account_t.c.household_id == account.household_id, account_t.c.superseded_at.is_(None)
        )
        .values(superseded_at=account.created_at)
    )
    await write(session, (_INSERT_ACCOUNT, _account_params(account, number_cipher)))


async def end_membership(
    session: AsyncSession, membership_id: uuid.UUID, left_on: date, reason: LeaveReason
) -> None:
    await session.execute(
        sa.update(member_t)
        .where(member_t.c.id == membership_id)
        .values(active=False, left_on=left_on, left_reason=reason.value)
    )


async def set_relationship(
    session: AsyncSession, membership_id: uuid.UUID, relationship: Relationship
) -> None:
    await session.execute(
        sa.update(member_t)
        .where(member_t.c.id == membership_id)
        .values(relationship=relationship.value)
    )


async def set_member_details(
    session: AsyncSession, membership_id: uuid.UUID, details: MemberDetails
) -> None:
    """Record a member's own details as a member change leaves them."""
    await session.execute(
        sa.update(member_t)
        .where(member_t.c.id == membership_id)
        .values(
            disability_grade=details.disability_grade.value,
            seriously_ill=details.seriously_ill,
            employment_status=details.employment_status.value,
            student=details.student,
            counted=details.counted,
            exclusion_reason=details.exclusion_reason.value if details.exclusion_reason else None,
            exclusion_note=details.exclusion_note,
        )
    )


async def latest_details_change_on(
    session: AsyncSession, household_id: uuid.UUID, person_id: uuid.UUID
) -> date | None:
    """When the latest member change of ``person_id``'s details in the household took
    effect (a name correction alone changes no detail and is left out)."""
    latest: date | None = await session.scalar(
        sa.select(sa.func.max(change_t.c.effective_on)).where(
            change_t.c.household_id == household_id,
            change_t.c.kind == ChangeKind.MEMBER_CHANGE.value,
            change_t.c.details["person_id"].astext == str(person_id),
            change_t.c.details["changed"] != sa.literal({}, pg.JSONB),
        )
    )
    return latest


async def latest_move_on(session: AsyncSession, household_id: uuid.UUID) -> date | None:
    """When the household's latest recorded address change took place (None: none)."""
    latest: date | None = await session.scalar(
        sa.select(sa.func.max(change_t.c.effective_on)).where(
            change_t.c.household_id == household_id,
            change_t.c.kind == ChangeKind.ADDRESS_CHANGE.value,
        )
    )
    return latest


async def set_address(
    session: AsyncSession,
    household_id: uuid.UUID,
    *,
    region_code: str,
    area_type: AreaType,
    address: str,
) -> None:
    """Where the whole household now lives."""
    await session.execute(
        sa.update(household_t)
        .where(household_t.c.id == household_id)
        .values(region_code=region_code, area_type=area_type.value, address=address)
    )


async def touch_household(
    session: AsyncSession,
    household_id: uuid.UUID,
    *,
    at: datetime,
    head_person_id: uuid.UUID | None,
    status: HouseholdStatus,
) -> None:
    await session.execute(
        sa.update(household_t)
        .where(household_t.c.id == household_id)
        .values(
            version=household_t.c.version + 1,
            updated_at=at,
            head_person_id=head_person_id,
            status=status.value,
        )
    )


async def insert_change(
    session: AsyncSession,
    *,
    change_id: uuid.UUID,
    household_id: uuid.UUID,
    kind: str,
    effective_on: date,
    details: dict[str, Any],
    note: str | None,
    recorded_by: str,
    at: datetime,
) -> None:
    await session.execute(
        sa.insert(change_t).values(
            id=change_id,
            household_id=household_id,
            kind=kind,
            effective_on=effective_on,
            details=details,
            note=note,
            recorded_by=recorded_by,
            recorded_at=at,
        )
    )


@dataclass(frozen=True, slots=True)
class Membership:
    """A household a person belongs or belonged to."""

    household_id: uuid.UUID
    region_code: str
    active: bool


async def person_identity(
    session: AsyncSession, person_id: uuid.UUID
) -> tuple[str, bytes, list[Membership]] | None:
    """A person's name, ID ciphertext and every household they belonged to: the active
    membership first, then the others from the latest left."""
    row = (
        await session.execute(
            sa.select(person_t.c.name, person_t.c.id_number_cipher).where(
                person_t.c.id == person_id
            )
        )
    ).first()
    if row is None:
        return None
    households = await session.execute(
        sa.select(household_t.c.id, household_t.c.region_code, member_t.c.active)
        .join(member_t, member_t.c.household_id == household_t.c.id)
        .where(member_t.c.person_id == person_id)
        .order_by(
            member_t.c.active.desc(),
            member_t.c.left_on.desc().nulls_last(),
            member_t.c.joined_on.desc(),
            member_t.c.id.desc(),
        )
    )
    return row[0], row[1], [Membership(h[0], h[1], h[2]) for h in households]


_OPEN_APPLICATION_OF = sa.text(
    """
SELECT h.id, h.region_code FROM application AS a JOIN household AS h ON h.id = a.household_id
WHERE a.id = :application_id AND a.status = 'submitted' AND a.decided_at IS NULL
  AND h.status = 'active'
  AND EXISTS (SELECT 1 FROM household_member AS m
              WHERE m.household_id = h.id AND m.person_id = :person_id)
"""
)


async def open_application_household(
    session: AsyncSession, application_id: uuid.UUID, person_id: uuid.UUID
) -> tuple[uuid.UUID, str] | None:
    """The household (id, region) of ``application_id`` while the application is open
    (submitted, not withdrawn, returned or decided) and the household active, if
    ``person_id`` is or was one of its members."""
    row = (
        await session.execute(
            _OPEN_APPLICATION_OF, {"application_id": application_id, "person_id": person_id}
        )
    ).first()
    return (row[0], row[1]) if row is not None else None
