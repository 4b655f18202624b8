"""The inbox: which events a consumer has applied, written with the effects themselves.

The ``(consumer, ce_id)`` row commits or rolls back together with the handler's changes,
so an event delivered again (the relay and Kafka deliver at least once) changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.db.engine import driver_connection
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
    driver = await driver_connection(session)
    claimed = await driver.fetchval(
        _CLAIM, consumer, envelope.ce_id, envelope.ce_type, topic, partition, offset
    )
    return claimed is not None


# Straight to asyncpg, in the session's transaction: the consumer's per-event statement.
_CLAIM = """
INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (consumer, ce_id) DO NOTHING
RETURNING true
"""


async def was_processed(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Whether ``consumer`` has committed the effects of ``envelope``."""
    result = await session.execute(
        select(inbox_message.c.ce_id).where(
            inbox_message.c.consumer == consumer, inbox_message.c.ce_id == envelope.ce_id
        )
    )
    return result.first() is not None
