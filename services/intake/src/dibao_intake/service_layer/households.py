"""Registering households, reading them, and recording their changes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao.intake.v1 import events_pb2 as ev
from dibao.intake.v1 import types_pb2 as intake
from dibao_common.clock import china_date
from dibao_common.errors import Conflict, Forbidden, NotFound, ProblemError, UnprocessableEntity
from dibao_common.messaging.outbox import OutgoingEvent
from dibao_intake.adapters import contracts
from dibao_intake.adapters.records import (
    BankAccountRecord,
    ChangeRecord,
    DocumentRecord,
    HouseholdAggregate,
    HouseholdRecord,
    HouseholdSummary,
    MemberRecord,
)
from dibao_intake.adapters.repositories import applications as application_repo
from dibao_intake.adapters.repositories import documents as document_repo
from dibao_intake.adapters.repositories import households as repo
from dibao_intake.domain import changes as rules
from dibao_intake.domain.application import (
    NOT_UNABLE_TO_APPLY,
    WRITTEN_BY_INTAKE,
    applicant_after_change,
    applicant_after_leaving,
)
from dibao_intake.domain.codes import (
    AreaType,
    ChangeKind,
    DocumentType,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    MarriageAgeBasis,
    Relationship,
    WithdrawalCause,
)
from dibao_intake.domain.divisions import DivisionLevel, township_of
from dibao_intake.domain.errors import RulesViolatedError, Violation, raise_if_any
from dibao_intake.domain.household import (
    MemberFacts,
    MemberInput,
    ValidMember,
    masked_household_ref,
    validate_household,
    validate_member,
)
from dibao_intake.domain.names import same_name
from dibao_intake.domain.resident_id import InvalidResidentIdError, parse_resident_id
from dibao_intake.service_layer.access import AccessRefused, AccessTarget, record_access, refused
from dibao_intake.service_layer.events import publish, publish_many
from dibao_intake.service_layer.pages import (
    Page,
    Window,
    ensure_searchable,
    list_target,
    listed_person,
)
from dibao_intake.service_layer.runtime import (
    NOT_FOUND,
    Caller,
    ConstraintViolatedError,
    Runtime,
    constraint_of,
    ensure_writable_region,
)
from dibao_intake.service_layer.views import shown, view_of

ACTIVE_MEMBERSHIP_INDEX = "uq_household_member_active_person"


@dataclass(frozen=True, slots=True)
class BankAccountInput:
    account_number: str
    bank_code: str
    bank_name: str
    holder_person_id: uuid.UUID | None = None
    holder_name: str | None = None
    """Required when the holder is not a member (a custodian's account)."""


@dataclass(frozen=True, slots=True)
class RegisterHousehold:
    region_code: str
    area_type: AreaType
    address: str
    members: Sequence[MemberInput]
    bank_account: BankAccountInput | None = None
    bank_account_holder_index: int | None = None
    """Index in ``members`` of the account holder (the head when not given)."""


def rules_failed(error: RulesViolatedError) -> UnprocessableEntity:
    """A broken rule as the kit's 422 problem, pointers into the request body."""
    return UnprocessableEntity(
        f"{len(error.violations)} rule(s) broken by the request",
        type_slug="validation-failed",
        title="The request is not valid",
        errors=[
            {"pointer": "/body" + v.pointer, "detail": v.detail, "code": "rule"}
            for v in error.violations
        ],
    )


LEAVES_HOUSEHOLD_HINT = (
    ": a move_in naming that household by leaves_household_id (POST /households/lookup"
    " finds it) records the move out there in the same change"
)
"""What the 409 of a move in adds (ADR 0016, 3 Dec 2026, helper hAL)."""


def _person_in_household(conflicts: list[dict[str, str]], *, moving_in: bool = False) -> Conflict:
    return Conflict(
        "A person is already an active member of another household"
        + (LEAVES_HOUSEHOLD_HINT if moving_in else ""),
        type_slug="person-in-household",
        title="Person already in a household",
        conflicts=conflicts,
    )


def household_dissolved() -> Conflict:
    """A change or a submission for a household no longer active (the last member died or
    moved out): nothing can be recorded for it."""
    return Conflict("The household is dissolved", type_slug="household-dissolved")


def marriage_ended() -> Conflict:
    """A spouse_death of a marriage the record shows ended already (divorced or widowed)."""
    return Conflict(
        "The record shows the member's marriage to a spouse living elsewhere ended already",
        type_slug="marriage-ended",
    )


def already_divorced() -> Conflict:
    """A divorce the record shows already."""
    return Conflict("The record shows this couple's divorce already", type_slug="already-divorced")


async def _histories(
    session: AsyncSession, runtime: Runtime, members: Sequence[tuple[str, ValidMember]]
) -> tuple[dict[str, str], list[repo.PastMembership]]:
    """Each member's keyed hash with its pointer, and every membership of those persons."""
    hashes = {runtime.pii.hash_id_number(m.resident_id.number): pointer for pointer, m in members}
    return hashes, await repo.find_memberships(session, list(hashes))


def _told(
    runtime: Runtime,
    caller: Caller,
    problem: ProblemError,
    told: Sequence[tuple[repo.PastMembership, str]],
) -> AccessRefused:
    """``problem``, which tells the caller something of the persons' memberships in
    ``told`` (each with the field naming what: that one is active there, that one died
    there, that the person is on file ...), recorded as a lookup by ID number is (action
    search, the person by keyed hash, each household named once with its fields), once
    the request's transaction has rolled back: else a registration or a change would be
    an unrecorded way to learn it of any ID number."""
    fields: dict[tuple[str, uuid.UUID], list[str]] = {}
    where: dict[tuple[str, uuid.UUID], repo.PastMembership] = {}
    for f, what in told:
        key = (f.id_hash, f.household_id)
        where.setdefault(key, f)
        if what not in fields.setdefault(key, []):
            fields[key].append(what)

    async def record(session: AsyncSession) -> None:
        for key, f in where.items():
            await record_access(
                session,
                runtime,
                caller,
                AccessTarget(
                    f.household_id,
                    f.region_code,
                    access.RECORD_TYPE_HOUSEHOLD,
                    str(f.household_id),
                    action=access.ACCESS_ACTION_SEARCH,
                ),
                persons=[
                    common.PersonRef(keyed_hash=f.id_hash, hash_key_id=runtime.pii.hash_key_id)
                ],
                fields=tuple(fields[key]),
            )

    return AccessRefused(problem, record)


def _not_elsewhere(
    runtime: Runtime,
    caller: Caller,
    hashes: dict[str, str],
    history: Sequence[repo.PastMembership],
    *,
    allowed_household: uuid.UUID | None = None,
    moving_in: bool = False,
) -> None:
    """409 naming the other household only by a masked reference; recorded (``_told``).
    A move in's (``moving_in``) says how to record the move out there in the same change."""
    found = [f for f in history if f.active and f.household_id != allowed_household]
    conflicts = [
        {
            "pointer": "/body" + hashes[f.id_hash],
            "household_ref": masked_household_ref(f.household_id, f.region_code),
        }
        for f in found
    ]
    if conflicts:
        problem = _person_in_household(
            sorted(conflicts, key=lambda c: c["pointer"]), moving_in=moving_in
        )
        raise _told(runtime, caller, problem, [(f, "household_ref") for f in found])


@dataclass(frozen=True, slots=True)
class CarriedMarriage:
    """A marriage a person brought from the household they last moved out of: to a member
    recorded there (``partner_hash``, the keyed hash of their ID number), ended by nothing
    the registry holds (ADR 0016, 3 Dec 2026, helper hAE)."""

    where: repo.PastMembership
    partner_hash: str


async def carried_marriage(
    session: AsyncSession, id_hash: str, *, here: uuid.UUID | None = None
) -> CarriedMarriage | None:
    """The marriage the person of ``id_hash`` brought from the household they last moved
    out of (other than ``here``), by that household's record (``rules.marriage_taken_along``),
    unless the registry holds the partner's death anywhere. Found by the keyed hash's
    memberships (the person's index), then that one household's members and changes, and
    the partner's memberships by their hash: a few indexed reads, no scan."""
    history = await repo.find_memberships(session, [id_hash])
    ended = [h for h in history if h.left_on is not None]
    if not ended or any(h.active and h.household_id != here for h in history):
        return None  # an active member elsewhere is answered 409 (person-in-household)
    last = max(ended, key=lambda h: h.left_on or date.min)
    if last.left_reason is not LeaveReason.MOVE_OUT or last.household_id == here:
        return None
    members = await repo.load_members(session, last.household_id)
    me = next((m for m in members if m.id_hash == id_hash and m.left_on == last.left_on), None)
    if me is None or last.left_on is None:
        return None
    changes = await repo.load_changes(session, last.household_id)
    partner_id = rules.marriage_taken_along(
        [rules.PastChange(c.kind, c.effective_on, c.details) for c in changes],
        person_id=me.person_id,
        left_on=last.left_on,
    )
    partner = next((m for m in members if m.person_id == partner_id), None)
    if partner is None:
        return None
    if not partner.active and partner.left_reason is LeaveReason.MOVE_OUT:
        # The partner moved out of it before them (ADR 0016, 3 Dec 2026, helper hAG): what
        # the registry holds of them since may end the marriage.
        if await partner_free(
            session,
            partner.id_hash,
            partner.person_id,
            left=last.household_id,
            on=partner.left_on or date.min,
        ):
            return None
    elif any(
        h.left_reason is LeaveReason.DEATH
        for h in await repo.find_memberships(session, [partner.id_hash])
    ):
        return None
    return CarriedMarriage(last, partner.id_hash)


async def partner_free(
    session: AsyncSession,
    id_hash: str,
    person_id: uuid.UUID,
    *,
    left: uuid.UUID,
    on: date,
) -> bool:
    """Whether the registry holds an end of the marriage of the person of ``id_hash``
    (``person_id``) who moved out of household ``left`` on ``on``, their spouse staying
    there or moving on (ADR 0016, 3 Dec 2026, helper hAG): their death in any household,
    or, in a household they joined since, a divorce naming them alone, a ``spouse_death``,
    a marriage of theirs (``carried_marriage_dealt_with``) or their membership there as a
    spouse (recorded before this day, when nothing refused it: read as telling the marriage
    over). Found by the keyed hash's memberships, then the changes and members of each
    household they were in since: a few indexed reads, only for such a marriage."""
    history = await repo.find_memberships(session, [id_hash])
    if any(h.left_reason is LeaveReason.DEATH for h in history):
        return True
    since = [
        h.household_id
        for h in history
        if h.household_id != left and (h.left_on is None or h.left_on >= on)
    ]
    for household_id in dict.fromkeys(since):
        changes = await repo.load_changes(session, household_id)
        # Without left_as the heads before each change are not read: any id serves.
        there = rules.marriages_in_household(
            [rules.PastChange(c.kind, c.effective_on, c.details) for c in changes],
            head_person_id=person_id,
            left_as={},
        )
        if rules.carried_marriage_dealt_with(there, person_id):
            return True
        members = await repo.load_members(session, household_id)
        if any(m.id_hash == id_hash and m.relationship is Relationship.SPOUSE for m in members):
            return True
    return False


async def alive_in_registry(
    session: AsyncSession, id_hash: str, *, here: uuid.UUID
) -> tuple[list[Violation], list[tuple[repo.PastMembership, str]]]:
    """The refusal of a ``spouse_death`` of the person of ``id_hash`` while the registry
    holds them alive: an active member of a household, here or elsewhere, and no death of
    theirs recorded anywhere (ADR 0016, 3 Dec 2026, helper hAH). One who left the registry
    (moved out of every household) may have died anywhere: not refused. Another household
    is named by its masked reference alone, and what the refusal tells of it is recorded
    as a lookup (``_told``, field ``alive``). Found by the keyed hash's memberships."""
    history = await repo.find_memberships(session, [id_hash])
    if any(h.left_reason is LeaveReason.DEATH for h in history):
        return [], []
    active = [h for h in history if h.active]
    problems = [
        rules.spouse_alive(
            None if h.household_id == here else masked_household_ref(h.household_id, h.region_code)
        )
        for h in active
    ]
    return problems, [(h, "alive") for h in active if h.household_id != here]


def married_elsewhere(
    carried: CarriedMarriage | None, pointer: str, who: str, *, joining: bool, to_hash: str | None
) -> tuple[list[Violation], list[tuple[repo.PastMembership, str]]]:
    """The refusal of a marriage of ``who`` to the person of ``to_hash`` (None: nobody the
    registry knows) while ``carried`` ties them to somebody else, and what it tells of the
    other household (recorded as a lookup, ``_told``): its masked reference alone."""
    if carried is None or carried.partner_hash == to_hash:
        return [], []
    ref = masked_household_ref(carried.where.household_id, carried.where.region_code)
    return (
        [rules.married_in_another_household(pointer, who, ref, joining=joining)],
        [(carried.where, "married")],
    )


def _raise_told(
    runtime: Runtime,
    caller: Caller,
    problems: Sequence[Violation],
    told: Sequence[tuple[repo.PastMembership, str]],
) -> None:
    """422 with every violation; recorded as a lookup when one tells of another household."""
    if not problems:
        return
    problem = rules_failed(RulesViolatedError(list(problems)))
    if told:
        raise _told(runtime, caller, problem, told)
    raise problem


DECEASED = "the person is recorded as deceased"
NOT_A_BIRTH = "the person is already registered: not a birth"


def _not_deceased(
    runtime: Runtime,
    caller: Caller,
    hashes: dict[str, str],
    history: Sequence[repo.PastMembership],
) -> None:
    """422 for a person whose membership somewhere ended with their death; recorded
    (``_told``)."""
    deaths = [f for f in history if f.left_reason is LeaveReason.DEATH]
    if deaths:
        dead = sorted({hashes[f.id_hash] for f in deaths})
        problem = rules_failed(
            RulesViolatedError([Violation(f"{p}/id_number", DECEASED) for p in dead])
        )
        raise _told(runtime, caller, problem, [(f, "deceased") for f in deaths])


OTHER_NAME = (
    "is not the name recorded for this ID number: a person is their ID number, so check"
    " both against the ID card; a recorded name that is wrong is corrected by a"
    " member_change giving name, while the person is a member, or by name_correction on a"
    " member joining by a change, with their ID card"
)
NOTHING_TO_CORRECT = (
    "the name is the one recorded for this ID number, or the person is new: nothing to correct"
)
CORRECTION_ONLY_JOINING = (
    "only for a member joining by a change (move_in's member, marriage's spouse), with"
    " their ID card or household register in document_ids"
)
PROOF_OF_NAME = (DocumentType.ID_CARD, DocumentType.HOUSEHOLD_REGISTER)


async def _store_persons(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    members: Sequence[tuple[str, ValidMember]],
) -> tuple[list[uuid.UUID], set[uuid.UUID]]:
    """The person id of each member (with its pointer), creating persons not seen before.
    A person known by the ID number under another name is refused (422 at the member's
    name, which the recorded one is not told): the record is not renamed. Names are
    compared in their one spelling (``names.normalise_name``: the input is in it, a name
    recorded before it is brought to it), so a name typed with another dot is the same.
    A member with ``name_correction`` has the recorded name corrected instead (the person's
    row and the current accounts they hold, as a member change does), and is refused when
    there is nothing to correct. Either refusal of a person on file tells the caller, for
    an ID number alone, that it is on file and whether the name given is the one recorded:
    recorded as that lookup (``_told``, field ``name``, each household the person was a
    member of named). Returns the person ids, and those whose name was corrected."""
    at = runtime.clock.now()
    new: list[repo.NewPerson] = []
    for _, m in members:
        person_id = uuid7()
        protected = runtime.pii.protect_id_number(
            m.resident_id.number, table="person", row_id=person_id
        )
        new.append(
            repo.NewPerson(
                id=person_id,
                id_hash=protected.id_hash,
                hash_key_id=runtime.pii.hash_key_id,
                id_number_cipher=protected.cipher,
                masked_id=protected.masked,
                name=m.input.name,
                birth_date=m.birth_date,
                sex=m.sex,
            )
        )
    by_hash = [p.id_hash for p in new]
    # In one order, whatever the request's: two requests naming the same persons in
    # another order would each lock one and wait for the other's (a deadlock, a 500).
    stored = await repo.upsert_persons(session, sorted(new, key=lambda p: p.id_hash), at)
    problems: list[Violation] = []
    corrected: dict[uuid.UUID, str] = {}
    on_file: list[str] = []  # persons on file (not inserted now) a refusal tells of
    for (pointer, m), p in zip(members, new, strict=True):
        h = p.id_hash
        same = same_name(stored[h][1], m.input.name)
        if m.input.name_correction and same:
            problems.append(Violation(f"{pointer}/name_correction", NOTHING_TO_CORRECT))
        elif m.input.name_correction:
            corrected[stored[h][0]] = m.input.name
            continue
        elif not same:
            problems.append(Violation(f"{pointer}/name", OTHER_NAME))
        else:
            continue
        if stored[h][0] != p.id:
            on_file.append(h)
    if problems:
        problem = rules_failed(RulesViolatedError(problems))
        # Read now, not before the upsert: it waited for any concurrent insert of the
        # same persons, whose memberships this statement sees.
        told = [(f, "name") for f in await repo.find_memberships(session, on_file)]
        if told:
            raise _told(runtime, caller, problem, told)
        raise problem
    for person_id, name in corrected.items():
        await repo.set_person_name(session, person_id, name)
    return [stored[h][0] for h in by_hash], set(corrected)


def _membership(person_id: uuid.UUID, m: ValidMember, joined_on: date) -> repo.NewMembership:
    i = m.input
    return repo.NewMembership(
        id=uuid7(),
        person_id=person_id,
        relationship=i.relationship,
        disability_grade=i.disability_grade,
        seriously_ill=i.seriously_ill,
        employment_status=i.employment_status,
        student=i.student,
        counted=i.counted,
        exclusion_reason=i.exclusion_reason,
        exclusion_note=i.exclusion_note,
        joined_on=joined_on,
        marriage_age_basis=i.marriage_age_basis,
    )


async def _insert_memberships(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    household_id: uuid.UUID,
    members: Sequence[repo.NewMembership],
    named: Sequence[tuple[str, ValidMember]],
) -> list[repo.PastMembership]:
    """Insert the memberships; 409 naming the other household when a concurrent request
    made one of these persons active elsewhere first (``named``: each with its pointer);
    422 deceased, as the read before would have answered, when one died meanwhile.
    Returns the persons' memberships as read once inserted (these among them), for a
    join's other checks of that read (``_joining_problems``)."""
    try:
        # A savepoint, so that the request's transaction can still read after losing.
        async with session.begin_nested():
            await repo.insert_memberships(session, household_id, members)
    except IntegrityError as exc:
        if constraint_of(exc) != ACTIVE_MEMBERSHIP_INDEX:
            # No race: a 500, logged without the row's values (an exclusion note).
            raise ConstraintViolatedError(exc) from exc
        # Lost a race with a concurrent registration of the same person. The insert
        # waited for the winner to commit, so a new read finds its household.
        hashes, history = await _histories(session, runtime, named)
        _not_elsewhere(runtime, caller, hashes, history, allowed_household=household_id)
        raise _person_in_household([]) from None
    # The caller's check that nobody here is recorded deceased read the memberships before
    # the persons were locked and these rows written: a person on no register could since
    # have joined another household and died there (both committed), and the index, which
    # sees only active memberships, lets the insert pass. Read again now: a death that
    # committed before the insert is seen; a later one cannot happen elsewhere (an active
    # membership elsewhere would have failed the insert). Helper hAY, 3 Dec 2026.
    hashes, history = await _histories(session, runtime, named)
    _not_deceased(runtime, caller, hashes, history)
    return history


def _joining_problems(
    caller: Caller,
    pointer: str,
    history: Sequence[repo.PastMembership],
    joined_on: date,
    *,
    newborn: bool,
    date_pointer: str | None,
) -> tuple[list[Violation], list[tuple[repo.PastMembership, str]], repo.PastMembership | None]:
    """A join's refusals by the person's memberships ``history`` (the member at
    ``pointer``): recorded deceased; already registered, for a ``newborn``; joining (on
    ``joined_on``, the request's ``date_pointer``) before they left their last household.
    With what each tells of the memberships (recorded, ``_told``), and the membership
    they left last."""
    problems: list[Violation] = []
    # What each refusal tells of the person's memberships (for an ID number alone:
    # that it is on file, where they died, when they left), recorded (_told).
    told: list[tuple[repo.PastMembership, str]] = []
    deaths = [h for h in history if h.left_reason is LeaveReason.DEATH]
    if deaths:
        problems.append(Violation(f"{pointer}/id_number", DECEASED))
        told += [(h, "deceased") for h in deaths]
    elif newborn and history:
        problems.append(Violation(f"{pointer}/id_number", NOT_A_BIRTH))
        told += [(h, "registered") for h in history]
    ended = [(h.left_on, h) for h in history if h.left_on is not None]
    left, last = max(ended, key=lambda e: e[0], default=(None, None))
    if date_pointer is not None and left is not None and joined_on < left:
        # Else the person would have been a member of two households at once. The day
        # is named to a caller who may read that household only: to another it would
        # tell, for an ID number alone, when its holder left a household elsewhere.
        assert last is not None
        day = f" ({left})" if caller.principal.can_see(last.region_code) else ""
        problems.append(
            Violation(date_pointer, f"is before the person left their last household{day}")
        )
        told.append((last, "left_on"))
    return problems, told, last


def new_bank_account(
    runtime: Runtime,
    household_id: uuid.UUID,
    account: BankAccountInput,
    holder: MemberRecord | None,
    *,
    custody_agreement: bool = False,
    custody_document_id: uuid.UUID | None = None,
    custodian_subject: str | None = None,
) -> tuple[BankAccountRecord, bytes]:
    """The record and ciphertext of a new account (holder: a member, else a named person)."""
    account_id = uuid7()
    protected = runtime.pii.protect_account(account.account_number, row_id=account_id)
    record = BankAccountRecord(
        id=account_id,
        household_id=household_id,
        number_hash=protected.id_hash,
        masked_number=protected.masked,
        bank_code=account.bank_code,
        bank_name=account.bank_name,
        holder_name=holder.name if holder is not None else (account.holder_name or ""),
        holder_person_id=holder.person_id if holder is not None else None,
        custody_agreement=custody_agreement,
        custody_document_id=custody_document_id,
        custodian_subject=custodian_subject,
        created_at=runtime.clock.now(),
    )
    return record, protected.cipher


async def register_household(
    session: AsyncSession, runtime: Runtime, caller: Caller, command: RegisterHousehold
) -> HouseholdAggregate:
    """Validate, check the one-household rule, store, and publish HouseholdRegistered."""
    ensure_writable_region(caller, command.region_code)
    today = runtime.clock.today()
    try:
        valid = validate_household(
            command.region_code,
            command.area_type,
            command.members,
            divisions=runtime.divisions,
            today=today,
        )
        _check_holder(command)
        raise_if_any(
            [
                Violation(f"/members/{i}/name_correction", CORRECTION_ONLY_JOINING)
                for i, m in enumerate(command.members)
                if m.name_correction
            ]
        )
    except RulesViolatedError as error:
        raise rules_failed(error) from None
    pointers = [(f"/members/{i}", m) for i, m in enumerate(valid.members)]
    hashes, history = await _histories(session, runtime, pointers)
    _not_elsewhere(runtime, caller, hashes, history)
    _not_deceased(runtime, caller, hashes, history)
    await _couple_not_married_elsewhere(session, runtime, caller, pointers)
    person_ids, _ = await _store_persons(session, runtime, caller, pointers)
    household_id = uuid7()
    head_index = next(
        i for i, m in enumerate(valid.members) if m.input.relationship is Relationship.HEAD
    )
    await repo.insert_household(
        session,
        household_id=household_id,
        region_code=command.region_code,
        area_type=command.area_type,
        address=command.address,
        head_person_id=person_ids[head_index],
        created_by=caller.principal.subject,
        at=runtime.clock.now(),
    )
    await _insert_memberships(
        session,
        runtime,
        caller,
        household_id,
        [_membership(pid, m, today) for pid, m in zip(person_ids, valid.members, strict=True)],
        pointers,
    )
    members = await repo.load_members(session, household_id)
    account: BankAccountRecord | None = None
    if command.bank_account is not None:
        holder_index = (
            command.bank_account_holder_index
            if command.bank_account_holder_index is not None
            else head_index
        )
        holder = next(m for m in members if m.person_id == person_ids[holder_index])
        account, cipher = new_bank_account(runtime, household_id, command.bank_account, holder)
        await repo.insert_bank_account(session, account, number_cipher=cipher)
    household = await repo.get_household(session, household_id)
    assert household is not None
    aggregate = HouseholdAggregate(household, tuple(members), account)
    message = ev.HouseholdRegistered(
        household_id=str(household_id),
        region=contracts.region(household.region_code),
        occurred_at=contracts.timestamp(runtime.clock.now()),
        actor=contracts.actor(caller.principal),
        household=contracts.household_snapshot(household, members, runtime.pii.hash_key_id),
    )
    ref = contracts.bank_account_ref(account)
    if ref is not None:
        message.bank_account.CopyFrom(ref)
    await publish(
        session, runtime, caller, message, key=str(household_id), subject=str(household_id)
    )
    return aggregate


async def _couple_not_married_elsewhere(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    members: Sequence[tuple[str, ValidMember]],
) -> None:
    """A registration naming the head's spouse: neither is married by a marriage brought
    from the household they last moved out of to somebody else (ADR 0016, 3 Dec 2026):
    422 at each one's relationship, the other household told by its masked reference."""
    couple = [
        (pointer, runtime.pii.hash_id_number(m.resident_id.number), m.input.relationship)
        for pointer, m in members
        if m.input.relationship in (Relationship.HEAD, Relationship.SPOUSE)
    ]
    if len(couple) != 2:
        return
    problems: list[Violation] = []
    told: list[tuple[repo.PastMembership, str]] = []
    for (pointer, own, relationship), (_, other, _) in zip(couple, couple[::-1], strict=True):
        found, what = married_elsewhere(
            await carried_marriage(session, own),
            f"{pointer}/relationship",
            f"the {relationship.value}",
            joining=True,
            to_hash=other,
        )
        problems += found
        told += what
    _raise_told(runtime, caller, problems, told)


HOLDER_POINTER = "/bank_account/holder_member_index"
"""Where the request names the account's holder (``RegistrationBankAccountIn``)."""


def _check_holder(command: RegisterHousehold) -> None:
    index = command.bank_account_holder_index
    if index is None:
        return
    if command.bank_account is None:
        raise RulesViolatedError([Violation(HOLDER_POINTER, "no bank account given")])
    if not 0 <= index < len(command.members):
        raise RulesViolatedError(
            [Violation(HOLDER_POINTER, f"no such member: members has {len(command.members)}")]
        )


HOUSEHOLD_FIELDS = (
    "name",
    "id_number_masked",
    "birth_date",
    "sex",
    "relationship",
    "disability_grade",
    "serious_illness",
    "employment_status",
    "student",
    "counted",
    "exclusion_reason",
    "address",
    "notes",
)
ACCOUNT_FIELDS = ("bank_account_masked", "account_holder_name", "custody")
"""Named too when there is an account to show."""
# What the limited view shows instead (views.py): masked names; no address, health (nor
# employment status: unable to work tells of it), exclusion reason or words.
_LIMITED_HOUSEHOLD_FIELDS: dict[str, str | None] = {
    "name": "name_masked",
    "disability_grade": None,
    "serious_illness": None,
    "employment_status": None,
    "exclusion_reason": None,
    "address": None,
    "notes": None,
    "account_holder_name": None,
    "custody": None,
}


def person_refs(runtime: Runtime, members: Sequence[MemberRecord]) -> list[common.PersonRef]:
    return [contracts.person_ref(m, runtime.pii.hash_key_id) for m in members]


@dataclass(frozen=True, slots=True)
class SearchHouseholds:
    region_prefix: str | None = None
    status: HouseholdStatus | None = None
    cursor: str | None = None
    limit: int = 50


HOUSEHOLD_LIST_FIELDS = ("head_name_masked", "region", "status", "size")


async def search_households(
    session: AsyncSession, runtime: Runtime, caller: Caller, query: SearchHouseholds
) -> Page[HouseholdSummary]:
    """A village's (or any region's) households, newest first, keyset-paginated, with the
    head's masked name and the number of active members, for the case roles within their
    regions. The page is recorded as one search naming each head."""
    target = list_target("households", query, caller.principal)
    ensure_searchable(runtime, caller, query, target)
    window = Window.of("households", query, runtime.page_size_max)
    rows = await repo.search_households(
        session,
        caller.principal,
        region_prefix=query.region_prefix,
        status=query.status,
        after_id=window.after,
        limit=window.read,
    )
    page = window.page(rows)
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=[
            listed_person(
                h.head_person_id,
                h.head_id_hash,
                runtime.pii.hash_key_id,
                h.head_masked_id or "",
                h.head_name,
            )
            for h in page.items
            if h.head_person_id is not None and h.head_id_hash is not None and h.head_name
        ],
        fields=HOUSEHOLD_LIST_FIELDS,
    )
    return page


@dataclass(frozen=True, slots=True)
class HouseholdFound:
    """The household a person is an active member of, and the person as its member."""

    household_id: uuid.UUID
    region_code: str
    member: MemberRecord


NO_HOUSEHOLD = "No household in your regions has this person as an active member"
LOOKUP_FIELDS = ("id_number_masked", "relationship")
"""What a lookup shows of the person: the masked number and where they stand; the
household itself is read (and recorded) with GET /households/{id}."""


async def look_up_household(
    session: AsyncSession, runtime: Runtime, caller: Caller, id_number: str
) -> HouseholdFound:
    """The household whose active member holds ``id_number``, found by the number's keyed
    hash (the number itself is never stored in clear nor compared). One in another region
    answers as none does (its refusal recorded, as every refused read is); a number no one
    holds names no record and leaves none. The lookup is recorded as a search."""
    try:
        parse_resident_id(id_number, today=runtime.clock.today())
    except InvalidResidentIdError as exc:
        raise rules_failed(RulesViolatedError([Violation("/id_number", exc.reason)])) from None
    id_hash = runtime.pii.hash_id_number(id_number)
    active = [m for m in await repo.find_memberships(session, [id_hash]) if m.active]
    if not active:
        raise NotFound(NO_HOUSEHOLD)
    # One active household a person (the unique index on active memberships holds it).
    [found] = active
    target = AccessTarget(
        found.household_id,
        found.region_code,
        access.RECORD_TYPE_HOUSEHOLD,
        str(found.household_id),
        action=access.ACCESS_ACTION_SEARCH,
    )
    if not caller.principal.can_see(found.region_code):
        raise refused(NotFound(NO_HOUSEHOLD), runtime, caller, target)
    members = await repo.load_members(session, found.household_id)
    # Gone between the two reads (a move out or a death committed meanwhile): as none.
    member = next((m for m in members if m.active and m.id_hash == id_hash), None)
    if member is None:
        raise NotFound(NO_HOUSEHOLD)
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=person_refs(runtime, [member]),
        fields=LOOKUP_FIELDS,
    )
    return HouseholdFound(found.household_id, found.region_code, member)


async def read_household(
    session: AsyncSession, runtime: Runtime, caller: Caller, household_id: uuid.UUID
) -> HouseholdAggregate:
    """The household with its members and changes; the read is recorded."""
    aggregate = await repo.load_aggregate(session, household_id, with_changes=True)
    if aggregate is None:
        raise NotFound(NOT_FOUND)
    target = AccessTarget(
        household_id,
        aggregate.household.region_code,
        access.RECORD_TYPE_HOUSEHOLD,
        str(household_id),
    )
    if not caller.principal.can_see(target.region_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    await _record_shown(session, runtime, caller, target, aggregate)
    return aggregate


CHANGE_FIELDS = ("change", "notes")
"""What a read of one change shows: its kind, day and details (ids, dates, codes and
flags, never a name), and its note in words."""
_LIMITED_CHANGE_FIELDS: dict[str, str | None] = {"change": "change_limited", "notes": None}
"""The limited view's (api.mapping.change_out): no note, no custody agreement nor
documents, of a member change whose details alone."""


def _ids_in(value: Any) -> set[str]:
    """Every string of a change's details, and every key: the person ids it names
    (person_id, spouse_person_id, joined_person_ids, relationships by person id...)."""
    match value:
        case str():
            return {value}
        case dict():
            return {str(k) for k in value} | {i for v in value.values() for i in _ids_in(v)}
        case list():
            return {i for v in value for i in _ids_in(v)}
    return set()


async def read_change(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    household_id: uuid.UUID,
    change_id: uuid.UUID,
) -> ChangeRecord:
    """One change of a household, as the household's read shows it among its changes.

    A change of another household, or none, is 404 and leaves no record; a household
    outside the caller's regions is 404 recorded DENIED, as the household's read is. The
    read is recorded naming the members the change names by person id (a member who left
    since, too), with the change's fields as the caller's view shows them."""
    household = await repo.get_household(session, household_id)
    change = await repo.get_change(session, household_id, change_id) if household else None
    if household is None or change is None:
        raise NotFound(NOT_FOUND)
    target = AccessTarget(
        household_id, household.region_code, access.RECORD_TYPE_HOUSEHOLD, f"change:{change_id}"
    )
    if not caller.principal.can_see(target.region_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    named = _ids_in(change.details)
    # One entry a person, who may have left and rejoined.
    members = {m.person_id: m for m in await repo.load_members(session, household_id)}
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=person_refs(runtime, [m for p, m in members.items() if str(p) in named]),
        fields=shown(CHANGE_FIELDS, _LIMITED_CHANGE_FIELDS, view_of(caller.principal)),
    )
    return change


async def _record_shown(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    target: AccessTarget,
    aggregate: HouseholdAggregate,
) -> None:
    """Record the household as an answer shows it (a read, or a change's answer)."""
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=person_refs(runtime, aggregate.members),
        fields=shown(
            HOUSEHOLD_FIELDS + (ACCOUNT_FIELDS if aggregate.bank_account else ()),
            _LIMITED_HOUSEHOLD_FIELDS,
            view_of(caller.principal),
        ),
    )


# --- changes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Birth:
    member: MemberInput


@dataclass(frozen=True, slots=True)
class Death:
    person_id: uuid.UUID
    date_of_death: date
    new_head_person_id: uuid.UUID | None = None
    relationships: Mapping[uuid.UUID, Relationship] = field(default_factory=dict)
    """When the head dies: members' relationships to the new head, where not derived."""
    new_applicant_person_id: uuid.UUID | None = None
    """When the member who died applied for an open application: who applies for it now
    (else the head after the change, when they may; ADR 0016, 3 Dec 2026)."""


@dataclass(frozen=True, slots=True)
class Marriage:
    person_id: uuid.UUID
    married_on: date
    spouse: MemberInput | None = None
    """The spouse joining the household."""
    spouse_person_id: uuid.UUID | None = None
    """The spouse already a member (the head and a co-resident marry each other)."""
    marriage_age_basis: MarriageAgeBasis | None = None
    """The legal marriage age the clerk says the marriage was lawful under (an autonomous
    area's adaptation: 20 and 18; ADR 0016, 3 Dec 2026, helper hBB)."""


@dataclass(frozen=True, slots=True)
class MoveIn:
    member: MemberInput
    moved_on: date
    leaves_household_id: uuid.UUID | None = None
    """The household the person is an active member of and leaves on ``moved_on``: its
    move out is recorded in the same transaction (ADR 0016, 3 Dec 2026, helper hAL). The
    three fields below are that move out's, for the household left."""
    new_head_person_id: uuid.UUID | None = None
    relationships: Mapping[uuid.UUID, Relationship] = field(default_factory=dict)
    new_applicant_person_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class MoveOut:
    person_id: uuid.UUID
    moved_on: date
    new_head_person_id: uuid.UUID | None = None
    to_region_code: str | None = None
    relationships: Mapping[uuid.UUID, Relationship] = field(default_factory=dict)
    """When the head leaves: members' relationships to the new head, where not derived."""
    new_applicant_person_id: uuid.UUID | None = None
    """When the member who left applied for an open application: who applies for it now
    (else the head after the change, when they may; ADR 0016, 3 Dec 2026)."""


@dataclass(frozen=True, slots=True)
class AccountChange:
    account: BankAccountInput
    custody_agreement: bool = False
    custody_document_id: uuid.UUID | None = None
    custodian_subject: str | None = None


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A member's own details changed: only those given in ``new``; ``relationship``
    corrects their relationship to the head, recorded wrongly (ADR 0016)."""

    person_id: uuid.UUID
    effective_on: date
    new: rules.NewMemberDetails
    relationship: Relationship | None = None
    new_applicant_person_id: uuid.UUID | None = None
    """When the change leaves a member who applied for an open application unable to apply
    (not counted for a reason of living apart): who applies for it now (else the head,
    when they may; ADR 0016, 3 Dec 2026)."""


@dataclass(frozen=True, slots=True)
class AddressChange:
    """The whole household moved: a new address, and its village or community and area
    type when they change too (None: as recorded)."""

    address: str
    moved_on: date
    region_code: str | None = None
    area_type: AreaType | None = None


@dataclass(frozen=True, slots=True)
class Divorce:
    """Two members divorced (both may stay), or a member and a spouse living elsewhere
    (``spouse_person_id`` None)."""

    person_id: uuid.UUID
    divorced_on: date
    spouse_person_id: uuid.UUID | None = None
    relationships: Mapping[uuid.UUID, Relationship] = field(default_factory=dict)
    """Kin of the head through the marriage, by person id: their relationship after it."""


@dataclass(frozen=True, slots=True)
class SpouseDeath:
    """A member's spouse living elsewhere died: the member's marriage recorded without the
    spouse joining ends (the member stays)."""

    person_id: uuid.UUID
    date_of_death: date


Change = (
    Birth
    | Death
    | Marriage
    | MoveIn
    | MoveOut
    | AccountChange
    | MemberChange
    | AddressChange
    | Divorce
    | SpouseDeath
)


@dataclass(frozen=True, slots=True)
class RecordChange:
    change: Change
    note: str | None = None
    document_ids: Sequence[uuid.UUID] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ChangeRecorded:
    change_id: uuid.UUID
    kind: ChangeKind
    household: HouseholdAggregate


_KIND = {
    Birth: ChangeKind.BIRTH,
    Death: ChangeKind.DEATH,
    Marriage: ChangeKind.MARRIAGE,
    MoveIn: ChangeKind.MOVE_IN,
    MoveOut: ChangeKind.MOVE_OUT,
    AccountChange: ChangeKind.BANK_ACCOUNT_CHANGE,
    MemberChange: ChangeKind.MEMBER_CHANGE,
    AddressChange: ChangeKind.ADDRESS_CHANGE,
    Divorce: ChangeKind.DIVORCE,
    SpouseDeath: ChangeKind.SPOUSE_DEATH,
}


class _ChangeWork:
    """One change being applied: the household before it, and what it does."""

    def __init__(
        self,
        session: AsyncSession,
        runtime: Runtime,
        caller: Caller,
        before: HouseholdAggregate,
        documents: list[DocumentRecord],
    ) -> None:
        self.session = session
        self.runtime = runtime
        self.caller = caller
        self.before = before
        self.documents = documents
        self.today = runtime.clock.today()
        self.household_id = before.household.id
        head = before.household.head_person_id
        assert head is not None, "an active household has a head"
        # Members registered with the household "joined" on the day it was registered:
        # when the office learned of them, not when they joined, so a death or a move
        # dated before it is a late record. A birth, marriage or move in dates the joining.
        registered_on = china_date(before.household.created_at)
        self.state = rules.HouseholdState(
            head_person_id=head,
            members=[
                rules.ActiveMember(
                    m.person_id,
                    m.relationship,
                    m.birth_date,
                    m.joined_on if m.joined_on != registered_on else None,
                    m.sex,
                    m.marriage_age_basis,
                )
                for m in before.active_members
            ],
            registered_on=registered_on,
            registered_with=[
                rules.ActiveMember(m.person_id, m.relationship, m.birth_date, sex=m.sex)
                for m in before.members
                if m.joined_on == registered_on
            ],
        )
        self.head_person_id: uuid.UUID | None = head
        self.details: dict[str, Any] = {}
        self.effective_on = self.today
        """The day the change took effect: a birth's, a death's, ...; the day recorded for
        a bank account change."""
        self.came_from: uuid.UUID | None = None
        """The household a member who joined moved out of last, when intake has it."""
        self.note: str | None = None
        """The change's note, in words."""
        self.open_applicants: list[tuple[uuid.UUID, uuid.UUID]] = []
        """The household's open applications with their applicants, read (locked FOR
        SHARE) by a death, a move out or a member change."""
        self.successor: uuid.UUID | None = None
        """Who applies for the leaver's open applications from now on (None: nobody)."""
        self.left_without_applicant: list[uuid.UUID] = []
        """The leaver's open applications that nobody who stays may take over: closed
        (withdrawn, ``applicant_left``) after the change's event."""
        self.transfer: _Transfer | None = None
        """A move in's move out of the household the person leaves, in the same
        transaction (ADR 0016, 3 Dec 2026, helper hAL)."""

    def valid_member(self, member: MemberInput, pointer: str) -> ValidMember:
        checked, problems = validate_member(member, pointer=pointer, today=self.today)
        raise_if_any(problems)
        assert checked is not None
        return checked

    async def join(
        self,
        member: ValidMember,
        pointer: str,
        joined_on: date,
        *,
        newborn: bool = False,
        date_pointer: str | None = None,
    ) -> MemberRecord:
        """Add ``member``: refused when already here, active elsewhere (409), deceased,
        already registered for a ``newborn``, or (with ``date_pointer``, the request's date
        that ``joined_on`` is) joining before they left their last household."""
        hashes, history = await _histories(self.session, self.runtime, [(pointer, member)])
        here = [h for h in history if h.active and h.household_id == self.household_id]
        if here:
            # Tells that the ID number is an active member's here: recorded (_told).
            problem = rules_failed(
                RulesViolatedError(
                    [
                        Violation(
                            f"{pointer}/id_number", "already an active member of this household"
                        )
                    ]
                )
            )
            raise _told(self.runtime, self.caller, problem, [(h, "member") for h in here])
        _not_elsewhere(
            self.runtime, self.caller, hashes, history, moving_in=date_pointer == "/moved_on"
        )
        problems, told, last = _joining_problems(
            self.caller, pointer, history, joined_on, newborn=newborn, date_pointer=date_pointer
        )
        if member.input.name_correction and (newborn or date_pointer is None):
            problems.append(Violation(f"{pointer}/name_correction", CORRECTION_ONLY_JOINING))
        if told:
            problem = rules_failed(RulesViolatedError(problems))
            raise _told(self.runtime, self.caller, problem, told)
        raise_if_any(problems)
        (person_id,), corrected = await _store_persons(
            self.session, self.runtime, self.caller, [(pointer, member)]
        )
        if corrected:
            # As a member_change's correction: the details say so, never the name.
            if not any(
                d.document_type in PROOF_OF_NAME and d.person_id in (None, person_id)
                for d in self.documents
            ):
                # Asking for the card tells that the number is on file under another
                # name (a new person's correction is NOTHING_TO_CORRECT): recorded.
                problem = rules_failed(
                    RulesViolatedError(
                        [Violation("/document_ids", "list the ID card proving the corrected name")]
                    )
                )
                raise _told(self.runtime, self.caller, problem, [(h, "name") for h in history])
            self.details["name_corrected"] = True
        again = await _insert_memberships(
            self.session,
            self.runtime,
            self.caller,
            self.household_id,
            [_membership(person_id, member, joined_on)],
            [(pointer, member)],
        )
        # The checks above read the memberships before the person was locked and this one
        # written: meanwhile the person may have joined another household and left it
        # (both committed; the index sees no active membership), which the registry now
        # holds before this join (not a birth; joined before leaving it). The read made
        # once inserted (for a death) is checked alike, this membership left out; its last
        # household is the one they came from. (ADR 0016, 3 Dec 2026, helper hBD.)
        problems, told, last = _joining_problems(
            self.caller,
            pointer,
            [h for h in again if not (h.active and h.household_id == self.household_id)],
            joined_on,
            newborn=newborn,
            date_pointer=date_pointer,
        )
        if problems:
            problem = rules_failed(RulesViolatedError(problems))
            raise _told(self.runtime, self.caller, problem, told)
        self.details.setdefault("joined_person_ids", []).append(str(person_id))
        if last is not None and last.left_reason is LeaveReason.MOVE_OUT:
            self.came_from = last.household_id
        return await self.member_after(person_id)

    def certificate(
        self, document_type: DocumentType, of: set[uuid.UUID], refused: str
    ) -> tuple[DocumentRecord | None, list[Violation]]:
        """The change's certificate of ``document_type`` for the event, and the violations
        of those of that type naming a member outside ``of`` (``refused``: no evidence of
        this change). The one naming a member of ``of`` first: one naming nobody is theirs
        by being listed."""
        listed = [(i, d) for i, d in enumerate(self.documents) if d.document_type is document_type]
        problems = [
            Violation(f"/document_ids/{i}", refused)
            for i, d in listed
            if d.person_id is not None and d.person_id not in of
        ]
        named = min((d for _, d in listed), key=lambda d: d.person_id not in of, default=None)
        return named, problems

    async def marriages(self) -> rules.Marriages:
        """The marriages between members the household's record shows (ADR 0016), a
        member's marriage to a spouse who moved out ended also by what the registry holds
        of that spouse since (``_left_partner_free``)."""
        changes = await repo.load_changes(self.session, self.household_id)
        marriages = rules.marriages_in_household(
            [rules.PastChange(c.kind, c.effective_on, c.details) for c in changes],
            head_person_id=self.state.head_person_id,
            left_as={
                (m.person_id, m.left_on): m.relationship
                for m in self.before.members
                if m.left_on is not None
            },
        )
        if not marriages.left_by:
            return marriages
        left_by = rules.still_left_behind(self.state, marriages)
        for person, left in list(left_by.items()):
            if await self._left_partner_free(left):
                del left_by[person]
        return replace(marriages, left_by=left_by)

    async def _left_partner_free(self, left: rules.LeftBy) -> bool:
        """Whether the registry holds an end of the marriage of a member to ``left``'s
        spouse who moved out (``partner_free``)."""
        partner = self.before.member(left.partner)
        if partner is None:
            return False
        return await partner_free(
            self.session, partner.id_hash, left.partner, left=self.household_id, on=left.left_on
        )

    async def married_elsewhere(
        self, person_id: uuid.UUID, pointer: str, who: str, to_hash: str | None
    ) -> tuple[list[Violation], list[tuple[repo.PastMembership, str]]]:
        """The refusal of a marriage of the member ``person_id`` to the person of
        ``to_hash`` while they are married by a marriage brought from the household they
        last moved out of that nothing recorded here since has dealt with (ADR 0016, 3 Dec
        2026, helper hAE)."""
        carried = await self.carried(person_id)
        return married_elsewhere(carried, pointer, who, joining=False, to_hash=to_hash)

    async def carried(self, person_id: uuid.UUID) -> CarriedMarriage | None:
        """The member's marriage brought from another household, not dealt with here."""
        member = self.before.member(person_id)
        if member is None or not member.active:
            return None
        if rules.carried_marriage_dealt_with(await self.marriages(), person_id):
            return None
        return await carried_marriage(self.session, member.id_hash, here=self.household_id)

    def id_hash(self, person_id: uuid.UUID | None) -> str | None:
        member = self.before.member(person_id) if person_id is not None else None
        return member.id_hash if member is not None else None

    async def with_carried(self, person_id: uuid.UUID) -> rules.Marriages:
        """The household's marriages, with the member's marriage brought from another
        household taken as one to a spouse living elsewhere (ADR 0016, 3 Dec 2026): a
        divorce naming them alone, or that spouse's death, ends it here. Its day is not
        known here (no bound)."""
        marriages, _ = await self.spouse_elsewhere(person_id)
        return marriages

    async def spouse_elsewhere(self, person_id: uuid.UUID) -> tuple[rules.Marriages, str | None]:
        """``with_carried``'s marriages, and the keyed hash of the spouse living elsewhere
        whom a divorce naming the member alone or a ``spouse_death`` ends the marriage to,
        when the registry knows them (ADR 0016, 3 Dec 2026, helper hAH): the partner of a
        marriage brought from another household, else the spouse who moved out of this
        one (``left_by``, as ``rules._left_spouse_married_on`` reads it); None for a
        marriage recorded here to a spouse nobody names."""
        marriages = await self.marriages()
        if person_id in marriages.elsewhere:
            return marriages, None
        carried = await self.carried(person_id)
        if carried is not None:
            elsewhere = {**marriages.elsewhere, person_id: date.min}
            return replace(marriages, elsewhere=elsewhere), carried.partner_hash
        left = marriages.left_by.get(person_id)
        return marriages, None if left is None else self.id_hash(left.partner)

    async def details_changed_on(self, person_id: uuid.UUID) -> date | None:
        """The day of the member's latest change of details the record holds (ADR 0016,
        3 Dec 2026): a death or a move out is not dated before it."""
        changes = await repo.load_changes(self.session, self.household_id)
        return rules.details_changed_on(
            [rules.PastChange(c.kind, c.effective_on, c.details) for c in changes], person_id
        )

    async def member_after(self, person_id: uuid.UUID) -> MemberRecord:
        members = await repo.load_members(self.session, self.household_id)
        return next(m for m in members if m.person_id == person_id and m.active)

    async def couple_changed(
        self,
        person_id: uuid.UUID,
        partner: uuid.UUID,
        relationships: Mapping[uuid.UUID, Relationship],
    ) -> tuple[str, intake.Member]:
        """Record a couple's ``relationships`` to the head anew (a marriage's or a
        divorce's between two members, into the change's details too): the event's
        partner, the member whose relationship changed (else ``partner``) as now recorded,
        and the other of the two by person id, whichever the request named first."""
        for member_id, relationship in relationships.items():
            member = self.before.member(member_id)
            assert member is not None
            await repo.set_relationship(self.session, member.membership_id, relationship)
        self.details |= {
            "person_id": str(person_id),
            "spouse_person_id": str(partner),
            "relationships": {str(p): r.value for p, r in relationships.items()},
        }
        changed = next(iter(relationships), partner)
        recorded = await self.member_after(changed)
        other = partner if changed == person_id else person_id
        return str(other), contracts.member(recorded, self.runtime.pii.hash_key_id)

    async def applicant_after(
        self, leaver: uuid.UUID, new_head: uuid.UUID | None, named: uuid.UUID | None
    ) -> list[Violation]:
        """Who applies for the open applications ``leaver`` applied for, once they die or
        move out (ADR 0016, 3 Dec 2026): ``named``, else the head after the change when
        they may apply; the violations (a member who may not apply named, or none named
        while the head may not and another member may)."""
        self.open_applicants = await application_repo.open_applicants(
            self.session, self.household_id
        )
        head = self.state.head_person_id
        self.successor, problems = applicant_after_leaving(
            leaver,
            [applicant for _, applicant in self.open_applicants],
            [m.facts() for m in self.before.active_members if m.person_id != leaver],
            new_head if leaver == head else head,
            named,
            today=self.today,
            policy=self.runtime.policy,
        )
        return problems

    async def applicant_after_change(
        self, changed: MemberFacts, named: uuid.UUID | None
    ) -> tuple[bool, list[Violation]]:
        """Whether a member change leaves ``changed`` (the member as the change leaves
        them), who applied for an open application, unable to apply, and so who applies
        for it now, as ``applicant_after`` (ADR 0016, 3 Dec 2026); the violations."""
        self.open_applicants = await application_repo.open_applicants(
            self.session, self.household_id
        )
        replaced, self.successor, problems = applicant_after_change(
            changed,
            [applicant for _, applicant in self.open_applicants],
            [m.facts() for m in self.before.active_members if m.person_id != changed.person_id],
            self.state.head_person_id,
            named,
            today=self.today,
            policy=self.runtime.policy,
        )
        return replaced, problems

    async def hand_over(self, leaver: uuid.UUID, update: ev.HouseholdUpdated) -> None:
        """Once ``leaver`` left, or may no longer apply (a member change): their open
        applications are the successor's (stored, in the change's details and its event),
        or, with nobody to take them over in a household that stays, closed after the event
        (``left_without_applicant``)."""
        theirs = [a for a, applicant in self.open_applicants if applicant == leaver]
        if not theirs or self.head_person_id is None:
            return  # none, or the household is dissolved: that closes them all
        if self.successor is None:
            self.left_without_applicant = theirs
            self.details["applications_closed"] = [str(a) for a in theirs]
            return
        await application_repo.set_applicant(self.session, theirs, self.successor)
        self.details["new_applicant_person_id"] = str(self.successor)
        self.details["applications_taken_over"] = [str(a) for a in theirs]
        update.applicants_replaced.extend(
            ev.HouseholdUpdated.ApplicantReplaced(
                application_id=str(a),
                previous_applicant_person_id=str(leaver),
                applicant_person_id=str(self.successor),
            )
            for a in theirs
        )

    async def leave(
        self,
        person_id: uuid.UUID,
        on: date,
        reason: LeaveReason,
        new_head: uuid.UUID | None,
        relationships: Mapping[uuid.UUID, Relationship],
    ) -> None:
        """End ``person_id``'s membership; when the head leaves, ``new_head`` is head and
        every other member's relationship is recorded to them (``relationships`` gives
        those the old ones do not tell)."""
        leaving = self.before.member(person_id)
        assert leaving is not None
        rebased: dict[uuid.UUID, Relationship] = {}
        if person_id == self.head_person_id and new_head is not None:
            rebased, problems = rules.relationships_to_new_head(
                self.state,
                person_id,
                new_head,
                relationships,
                on=on,
                marriages=await self.marriages(),
            )
            # Neither the new head nor their spouse married by a marriage brought from
            # another household to somebody else (ADR 0016, 3 Dec 2026, helper hAG).
            told: list[tuple[repo.PastMembership, str]] = []
            for member_id, relationship in rebased.items():
                if relationship is not Relationship.SPOUSE:
                    continue
                pointer = f"/relationships/{member_id}"
                found, what = await self.married_elsewhere(
                    member_id, pointer, "the member", self.id_hash(new_head)
                )
                found_heir, what_heir = await self.married_elsewhere(
                    new_head, pointer, "the new head", self.id_hash(member_id)
                )
                problems += found + found_heir
                told += what + what_heir
            _raise_told(self.runtime, self.caller, problems, told)
        elif relationships:
            raise_if_any([Violation("/relationships", "only when the head leaves")])
        await repo.end_membership(self.session, leaving.membership_id, on, reason)
        self.details["person_id"] = str(person_id)
        spouse = rules.spouse_left_behind(self.state, person_id, await self.marriages())
        if spouse is not None:
            # The marriage ends here: a later one of either is dated on or after it.
            self.details["spouse_person_id"] = str(spouse)
        if person_id == self.head_person_id:
            self.head_person_id = new_head
            if new_head is not None:
                changed: dict[str, str] = {}
                for member_id, relationship in rebased.items():
                    member = self.before.member(member_id)
                    assert member is not None
                    if member.relationship is not relationship:
                        await repo.set_relationship(
                            self.session, member.membership_id, relationship
                        )
                        changed[str(member_id)] = relationship.value
                self.details["new_head_person_id"] = str(new_head)
                self.details["relationships"] = changed


def _scoped(
    runtime: Runtime, caller: Caller, household_id: uuid.UUID, household: HouseholdRecord | None
) -> None:
    """A change's household, missing or out of the caller's regions, answered 404."""
    if household is None:
        raise NotFound(NOT_FOUND)
    if not caller.principal.can_see(household.region_code):
        # The answer would be the household's read: refused as that read is (recorded).
        target = AccessTarget(
            household_id, household.region_code, access.RECORD_TYPE_HOUSEHOLD, str(household_id)
        )
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)


async def record_change(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    household_id: uuid.UUID,
    command: RecordChange,
) -> ChangeRecorded:
    """Apply one change to a household and publish HouseholdUpdated with its kind (a move
    in naming the household left records that move out too: ``_transfer``)."""
    # The region is checked before the household is locked, so that a caller who may not
    # touch it never holds (or waits on) its lock; and again once locked, as a change
    # committed meanwhile may have moved it (an address_change) out of the caller's regions.
    _scoped(runtime, caller, household_id, await repo.get_household(session, household_id))
    change = command.change
    left: uuid.UUID | None = None
    if isinstance(change, MoveIn):
        alone = rules.move_out_fields_alone(
            change.leaves_household_id,
            new_head_person_id=change.new_head_person_id,
            relationships=change.relationships,
            new_applicant_person_id=change.new_applicant_person_id,
        )
        if alone:
            raise rules_failed(RulesViolatedError(alone))
        if change.leaves_household_id is not None:
            left = await _household_left(session, runtime, caller, household_id, change)
            # Both households locked in one order, whatever the request's: a transfer
            # from B to A beside one from A to B would each hold one and wait for the
            # other's (a deadlock, a 500).
            for locked in sorted((household_id, left)):
                await repo.get_household(session, locked, for_update=True)
    before = await repo.load_aggregate(session, household_id, for_update=True)
    if before is None:
        raise NotFound(NOT_FOUND)
    _scoped(runtime, caller, household_id, before.household)
    if before.household.status is not HouseholdStatus.ACTIVE:
        raise household_dissolved()
    documents = await _change_documents(session, household_id, command.document_ids)
    work = _ChangeWork(session, runtime, caller, before, documents)
    work.note = command.note
    if isinstance(change, MoveIn) and left is not None:
        work.transfer = await _transfer(work, change, left)
    kind = _KIND[type(change)]
    try:
        update = await _apply(work, change)
    except RulesViolatedError as error:
        raise rules_failed(error) from None
    if work.transfer is not None:
        # The move out's event first, as two requests would have published them; only
        # now, once nothing is refused (an outbox row, even rolled back, takes an id).
        await work.transfer.announce()
    stored = await _finish(work, update, kind, command.note, documents)
    change_id, after = stored.change_id, stored.after
    # The answer shows the whole household, members already there too: a read as a GET is
    # (in its region now: an address_change moves it).
    target = AccessTarget(
        household_id, after.household.region_code, access.RECORD_TYPE_HOUSEHOLD, str(household_id)
    )
    await _record_shown(session, runtime, caller, target, after)
    return ChangeRecorded(change_id, kind, after)


@dataclass(frozen=True, slots=True)
class _Stored:
    """A change stored: its id, when, and the household after it."""

    change_id: uuid.UUID
    at: datetime
    after: HouseholdAggregate


async def _finish(
    work: _ChangeWork,
    update: ev.HouseholdUpdated,
    kind: ChangeKind,
    note: str | None,
    documents: Sequence[DocumentRecord],
) -> _Stored:
    """Store the change ``work`` applied and publish it (``_store``, ``_announce``)."""
    stored = await _store(work, kind, note, documents)
    await _announce(work, update, stored, note, documents)
    return stored


async def _store(
    work: _ChangeWork, kind: ChangeKind, note: str | None, documents: Sequence[DocumentRecord]
) -> _Stored:
    """Store the change ``work`` applied: the household's version, head and status, and
    the change's row."""
    session, runtime, caller = work.session, work.runtime, work.caller
    household_id = work.household_id
    at = runtime.clock.now()
    await repo.touch_household(
        session, household_id, at=at, head_person_id=work.head_person_id, status=_status(work)
    )
    change_id = uuid7()
    await repo.insert_change(
        session,
        change_id=change_id,
        household_id=household_id,
        kind=kind.value,
        effective_on=work.effective_on,
        details=work.details | {"document_ids": [str(d.id) for d in documents]},
        note=note,
        recorded_by=caller.principal.subject,
        at=at,
    )
    after = await repo.load_aggregate(session, household_id, with_changes=True)
    assert after is not None
    return _Stored(change_id, at, after)


def _status(work: _ChangeWork) -> HouseholdStatus:
    """Active while the household has a head; dissolved once its last member left."""
    return HouseholdStatus.ACTIVE if work.head_person_id is not None else HouseholdStatus.DISSOLVED


async def _announce(
    work: _ChangeWork,
    update: ev.HouseholdUpdated,
    stored: _Stored,
    note: str | None,
    documents: Sequence[DocumentRecord],
) -> None:
    """Publish ``update`` with the household after the change, into the timelines of its
    open applications, and close the applications it leaves without a household or an
    applicant."""
    session, runtime, caller = work.session, work.runtime, work.caller
    household_id, after = work.household_id, stored.after
    update.household_id = str(household_id)
    # The body names the change too: ce_subject is optional (ADR 0002, 3 Dec 2026).
    update.change_id = str(stored.change_id)
    update.region.CopyFrom(contracts.region(after.household.region_code))
    update.occurred_at.CopyFrom(contracts.timestamp(stored.at))
    update.actor.CopyFrom(contracts.actor(caller.principal))
    update.household.CopyFrom(
        contracts.household_snapshot(after.household, after.members, runtime.pii.hash_key_id)
    )
    update.documents.extend(contracts.document_ref(d) for d in documents)
    if note:
        update.note = note
    # The change enters the timelines of the household's undecided applications: the
    # household locked FOR UPDATE, a submission racing it fails (migration 0007) or
    # committed before and is found here; the applications are locked FOR SHARE, so one
    # withdrawn or decided meanwhile is not (nor is one withdrawn after the read, before
    # this commits: the withdrawal waits).
    open_applications = await application_repo.open_application_ids(session, household_id)
    await publish(
        session,
        runtime,
        caller,
        update,
        key=str(household_id),
        subject=str(stored.change_id),
        open_applications=open_applications,
    )
    if _status(work) is HouseholdStatus.DISSOLVED:
        await _close_applications(
            session, runtime, caller, open_applications, WithdrawalCause.HOUSEHOLD_DISSOLVED
        )
    elif work.left_without_applicant:
        await _close_applications(
            session, runtime, caller, work.left_without_applicant, WithdrawalCause.APPLICANT_LEFT
        )


NOT_THE_HOUSEHOLD_LEFT = (
    "is not the household the person is an active member of: name that one, or record the"
    " move in without it"
)
THE_HOUSEHOLD_MOVED_INTO = "is this household, the one moved into: name the household left"


def household_left_out_of_scope(ref: str) -> Forbidden:
    """403 region-out-of-scope of a move in naming a household left in a region outside
    the caller's, named by its masked reference alone (ADR 0016, 3 Dec 2026, helper hAL)."""
    return Forbidden(
        f"The household the person leaves, {ref}, is outside your regions: its township"
        " records the move out",
        type_slug="region-out-of-scope",
    )


def household_left_changed() -> Conflict:
    """409 concurrent-change: the person was an active member of the household named by
    ``leaves_household_id`` when read, and no longer is once it is locked (a change of it
    committed meanwhile)."""
    return Conflict(
        "Another request changed the household the person leaves while this one was being"
        " checked; nothing was recorded, send it again",
        type_slug="concurrent-change",
    )


async def _household_left(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    household_id: uuid.UUID,
    change: MoveIn,
) -> uuid.UUID:
    """The household a move in names by ``leaves_household_id``, checked before any lock
    (ADR 0016, 3 Dec 2026, helper hAL): the household the person is an active member of,
    else 422 at ``/leaves_household_id`` (what it tells of the person's household recorded
    as a lookup, ``_told``); within the caller's regions, else 403 region-out-of-scope
    naming it by its masked reference alone, recorded DENIED as a refused read of it."""
    checked, problems = validate_member(
        change.member, pointer="/member", today=runtime.clock.today()
    )
    if problems or checked is None:
        raise rules_failed(RulesViolatedError(problems))
    leaves = change.leaves_household_id
    if leaves == household_id:
        raise rules_failed(
            RulesViolatedError([Violation("/leaves_household_id", THE_HOUSEHOLD_MOVED_INTO)])
        )
    id_hash = runtime.pii.hash_id_number(checked.resident_id.number)
    active = [h for h in await repo.find_memberships(session, [id_hash]) if h.active]
    found = next((h for h in active if h.household_id == leaves), None)
    if found is None:
        problem = rules_failed(
            RulesViolatedError([Violation("/leaves_household_id", NOT_THE_HOUSEHOLD_LEFT)])
        )
        if active:
            raise _told(runtime, caller, problem, [(h, "active") for h in active])
        raise problem
    if not caller.principal.can_see(found.region_code):
        ref = masked_household_ref(found.household_id, found.region_code)
        target = AccessTarget(
            found.household_id, found.region_code, access.RECORD_TYPE_HOUSEHOLD, str(leaves)
        )
        raise refused(household_left_out_of_scope(ref), runtime, caller, target)
    return found.household_id


@dataclass(slots=True)
class _Transfer:
    """A move in naming the household the person leaves (ADR 0016, 3 Dec 2026, helper
    hAL): that household's change, a move out to the household moved into, recorded in
    the same transaction with every rule a move out applies."""

    work: _ChangeWork
    move_out: MoveOut
    to_household_id: uuid.UUID
    update: ev.HouseholdUpdated = field(default_factory=ev.HouseholdUpdated)
    stored: _Stored | None = None

    async def problems(self) -> list[Violation]:
        """The move out's violations, at the move in's own pointers (``moved_on``,
        ``new_head_person_id``, ``relationships``, ``new_applicant_person_id``), each
        saying it is of the household left."""
        return rules.of_the_household_left(await _move_out_problems(self.work, self.move_out))

    async def leave(self) -> None:
        """Record the move out there as a move out is (the membership ended, the head
        and the applicant handed over, the household's version, the change's row), before
        the move in adds the person here: one active membership a person (the unique
        index), and the checks of a marriage taken along read that household's record, its
        move out's row included. Its event, timeline entries and the applications it
        closes follow once the move in passed every check (``announce``)."""
        await _move_out(self.work, self.move_out, self.update, to_household=self.to_household_id)
        self.stored = await _store(self.work, ChangeKind.MOVE_OUT, self.work.note, [])

    async def announce(self) -> None:
        """Publish the move out stored by ``leave`` (``_announce``)."""
        assert self.stored is not None, "announced once left"
        await _announce(self.work, self.update, self.stored, self.work.note, [])


async def _transfer(work: _ChangeWork, change: MoveIn, left: uuid.UUID) -> _Transfer:
    """The move out of household ``left`` that the move in ``change`` into ``work``'s
    household records too, on its day, checked once both are locked: the person still an
    active member there (else 409 concurrent-change), the household still in the caller's
    regions (else as ``_household_left``)."""
    session, runtime, caller = work.session, work.runtime, work.caller
    there = await repo.load_aggregate(session, left, for_update=True)
    assert there is not None, "a household is never deleted"
    if not caller.principal.can_see(there.household.region_code):
        target = AccessTarget(
            left, there.household.region_code, access.RECORD_TYPE_HOUSEHOLD, str(left)
        )
        ref = masked_household_ref(left, there.household.region_code)
        raise refused(household_left_out_of_scope(ref), runtime, caller, target)
    id_hash = runtime.pii.hash_id_number(change.member.id_number)
    leaver = next((m for m in there.active_members if m.id_hash == id_hash), None)
    if leaver is None or there.household.status is not HouseholdStatus.ACTIVE:
        raise household_left_changed()
    work_there = _ChangeWork(session, runtime, caller, there, [])
    work_there.note = work.note
    move_out = MoveOut(
        leaver.person_id,
        change.moved_on,
        change.new_head_person_id,
        work.before.household.region_code,
        change.relationships,
        change.new_applicant_person_id,
    )
    return _Transfer(work_there, move_out, work.household_id)


async def _close_applications(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    open_applications: Sequence[uuid.UUID],
    cause: WithdrawalCause,
) -> None:
    """The change dissolved the household (its last member died or left): its applications
    still being decided are closed as withdrawn (cause ``household_dissolved``, no reason
    in words), each with an ApplicationWithdrawn of that cause in its timeline after the
    change's own entry (ADR 0016). Nobody is left to withdraw them, and assessment would
    investigate a household that no longer exists. They were locked FOR SHARE by the read
    that found them: a withdrawal or decision in progress then was waited for and is not
    among them; one starting now waits for this transaction and finds them closed. So too,
    cause ``applicant_left``, the open applications of an applicant who died or moved out
    when nobody who stays may apply in their place (ADR 0016, 3 Dec 2026)."""
    if not open_applications:
        return
    at = runtime.clock.now()
    events: list[OutgoingEvent] = []
    for application_id in open_applications:
        record = await application_repo.get_application(session, application_id)
        assert record is not None
        stored, reason = await application_repo.mark_withdrawn(
            session, application_id, at=at, cause=cause, reason=None
        )
        withdrawn = ev.ApplicationWithdrawn(
            household_id=str(record.household_id),
            region=contracts.region(record.region_code),
            occurred_at=contracts.timestamp(at),
            actor=contracts.actor(caller.principal),
            application_id=str(application_id),
            reason=reason or "",
            cause=contracts.WITHDRAWAL_CAUSES[stored],
        )
        events.append(
            OutgoingEvent(withdrawn, key=str(record.household_id), subject=str(application_id))
        )
    await publish_many(session, runtime, caller, events)


async def _change_documents(
    session: AsyncSession, household_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[DocumentRecord]:
    found = await document_repo.get_documents(session, list(ids))
    problems: list[Violation] = []
    for i, d in enumerate(ids):
        document = found.get(d)
        if document is None or document.household_id != household_id:
            problems.append(Violation(f"/document_ids/{i}", "no such document of this household"))
        elif document.document_type is DocumentType.RETURN_NOTICE:
            # Intake wrote it: no evidence of the change (ADR 0009, 3 Dec 2026).
            problems.append(Violation(f"/document_ids/{i}", WRITTEN_BY_INTAKE))
    if problems:
        raise rules_failed(RulesViolatedError(problems))
    return [found[d] for d in ids]


async def _apply(work: _ChangeWork, change: Change) -> ev.HouseholdUpdated:
    """Check the change against the household, store it, and build its event."""
    update = ev.HouseholdUpdated()
    today = work.today
    match change:
        case Birth(member=raw):
            child = work.valid_member(raw, "/member")
            raise_if_any(rules.check_birth(work.state, child, today=today))
            added = await work.join(child, "/member", child.birth_date, newborn=True)
            work.effective_on = child.birth_date
            update.birth.member.CopyFrom(contracts.member(added, work.runtime.pii.hash_key_id))
        case Death(person_id=pid, date_of_death=died_on, new_head_person_id=heir):
            certificate, refused_certificates = work.certificate(
                DocumentType.DEATH_CERTIFICATE, {pid}, "the death certificate of another member"
            )
            raise_if_any(
                rules.check_death(
                    work.state,
                    pid,
                    died_on,
                    heir,
                    today=today,
                    marriages=await work.marriages(),
                    details_on=await work.details_changed_on(pid),
                )
                + refused_certificates
                + await work.applicant_after(pid, heir, change.new_applicant_person_id)
            )
            await work.leave(pid, died_on, LeaveReason.DEATH, heir, change.relationships)
            await work.hand_over(pid, update)
            work.effective_on = died_on
            update.death.person_id = str(pid)
            update.death.date_of_death.CopyFrom(contracts.local_date(died_on))
            if certificate is not None:
                update.death.death_certificate.CopyFrom(contracts.document_ref(certificate))
        case Marriage(spouse_person_id=partner) if partner is not None:
            await _marriage_in_household(work, change, partner, update)
        case Marriage(person_id=pid, married_on=on, spouse=raw_spouse):
            if raw_spouse is not None and raw_spouse.marriage_age_basis is not None:
                raise_if_any([Violation("/spouse/marriage_age_basis", rules.BASIS_ON_THE_MARRIAGE)])
            spouse = work.valid_member(raw_spouse, "/spouse") if raw_spouse else None
            problems = rules.check_marriage(
                work.state,
                pid,
                on,
                spouse,
                today=today,
                marriages=await work.marriages(),
                basis=change.marriage_age_basis,
            )
            told: list[tuple[repo.PastMembership, str]] = []
            if spouse is not None:
                # Either may be married by a marriage brought from another household
                # (ADR 0016, 3 Dec 2026); a spouse living elsewhere names nobody to check.
                spouse_hash = work.runtime.pii.hash_id_number(spouse.resident_id.number)
                found, told = await work.married_elsewhere(
                    pid, "/person_id", "the member", spouse_hash
                )
                joining, told_joining = married_elsewhere(
                    await carried_marriage(work.session, spouse_hash, here=work.household_id),
                    "/spouse/id_number",
                    "the spouse",
                    joining=True,
                    to_hash=work.id_hash(pid),
                )
                problems += found + joining
                told += told_joining
            _raise_told(work.runtime, work.caller, problems, told)
            work.effective_on = on
            update.marriage.person_id = str(pid)
            update.marriage.married_on.CopyFrom(contracts.local_date(on))
            work.details["person_id"] = str(pid)
            _said_basis(work, update.marriage, change.marriage_age_basis)
            if spouse is not None:
                added = await work.join(spouse, "/spouse", on, date_pointer="/married_on")
                update.marriage.spouse.CopyFrom(
                    contracts.member(added, work.runtime.pii.hash_key_id)
                )
        case MoveIn(member=raw, moved_on=on):
            newcomer = work.valid_member(raw, "/member")
            as_spouse = newcomer.input.relationship is Relationship.SPOUSE
            marriages = await work.marriages() if as_spouse else rules.NO_MARRIAGES
            problems = rules.check_move_in(
                work.state, newcomer, on, today=today, marriages=marriages
            )
            if work.transfer is not None:
                # The household left first, its errors with this one's: once the person
                # has left it, the checks below read the marriage they take along.
                raise_if_any(problems + await work.transfer.problems())
                await work.transfer.leave()
            told = []
            if as_spouse:
                # Neither the newcomer nor the head married by a marriage brought from
                # another household to somebody else (ADR 0016, 3 Dec 2026).
                newcomer_hash = work.runtime.pii.hash_id_number(newcomer.resident_id.number)
                head = work.state.head_person_id
                found, told = await work.married_elsewhere(
                    head, "/member/relationship", "the head", newcomer_hash
                )
                joining, told_joining = married_elsewhere(
                    await carried_marriage(work.session, newcomer_hash, here=work.household_id),
                    "/member/relationship",
                    "the member",
                    joining=True,
                    to_hash=work.id_hash(head),
                )
                problems += joining + found
                told += told_joining
                # Nor the head married to a spouse who moved out, but for that spouse moving
                # back in (ADR 0016, 3 Dec 2026, helper hAG).
                left = marriages.left_by.get(head)
                same = left is not None and work.id_hash(left.partner) == newcomer_hash
                problems += rules.left_behind(
                    marriages,
                    head,
                    "/member/relationship",
                    "the head",
                    to=left.partner if left is not None and same else None,
                )
            _raise_told(work.runtime, work.caller, problems, told)
            added = await work.join(newcomer, "/member", on, date_pointer="/moved_on")
            if as_spouse:
                # Who moves in is known once joined: the transaction writes nothing if refused.
                raise_if_any(rules.check_spouse_moving_in(work.state, marriages, added.person_id))
            work.effective_on = on
            if raw.marriage_age_basis is not None:
                # As said for the spouse moving in; the membership and the event's member
                # carry it too (ADR 0016, 3 Dec 2026, helper hBB).
                work.details["marriage_age_basis"] = raw.marriage_age_basis.value
            update.move_in.member.CopyFrom(contracts.member(added, work.runtime.pii.hash_key_id))
            update.move_in.moved_on.CopyFrom(contracts.local_date(on))
            if work.transfer is not None:
                work.came_from = work.transfer.work.household_id
                work.details["from_household_id"] = str(work.came_from)
            if work.came_from is not None:
                update.move_in.from_household_id = str(work.came_from)
        case MoveOut():
            raise_if_any(await _move_out_problems(work, change))
            await _move_out(work, change, update)
        case AccountChange():
            await _change_account(work, change, update)
        case MemberChange():
            await _change_member(work, change, update)
        case AddressChange():
            await _change_address(work, change, update)
        case Divorce():
            await _divorce(work, change, update)
        case SpouseDeath():
            await _spouse_death(work, change, update)
    return update


async def _move_out_problems(work: _ChangeWork, change: MoveOut) -> list[Violation]:
    """A move out's violations: its day and the head it leaves (``rules.check_move_out``),
    its region, and who applies for the leaver's open applications."""
    pid = change.person_id
    problems = rules.check_move_out(
        work.state,
        pid,
        change.moved_on,
        change.new_head_person_id,
        today=work.today,
        marriages=await work.marriages(),
        details_on=await work.details_changed_on(pid),
    )
    to = change.to_region_code
    if to is not None and to not in work.runtime.divisions:
        problems.append(Violation("/to_region_code", "not in the division table"))
    return problems + await work.applicant_after(
        pid, change.new_head_person_id, change.new_applicant_person_id
    )


async def _move_out(
    work: _ChangeWork,
    change: MoveOut,
    update: ev.HouseholdUpdated,
    *,
    to_household: uuid.UUID | None = None,
) -> None:
    """Record a move out checked by ``_move_out_problems``; ``to_household``: the household
    the person joins in the same transaction (a move in naming this one as left)."""
    pid, on, to = change.person_id, change.moved_on, change.to_region_code
    await work.leave(pid, on, LeaveReason.MOVE_OUT, change.new_head_person_id, change.relationships)
    await work.hand_over(pid, update)
    work.effective_on = on
    update.move_out.person_id = str(pid)
    update.move_out.moved_on.CopyFrom(contracts.local_date(on))
    if to is not None:
        update.move_out.to_region.CopyFrom(contracts.region(to))
        work.details["to_region_code"] = to
    if to_household is not None:
        update.move_out.to_household_id = str(to_household)
        work.details["to_household_id"] = str(to_household)


async def _spouse_death(
    work: _ChangeWork, change: SpouseDeath, update: ev.HouseholdUpdated
) -> None:
    """A member's spouse living elsewhere died (ADR 0016): the marriage recorded without
    the spouse joining ends on that day; the member stays, nothing else changes. A death
    certificate naming a member is no evidence of it (the spouse is none). The record
    showing that marriage ended already (divorced or widowed) is 409 marriage-ended. A
    spouse the registry holds alive (an active member of a household, no death recorded
    anywhere) is refused (ADR 0016, 3 Dec 2026, helper hAH)."""
    marriages, spouse_hash = await work.spouse_elsewhere(change.person_id)
    if rules.spouse_death_recorded(work.state, marriages, change.person_id):
        raise marriage_ended()
    # The spouse is no member: a certificate naming one is of another death.
    certificate, refused_certificates = work.certificate(
        DocumentType.DEATH_CERTIFICATE, set(), "the death certificate of a member"
    )
    problems = rules.check_spouse_death(
        work.state,
        change.person_id,
        change.date_of_death,
        today=work.today,
        marriages=marriages,
    )
    alive, told = (
        await alive_in_registry(work.session, spouse_hash, here=work.household_id)
        if spouse_hash is not None
        else ([], [])
    )
    _raise_told(work.runtime, work.caller, problems + alive + refused_certificates, told)
    work.effective_on = change.date_of_death
    work.details["person_id"] = str(change.person_id)
    update.spouse_death.person_id = str(change.person_id)
    update.spouse_death.date_of_death.CopyFrom(contracts.local_date(change.date_of_death))
    if certificate is not None:
        update.spouse_death.death_certificate.CopyFrom(contracts.document_ref(certificate))


async def _divorce(work: _ChangeWork, change: Divorce, update: ev.HouseholdUpdated) -> None:
    """A couple the record knows divorced (ADR 0016): both may stay; the head's former
    spouse and a child's former spouse become the head's other (counted as recorded).
    The event's person_id is the partner whose relationship stays, its former_spouse the
    other as now recorded (unset for a spouse living elsewhere). A divorce the record
    shows already is 409 already-divorced."""
    marriages = (
        await work.with_carried(change.person_id)
        if change.spouse_person_id is None
        else await work.marriages()
    )
    if rules.divorce_recorded(work.state, marriages, change.person_id, change.spouse_person_id):
        raise already_divorced()
    relationships, problems = rules.check_divorce(
        work.state,
        change.person_id,
        change.spouse_person_id,
        change.divorced_on,
        today=work.today,
        marriages=marriages,
        given=change.relationships,
    )
    partners = {change.person_id}
    if change.spouse_person_id is not None:
        partners.add(change.spouse_person_id)
    certificate, refused_certificates = work.certificate(
        DocumentType.DIVORCE_CERTIFICATE, partners, "the divorce certificate of another member"
    )
    raise_if_any(problems + refused_certificates)
    assert relationships is not None
    work.effective_on = change.divorced_on
    update.divorce.divorced_on.CopyFrom(contracts.local_date(change.divorced_on))
    if certificate is not None:
        update.divorce.divorce_certificate.CopyFrom(contracts.document_ref(certificate))
    # The head's kin through the marriage (parents-in-law, a step-child) as the request
    # gives them: recorded anew, and in the change's details beside the couple's.
    kin = {p: r for p, r in relationships.items() if p not in partners}
    for member_id, relationship in kin.items():
        member = work.before.member(member_id)
        assert member is not None
        await repo.set_relationship(work.session, member.membership_id, relationship)
    recorded_kin = {str(p): r.value for p, r in kin.items()}
    if change.spouse_person_id is None:
        work.details |= {"person_id": str(change.person_id), "relationships": recorded_kin}
        update.divorce.person_id = str(change.person_id)
        return
    couple = {p: r for p, r in relationships.items() if p in partners}
    person_id, former = await work.couple_changed(change.person_id, change.spouse_person_id, couple)
    work.details["relationships"] |= recorded_kin
    update.divorce.person_id = person_id
    update.divorce.former_spouse.CopyFrom(former)


OPEN_APPLICATION_ELSEWHERE = (
    "An application of the household is being decided by its township: a move to another"
    " township is recorded once it is decided or withdrawn"
)


def open_application_in_township() -> Conflict:
    """An address_change to another township while an application is being decided."""
    return Conflict(OPEN_APPLICATION_ELSEWHERE, type_slug="open-application-in-township")


async def _change_address(
    work: _ChangeWork, change: AddressChange, update: ev.HouseholdUpdated
) -> None:
    """The household moves, within the caller's regions (the old one and the new). An
    application still being decided stays with the township that accepted it (its
    caseworker, its public lists): a move to another township waits for its decision or
    withdrawal (409), a move within the township enters its timeline (ADR 0016)."""
    household = work.before.household
    current = rules.Address(household.region_code, household.area_type, household.address)
    new = rules.Address(
        change.region_code or current.region_code,
        change.area_type or current.area_type,
        change.address,
    )
    ensure_writable_region(work.caller, new.region_code)
    known = work.runtime.divisions.get(new.region_code)
    raise_if_any(
        rules.check_address_change(
            current,
            new,
            change.moved_on,
            known_village=known is not None and known.level is DivisionLevel.VILLAGE,
            today=work.today,
            latest_on=await repo.latest_move_on(work.session, work.household_id),
        )
    )
    if township_of(new.region_code) != township_of(current.region_code) and (
        await application_repo.open_application_ids(work.session, work.household_id)
    ):
        raise open_application_in_township()
    await repo.set_address(
        work.session,
        work.household_id,
        region_code=new.region_code,
        area_type=new.area_type,
        address=new.address,
    )
    work.effective_on = change.moved_on
    update.address_change.previous_region.CopyFrom(contracts.region(current.region_code))
    update.address_change.area_type = contracts.AREA_TYPES[new.area_type]
    update.address_change.moved_on.CopyFrom(contracts.local_date(change.moved_on))
    # Codes only: the address is the household's record (a change's details hold no words).
    work.details |= {
        "region_code": new.region_code,
        "previous_region_code": current.region_code,
        "area_type": new.area_type.value,
    }


async def _marriage_in_household(
    work: _ChangeWork, change: Marriage, partner: uuid.UUID, update: ev.HouseholdUpdated
) -> None:
    """Two members married each other (ADR 0016): the head and a co-resident, who becomes
    the head's spouse, or two other members, one of them unrelated to the head, who
    becomes to the head what the other's spouse is (a child's: child-in-law; a parent's:
    step-parent) or stays as recorded. The relationships recorded anew are the change's
    ``relationships``; the marriage's spouse published is the member whose relationship
    changed (else ``spouse_person_id``), as now recorded, and its person_id the other."""
    if change.spouse is not None:
        raise_if_any([Violation("/spouse", "the spouse is spouse_person_id, a member already")])
    relationships, problems = rules.check_marriage_in_household(
        work.state,
        change.person_id,
        partner,
        change.married_on,
        today=work.today,
        marriages=await work.marriages(),
        basis=change.marriage_age_basis,
    )
    # Either married by a marriage brought from another household (ADR 0016, 3 Dec 2026).
    found, told = await work.married_elsewhere(
        change.person_id, "/person_id", "the member", work.id_hash(partner)
    )
    found_partner, told_partner = await work.married_elsewhere(
        partner, "/spouse_person_id", "the spouse", work.id_hash(change.person_id)
    )
    _raise_told(work.runtime, work.caller, problems + found + found_partner, told + told_partner)
    assert relationships is not None
    work.effective_on = change.married_on
    person_id, spouse = await work.couple_changed(change.person_id, partner, relationships)
    update.marriage.person_id = person_id
    update.marriage.married_on.CopyFrom(contracts.local_date(change.married_on))
    update.marriage.spouse.CopyFrom(spouse)
    _said_basis(work, update.marriage, change.marriage_age_basis)


def _said_basis(
    work: _ChangeWork, marriage: ev.HouseholdUpdated.Marriage, basis: MarriageAgeBasis | None
) -> None:
    """What the clerk said of the marriage's legal age, into the change's details and its
    event, when said (ADR 0016, 3 Dec 2026, helper hBB)."""
    if basis is not None:
        work.details["marriage_age_basis"] = basis.value
        marriage.marriage_age_basis = contracts.MARRIAGE_AGE_BASES[basis]


_ABOUT_ONE_MEMBER = {
    DocumentType.DISABILITY_CERTIFICATE: "the disability certificate of another member",
    DocumentType.MEDICAL_RECORD: "the medical record of another member",
    DocumentType.STUDENT_PROOF: "the proof of studies of another member",
}
"""Documents that are evidence of one member's own details, by what another member's is."""


def _facts_after(m: MemberRecord, details: rules.MemberDetails) -> MemberFacts:
    """The member's facts once ``details`` are recorded (a member change)."""
    return MemberFacts(
        person_id=m.person_id,
        relationship=m.relationship,
        birth_date=m.birth_date,
        counted=details.counted,
        disability_grade=details.disability_grade,
        seriously_ill=details.seriously_ill,
        student=details.student,
        employment_status=details.employment_status,
        exclusion_reason=details.exclusion_reason,
    )


def _details_of(m: MemberRecord) -> rules.MemberDetails:
    return rules.MemberDetails(
        name=m.name,
        disability_grade=m.disability_grade,
        seriously_ill=m.seriously_ill,
        employment_status=m.employment_status,
        student=m.student,
        counted=m.counted,
        exclusion_reason=m.exclusion_reason,
        exclusion_note=m.exclusion_note,
    )


async def _change_member(
    work: _ChangeWork, change: MemberChange, update: ev.HouseholdUpdated
) -> None:
    pid = change.person_id
    current = next((m for m in work.before.active_members if m.person_id == pid), None)
    # Who applies once the change leaves the applicant unable to (ADR 0016, 3 Dec 2026):
    # judged on the details the change gives, so that its errors come with the others.
    replaced, successor_problems = (
        await work.applicant_after_change(
            _facts_after(current, rules.details_after(_details_of(current), change.new)),
            change.new_applicant_person_id,
        )
        if current is not None
        else (
            False,
            [Violation("/new_applicant_person_id", NOT_UNABLE_TO_APPLY)]
            if change.new_applicant_person_id is not None
            else [],
        )
    )
    after, problems = rules.check_member_change(
        work.state,
        pid,
        _details_of(current) if current is not None else None,
        change.new,
        change.effective_on,
        today=work.today,
        latest_on=await repo.latest_details_change_on(work.session, work.household_id, pid),
        relationship=change.relationship,
        note=work.note,
        marriages=await work.marriages() if change.relationship is not None else rules.NO_MARRIAGES,
    )
    told: list[tuple[repo.PastMembership, str]] = []
    if change.relationship is Relationship.SPOUSE and current is not None:
        # Neither married by a marriage brought from another household to somebody else
        # (ADR 0016, 3 Dec 2026).
        head = work.state.head_person_id
        found, told = await work.married_elsewhere(
            pid, "/relationship", "the member", work.id_hash(head)
        )
        found_head, told_head = await work.married_elsewhere(
            head, "/relationship", "the head", work.id_hash(pid)
        )
        problems += found + found_head
        told += told_head
    _raise_told(
        work.runtime,
        work.caller,
        problems
        + [
            # Another member's certificate or diagnosis is no evidence of this member's.
            Violation(f"/document_ids/{i}", _ABOUT_ONE_MEMBER[d.document_type])
            for i, d in enumerate(work.documents)
            if d.document_type in _ABOUT_ONE_MEMBER and d.person_id not in (None, pid)
        ]
        + successor_problems,
        told,
    )
    assert current is not None
    assert after is not None
    await repo.set_member_details(work.session, current.membership_id, after)
    if after.name != current.name:
        await repo.set_person_name(work.session, pid, after.name)
    if change.relationship is not None:
        # A correction: the relationship from now on, and so the couples the record
        # takes (taken_couples reads the relationships as recorded, the registered
        # members' too: the registration is read as corrected).
        await repo.set_relationship(work.session, current.membership_id, change.relationship)
    work.effective_on = change.effective_on
    # Which details changed is for the case roles only (health, disability, employment,
    # exclusion): the limited view shows the person id alone (api/mapping.py). A change's
    # details hold no name (models.HouseholdChange): a corrected name is a flag, the name
    # itself is the person's record.
    changed = rules.changed_details(_details_of(current), after)
    work.details |= {"person_id": str(pid), "changed": changed}
    if changed.pop("name", None) is not None:
        work.details["name_corrected"] = True
    if change.relationship is not None:
        # As a marriage or a divorce records what it changes (a code, no words).
        work.details["relationships"] = {str(pid): change.relationship.value}
    if replaced:
        await work.hand_over(pid, update)
    recorded = await work.member_after(pid)
    update.member_change.member.CopyFrom(contracts.member(recorded, work.runtime.pii.hash_key_id))
    update.member_change.effective_on.CopyFrom(contracts.local_date(change.effective_on))


async def _change_account(
    work: _ChangeWork, change: AccountChange, update: ev.HouseholdUpdated
) -> None:
    problems = rules.check_bank_account_change(
        custody_agreement=change.custody_agreement,
        custody_document_id=change.custody_document_id,
        custodian_subject=change.custodian_subject,
    )
    holder = _account_holder(
        work.before, change.account, "/account", problems, work.runtime.policy.living_apart
    )
    if change.custody_document_id is not None:
        custody = next((d for d in work.documents if d.id == change.custody_document_id), None)
        if custody is None or custody.document_type is not DocumentType.CUSTODY_AGREEMENT:
            problems.append(
                Violation("/custody_document_id", "list the custody agreement in document_ids")
            )
    previous = work.before.bank_account
    if previous is not None and _same_account(work.runtime, previous, change, holder):
        # A new token for the same account would tell payments it changed, for nothing.
        problems.append(
            Violation(
                "/account/account_number",
                "is the household's current account, with the same bank, holder and custody",
            )
        )
    raise_if_any(problems)
    account, cipher = new_bank_account(
        work.runtime,
        work.household_id,
        change.account,
        holder,
        custody_agreement=change.custody_agreement,
        custody_document_id=change.custody_document_id,
        custodian_subject=change.custodian_subject,
    )
    await repo.insert_bank_account(work.session, account, number_cipher=cipher)
    new_ref = contracts.bank_account_ref(account)
    assert new_ref is not None
    update.bank_account_change.new_account.CopyFrom(new_ref)
    old_ref = contracts.bank_account_ref(previous)
    if old_ref is not None:
        update.bank_account_change.previous_account.CopyFrom(old_ref)
    update.bank_account_change.custody_agreement = change.custody_agreement
    if change.custodian_subject:
        update.bank_account_change.custodian_subject = change.custodian_subject
    custody = next((d for d in work.documents if d.id == change.custody_document_id), None)
    if custody is not None:
        update.bank_account_change.custody_agreement_document.CopyFrom(
            contracts.document_ref(custody)
        )
    work.details |= {
        "bank_account_id": str(account.id),
        "previous_bank_account_id": str(previous.id) if previous else None,
        "custody_agreement": change.custody_agreement,
    }


def is_recorded_account(
    runtime: Runtime,
    current: BankAccountRecord,
    given: BankAccountInput,
    holder: MemberRecord | None,
) -> bool:
    """Whether ``given`` is ``current`` as recorded: its number, bank and holder."""
    return (
        current.number_hash == runtime.pii.hash_id_number(given.account_number)
        and (current.bank_code, current.bank_name) == (given.bank_code, given.bank_name)
        and current.holder_person_id == (holder.person_id if holder is not None else None)
        and (
            holder is not None
            or (given.holder_name is not None and same_name(current.holder_name, given.holder_name))
        )
    )


def _same_account(
    runtime: Runtime, current: BankAccountRecord, change: AccountChange, holder: MemberRecord | None
) -> bool:
    """Whether ``change`` records the current account again, as it is."""
    return is_recorded_account(runtime, current, change.account, holder) and (
        current.custody_agreement,
        current.custody_document_id,
        current.custodian_subject,
    ) == (change.custody_agreement, change.custody_document_id, change.custodian_subject)


def living_apart_holder(reason: ExclusionReason | None) -> str:
    """Why the card of a member living apart is not paid into (ADR 0016, 3 Dec 2026)."""
    return (
        f"held by a member living apart (not counted, {reason}): nobody at home can use the"
        " card; name the member at home who holds the household's card, or a custodian by"
        " holder_name"
    )


def _account_holder(
    household: HouseholdAggregate,
    account: BankAccountInput,
    pointer: str,
    problems: list[Violation],
    living_apart: frozenset[ExclusionReason] = frozenset(),
) -> MemberRecord | None:
    """The member holding the account, or None for a named non-member (custodian). A
    member not counted for a reason in ``living_apart`` (imprisoned, missing, ...) does not
    hold the household's card, custody agreement or not (ADR 0016, 3 Dec 2026)."""
    if account.holder_person_id is not None:
        holder = household.member(account.holder_person_id)
        if holder is None or not holder.active:
            problems.append(
                Violation(f"{pointer}/holder_person_id", "not an active member of the household")
            )
        elif holder.exclusion_reason in living_apart:
            problems.append(
                Violation(
                    f"{pointer}/holder_person_id", living_apart_holder(holder.exclusion_reason)
                )
            )
        if account.holder_name is not None:
            # The member's own name is recorded: another given here would be dropped.
            problems.append(
                Violation(f"{pointer}/holder_name", "only for a holder who is not a member")
            )
        return holder
    if not account.holder_name:
        problems.append(
            Violation(
                f"{pointer}/holder_person_id",
                "name the account's holder: holder_person_id for a member of the household,"
                " or holder_name for anyone else (a custodian)",
            )
        )
    return None


def account_holder(
    household: HouseholdAggregate,
    account: BankAccountInput,
    pointer: str,
    living_apart: frozenset[ExclusionReason] = frozenset(),
) -> MemberRecord | None:
    """As ``_account_holder``, raising ``RulesViolatedError`` on a problem."""
    problems: list[Violation] = []
    holder = _account_holder(household, account, pointer, problems, living_apart)
    raise_if_any(problems)
    return holder
