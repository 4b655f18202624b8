"""The broker the project runs is a real Kafka with the semantics the kit relies on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.kafka


@pytest.fixture
async def topic(stack: TestStack) -> AsyncIterator[str]:
    name = f"test.infra.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def _drain(consumer: AIOKafkaConsumer, want: int, timeout_ms: int = 10_000) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(20):
        batch = await consumer.getmany(timeout_ms=timeout_ms // 20)
        for records in batch.values():
            got.extend(r.value for r in records if r.value is not None)
        if len(got) >= want:
            break
    return got


async def test_idempotent_producer_and_committed_offsets_survive_restart(
    stack: TestStack, topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"household-1")
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = consumer()
    await first.start()
    try:
        got = await _drain(first, 10)
        assert got == [f"m{i}".encode() for i in range(10)]
        # Commit only the first six: a restarted member must resume at the seventh.
        await first.commit({TopicPartition(topic, 0): 6})
    finally:
        await first.stop()

    second = consumer()
    await second.start()
    try:
        assert await _drain(second, 4) == [f"m{i}".encode() for i in range(6, 10)]
        assert await second.committed(TopicPartition(topic, 0)) == 6
    finally:
        await second.stop()


async def test_transactional_send_visible_to_read_committed_only_after_commit(
    stack: TestStack, topic: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap,
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}",
    )
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await reader.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"pending", key=b"k")
        assert await _drain(reader, 1, timeout_ms=3000) == []
        await producer.commit_transaction()
        assert await _drain(reader, 1) == [b"pending"]

        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"after", key=b"k")
        await producer.commit_transaction()
        assert await _drain(reader, 1) == [b"after"]
    finally:
        await reader.stop()
        await producer.stop()
