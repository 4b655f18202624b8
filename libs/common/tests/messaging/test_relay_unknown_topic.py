"""A topic the relay has not published to yet, while the broker is down, and after.

The broker is one of the test's own (``kafka.sh start --dir``). The relay publishes to a
topic it knows, the broker is stopped, rows of the known topic are committed beside rows of
a topic the relay's producer has no metadata for (created after it started, or not created
at all), and once the relay is sending the known topic's rows, the broker comes back.
What is measured is how long the known topic's rows take to be published after the
broker's return.

The broker is stopped (SIGTERM, ``kafka.sh stop``), not killed: a killed node's broker
cannot register again before its old session expires (``broker.session.timeout.ms``,
9 s), so ``start-node`` took 12 s after a kill and takes about 2.5 s after a stop. To the
relay both are the same outage: its connections closed, new ones refused
(test_relay_killed_broker.py kills one).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.testing.kafka_fixtures import (
    applied_order,
    create_topic,
    delete_topics,
    eventually,
    kafka_sh,
    own_broker,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]


@pytest.fixture(scope="module")
def unknown_topic_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-unknown-topic")
    # Offsets 10,000-10,002, 10,010, 10,015, 10,025-10,040 and theirs +50 are other
    # tests' brokers.
    with own_broker(directory, port_offset=10_020) as bootstrap:
        yield directory, bootstrap


async def _pending_of(engine: AsyncEngine, topic: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM outbox_message WHERE published_at IS NULL AND topic = :t"),
            {"t": topic},
        )
        return int(found.scalar_one())


async def _held_of(engine: AsyncEngine, topic: str) -> int:
    """Pending rows of ``topic`` a relay's batch has claimed: locked, so a claim of our
    own skips them (in a transaction rolled back at once, like a relay that found them
    taken)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) - (SELECT count(*) FROM (SELECT id FROM outbox_message "
                "WHERE published_at IS NULL AND topic = :t FOR UPDATE SKIP LOCKED) free) "
                "FROM outbox_message WHERE published_at IS NULL AND topic = :t"
            ),
            {"t": topic},
        )
        held = int(found.scalar_one())
        await conn.rollback()
        return held


async def _failed_of(engine: AsyncEngine, topic: str) -> int:
    """Rows of ``topic`` with a failure recorded (``attempts``)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM outbox_message WHERE attempts > 0 AND topic = :t"),
            {"t": topic},
        )
        return int(found.scalar_one())


# The known topic's rows, 200 of them, committed while the broker was down, were all
# published by the time ``start-node`` said it was back in every case but "missing"
# before the relay looked topics up beside its batches: there, none was within 120 s
# (every batch waited the request timeout, 30 s, for the missing topic's partitions, and
# the households it shared with the known topic were held back all along).
@pytest.mark.parametrize("other", ["none", "new", "missing"])
async def test_rows_of_a_known_topic_are_published_soon_after_the_broker_returns(
    other: str,
    engine: AsyncEngine,
    unknown_topic_broker: tuple[Path, str],
    commit_events: CommitEvents,
) -> None:
    directory, bootstrap = unknown_topic_broker
    known = f"test.known.{uuid.uuid4().hex[:10]}"
    unknown = f"test.unknown.{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, known, partitions=3)
    made = [known]
    # Production's settings but the batch size: the 30 s request timeout, the backoff.
    relay = OutboxRelay(engine, bootstrap, name="test-unknown-topic", batch_size=100)
    await relay.start()
    try:
        first = await commit_events(known, events=20, keys=5)

        async def published(topic: str) -> bool:
            return await _pending_of(engine, topic) == 0

        await eventually(lambda: published(known), what="the relay to publish to the topic")
        if other == "new":
            # Created after the relay's producer started: not in its metadata.
            await create_topic(bootstrap, unknown, partitions=3)
            made.append(unknown)
        await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
        others: dict[str, list[str]] = {}
        if other != "none":
            # The same households' events on the other topic, committed first.
            others = await commit_events(unknown, events=20, keys=5)
        second = await commit_events(known, events=200, keys=5)

        async def held(topic: str) -> bool:
            return await _held_of(engine, topic) > 0

        async def failed(topic: str) -> bool:
            return await _failed_of(engine, topic) > 0

        # The broker stays down until the relay is sending rows of the known topic (its
        # batch waits for their acknowledgements).
        await eventually(lambda: held(known), what="the relay to claim the known topic's rows")
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        back = time.monotonic()
        await eventually(lambda: published(known), timeout_s=60, what="the known topic's rows")
        took = time.monotonic() - back
        if other == "missing":
            # Left pending, the reason recorded (once a lookup has failed: after
            # metadata_timeout_s, 5 s); published once the topic exists.
            await eventually(lambda: failed(unknown), what="the missing topic's lookup to fail")
            async with engine.connect() as conn:
                errors = (
                    await conn.execute(
                        text(
                            "SELECT DISTINCT last_error FROM outbox_message "
                            "WHERE topic = :t AND attempts > 0"
                        ),
                        {"t": unknown},
                    )
                ).scalars()
                assert [e.split("(")[0] for e in errors] == ["TopicMetadataUnavailableError"]
            assert await _pending_of(engine, unknown) == 20
            await create_topic(bootstrap, unknown, partitions=3)
            made.append(unknown)
        if other != "none":
            await eventually(lambda: published(unknown), what="the other topic's rows")
        records = await read_topic(bootstrap, known)
        other_records = await read_topic(bootstrap, unknown) if others else []
    finally:
        await relay.stop()
        await delete_topics(bootstrap, made)

    assert applied_order(records) == {key: first[key] + second[key] for key in first}
    assert applied_order(other_records) == others
    # The baseline, without the other topic: 0.0 s (the broker reports itself ready after
    # the relay's producer has delivered).
    assert took < 5.0, f"{other}: {took:.1f} s after the broker's return"
