"""A relay stopped while its broker is frozen, and started again once the broker is back.

The broker here is one of the test's own (``kafka.sh start --dir``), frozen with SIGSTOP
as a long GC pause or a network partition would: it accepts nothing and answers nothing.
The relay's batch times out with its records in flight, and its producer does not close
in time. A review feared that a relay started again would then wait forever on the
closed producer's acknowledgements; what happens instead is that the old producer still
delivers once the broker is back, its acknowledgements arrive, and the restarted relay
deletes what they cover and goes on (measured 30 Nov 2026: 50 records in flight through
the stop, all acknowledged a second after SIGCONT).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.messaging.relay import BrokerUnavailableError, OutboxRelay
from dibao_common.testing.kafka_fixtures import create_topic, eventually, own_broker

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]


@pytest.fixture(scope="module")
def frozen_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-frozen")
    # The chaos tests' cluster takes offsets 10,000-10,002 and 10,050-10,052. Instances'
    # Kafka ports are 100 apart, so an offset that is a multiple of 100 away would take
    # another instance's ports (10,100 did: test's frozen broker was h1's chaos cluster).
    with own_broker(directory, port_offset=10_010) as bootstrap:
        yield directory, bootstrap


@pytest.fixture
async def own_topic(frozen_broker: tuple[Path, str]) -> str:
    name = f"test.frozen.{uuid.uuid4().hex[:10]}"
    await create_topic(frozen_broker[1], name, partitions=1)
    return name


class TimedOutBatches(OutboxRelay):
    """A relay that tells when a batch's acknowledgements did not come in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timed_out = asyncio.Event()

    async def _close_batch(self, batch: Any) -> Any:
        try:
            return await super()._close_batch(batch)
        except BrokerUnavailableError:
            self.timed_out.set()
            raise


def _broker_pid(directory: Path) -> int:
    return int((directory / "node-1" / "kafka.pid").read_text().strip())


async def test_a_relay_stopped_while_the_broker_is_frozen_publishes_everything_when_restarted(
    engine: AsyncEngine,
    frozen_broker: tuple[Path, str],
    own_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    directory, bootstrap = frozen_broker
    relay = TimedOutBatches(
        engine,
        bootstrap,
        name="test-frozen",
        batch_size=50,
        ack_timeout_s=2.0,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
        producer_overrides={"request_timeout_ms": 60_000},
    )
    await commit_events(own_topic, events=5, keys=5)
    await relay.start()

    async def drained() -> bool:
        return await pending() == 0

    await eventually(drained, what="the relay to publish the first events")
    pid = _broker_pid(directory)
    os.kill(pid, signal.SIGSTOP)
    try:
        await commit_events(own_topic, events=50, keys=5)
        # Sent, never acknowledged: the batch times out and its records stay in flight.
        # (A fixed 4 s wait for this was no proof on a slow machine: a relay stopped
        # before it had sent the batch passes the rest of the test too.)
        await asyncio.wait_for(relay.timed_out.wait(), 30)
        assert await pending() == 50
        await relay.stop(timeout_s=3.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    await relay.start()
    try:
        await eventually(drained, what="the restarted relay to publish what was in flight")
    finally:
        await relay.stop()
