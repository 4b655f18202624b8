"""Events leave through the outbox only, in the request's transaction, with its ids."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.messaging.outbox import OutgoingEvent, enqueue, enqueue_many
from dibao_intake.service_layer.runtime import SOURCE, Caller, Runtime


async def publish(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    message: Message,
    *,
    key: str,
    subject: str | None = None,
) -> None:
    """Add ``message`` to the outbox (key: the household id; subject: the record's id)."""
    await enqueue(
        session,
        message,
        key=key,
        source=SOURCE,
        subject=subject,
        actor=caller.principal.subject,
        correlation_id=caller.correlation_id,
        traceparent=caller.traceparent,
        time=runtime.clock.now(),
    )


async def publish_many(
    session: AsyncSession, runtime: Runtime, caller: Caller, events: list[OutgoingEvent]
) -> None:
    """Several events of one change in one statement, in order."""
    await enqueue_many(
        session,
        events,
        source=SOURCE,
        actor=caller.principal.subject,
        correlation_id=caller.correlation_id,
        traceparent=caller.traceparent,
        time=runtime.clock.now(),
    )
