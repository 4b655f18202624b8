"""The broker down long enough for the relay's backoff to reach its cap, then back.

The broker is one of the test's own (``kafka.sh start --dir``). While it is down every
round of the relay fails (its producer cannot start, or its records are not acknowledged)
and the relay waits longer after each, up to ``backoff_max_s`` (30 s in production, a
setting: 10 s here, so that the test takes seconds, not minutes). The broker comes back
just as the relay begins a pause of that length; what is measured is how long the rows
committed meanwhile then take to be published: every service's events, and the audit log
of them, lag by that much.

The broker is stopped (SIGTERM, ``kafka.sh stop``), not killed: a killed node's broker
cannot register again before its old session expires (``broker.session.timeout.ms``,
9 s), so ``start-node`` took 12.5 s after a kill and takes about 2.5 s after a stop. To the
relay both are the same outage: its connections closed, new ones refused
(test_relay_killed_broker.py kills one).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.relay import Backoff, OutboxRelay
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

# The relay's cap (DIBAO_RELAY_BACKOFF_MAX_S, 30 s in production), smaller so that reaching
# it takes seconds: the first delay is a quarter of it, the cap handed out at the third
# failure, after two pauses (2.5 s and 5 s) long enough to be probed in. A relay that
# waits out its pause publishes the rows the cap less the broker's start (about 2.5 s)
# after the broker is back, about 7.5 s: more than twice BOUND_S, which a relay that asks
# the broker every probe interval (1 s) meets with room to spare.
CAP_S = 10.0
INITIAL_S = CAP_S / 4
BOUND_S = 3.0


@pytest.fixture(scope="module")
def returning_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-returning")
    # Offsets 10,000-10,002, 10,010-10,040 (every 5) and theirs +50 are other tests'
    # brokers.
    with own_broker(directory, port_offset=10_045) as bootstrap:
        yield directory, bootstrap


class Refused(logging.Filter):
    """aiokafka's ERRORs for a refused connection, as its client logs them: first among
    the filters of its logger, ahead of the kit's (which logs one a minute, a WARNING)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "Unable connect" in record.getMessage():
            self.messages.append(record.getMessage())
        return True


@pytest.fixture
def refused() -> Iterator[Refused]:
    counter = Refused()
    client = logging.getLogger("aiokafka")
    client.filters.insert(0, counter)
    try:
        yield counter
    finally:
        client.removeFilter(counter)


class WatchedBackoff(Backoff):
    """The relay's own backoff, telling when it hands out its cap."""

    def __init__(self, initial: float, maximum: float) -> None:
        super().__init__(initial, maximum)
        self.maximum = maximum
        self.delays: list[float] = []
        self.capped = asyncio.Event()

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        if delay >= self.maximum:
            self.capped.set()
        return delay


# Before the relay probed the broker while backing off, the rows waited out the pause:
# with a 30 s cap, 16.5 s (producer cannot start) and 14.4 s (acks time out) after
# ``start-node`` returned, the rest of the pause once the broker had started (which took
# the rest); 0.87 s and 0.49 s since. With this cap (10 s) and a stopped broker (its start
# 2.3 s): 7.9 s and 7.8 s before, 1.0 s and 0.7 s since.
@pytest.mark.parametrize("failing", ["producer-cannot-start", "acks-time-out"])
async def test_rows_are_published_soon_after_a_long_outage_ends(
    failing: str,
    engine: AsyncEngine,
    returning_broker: tuple[Path, str],
    commit_events: CommitEvents,
    pending: Pending,
    refused: Refused,
) -> None:
    directory, bootstrap = returning_broker
    topic = f"test.returning.{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic, partitions=3)
    options: dict[str, Any] = {"backoff_initial_s": INITIAL_S, "backoff_max_s": CAP_S}
    if failing == "acks-time-out":
        # Production's 30 s would take minutes of outage to reach the cap.
        options |= {"ack_timeout_s": 2.0, "producer_overrides": {"request_timeout_ms": 2_000}}
    relay = OutboxRelay(engine, bootstrap, name="test-returning", batch_size=100, **options)
    backoff = relay._backoff = WatchedBackoff(INITIAL_S, CAP_S)

    async def drained() -> bool:
        return await pending() == 0

    try:
        first: dict[str, list[str]] = {}
        if failing == "acks-time-out":
            # A producer that has published, then the broker goes.
            await relay.start()
            first = await commit_events(topic, events=20, keys=5)
            await eventually(drained, what="the relay to publish before the outage")
        await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
        second = await commit_events(topic, events=200, keys=5)
        if failing == "producer-cannot-start":
            await relay.start()
        await asyncio.wait_for(backoff.capped.wait(), 180)
        capped = time.monotonic()
        refusals = list(refused.messages)
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        back = time.monotonic()
        # What was left of the capped pause when the broker was back: a relay that waits it
        # out publishes no sooner.
        left = CAP_S - (back - capped)
        await eventually(drained, timeout_s=60, what="the rows after the broker's return")
        took = time.monotonic() - back
        records = await read_topic(bootstrap, topic)
    finally:
        await relay.stop()

    assert applied_order(records) == {
        key: first.get(key, []) + ids for key, ids in second.items()
    }, "each event once, in its key's order"
    assert took < BOUND_S, (
        f"{failing}: {took:.1f} s after the broker's return ({left:.1f} s of the relay's "
        f"{CAP_S:.0f} s pause were left then)"
    )
    if failing == "producer-cannot-start":
        # Asking the broker while it is down logs nothing: aiokafka's ERROR for a refused
        # connection comes only from the relay's own attempts to start its producer, one
        # each (every second it was asked, a bootstrap would add one).
        assert len(refusals) <= len(backoff.delays) + 1, refusals
