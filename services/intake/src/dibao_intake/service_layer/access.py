"""Every read of personal data leaves an access record on ``dibao.access.v1``.

The record is written to the outbox in the read's own transaction, so a read whose
answer was produced is always recorded. A read refused because the record lies outside
the caller's regions, or the caller's roles may not see it, is recorded too (outcome
DENIED, as the contract says: "recorded all the same"), naming the record and nobody's
data: :class:`AccessRefused` carries the problem to answer and the record, which the
request's wrapper writes in a transaction of its own once the read's has rolled back.
A record that does not exist is not an access and leaves nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_common.errors import ProblemError
from dibao_common.messaging.outbox import OutgoingEvent
from dibao_intake.adapters import contracts
from dibao_intake.service_layer.events import publish
from dibao_intake.service_layer.runtime import SERVICE, Caller, Runtime

RecordType: TypeAlias = access.RecordType.ValueType
Action: TypeAlias = access.AccessAction.ValueType
Purpose: TypeAlias = access.Purpose.ValueType
Outcome: TypeAlias = access.AccessOutcome.ValueType


class AccessRefused(ProblemError):  # noqa: N818 - a problem, answered as its own
    """A refused read: answered as ``problem`` is; its access record (outcome DENIED) is
    written by ``record`` in a transaction after the read's."""

    def __init__(
        self, problem: ProblemError, record: Callable[[AsyncSession], Awaitable[None]]
    ) -> None:
        super().__init__(
            problem.status,
            problem.type_slug,
            problem.title,
            problem.detail,
            headers=problem.headers,
            **problem.extensions,
        )
        self.record = record


@dataclass(frozen=True, slots=True)
class AccessTarget:
    """What a read is of, and why: the same for its record whether it is granted or refused."""

    household_id: uuid.UUID | None
    region_code: str
    record_type: RecordType
    record_id: str
    action: Action = access.ACCESS_ACTION_VIEW
    purpose: Purpose = access.PURPOSE_CASE_PROCESSING
    purpose_note: str = ""
    regions: tuple[str, ...] = ()
    """Every region a search could show rows of (12-digit codes); empty for one record."""
    application_id: uuid.UUID | None = None
    """The application a read of another record was made for, when the service checked it
    (a disclosure justified by an open application): the audit log finds the read by it."""


NOTE_REQUIRED: frozenset[Purpose] = frozenset({access.PURPOSE_OTHER, access.PURPOSE_SUPPORT})
"""Purposes whose access record must say what they were (dibao.access.v1 purpose_note)."""


class PurposeNoteRequiredError(Exception):
    """The purpose stated (other, support) needs a note and came without one."""

    def __init__(self, purpose: Purpose) -> None:
        super().__init__(access.Purpose.Name(purpose))
        self.purpose = purpose


def require_note(target: AccessTarget) -> None:
    """:class:`PurposeNoteRequiredError` when ``target``'s purpose needs a note it lacks.

    Called once the caller is known to be allowed the read: an unauthorized caller gets
    its refusal (recorded), never the validation of a request it may not make."""
    if target.purpose in NOTE_REQUIRED and not target.purpose_note.strip():
        raise PurposeNoteRequiredError(target.purpose)


def refused(
    problem: ProblemError, runtime: Runtime, caller: Caller, target: AccessTarget
) -> AccessRefused:
    """``problem`` (a 404 for another region's record, a 403 for a role, a 500 for a
    document's content the store no longer holds as uploaded) with the access record of
    the attempt: who, which record, what for; no person and no field, as none was shown."""

    async def record(session: AsyncSession) -> None:
        await record_access(
            session,
            runtime,
            caller,
            target,
            persons=(),
            fields=(),
            outcome=access.ACCESS_OUTCOME_DENIED,
        )

    return AccessRefused(problem, record)


def access_event(
    runtime: Runtime,
    caller: Caller,
    target: AccessTarget,
    *,
    persons: Sequence[common.PersonRef],
    fields: Sequence[str],
    outcome: Outcome = access.ACCESS_OUTCOME_GRANTED,
) -> OutgoingEvent:
    """The access record of a read, for the outbox (``record_access`` enqueues it; a
    request that holds its writes for one statement adds it to its own events)."""
    household_id = target.household_id
    access_id = uuid7()
    message = access.PersonalDataAccessed(
        household_id=str(household_id) if household_id else "",
        region=contracts.region(target.region_code),
        occurred_at=contracts.timestamp(runtime.clock.now()),
        actor=contracts.actor(caller.principal),
        access_id=str(access_id),
        service=SERVICE,
        record_type=target.record_type,
        record_id=target.record_id,
        persons=list(persons),
        fields=list(fields),
        action=target.action,
        outcome=outcome,
        purpose=target.purpose,
        purpose_note=target.purpose_note,
        correlation_id=caller.correlation_id or "",
        operation=caller.operation,
        regions=[contracts.region(code) for code in target.regions],
        # The audit log keys an entry by the application it names: a read of one is
        # found by an audit query for that application.
        application_id=(
            target.record_id
            if target.record_type == access.RECORD_TYPE_APPLICATION
            else str(target.application_id or "")
        ),
    )
    # A read not tied to one household (a search) is keyed by its own id.
    key = str(household_id) if household_id else str(access_id)
    return OutgoingEvent(message, key=key, subject=target.record_id)


async def record_access(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    target: AccessTarget,
    *,
    persons: Sequence[common.PersonRef],
    fields: Sequence[str],
    outcome: Outcome = access.ACCESS_OUTCOME_GRANTED,
) -> None:
    event = access_event(runtime, caller, target, persons=persons, fields=fields, outcome=outcome)
    await publish(session, runtime, caller, event.message, key=event.key, subject=event.subject)
