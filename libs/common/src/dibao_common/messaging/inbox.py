"""The inbox: which events a consumer has applied, written with the effects themselves.

The ``(consumer, ce_id)`` row commits or rolls back together with the handler's changes,
so an event delivered again (the relay and Kafka deliver at least once) changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.schema import inbox_message


async def record_once(
    session: AsyncSession,
    consumer: str,
    envelope: Envelope,
    topic: str,
    partition: int,
    offset: int,
) -> bool:
    """Claim ``envelope`` for ``consumer`` in the session's transaction.

    True: first time, apply the effects in this transaction. False: already applied
    (a concurrent claim of the same event waits here until the other one commits).
    """
    statement = (
        insert(inbox_message)
        .values(
            consumer=consumer,
            ce_id=envelope.ce_id,
            ce_type=envelope.ce_type,
            topic=topic,
            partition=partition,
            offset=offset,
        )
        .on_conflict_do_nothing(index_elements=["consumer", "ce_id"])
        .returning(inbox_message.c.ce_id)
    )
    result = await session.execute(statement)
    return result.first() is not None


async def was_processed(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Whether ``consumer`` has committed the effects of ``envelope``."""
    result = await session.execute(
        select(inbox_message.c.ce_id).where(
            inbox_message.c.consumer == consumer, inbox_message.c.ce_id == envelope.ce_id
        )
    )
    return result.first() is not None
