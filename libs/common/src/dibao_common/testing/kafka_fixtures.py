"""Kafka fixtures: a fresh real topic per test, and reading a topic back.

``kafka_topic`` is a new topic (3 partitions) on the test broker, deleted after the test;
``await kafka_topics(partitions=...)`` makes more. ``read_records(stack, topic)`` returns
every record up to the topic's end, ``wait_for_records`` waits until there are enough,
``applied_order(records)`` is what a consumer deduplicating by ``ce_id`` sees per key.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from dibao_common.messaging.dlq import StoredRecord, read_topic
from dibao_common.messaging.envelope import Envelope
from dibao_common.testing.stack import REPO_ROOT, TestStack

TopicFactory = Callable[..., Awaitable[str]]


async def create_topic(bootstrap: str, name: str, *, partitions: int = 3) -> None:
    """Create ``name`` and wait until the broker reports all its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
        )
        for _ in range(100):
            described = await admin.describe_topics([name])
            if described and len(described[0].get("partitions", [])) == partitions:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topic {name} not ready")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics (those already gone are ignored)."""
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    except UnknownTopicOrPartitionError:
        pass
    finally:
        await admin.close()


async def read_records(stack: TestStack, topic: str) -> list[StoredRecord]:
    """Every record of ``topic`` up to its end offsets now, in offset order per partition."""
    return await read_topic(stack.kafka_bootstrap, topic)


async def wait_for_records(
    stack: TestStack,
    topic: str,
    count: int,
    *,
    timeout_s: float = 30.0,
) -> list[StoredRecord]:
    """The records of ``topic`` once there are at least ``count`` (fails after the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = await read_records(stack, topic)
        if len(found) >= count:
            return found
        if loop.time() > deadline:
            raise TimeoutError(f"{topic}: {len(found)} records, expected {count}")
        await asyncio.sleep(0.2)


def applied_order(records: Sequence[StoredRecord]) -> dict[str, list[str]]:
    """Per key, the ce_ids in the order a consumer that skips ce_ids it has seen applies them.

    Fails if one key's records are on more than one partition (their order would be lost).
    """
    partitions: dict[str, set[int]] = defaultdict(set)
    seen: set[str] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = Envelope.from_record(record)
        partitions[envelope.key].add(record.partition)
        ce_id = str(envelope.ce_id)
        if ce_id not in seen:
            seen.add(ce_id)
            order[envelope.key].append(ce_id)
    spread = sorted(key for key, found in partitions.items() if len(found) > 1)
    if spread:
        raise AssertionError(f"keys on several partitions: {spread[:5]}")
    return dict(order)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Wait until ``await check()`` is true; fails with ``what`` after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def _topic_name(request: pytest.FixtureRequest) -> str:
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:100]
    return f"test.{test}.{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def kafka_topics(
    stack: TestStack, request: pytest.FixtureRequest
) -> AsyncIterator[TopicFactory]:
    """A factory ``await kafka_topics(partitions=3) -> name`` of fresh topics, deleted after."""
    made: list[str] = []

    async def make(*, partitions: int = 3) -> str:
        name = _topic_name(request)
        await create_topic(stack.kafka_bootstrap, name, partitions=partitions)
        made.append(name)
        return name

    try:
        yield make
    finally:
        await delete_topics(stack.kafka_bootstrap, made)


@pytest_asyncio.fixture(loop_scope="session")
async def kafka_topic(kafka_topics: TopicFactory) -> str:
    """A fresh topic with 3 partitions, deleted after the test."""
    return await kafka_topics()


KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


def kafka_sh(*args: str) -> str:
    """Run ``deploy/kafka/kafka.sh`` with ``args``; its standard output."""
    done = subprocess.run(  # noqa: S603 - the repository's own script, fixed arguments
        ["bash", str(KAFKA_SH), *args],  # noqa: S607 - bash from PATH, as the Makefile runs it
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout.strip()


@contextmanager
def own_broker(directory: Path, *, port_offset: int, nodes: int = 1) -> Iterator[str]:
    """A Kafka cluster of the test's own in ``directory`` (``nodes`` brokers), stopped at
    the end; yields its bootstrap. Its ports are the test instance's Kafka port plus
    ``port_offset`` (controllers 50 above), so parallel test stacks never collide as long
    as no two offsets differ by a multiple of 100, the instances' spacing."""
    base = int(os.environ.get("DIBAO_TEST_KAFKA_PORT", "9192")) + port_offset
    bootstrap = kafka_sh(
        "start", "--dir", str(directory), "--port", str(base),
        "--controller-port", str(base + 50), "--nodes", str(nodes),
    )  # fmt: skip
    try:
        yield bootstrap
    finally:
        kafka_sh("stop", "--dir", str(directory))
