"""The broker killed (SIGKILL) while the relay has a batch on the wire, and started again.

The broker is one of the test's own (``kafka.sh start --dir``), killed with
``kafka.sh kill-node`` right after the relay handed a batch to its producer, before the
acknowledgements: some records of it may be on the log unacknowledged, some not there at
all. The relay's rows stay pending until acknowledged and are sent again; the wire may so
carry an event twice (ADR 0003), but the first copy of each is in its key's order, and a
consumer's inbox applies each event once, in that order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.messaging.consumer import ConsumerRunner
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.testing.kafka_fixtures import (
    applied_order,
    create_topic,
    eventually,
    kafka_sh,
    own_broker,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]


@pytest.fixture(scope="module")
def killed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-killed")
    # Offsets 10,000-10,030 (and +50) are the other own brokers'.
    with own_broker(directory, port_offset=10_040) as bootstrap:
        yield directory, bootstrap


class KillsTheBrokerMidBatch(OutboxRelay):
    """A relay that SIGKILLs its broker right after handing its ``kill_on``-th batch to
    the producer (the records on the wire, their acknowledgements not yet in)."""

    def __init__(self, *args: Any, directory: Path, kill_on: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.directory = directory
        self.kill_on = kill_on
        self.sent_batches = 0
        self.killed = asyncio.Event()

    async def _send(self, batch: Any, blocked: set[tuple[str, str]]) -> None:
        await super()._send(batch, blocked)
        self.sent_batches += 1
        if self.sent_batches == self.kill_on and batch.sent:
            # Synchronously: nothing else of the relay runs until the broker is dead.
            kafka_sh("kill-node", "--dir", str(self.directory), "--node", "1")
            self.killed.set()


# Back within the producer's request timeout (its retries deliver the batch), and back
# after it (the batch fails, its rows stay pending and go out again in a later batch).
@pytest.mark.parametrize("outage_s", [2.0, 8.0])
async def test_a_broker_killed_mid_batch_loses_nothing_and_a_consumer_applies_each_event_once(
    outage_s: float,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    killed_broker: tuple[Path, str],
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    directory, bootstrap = killed_broker
    topic = f"test.killed.{uuid.uuid4().hex[:10]}"
    dlq = f"{topic}.dlq"
    await create_topic(bootstrap, topic, partitions=3)
    await create_topic(bootstrap, dlq, partitions=1)
    order = await commit_events(topic, events=3000, keys=30)
    consumer_name = f"test-killed-{uuid.uuid4().hex[:8]}"

    async def apply(session: AsyncSession, envelope: Envelope, message: Message) -> None:
        assert isinstance(message, ApplicationAccepted)
        await session.execute(
            text("INSERT INTO test_applied (consumer, ce_id, key) VALUES (:c, :id, :k)"),
            {"c": consumer_name, "id": envelope.ce_id, "k": envelope.key},
        )

    consumer = ConsumerRunner(
        consumer_name,
        [topic],
        apply,
        sessionmaker,
        bootstrap,
        registry=EventRegistry([ApplicationAccepted]),
        dlq_topic=dlq,
        backoff_s=0.1,
        backoff_max_s=1.0,
    )
    relay = KillsTheBrokerMidBatch(
        engine,
        bootstrap,
        name="test-killed",
        batch_size=100,
        ack_timeout_s=5.0,
        backoff_initial_s=0.1,
        backoff_max_s=1.0,
        directory=directory,
        kill_on=5,
        producer_overrides={"request_timeout_ms": 5_000},
    )
    await consumer.start()
    await relay.start()
    try:
        await asyncio.wait_for(relay.killed.wait(), 60)
        assert await pending() > 0
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")

        async def drained() -> bool:
            return await pending() == 0

        await eventually(
            drained, timeout_s=90, what="the relay to publish after the broker's return"
        )
        committed = {ce_id for ce_ids in order.values() for ce_id in ce_ids}

        async def applied() -> list[tuple[str, str]]:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT key, ce_id FROM test_applied WHERE consumer = :c ORDER BY seq"),
                    {"c": consumer_name},
                )
                return [(r.key, str(r.ce_id)) for r in rows]

        async def all_applied() -> bool:
            return len(await applied()) >= len(committed)

        await eventually(all_applied, timeout_s=60, what="the consumer to apply every event")
    finally:
        await relay.stop()
        await consumer.stop()

    records = await read_topic(bootstrap, topic)
    copies = Counter(r.ce_id for r in records)
    # Nothing lost, nothing invented; the first copy of each event in its key's order.
    assert set(copies) == committed
    assert applied_order(records) == order
    # The consumer applied each event once, in its key's order.
    done = await applied()
    assert Counter(ce_id for _, ce_id in done) == Counter(dict.fromkeys(committed, 1))
    by_key: dict[str, list[str]] = {}
    for key, ce_id in done:
        by_key.setdefault(key, []).append(ce_id)
    assert by_key == order
