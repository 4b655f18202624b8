"""A relay stopped with its broker down aborts its producer, and leaves asyncio nothing to
complain about.

The bounded stop (ADR 0003) aborts the aiokafka producer: it fails the records the producer
holds, cancels its sender and closes its connections (``abort_producer``). What it fails
are futures: a batch's, its drain waiter, and the relay's shield of the batch's future
(``send_batch`` returns one). One set to an exception that nobody retrieves is reported by
asyncio when it is collected, "Future exception was never retrieved", an ERROR line with
a traceback per future at every shutdown during an outage, which an operator would chase
as a fault of its own. The tests gather what the loop's exception handler is given while
the aborted producer, and the stopped relay with it, are collected. Each had one such
report before ``abort_producer`` and the relay retrieved what they fail (3 Dec 2026).

Real servers: a Kafka broker of the test's own (``kafka.sh``, stopped here) and the
suite's PostgreSQL (the messaging tables of the kit's scratch database).
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.messaging.relay import ABORT_PRODUCER_AIOKAFKA, OutboxRelay, abort_producer
from dibao_common.testing.kafka_fixtures import create_topic, eventually, kafka_sh, own_broker
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]
STOP_TIMEOUT_S = 3.0


class Reports:
    """What the running loop's exception handler is given while it is installed."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __enter__(self) -> Reports:
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_exception_handler()
        self._loop.set_exception_handler(lambda _loop, context: self.contexts.append(context))
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.set_exception_handler(self._previous)

    def described(self) -> list[str]:
        return [f"{c.get('message')}: {c.get('exception')!r}" for c in self.contexts]


async def _collect_garbage() -> None:
    """Collect what nothing refers to any more, as at a process's exit: every failed
    future nobody looked at is reported to the loop's exception handler then."""
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0.1)


async def test_abort_producer_fails_a_real_producers_records_and_leaves_nothing_unretrieved(
    stack: TestStack, kafka_topic: str
) -> None:
    """The internals :func:`abort_producer` reaches, pinned on a real producer of the
    release it was written for: a record lingering in its accumulator fails, the
    producer's ``stop()`` ends, its connections are closed, nothing is reported."""
    assert aiokafka.__version__.startswith(ABORT_PRODUCER_AIOKAFKA), (
        f"aiokafka {aiokafka.__version__}: check abort_producer against its internals"
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, linger_ms=60_000
    )
    await producer.start()
    with Reports() as reports:
        held = await producer.send(kafka_topic, b"held", key=b"k", partition=0)
        await asyncio.sleep(0.2)
        assert not held.done()  # lingering in its batch, not sent
        # As the relay closes a producer that does not flush in time.
        closing = asyncio.ensure_future(producer.stop())
        await asyncio.sleep(0.2)
        assert not closing.done()
        abort_producer(producer)
        await asyncio.wait_for(closing, 5)
        with pytest.raises(KafkaConnectionError):
            await held
        assert producer._sender.sender_task.done()
        assert not any(conn.connected() for conn in producer.client._conns.values())
        del producer, held, closing
        await _collect_garbage()
    assert reports.described() == []


class HandsOver(OutboxRelay):
    """A relay that tells when it has handed a batch to its producer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed_over = asyncio.Event()

    async def _send(self, batch: Any, blocked: set[tuple[str, str]]) -> None:
        await super()._send(batch, blocked)
        if batch.sent:
            self.handed_over.set()


async def test_a_relay_stopped_with_the_broker_down_leaves_no_unretrieved_future(
    engine: AsyncEngine, commit_events: CommitEvents, pending: Pending, tmp_path: Path
) -> None:
    directory = tmp_path / "kafka"
    directory.mkdir()
    # Offsets 10,000-10,002, 10,010, 10,025-10,040 and theirs +50 are other tests' brokers.
    with own_broker(directory, port_offset=10_015) as bootstrap:
        topic = f"test.abort.{uuid.uuid4().hex[:10]}"
        await create_topic(bootstrap, topic, partitions=1)
        relay = HandsOver(
            engine,
            bootstrap,
            name="test-abort",
            batch_size=50,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            stop_timeout_s=STOP_TIMEOUT_S,
        )
        await commit_events(topic, events=5, keys=5)
        await relay.start()

        async def drained() -> bool:
            return await pending() == 0

        await eventually(drained, what="the relay to publish the first events")
        relay.handed_over.clear()
        await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
        await commit_events(topic, events=50, keys=5)
        # In the producer's hands, unacknowledged: what the stop must abort.
        await asyncio.wait_for(relay.handed_over.wait(), 30)
        await asyncio.sleep(0.5)
        assert await pending() == 50

        with Reports() as reports:
            started = time.monotonic()
            await relay.stop()
            stopped_in = time.monotonic() - started
            del relay
            await _collect_garbage()
        assert await pending() == 50  # abandoned, for the next relay

    assert (round(stopped_in, 1) <= STOP_TIMEOUT_S + 0.5, reports.described()) == (True, [])
