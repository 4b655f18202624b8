"""A topic the relay has not published to yet, while the broker is down, and after.

The broker is one of the test's own (``kafka.sh start --dir``). The relay publishes to a
topic it knows, the broker is killed, rows of the known topic are committed beside rows of
a topic the relay's producer has no metadata for (created after it started, or not created
at all), and the broker comes back. What is measured is how long the known topic's rows
take to be published after the broker's return.
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
        await asyncio.to_thread(kafka_sh, "kill-node", "--dir", str(directory), "--node", "1")
        others: dict[str, list[str]] = {}
        if other != "none":
            # The same households' events on the other topic, committed first.
            others = await commit_events(unknown, events=20, keys=5)
        second = await commit_events(known, events=200, keys=5)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        back = time.monotonic()
        await eventually(lambda: published(known), timeout_s=60, what="the known topic's rows")
        took = time.monotonic() - back
        if other == "missing":
            # Left pending, the reason recorded; published once the topic exists.
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
