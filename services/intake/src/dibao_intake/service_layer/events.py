"""Events leave through the outbox only, in the request's transaction, with its ids.

An event about an application also enters that application's timeline in the same
transaction (ADR 0012): the clerk who submits sees "Application submitted" in the answer
to the next read, and intake does not read its own topic back to learn what it did.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.outbox import OutgoingEvent, enqueue_many
from dibao_intake.adapters.records import TimelineRecord
from dibao_intake.adapters.repositories import applications as repo
from dibao_intake.service_layer.runtime import SOURCE, Caller, Runtime
from dibao_intake.service_layer.timeline import entries_of

TimelineEntries = list[tuple[uuid.UUID, TimelineRecord]]


async def publish(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    message: Message,
    *,
    key: str,
    subject: str | None = None,
    open_applications: Sequence[uuid.UUID] = (),
) -> None:
    """Add ``message`` to the outbox (key: the household id; subject: the record's id),
    and to its application's timeline when it is about one (else to the timelines of
    ``open_applications``)."""
    await publish_many(
        session,
        runtime,
        caller,
        [OutgoingEvent(message, key=key, subject=subject)],
        open_applications=open_applications,
    )


async def publish_many(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    events: Sequence[OutgoingEvent],
    *,
    write_timeline: bool = True,
    open_applications: Sequence[uuid.UUID] = (),
) -> TimelineEntries:
    """Several events of one change in one statement, in order, and their timeline entries
    in one more. With ``write_timeline=False`` the entries are only returned: the caller
    writes them with a statement of its own (a submission's write does), before the
    transaction commits. Events about the household and no application enter the
    timelines of ``open_applications`` (the household's undecided ones)."""
    now = runtime.clock.now()
    # Each event's ce_time is the instant its payload's occurred_at names (ADR 0002: both
    # are when it happened), not a later read of the clock: the events were built before
    # this call, and a request reads the clock more than once. Events of one instant (the
    # usual case: all of them) go in one statement, in order.
    envelopes: list[Envelope] = []
    for at, run in itertools.groupby(events, key=lambda e: _occurred_at(e.message) or now):
        envelopes += await enqueue_many(
            session,
            list(run),
            source=SOURCE,
            actor=caller.principal.subject,
            correlation_id=caller.correlation_id,
            traceparent=caller.traceparent,
            time=at,
        )
    entries = entries_of(
        [(e, event.message) for e, event in zip(envelopes, events, strict=True)],
        open_applications=open_applications,
    )
    if write_timeline:
        await repo.add_own_timeline_entries(session, entries, at=now)
    return entries


def _occurred_at(message: Message) -> datetime | None:
    """The payload's occurred_at (every intake and access event has one), if set."""
    if "occurred_at" not in message.DESCRIPTOR.fields_by_name or not message.HasField(
        "occurred_at"
    ):
        return None
    at: datetime = getattr(message, "occurred_at").ToDatetime(tzinfo=UTC)  # noqa: B009
    return at
