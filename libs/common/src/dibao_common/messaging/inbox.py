"""The inbox: which events a consumer has applied, written with the effects themselves.

The ``(consumer, ce_id)`` row commits or rolls back together with the handler's changes,
so an event delivered again (the relay and Kafka deliver at least once) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return (await record_many(session, consumer, [(envelope, topic, partition, offset)]))[0]


async def record_many(
    session: AsyncSession,
    consumer: str,
    events: Sequence[tuple[Envelope, str, int, int]],
) -> list[bool]:
    """Claim several events for ``consumer`` in one statement, in the session's
    transaction: for each ``(envelope, topic, partition, offset)``, True when this is its
    first time (an event listed twice is first only where it is listed first).
    """
    if not events:
        return []
    driver = await driver_connection(session)
    claimed = await driver.fetch(
        _CLAIM_MANY,
        consumer,
        [e.ce_id for e, *_ in events],
        [e.ce_type for e, *_ in events],
        [topic for _, topic, _, _ in events],
        [partition for *_, partition, _ in events],
        [offset for *_, offset in events],
    )
    first = {row[0] for row in claimed}
    return [position in first for position in range(1, len(events) + 1)]


# Straight to asyncpg, in the session's transaction: one statement for any number of
# events (one, for record_once). Rows are inserted in the order given (ordinality), so
# of two rows with the same ce_id the first is inserted and the second skipped.
_CLAIM_MANY = """
WITH e AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[])
        WITH ORDINALITY AS e(ce_id, ce_type, topic, partition, "offset", position)
), claimed AS (
    INSERT INTO inbox_message (consumer, ce_id, ce_type, topic, partition, "offset")
    SELECT $1, ce_id, ce_type, topic, partition, "offset" FROM e ORDER BY position
    ON CONFLICT (consumer, ce_id) DO NOTHING
    RETURNING ce_id
)
SELECT min(e.position) FROM e JOIN claimed USING (ce_id) GROUP BY e.ce_id
"""


async def was_processed(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """Whether ``consumer`` has committed the effects of ``envelope``."""
    result = await session.execute(
        select(inbox_message.c.ce_id).where(
            inbox_message.c.consumer == consumer, inbox_message.c.ce_id == envelope.ce_id
        )
    )
    return result.first() is not None
