"""Dead letters: records a consumer gave up on, with where they came from and why.

A dead letter is the original record (key, value, headers) plus provenance headers:
``dlq_topic``, ``dlq_partition``, ``dlq_offset`` (where it was consumed), ``dlq_error``,
``dlq_consumer``, ``dlq_attempts`` and ``dlq_at``. ``replay`` puts it back where it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition

H_TOPIC: Final = "dlq_topic"
H_PARTITION: Final = "dlq_partition"
H_OFFSET: Final = "dlq_offset"
H_ERROR: Final = "dlq_error"
H_CONSUMER: Final = "dlq_consumer"
H_ATTEMPTS: Final = "dlq_attempts"
H_AT: Final = "dlq_at"
_PREFIX: Final = "dlq_"
_MAX_ERROR_BYTES: Final = 4000


def dlq_topic_for(service: str) -> str:
    """The dead-letter topic of a consuming service: ``dibao.<service>.dlq``."""
    return f"dibao.{service}.dlq"


def without_provenance(
    headers: Sequence[tuple[str, bytes | None]],
) -> list[tuple[str, bytes | None]]:
    """The record's own headers (those of an earlier dead-lettering removed)."""
    return [(name, value) for name, value in headers if not name.startswith(_PREFIX)]


def dead_letter_headers(
    headers: Sequence[tuple[str, bytes | None]],
    *,
    topic: str,
    partition: int,
    offset: int,
    error: str,
    consumer: str,
    attempts: int,
) -> list[tuple[str, bytes | None]]:
    """The original headers plus this dead-lettering's provenance."""
    return [
        *without_provenance(headers),
        (H_TOPIC, topic.encode()),
        (H_PARTITION, str(partition).encode()),
        (H_OFFSET, str(offset).encode()),
        (H_ERROR, error.encode()[:_MAX_ERROR_BYTES]),
        (H_CONSUMER, consumer.encode()),
        (H_ATTEMPTS, str(attempts).encode()),
        (H_AT, datetime.now(UTC).isoformat().encode()),
    ]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back from a topic (a dead letter, or any other)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    def header(self, name: str) -> str | None:
        for header, value in self.headers:
            if header == name:
                return None if value is None else value.decode(errors="replace")
        return None

    @property
    def ce_id(self) -> str | None:
        return self.header("ce_id")


async def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> list[StoredRecord]:
    """Every record of ``topic`` up to its end offsets at the time of the call.

    Not only for dead letters: tests and tools read any topic with it.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return await _read_assigned(consumer, topic, timeout_s)
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> list[TopicPartition]:
    # The consumer's public topics() drops the metadata it fetched; ask its client.
    cluster = await consumer._client.fetch_all_metadata()
    found = cluster.partitions_for_topic(topic)
    if not found:
        raise LookupError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def _read_assigned(consumer: Any, topic: str, timeout_s: float) -> list[StoredRecord]:
    partitions = await _partitions(consumer, topic)
    consumer.assign(partitions)
    end = await consumer.end_offsets(partitions)
    await consumer.seek_to_beginning(*partitions)
    records: list[StoredRecord] = []
    remaining = {tp for tp in partitions if end[tp] > 0}
    for tp in list(remaining):
        if await consumer.position(tp) >= end[tp]:
            remaining.discard(tp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while remaining:
        if loop.time() > deadline:
            raise TimeoutError(f"{topic} not read to its end in {timeout_s} s")
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, found in batch.items():
            for record in found:
                if record.offset < end[tp]:
                    records.append(
                        StoredRecord(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            key=record.key,
                            value=record.value,
                            headers=list(record.headers),
                        )
                    )
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    return records


async def topic_size(consumer: Any, topic: str) -> int:
    """Records in ``topic`` (end minus start offsets), asked through a started consumer."""
    partitions = await _partitions(consumer, topic)
    start = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    return sum(end[tp] - start[tp] for tp in partitions)
