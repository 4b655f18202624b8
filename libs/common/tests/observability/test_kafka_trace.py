"""Trace context crosses the real broker: a consumer logs with the producer's trace id."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dibao_common.observability import extract_trace, get_logger, inject_trace, use_trace
from dibao_common.testing.stack import TestStack

from .conftest import LogLines

pytestmark = pytest.mark.kafka


async def test_consumer_logs_with_the_producers_trace(
    stack: TestStack, log_lines: LogLines
) -> None:
    topic = f"test.observability.{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            with use_trace(correlation_id="req-1") as producing:
                headers: list[tuple[str, bytes]] = [("ce_type", b"test")]
                inject_trace(headers)
                get_logger("producer").info("event.sent")
                await producer.send_and_wait(topic, b"payload", key=b"h-1", headers=headers)
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        received = extract_trace(record.headers)
        assert received is not None
        with use_trace(received, correlation_id="req-1") as handling:
            get_logger("consumer").info("event.handled")
    finally:
        await admin.delete_topics([topic])
        await admin.close()

    assert handling.trace_id == producing.trace_id
    assert handling.parent_span_id == producing.span_id
    lines = {line["event"]: line for line in log_lines() if "trace_id" in line}
    assert lines["event.handled"]["trace_id"] == lines["event.sent"]["trace_id"]
    assert lines["event.handled"]["span_id"] != lines["event.sent"]["span_id"]
    assert lines["event.handled"]["correlation_id"] == "req-1"
