"""The broker stopped for a few seconds under a running relay and consumer: what the logs
say of it.

While the broker is down, aiokafka's clients (the relay's producer, the consumer's three)
log an ERROR for every connection they fail to open and every metadata update they fail
to make: about twenty a second, which an operator's alerting would page on, every one,
and among which the service's own lines are lost. Through the kit's log pipeline each of
aiokafka's connection messages is one WARNING per node (or per message, when it names
none) per minute, the next one saying how many were left out
(``observability.KafkaConnectionErrorFilter``); the relay's and the consumer's own lines
of the outage are written as they are.

The broker is one of the test's own (``kafka.sh start --dir``), killed and started again.
What aiokafka logged is counted twice: as its loggers had it (a filter placed ahead of
the kit's on each of them, which sees every record: what the log was before) and as the
kit's pipeline wrote it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
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
from dibao_common import observability
from dibao_common.messaging.consumer import ConsumerRunner
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.observability import (
    KAFKA_CONNECTION_LOGGERS,
    KAFKA_CONNECTION_MESSAGES,
    KafkaConnectionErrorFilter,
)
from dibao_common.testing.kafka_fixtures import create_topic, eventually, kafka_sh, own_broker

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]
LogLines = Callable[[], list[dict[str, Any]]]

AIOKAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)
RELAY_LOGGER = "dibao_common.messaging.relay"


@pytest.fixture(scope="module")
def outage_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-outage-logs")
    # Offsets 10,000-10,002 and 10,010-10,045 (every 5), and theirs +50, are other tests'
    # brokers: 10,005 and 10,055 are free of them modulo the instances' spacing of 100.
    with own_broker(directory, port_offset=10_005) as bootstrap:
        yield directory, bootstrap


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The kit's log pipeline (INFO, as the services run), into a buffer."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("INFO", service_name="kit-test", stream=stream, force=True)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root = logging.getLogger()
        if observability._handler is not None:
            root.removeHandler(observability._handler)
        observability._configured, observability._handler = previous
        if previous[1] is not None:
            root.addHandler(previous[1])


class Raw(logging.Filter):
    """Every record of a logger at WARNING or above, as logged: placed first among its
    filters, it sees each one before the kit's filter changes or drops it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str, Any]] = []
        self._kind = KafkaConnectionErrorFilter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            msg = record.msg if isinstance(record.msg, str) else str(record.msg)
            self.seen.append((record.name, record.levelname, msg, self._kind.key(record)))
        return True


@pytest.fixture
def raw(log_lines: LogLines) -> Iterator[Raw]:
    """A :class:`Raw` on aiokafka's loggers and the relay's, the kit's pipeline installed
    (``log_lines``)."""
    counter = Raw()
    loggers = [logging.getLogger(name) for name in (*AIOKAFKA_LOGGERS, RELAY_LOGGER)]
    for logger in loggers:
        logger.filters.insert(0, counter)
    # The kit's windows start afresh: another test's outage of a node 1 may be in them.
    for name in KAFKA_CONNECTION_LOGGERS:
        for installed in logging.getLogger(name).filters:
            if isinstance(installed, KafkaConnectionErrorFilter):
                installed.forget()
    try:
        yield counter
    finally:
        for logger in loggers:
            logger.removeFilter(counter)


async def test_a_broker_outage_logs_each_aiokafka_connection_error_once_a_minute(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    outage_broker: tuple[Path, str],
    commit_events: CommitEvents,
    pending: Pending,
    log_lines: LogLines,
    raw: Raw,
) -> None:
    directory, bootstrap = outage_broker
    topic = f"test.outage.{uuid.uuid4().hex[:10]}"
    dlq = f"{topic}.dlq"
    await create_topic(bootstrap, topic, partitions=3)
    await create_topic(bootstrap, dlq, partitions=1)
    consumer_name = f"test-outage-{uuid.uuid4().hex[:8]}"

    async def apply(session: AsyncSession, envelope: Envelope, message: Message) -> None:
        assert isinstance(message, ApplicationAccepted)
        await session.execute(
            text("INSERT INTO test_applied (consumer, ce_id, key) VALUES (:c, :id, :k)"),
            {"c": consumer_name, "id": envelope.ce_id, "k": envelope.key},
        )

    async def applied() -> int:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM test_applied WHERE consumer = :c"),
                {"c": consumer_name},
            )
            return int(found.scalar_one())

    def all_applied_of(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await pending() == 0 and await applied() >= n

        return check

    consumer = ConsumerRunner(
        consumer_name,
        [topic],
        apply,
        sessionmaker,
        bootstrap,
        registry=EventRegistry([ApplicationAccepted]),
        dlq_topic=dlq,
        backoff_s=0.5,
        backoff_max_s=5.0,
    )
    # Acknowledgements given up on after 2 s: the relay's batches fail in the outage, and
    # it says so itself.
    relay = OutboxRelay(
        engine,
        bootstrap,
        name="test-outage-logs",
        ack_timeout_s=2.0,
        backoff_max_s=2.0,
        producer_overrides={"request_timeout_ms": 2_000},
    )
    await consumer.start()
    await relay.start()
    try:
        await commit_events(topic, events=20, keys=5)

        await eventually(all_applied_of(20), timeout_s=60, what="the events before")
        before, written_before = len(raw.seen), len(log_lines())
        started = time.monotonic()
        await asyncio.to_thread(kafka_sh, "kill-node", "--dir", str(directory), "--node", "1")
        await commit_events(topic, events=20, keys=5)
        await asyncio.sleep(8.0)
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        await eventually(all_applied_of(40), timeout_s=90, what="the events after")
    finally:
        await relay.stop()
        await consumer.stop()

    elapsed = time.monotonic() - started
    seen = raw.seen[before:]
    lines = log_lines()[written_before:]
    connection = [r for r in seen if r[2] in KAFKA_CONNECTION_MESSAGES]
    kinds = {r[3] for r in connection}
    # What aiokafka logged: about a hundred ERRORs a second (3,038 in a 22 s outage).
    assert len(connection) >= 50, Counter((r[0], r[2]) for r in seen)
    assert {r[1] for r in connection} >= {"ERROR"}
    # What the kit's pipeline wrote of it: each kind once a minute, as a WARNING.
    written = [
        line
        for line in lines
        if line["logger"] in KAFKA_CONNECTION_LOGGERS
        and any(line["event"].startswith(m.split("%")[0]) for m in KAFKA_CONNECTION_MESSAGES)
    ]
    assert written, "nothing of the outage written"
    assert {line["level"] for line in written} == {"warning"}, written
    windows = 1 + int(elapsed // 60)
    assert len(written) <= len(kinds) * windows, [line["event"] for line in written]
    assert [
        line for line in lines if line["logger"].startswith("aiokafka") and line["level"] == "error"
    ] == []
    # The relay's own lines of the outage are written as it logged them.
    own = [r for r in seen if r[0] == RELAY_LOGGER]
    relay_lines = [
        line
        for line in lines
        if line["logger"] == RELAY_LOGGER and line["level"] in ("warning", "error", "critical")
    ]
    assert [line["level"] for line in relay_lines] == [r[1].lower() for r in own]
    failed = [
        line for line in relay_lines if line["event"] == "outbox relay batch failed, retrying"
    ]
    assert failed, [line["event"] for line in relay_lines]
    assert {line["level"] for line in failed} == {"warning"}


def _record(name: str, msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, "client.py", 435, msg, args, None)


def test_the_filter_passes_each_node_and_message_once_a_window_with_the_count_left_out() -> None:
    now = [0.0]
    quiet = KafkaConnectionErrorFilter(60.0, clock=lambda: now[0])
    node = "Unable connect to node with id %s: %s"
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9092)")
    first = _record("aiokafka", node, 1, refused)
    assert quiet.filter(first)
    assert (first.levelno, first.levelname) == (logging.WARNING, "WARNING")
    assert first.getMessage() == (
        "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)"
    )
    # Another node, another error of the same node, another message: each its own window.
    assert quiet.filter(_record("aiokafka", node, 2, refused))
    assert quiet.filter(_record("aiokafka", node, 1, TimeoutError()))
    assert quiet.filter(_record("aiokafka", "Unable to update metadata from %s", [1, 2]))
    for step in range(1, 600):
        now[0] = step * 0.1
        assert not quiet.filter(_record("aiokafka", node, 1, refused))
        # The nodes asked are no kind of their own: the message is.
        assert not quiet.filter(_record("aiokafka", "Unable to update metadata from %s", [2, 1]))
    now[0] = 60.0
    again = _record("aiokafka", node, 1, refused)
    assert quiet.filter(again)
    assert again.levelno == logging.WARNING
    assert again.getMessage() == (
        "Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)"
        " (599 more times since the last record of it, not logged)"
    )
    # Any other record of aiokafka's passes as it is.
    other = _record("aiokafka", "Unexpected error in sender routine")
    assert quiet.filter(other)
    assert other.levelno == logging.ERROR
    # Once forgotten (a test's fresh start), the next is passed again.
    quiet.forget()
    assert quiet.filter(_record("aiokafka", node, 1, refused))
