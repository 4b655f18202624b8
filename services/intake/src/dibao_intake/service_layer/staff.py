"""The staff roster of each township: conflicts of interest and responsible caseworkers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.errors import Conflict, NotFound
from dibao_intake.adapters import contracts
from dibao_intake.adapters.records import StaffRecord
from dibao_intake.adapters.repositories import staff as repo
from dibao_intake.domain.codes import StaffRole
from dibao_intake.domain.divisions import DivisionLevel, UnknownDivisionError
from dibao_intake.domain.errors import RulesViolatedError, Violation
from dibao_intake.domain.resident_id import InvalidResidentIdError, parse_resident_id
from dibao_intake.service_layer.access import AccessTarget, record_access, refused
from dibao_intake.service_layer.events import publish
from dibao_intake.service_layer.households import rules_failed
from dibao_intake.service_layer.runtime import (
    NOT_FOUND,
    Caller,
    ConstraintViolatedError,
    Runtime,
    constraint_of,
    ensure_writable_region,
)


@dataclass(frozen=True, slots=True)
class RelativeInput:
    name: str
    id_number: str
    relation: str


@dataclass(frozen=True, slots=True)
class AddStaff:
    name: str
    role: StaffRole
    id_number: str | None
    subject: str | None
    responsible_caseworker: bool
    relatives: Sequence[RelativeInput]


def _require_township(runtime: Runtime, township_code: str) -> None:
    try:
        runtime.divisions.require(township_code, DivisionLevel.TOWNSHIP)
    except UnknownDivisionError:
        raise NotFound("No such township in the division table") from None


def _caseworker_elsewhere(township_code: str | None) -> Conflict:
    where = f" ({township_code})" if township_code else ""
    return Conflict(
        f"This person (by token subject or ID number) is already the responsible caseworker"
        f" of another township{where}: one person, one township. Name someone else there,"
        " or take them off its roster, first",
        type_slug="caseworker-of-another-township",
    )


def _caseworker_conflict() -> Conflict:
    """Another responsible caseworker of this township was named, and committed, first."""
    return Conflict(
        "Another responsible caseworker was named at the same time; try again",
        type_slug="caseworker-conflict",
    )


async def _not_responsible_elsewhere(
    session: AsyncSession, caller: Caller, township_code: str, subject: str, id_hash: str | None
) -> None:
    """A responsible caseworker answers for one township (ADR 0009, 2 Dec 2026)."""
    elsewhere = await repo.responsible_elsewhere(session, township_code, subject, id_hash)
    if elsewhere is not None:
        # The other township is named only to an administrator whose regions hold it.
        raise _caseworker_elsewhere(elsewhere if caller.principal.can_see(elsewhere) else None)


async def add_staff(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    township_code: str,
    command: AddStaff,
) -> StaffRecord:
    """Add someone to a township's roster (the new responsible caseworker takes over)."""
    _require_township(runtime, township_code)
    ensure_writable_region(caller, township_code)
    today = runtime.clock.today()
    problems: list[Violation] = []
    if command.responsible_caseworker and (
        command.role is not StaffRole.CASEWORKER or not command.subject
    ):
        problems.append(
            Violation("/responsible_caseworker", "only a caseworker with a token subject")
        )
    if command.responsible_caseworker and command.id_number is None:
        # Their own household's application is found by this number alone, and left
        # unassigned for the county; without it they would be assigned their own case.
        problems.append(
            Violation("/id_number", "required for the responsible caseworker (their own number)")
        )
    numbers: list[tuple[str, str]] = []
    if command.id_number is not None:
        numbers.append(("/id_number", command.id_number))
    numbers += [(f"/relatives/{i}/id_number", r.id_number) for i, r in enumerate(command.relatives)]
    # Each number in its one spelling (resident_id.parse_resident_id): stored, masked and
    # hashed as the household's members' are, so a relative is found whatever was typed.
    spelled: dict[str, str] = {}
    for pointer, number in numbers:
        try:
            spelled[pointer] = parse_resident_id(number, today=today).number
        except InvalidResidentIdError as exc:
            problems.append(Violation(pointer, exc.reason))
    if problems:
        raise rules_failed(RulesViolatedError(problems))
    staff_id = uuid7()
    own = (
        runtime.pii.protect_id_number(spelled["/id_number"], table="staff_member", row_id=staff_id)
        if command.id_number is not None
        else None
    )
    relatives = []
    for i, r in enumerate(command.relatives):
        relative_id = uuid7()
        protected = runtime.pii.protect_id_number(
            spelled[f"/relatives/{i}/id_number"], table="staff_relative", row_id=relative_id
        )
        relatives.append(
            repo.NewRelative(
                id=relative_id,
                relation=r.relation,
                name=r.name,
                id_hash=protected.id_hash,
                id_number_cipher=protected.cipher,
                masked_id=protected.masked,
            )
        )
    # From here to the commit no submission is written (ADR 0009, 3 Dec 2026): those in
    # flight are waited for, those to come wait, and are refused for the version moved.
    await repo.lock_roster(session)
    if command.responsible_caseworker:
        assert command.subject is not None
        await _not_responsible_elsewhere(
            session, caller, township_code, command.subject, own.id_hash if own else None
        )
    now = runtime.clock.now()
    try:
        replaced = await repo.insert_staff(
            session,
            repo.NewStaff(
                id=staff_id,
                township_code=township_code,
                name=command.name,
                role=command.role,
                subject=command.subject,
                responsible_caseworker=command.responsible_caseworker,
                id_hash=own.id_hash if own else None,
                id_number_cipher=own.cipher if own else None,
                masked_id=own.masked if own else None,
                relatives=relatives,
            ),
            created_by=caller.principal.subject,
            at=now,
        )
    except IntegrityError as exc:
        violated = constraint_of(exc)
        if violated in repo.CASEWORKER_ELSEWHERE_INDEXES:
            # Named at the same time in another township: the other insert committed first.
            raise _caseworker_elsewhere(None) from None
        if violated == repo.CASEWORKER_INDEX:
            # Another responsible caseworker of this township committed first.
            raise _caseworker_conflict() from None
        # Any other constraint is no conflict the caller can resolve by trying again: a
        # 500 (logged by table and constraint, without the row's values) rather than a
        # wrong 409.
        raise ConstraintViolatedError(exc) from exc
    [found] = await repo.list_staff(session, township_code, staff_id=staff_id)
    # Who put whom on the roster, for the audit log (ADR 0005: people by keyed hash).
    await publish(
        session,
        runtime,
        caller,
        contracts.staff_roster_changed(
            found,
            ev.STAFF_ROSTER_CHANGE_ADDED,
            principal=caller.principal,
            at=now,
            hash_key_id=runtime.pii.hash_key_id,
            responsible_caseworker=found.responsible_caseworker,
            replaced_caseworker=replaced,
        ),
        key=township_code,
        subject=str(staff_id),
    )
    return found


ROSTER_FIELDS = ("staff_name", "relative_name", "id_number_masked")
"""What a roster, or a staff member as added, shows (masked numbers)."""


async def list_staff(
    session: AsyncSession, runtime: Runtime, caller: Caller, township_code: str
) -> list[StaffRecord]:
    """The roster of a township (ID numbers masked); the read is recorded."""
    _require_township(runtime, township_code)
    target = AccessTarget(
        None, township_code, access.RECORD_TYPE_OTHER, f"staff-roster:{township_code}"
    )
    if not caller.principal.can_see(township_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    roster = await repo.list_staff(session, township_code)
    # Named by keyed hash, as every read names people ("who read this person's data?");
    # a roster row's id is not a person id.
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=contracts.roster_refs(roster, runtime.pii.hash_key_id),
        fields=ROSTER_FIELDS,
    )
    return roster


async def read_staff(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    township_code: str,
    staff_id: uuid.UUID,
) -> StaffRecord:
    """One entry of a township's roster, as the roster shows it (ID numbers masked); the
    read is recorded as the roster's is, naming that entry and its relatives. An entry of
    another township's roster, or none, is 404 and leaves no record (nothing of it exists
    here); a township outside the caller's regions is 404 recorded DENIED, as the
    roster's read is."""
    _require_township(runtime, township_code)
    found = await repo.list_staff(session, township_code, staff_id=staff_id)
    if not found:
        raise NotFound(NOT_FOUND)
    [entry] = found
    target = AccessTarget(None, township_code, access.RECORD_TYPE_OTHER, f"staff:{entry.id}")
    if not caller.principal.can_see(township_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=contracts.roster_refs([entry], runtime.pii.hash_key_id),
        fields=ROSTER_FIELDS,
    )
    return entry


async def deactivate_staff(
    session: AsyncSession, runtime: Runtime, caller: Caller, staff_id: uuid.UUID
) -> None:
    """Take someone off the roster; a roster change event when they were on it."""
    # The township is checked before the entry is locked (it never changes): another
    # region's administrator neither holds nor waits on the lock of an entry not theirs.
    staff = await repo.get_staff(session, staff_id)
    if staff is None:
        raise NotFound(NOT_FOUND)
    if not caller.principal.can_see(staff.township_code):
        # Another township's staff member: 404 as for a missing one, and the attempt
        # recorded DENIED, as a probe of another region's household is.
        target = AccessTarget(
            None, staff.township_code, access.RECORD_TYPE_OTHER, f"staff:{staff.id}"
        )
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    # Before the clock is read: see add_staff (ADR 0009, 3 Dec 2026).
    await repo.lock_roster(session)
    staff = await repo.get_staff(session, staff_id, for_update=True)
    assert staff is not None  # roster entries are never deleted
    now = runtime.clock.now()
    if not await repo.deactivate_staff(session, staff_id, by=caller.principal.subject, at=now):
        return  # already off the roster: nothing changed, nothing to publish
    await publish(
        session,
        runtime,
        caller,
        contracts.staff_roster_changed(
            staff,
            ev.STAFF_ROSTER_CHANGE_DEACTIVATED,
            principal=caller.principal,
            at=now,
            hash_key_id=runtime.pii.hash_key_id,
            responsible_caseworker=staff.responsible_caseworker,
        ),
        key=staff.township_code,
        subject=str(staff_id),
    )
