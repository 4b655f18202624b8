"""The transactional outbox: an event is a row written in the same transaction as its cause.

Nothing here commits: the request (or consumed event) that changed the state commits the
outbox rows with it, and :class:`~dibao_common.messaging.relay.OutboxRelay` publishes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao_common.db.engine import driver_connection
from dibao_common.db.held import HeldWrite, holding_in, renumber
from dibao_common.messaging.envelope import Envelope, ce_type_of, now_utc, topic_of
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


def _row(envelope: Envelope, topic: str) -> tuple[Any, ...]:
    # The record headers as they will be sent: the relay copies them, no rebuilding.
    headers = json.dumps({name: value.decode() for name, value in envelope.to_headers()})
    return (
        envelope.ce_id,
        envelope.ce_type,
        envelope.ce_source,
        envelope.ce_subject,
        envelope.ce_time,
        topic,
        envelope.key,
        headers,
        envelope.payload,
    )


# One statement and one round trip for any number of rows, straight to asyncpg: the
# rows go as one array per column, and the identity follows their order. ``insert_sql``
# numbers the parameters from ``first``, for a statement that carries the rows along.
_INSERT = """
INSERT INTO outbox_message
    (ce_id, ce_type, ce_source, ce_subject, ce_time, topic, key, headers, payload)
SELECT ce_id, ce_type, ce_source, ce_subject, ce_time, topic, key, headers::jsonb, payload
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
    $7::text[], $8::text[], $9::bytea[])
    WITH ORDINALITY AS r(ce_id, ce_type, ce_source, ce_subject, ce_time, topic, key, headers,
        payload, n)
ORDER BY n
"""


def insert_sql(first: int = 1) -> str:
    """The outbox INSERT of rows given as nine column arrays, parameters ``$first`` on."""
    return renumber(_INSERT, first - 1)


OutboxRow = tuple[Any, ...]
_HELD = "dibao.outbox.held"


def columns(rows: Sequence[OutboxRow]) -> list[list[Any]]:
    """Rows as the nine column arrays :func:`insert_sql` takes."""
    return [list(column) for column in zip(*rows, strict=True)]


def held_insert(rows: Sequence[OutboxRow]) -> HeldWrite:
    """The INSERT of held ``rows``, to send with other writes (``dibao_common.db.held``)."""
    return HeldWrite(_INSERT, tuple(columns(rows)))


@contextmanager
def held_rows(session: AsyncSession) -> Iterator[list[OutboxRow]]:
    """Rows enqueued in ``session`` inside the block are held in the yielded list instead
    of inserted: the caller inserts them (:func:`insert_sql`) with a statement of its own
    before the transaction commits, one round trip fewer (the idempotent answer does).
    Inside the block, the session must neither commit nor roll back to a savepoint: the
    held rows would miss the commit, or outlive the work they announce."""
    with holding_in(session, _HELD) as held:
        yield held


async def _insert(session: AsyncSession, rows: Sequence[OutboxRow]) -> None:
    held = session.info.get(_HELD)
    if held is not None:
        held.extend(rows)
        return
    driver = await driver_connection(session)
    await driver.execute(_INSERT, *columns(rows))


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
    await _insert(session, [_row(envelope, topic if topic else topic_of(message))])
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
    rows: list[tuple[Any, ...]] = []
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
        await _insert(session, rows)
    return envelopes
