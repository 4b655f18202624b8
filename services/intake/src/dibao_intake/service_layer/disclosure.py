"""Revealing an ID or account number to a service or officer that needs it, on record.

Events carry only masked numbers, keyed hashes and tokens (ADR 0007). Whoever needs the
number itself (a registry cross-check, a bank file) asks here, names the purpose, and the
decryption is recorded on ``dibao.access.v1``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_common.auth import Role
from dibao_common.crypto import mask_id_number, mask_name
from dibao_common.errors import Forbidden, NotFound
from dibao_intake.adapters import contracts
from dibao_intake.adapters.records import BankAccountRecord
from dibao_intake.adapters.repositories import households as repo
from dibao_intake.service_layer.access import (
    AccessTarget,
    Purpose,
    record_access,
    refused,
    require_note,
)
from dibao_intake.service_layer.runtime import NOT_FOUND, Caller, Runtime

IDENTITY_ROLES = (Role.INVESTIGATOR, Role.TOWNSHIP_REVIEWER, Role.COUNTY_APPROVER, Role.AUDITOR)
"""The roles that may have a person's full ID number disclosed, within their regions."""


def _not_current() -> Forbidden:
    return Forbidden(
        "The full ID number is disclosed to the region of the person's current household,"
        " or of the household of an open application of theirs named by application_id; a"
        " former household's region sees it masked",
        type_slug="identity-of-a-former-member",
    )


@dataclass(frozen=True, slots=True)
class Identity:
    person_id: uuid.UUID
    name: str
    id_number: str


async def reveal_identity(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    person_id: uuid.UUID,
    *,
    purpose: Purpose,
    purpose_note: str,
    application_id: uuid.UUID | None = None,
) -> Identity:
    """The person's full ID number, to a caller whose regions hold the person's current
    household (their active one; the last they left when none is), or the household of
    ``application_id`` while that application is open and the household active, the person
    one of its members, past or present (ADR 0005, 2 Dec 2026). A former household's
    region sees the number masked only (the household's read): refused 403; a caller
    whose regions never held the person, 404. Refusals are recorded DENIED."""
    found = await repo.person_identity(session, person_id)
    if found is None:
        raise NotFound(NOT_FOUND)
    name, cipher, households = found
    if not households:
        raise NotFound(NOT_FOUND)
    current = households[0]
    disclosing = [(current.household_id, current.region_code)]
    named = None
    if application_id is not None:
        named = await repo.open_application_household(session, application_id, person_id)
        if named is not None:
            disclosing.append(named)
    allowed = [h for h in disclosing if caller.principal.can_see(h[1])]
    former = [
        (h.household_id, h.region_code)
        for h in households
        if caller.principal.can_see(h.region_code)
    ]
    household_id, region_code = (allowed or former or disclosing)[0]
    # Disclosed for the open application named (the current household's region would have
    # come first): its record names the application, so that the audit log finds the
    # disclosure among the case's reads. An application that justified nothing is not named.
    for_application = (
        application_id if named is not None and (household_id, region_code) == named else None
    )
    target = AccessTarget(
        household_id,
        region_code,
        access.RECORD_TYPE_MEMBER,
        str(person_id),
        action=access.ACCESS_ACTION_DECRYPT,
        purpose=purpose,
        purpose_note=purpose_note,
        application_id=for_application,
    )
    if not allowed and not former:
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    if not allowed:
        # A region the person has left: it reads the household with the number masked.
        raise refused(_not_current(), runtime, caller, target)
    require_note(target)  # once the caller may have it: another region's is refused first
    number = runtime.pii.reveal_id_number(cipher, table="person", row_id=person_id)
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=[
            common.PersonRef(
                person_id=str(person_id),
                keyed_hash=runtime.pii.hash_id_number(number),
                hash_key_id=runtime.pii.hash_key_id,
                masked_id=mask_id_number(number),
                masked_name=mask_name(name),
            )
        ],
        fields=("name", "id_number"),
    )
    return Identity(person_id=person_id, name=name, id_number=number)


@dataclass(frozen=True, slots=True)
class RevealedAccount:
    account: BankAccountRecord
    account_number: str
    current: bool


async def reveal_bank_account(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    token_id: uuid.UUID,
    *,
    purpose: Purpose,
    purpose_note: str,
) -> RevealedAccount:
    found = await repo.get_bank_account(session, token_id)
    if found is None:
        raise NotFound(NOT_FOUND)
    account, cipher = found
    household = await repo.get_household(session, account.household_id)
    assert household is not None
    target = AccessTarget(
        account.household_id,
        household.region_code,
        access.RECORD_TYPE_BANK_ACCOUNT,
        str(account.id),
        action=access.ACCESS_ACTION_DECRYPT,
        purpose=purpose,
        purpose_note=purpose_note,
    )
    if not caller.principal.can_see(household.region_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    require_note(target)
    number = runtime.pii.reveal_account(cipher, row_id=account.id)
    current = await repo.current_bank_account(session, account.household_id)
    # The number and the holder's name are the holder's data: the record names them.
    holder = None
    if account.holder_person_id is not None:
        members = await repo.load_members(session, account.household_id)
        holder = next(
            (
                contracts.person_ref(m, runtime.pii.hash_key_id)
                for m in members
                if m.person_id == account.holder_person_id
            ),
            None,
        )
    if holder is None:
        holder = common.PersonRef(
            person_id=str(account.holder_person_id or ""),
            masked_name=mask_name(account.holder_name),
        )
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=[holder],
        fields=("bank_account_number", "holder_name"),
    )
    return RevealedAccount(
        account=account,
        account_number=number,
        current=current is not None and current.id == account.id,
    )
