"""The transactional outbox: an event is a row written in the same transaction as its cause.

Nothing here commits: the request (or consumed event) that changed the state commits the
outbox rows with it, and :class:`~dibao_common.messaging.relay.OutboxRelay` publishes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao_common.messaging.envelope import Envelope, ce_type_of, now_utc, topic_of
from dibao_common.messaging.schema import outbox_message
from dibao_common.observability import current_correlation_id, current_traceparent


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One event for :func:`enqueue_many`: the message, its key and per-event attributes."""

    message: Message
    key: str
    subject: str | None = None
    ce_id: uuid.UUID | None = None
    topic: str | None = None


def build_envelope(
    message: Message,
    *,
    key: str,
    source: str,
    subject: str | None = None,
    actor: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    ce_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> Envelope:
    """The envelope of ``message``: by default a UUIDv7 ``ce_id``, the current time, and the
    trace and correlation id of the request or event being handled."""
    if not key:
        raise ValueError("an event needs its ordering key (the household id)")
    return Envelope(
        ce_id=ce_id if ce_id is not None else uuid7(),
        ce_type=ce_type_of(message),
        ce_source=source,
        ce_time=time if time is not None else now_utc(),
        ce_subject=subject,
        key=key,
        payload=message.SerializeToString(),
        traceparent=traceparent if traceparent is not None else current_traceparent(),
        actor=actor,
        correlation_id=correlation_id if correlation_id is not None else current_correlation_id(),
    )


def _row(envelope: Envelope, topic: str) -> dict[str, Any]:
    return {
        "ce_id": envelope.ce_id,
        "ce_type": envelope.ce_type,
        "ce_source": envelope.ce_source,
        "ce_subject": envelope.ce_subject,
        "ce_time": envelope.ce_time,
        "topic": topic,
        "key": envelope.key,
        # The record headers as they will be sent: the relay copies them, no rebuilding.
        "headers": {name: value.decode() for name, value in envelope.to_headers()},
        "payload": envelope.payload,
    }


async def enqueue(
    session: AsyncSession,
    message: Message,
    *,
    key: str,
    source: str,
    subject: str | None = None,
    actor: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    topic: str | None = None,
    ce_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Add ``message`` to the outbox in the caller's transaction (never commits).

    ``key`` is the household id; ``topic`` defaults to the message's package
    (``dibao.intake.v1``); ``time`` defaults to now (pass the injected clock's now()).
    """
    envelope = build_envelope(
        message,
        key=key,
        source=source,
        subject=subject,
        actor=actor,
        correlation_id=correlation_id,
        traceparent=traceparent,
        ce_id=ce_id,
        time=time,
    )
    await session.execute(
        insert(outbox_message), [_row(envelope, topic if topic else topic_of(message))]
    )
    return envelope


async def enqueue_many(
    session: AsyncSession,
    events: Sequence[OutgoingEvent],
    *,
    source: str,
    actor: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    time: datetime | None = None,
) -> list[Envelope]:
    """Add many events in one statement, in order (a payroll run's events, say)."""
    envelopes: list[Envelope] = []
    rows: list[dict[str, Any]] = []
    at = time if time is not None else now_utc()
    for event in events:
        envelope = build_envelope(
            event.message,
            key=event.key,
            source=source,
            subject=event.subject,
            actor=actor,
            correlation_id=correlation_id,
            traceparent=traceparent,
            ce_id=event.ce_id,
            time=at,
        )
        envelopes.append(envelope)
        rows.append(_row(envelope, event.topic if event.topic else topic_of(event.message)))
    if rows:
        await session.execute(insert(outbox_message), rows)
    return envelopes
