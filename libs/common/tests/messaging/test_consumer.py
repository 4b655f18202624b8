"""The consumer runner, inbox, dead letters and replay against the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from google.protobuf.message import Message
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.messaging.consumer import ConsumerRunner, is_infrastructure_error
from dibao_common.messaging.dlq import StoredRecord
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.inbox import record_many, record_once
from dibao_common.messaging.outbox import build_envelope
from dibao_common.messaging.replay import main as replay_main
from dibao_common.messaging.replay import replay_dead_letters
from dibao_common.observability import (
    current_correlation_id,
    current_trace,
    current_traceparent,
    use_trace,
)
from dibao_common.testing.kafka_fixtures import TopicFactory, eventually, read_records
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


class Effects:
    """A handler with visible effects, and a switch that makes it fail for chosen events."""

    def __init__(self, engine: AsyncEngine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer
        self.broken: set[uuid.UUID] = set()
        self.calls: Counter[uuid.UUID] = Counter()
        self.context: dict[uuid.UUID, tuple[str | None, str | None]] = {}
        self.batches: list[int] = []

    async def handle(self, session: AsyncSession, envelope: Envelope, message: Message) -> None:
        assert isinstance(message, ApplicationAccepted)
        self.calls[envelope.ce_id] += 1
        trace = current_trace()
        self.context[envelope.ce_id] = (
            trace.trace_id if trace is not None else None,
            current_correlation_id(),
        )
        await session.execute(
            text("INSERT INTO test_applied (consumer, ce_id, key) VALUES (:c, :id, :k)"),
            {"c": self.consumer, "id": envelope.ce_id, "k": envelope.key},
        )
        await session.execute(
            text(
                "INSERT INTO test_total (key, total) VALUES (:k, 1) "
                "ON CONFLICT (key) DO UPDATE SET total = test_total.total + 1"
            ),
            {"k": envelope.key},
        )
        if envelope.ce_id in self.broken:
            raise RuntimeError(f"handler bug on {envelope.ce_id}")

    async def handle_many(
        self, session: AsyncSession, events: Sequence[tuple[Envelope, Message]]
    ) -> None:
        """The runner's batch handler: the same effects, one call per run of new events."""
        self.batches.append(len(events))
        for envelope, message in events:
            await self.handle(session, envelope, message)

    async def applied(self) -> list[uuid.UUID]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT ce_id FROM test_applied WHERE consumer = :c ORDER BY seq"),
                {"c": self.consumer},
            )
            return [row.ce_id for row in rows]

    async def inbox(self) -> set[uuid.UUID]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT ce_id FROM inbox_message WHERE consumer = :c"), {"c": self.consumer}
            )
            return {row.ce_id for row in rows}

    async def total(self, key: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT total FROM test_total WHERE key = :k"), {"k": key}
            )
            return int(found.scalar_one_or_none() or 0)


Send = Callable[..., Awaitable[None]]


@pytest_asyncio.fixture(loop_scope="session")
async def producer(stack: TestStack) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def send(producer: AIOKafkaProducer, topic: str, envelope: Envelope) -> None:
    await producer.send_and_wait(
        topic, envelope.payload, key=envelope.key.encode(), headers=envelope.to_headers()
    )


def accepted(key: str, n: int) -> Envelope:
    return build_envelope(
        ApplicationAccepted(household_id=key, application_id=str(n)), key=key, source="test"
    )


def _runner(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    topic: str,
    dlq: str,
    prefix: str,
    *,
    batched: bool = False,
    **options: Any,
) -> tuple[ConsumerRunner, Effects]:
    """A runner of ``topic`` under a fresh group name (three attempts, short backoff;
    ``batched``: with the effects' batch handler)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    effects = Effects(engine, name)
    if batched:
        options["batch_handler"] = effects.handle_many
    runner = ConsumerRunner(
        name,
        [topic],
        effects.handle,
        sessionmaker,
        stack.kafka_bootstrap,
        registry=EventRegistry([ApplicationAccepted]),
        dlq_topic=dlq,
        max_attempts=3,
        backoff_s=0.02,
        **options,
    )
    return runner, effects


@pytest_asyncio.fixture(loop_scope="session")
async def setup(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
) -> AsyncIterator[tuple[ConsumerRunner, Effects, str, str]]:
    """A running consumer of a fresh topic (one partition: one order), its DLQ and effects."""
    topic = await kafka_topics(partitions=1)
    dlq = await kafka_topics(partitions=1)
    runner, effects = _runner(
        stack, engine, sessionmaker, topic, dlq, "test-consumer", dlq_size_refresh_s=0.2
    )
    await runner.start()
    try:
        yield runner, effects, topic, dlq
    finally:
        await runner.stop()


def _header(record: StoredRecord, name: str) -> str | None:
    return record.header(name)


async def test_record_once_claims_an_event_once_per_consumer(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    envelope = accepted("h-1", 1)
    async with sessionmaker() as session, session.begin():
        assert await record_once(session, "c1", envelope, "t", 0, 5) is True
        assert await record_once(session, "c1", envelope, "t", 0, 5) is False
        assert await record_once(session, "c2", envelope, "t", 0, 5) is True
    async with sessionmaker() as session:
        assert await record_once(session, "c3", envelope, "t", 0, 5) is True
        await session.rollback()
    async with sessionmaker() as session, session.begin():
        # The rolled-back claim left nothing behind.
        assert await record_once(session, "c3", envelope, "t", 0, 5) is True


async def test_record_many_claims_a_fetch_in_one_statement(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen, new, other = accepted("h-1", 1), accepted("h-1", 2), accepted("h-2", 3)
    async with sessionmaker() as session, session.begin():
        assert await record_once(session, "c1", seen, "t", 0, 1) is True
    async with sessionmaker() as session, session.begin():
        firsts = await record_many(
            session,
            "c1",
            [(seen, "t", 0, 1), (new, "t", 0, 2), (new, "t", 0, 3), (other, "t", 1, 7)],
        )
        # Already applied; first time; the same event again in the fetch; first time.
        assert firsts == [False, True, False, True]
        assert await record_many(session, "c1", []) == []
        assert await record_many(session, "c2", [(seen, "t", 0, 1)]) == [True]
    async with sessionmaker() as session, session.begin():
        assert await record_once(session, "c1", new, "t", 0, 2) is False
        assert await record_once(session, "c1", other, "t", 1, 7) is False
        assert await record_once(session, "c2", seen, "t", 0, 1) is False


async def test_an_event_delivered_twice_changes_state_once(
    producer: AIOKafkaProducer, setup: tuple[ConsumerRunner, Effects, str, str]
) -> None:
    runner, effects, topic, _dlq = setup
    first, second = accepted("h-1", 1), accepted("h-1", 2)
    await send(producer, topic, first)
    await send(producer, topic, first)  # the relay's at-least-once: same ce_id again
    await send(producer, topic, second)
    duplicates = ("dibao_consumer_events_total", {"consumer": runner.name, "outcome": "duplicate"})

    async def caught_up() -> bool:
        return (REGISTRY.get_sample_value(*duplicates) or 0) == 1 and len(
            await effects.applied()
        ) == 2

    await eventually(caught_up, what="both events and the duplicate")
    assert await effects.applied() == [first.ce_id, second.ce_id]
    assert await effects.total("h-1") == 2
    assert await effects.inbox() == {first.ce_id, second.ce_id}
    assert effects.calls[first.ce_id] == 1


async def test_the_handler_runs_in_the_producers_trace_and_correlation(
    producer: AIOKafkaProducer, setup: tuple[ConsumerRunner, Effects, str, str]
) -> None:
    _runner, effects, topic, _dlq = setup
    with use_trace(correlation_id="req-1234") as request:
        # What a request handler does: enqueue picks the trace and correlation id up.
        envelope = accepted("h-1", 1)
        assert envelope.traceparent == current_traceparent()
        assert envelope.correlation_id == "req-1234"
    await send(producer, topic, envelope)

    async def applied() -> bool:
        return envelope.ce_id in effects.context

    await eventually(applied, what="the traced event")
    assert effects.context[envelope.ce_id] == (request.trace_id, "req-1234")


async def test_a_failing_handler_is_rolled_back_dead_lettered_and_replayed(
    stack: TestStack,
    producer: AIOKafkaProducer,
    setup: tuple[ConsumerRunner, Effects, str, str],
) -> None:
    runner, effects, topic, dlq = setup
    events = [accepted("h-1", n) for n in range(5)]
    poisoned = events[1]
    effects.broken.add(poisoned.ce_id)
    for envelope in events:
        await send(producer, topic, envelope)

    async def later_ones_flowed() -> bool:
        return len(await effects.applied()) == 4

    await eventually(later_ones_flowed, what="the events after the failing one")
    assert await effects.applied() == [e.ce_id for e in events if e is not poisoned]
    assert effects.calls[poisoned.ce_id] == 3  # max_attempts, each rolled back
    assert poisoned.ce_id not in await effects.inbox()
    assert await effects.total("h-1") == 4

    dead = await read_records(stack, dlq)
    assert len(dead) == 1
    letter = dead[0]
    assert Envelope.from_record(letter) == poisoned
    assert letter.value == poisoned.payload
    assert _header(letter, "dlq_topic") == topic
    assert _header(letter, "dlq_partition") == "0"
    assert _header(letter, "dlq_offset") == "1"
    assert _header(letter, "dlq_consumer") == runner.name
    assert _header(letter, "dlq_attempts") == "3"
    assert "RuntimeError: handler bug" in (_header(letter, "dlq_error") or "")

    async def dlq_gauge_counts_it() -> bool:
        # Labelled by consumer too: another consumer of the process keeps its own figure.
        labels = {"consumer": runner.name, "topic": dlq}
        return REGISTRY.get_sample_value("dibao_dlq_size", labels) == 1

    await eventually(dlq_gauge_counts_it, what="the DLQ size gauge")

    # Fixed: replaying applies it once; replaying again changes nothing.
    effects.broken.clear()
    replayed = await replay_dead_letters(stack.kafka_bootstrap, dlq)
    assert [r.ce_id for r in replayed] == [str(poisoned.ce_id)]
    assert replayed[0].topic == topic

    async def replay_applied() -> bool:
        return poisoned.ce_id in await effects.applied()

    await eventually(replay_applied, what="the replayed event")
    # The command, as an operator runs it (its own event loop, hence a thread).
    args = ["--dlq", dlq, "--bootstrap", stack.kafka_bootstrap]
    assert await asyncio.to_thread(replay_main, args) == 0
    assert len(await read_records(stack, topic)) == 7  # 5 sent + 2 replays
    duplicates = ("dibao_consumer_events_total", {"consumer": runner.name, "outcome": "duplicate"})

    async def second_replay_skipped() -> bool:
        return (REGISTRY.get_sample_value(*duplicates) or 0) >= 1

    await eventually(second_replay_skipped, what="the second replay to be skipped")
    assert Counter(await effects.applied())[poisoned.ce_id] == 1
    assert await effects.total("h-1") == 5
    assert len(await read_records(stack, dlq)) == 1


async def test_undecodable_and_unknown_events_go_to_the_dlq_without_stopping(
    stack: TestStack,
    producer: AIOKafkaProducer,
    setup: tuple[ConsumerRunner, Effects, str, str],
) -> None:
    _runner, effects, topic, dlq = setup
    not_protobuf = accepted("h-1", 1)
    await producer.send_and_wait(
        topic, b"not protobuf at all", key=b"h-1", headers=not_protobuf.to_headers()
    )
    unknown = build_envelope(ApplicationAccepted(household_id="h-1"), key="h-1", source="t")
    unknown_headers = [
        (n, b"dibao.intake.SomethingNew.v1" if n == "ce_type" else v)
        for n, v in unknown.to_headers()
    ]
    await producer.send_and_wait(topic, unknown.payload, key=b"h-1", headers=unknown_headers)
    await producer.send_and_wait(topic, b'{"json": true}', key=b"h-1")  # no envelope at all
    good = accepted("h-1", 2)
    await send(producer, topic, good)

    async def good_one_applied() -> bool:
        return await effects.applied() == [good.ce_id]

    await eventually(good_one_applied, what="the valid event after three poison ones")
    dead = await read_records(stack, dlq)
    assert [_header(r, "dlq_offset") for r in dead] == ["0", "1", "2"]
    errors = [_header(r, "dlq_error") or "" for r in dead]
    assert errors[0].startswith("UndecodablePayload")
    assert errors[1].startswith("UnknownEventType")
    assert errors[2].startswith("InvalidEnvelopeError")
    assert [_header(r, "dlq_attempts") for r in dead] == ["0", "0", "0"]
    assert dead[0].value == b"not protobuf at all"
    assert effects.calls == Counter({good.ce_id: 1})


async def _backlog_runner(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
    producer: AIOKafkaProducer,
    events: list[Envelope],
    *,
    batched: bool = False,
) -> tuple[ConsumerRunner, Effects, str, str]:
    """A runner started only once ``events`` are all on its topic: it fetches them at once
    (``batched``: with the effects' batch handler)."""
    topic = await kafka_topics(partitions=1)
    dlq = await kafka_topics(partitions=1)
    for envelope in events:
        await send(producer, topic, envelope)
    runner, effects = _runner(
        stack, engine, sessionmaker, topic, dlq, "test-backlog", batch_size=25, batched=batched
    )
    return runner, effects, topic, dlq


async def _transactions(engine: AsyncEngine, consumer: str) -> int:
    """How many transactions wrote a consumer's effects (rows of one share its xmin)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(DISTINCT xmin::text) FROM test_applied WHERE consumer = :c"),
            {"c": consumer},
        )
        return int(found.scalar_one())


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batch-handler"])
async def test_a_fetched_backlog_is_applied_in_transactions_of_batch_size(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
    producer: AIOKafkaProducer,
    batched: bool,
) -> None:
    originals = [accepted(f"h-{n % 3}", n) for n in range(60)]
    events = [*originals[:30], originals[10], *originals[30:]]  # a redelivery inside
    runner, effects, _topic, _dlq = await _backlog_runner(
        stack, engine, sessionmaker, kafka_topics, producer, events, batched=batched
    )
    await runner.start()
    try:

        async def all_applied() -> bool:
            return len(await effects.applied()) == 60

        await eventually(all_applied, what="the backlog")
    finally:
        await runner.stop()
    assert await effects.applied() == [e.ce_id for e in originals]
    assert effects.calls[originals[10].ce_id] == 1
    if batched:
        # The redelivered event was no batch's new event; runs of up to 25 records.
        assert sum(effects.batches) == 60
        assert len(effects.batches) <= 6
        assert max(effects.batches) <= 25
    else:
        # 61 records in batches of 25 (fetches may split them): a handful of
        # transactions, not one per event.
        assert await _transactions(engine, runner.name) <= 6


@pytest.mark.parametrize("batched", [False, True], ids=["per-event", "batch-handler"])
async def test_a_failing_event_in_a_batch_costs_the_others_nothing_and_itself_its_attempts(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
    producer: AIOKafkaProducer,
    batched: bool,
) -> None:
    events = [accepted("h-1", n) for n in range(10)]
    poisoned = events[4]
    runner, effects, _topic, dlq = await _backlog_runner(
        stack, engine, sessionmaker, kafka_topics, producer, events, batched=batched
    )
    effects.broken.add(poisoned.ce_id)
    await runner.start()
    try:

        async def others_applied() -> bool:
            return len(await effects.applied()) == 9

        await eventually(others_applied, what="the events around the failing one")
    finally:
        await runner.stop()
    assert await effects.applied() == [e.ce_id for e in events if e is not poisoned]
    # Per event, its run in the rolled-back batch was its first attempt: three runs in
    # all. A batch handler's failure names no event: three attempts after that run.
    assert effects.calls[poisoned.ce_id] == (4 if batched else 3)
    assert await effects.total("h-1") == 9
    assert poisoned.ce_id not in await effects.inbox()
    dead = await read_records(stack, dlq)
    assert [Envelope.from_record(r).ce_id for r in dead] == [poisoned.ce_id]
    assert _header(dead[0], "dlq_attempts") == "3"


def test_a_closed_connection_is_an_outage_and_driver_misuse_is_not() -> None:
    closed = asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed")
    assert is_infrastructure_error(closed)
    wrapped = RuntimeError("handler failed")
    wrapped.__cause__ = closed
    assert is_infrastructure_error(wrapped)
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not is_infrastructure_error(busy)


def test_a_connection_a_cancelled_operation_left_midway_is_not_the_events_fault() -> None:
    # asyncpg's text when a connection is used after an operation on it was cancelled
    # (a fast shutdown): the next event on it must not count a failed attempt.
    midway = asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert is_infrastructure_error(midway)
    wrapped = RuntimeError("handler failed")
    wrapped.__context__ = midway
    assert is_infrastructure_error(wrapped)
    failed = asyncpg.InternalClientError(
        'cannot switch to state 12; protocol is in the "failed" state'
    )
    assert is_infrastructure_error(failed)


async def test_headers_without_a_value_neither_stop_the_partition_nor_go_unnoticed(
    stack: TestStack,
    producer: AIOKafkaProducer,
    setup: tuple[ConsumerRunner, Effects, str, str],
) -> None:
    # Kafka allows a header without a value (another producer, a connector): it is an
    # absent header. An event whose ce_id has none is poison and goes to the DLQ; an
    # extra one changes nothing. Neither may stop the partition.
    _runner, effects, topic, dlq = setup
    no_id, extra, good = accepted("h-1", 1), accepted("h-1", 2), accepted("h-1", 3)
    nulled: Any = [(n, None if n == "ce_id" else v) for n, v in no_id.to_headers()]
    await producer.send_and_wait(topic, no_id.payload, key=b"h-1", headers=nulled)
    with_extra: Any = [*extra.to_headers(), ("x-extra", None)]
    await producer.send_and_wait(topic, extra.payload, key=b"h-1", headers=with_extra)
    await send(producer, topic, good)

    async def others_applied() -> bool:
        return await effects.applied() == [extra.ce_id, good.ce_id]

    await eventually(others_applied, what="the events after the valueless ce_id")
    dead = await read_records(stack, dlq)
    assert [_header(r, "dlq_offset") for r in dead] == ["0"]
    assert (_header(dead[0], "dlq_error") or "").startswith("InvalidEnvelopeError: header ce_id")
    assert effects.calls == Counter({extra.ce_id: 1, good.ce_id: 1})


async def test_runners_of_one_group_id_share_the_topic_and_another_group_reads_it_all(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topics: TopicFactory,
    producer: AIOKafkaProducer,
) -> None:
    """``group_id`` is the Kafka group, the name the inbox's: two runners of other names
    given one group id are that one group and share the topic's events between them (each
    applies its share under its own name), and a runner of the default group (its name)
    reads every event. A second deployment on one broker (a test run's stacks) is kept
    apart so: in the group of the first, each got a share of the other's events."""
    topic = await kafka_topics(partitions=3)
    dlq = await kafka_topics(partitions=1)
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    one, one_effects = _runner(stack, engine, sessionmaker, topic, dlq, "grp-a", group_id=group)
    two, two_effects = _runner(stack, engine, sessionmaker, topic, dlq, "grp-b", group_id=group)
    alone, alone_effects = _runner(stack, engine, sessionmaker, topic, dlq, "grp-c")
    assert (one.group_id, alone.group_id) == (group, alone.name)
    sent = [accepted(f"h-{n % 10}", n) for n in range(30)]
    for runner in (one, two, alone):
        await runner.start()
    try:
        for envelope in sent:
            await send(producer, topic, envelope)
        everything = {e.ce_id for e in sent}

        async def all_read() -> bool:
            shared = set(await one_effects.applied()) | set(await two_effects.applied())
            return shared == everything and set(await alone_effects.applied()) == everything

        await eventually(all_read, timeout_s=60, what="the group and the lone runner")
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            groups = {entry[0] for entry in await admin.list_consumer_groups()}
        finally:
            await admin.close()
    finally:
        for runner in (one, two, alone):
            await runner.stop()
    assert {group, alone.name} <= groups
    assert not {one.name, two.name} & groups
