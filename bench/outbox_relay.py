"""Outbox relay throughput beside raw idempotent aiokafka producers, same broker, same run.

All publish the same events (an ``ApplicationSubmitted`` with CloudEvents headers, keyed
by one of 10,000 households) to their own fresh topic with the same partitions and the
same producer settings (``relay.producer_config``). Two raw producers send prepared
records without awaiting each acknowledgement, then await them all: one calls ``send``
per record (the ordinary way), the other fills one batch per partition and hands it over
with ``send_batch`` (placing keys with the default partitioner's murmur2, as the relay
does): the most a Python client gets out of this broker. The relay starts from a
committed backlog in the outbox and is timed until every row is published and deleted,
which includes claiming rows, checking key order, decoding headers and the DELETE.
Within a round the three run back to back, in an order that turns every round; medians
are reported with the relay's ratio to each raw producer.
``python -m bench.run outbox --events 100000 --rounds 3``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils.compat import uuid7

from bench.run import Report, Stack
from dibao.common.v1.types_pb2 import Actor, Money, RegionCode
from dibao.intake.v1.events_pb2 import ApplicationSubmitted
from dibao.intake.v1.types_pb2 import DeclaredIncome
from dibao_common.db import make_engine, make_sessionmaker
from dibao_common.messaging.outbox import OutgoingEvent, build_envelope, enqueue_many
from dibao_common.messaging.relay import OutboxRelay, producer_config
from dibao_common.messaging.schema import inbox_message, metadata, outbox_message

HOUSEHOLDS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2000, help="relay rows per batch")
    parser.add_argument("--partitions", type=int, default=6, help="as dibao.<svc>.v1")


def _event(household: str, n: int) -> ApplicationSubmitted:
    occurred = Timestamp()
    occurred.FromSeconds(1_767_225_600 + n)
    return ApplicationSubmitted(
        household_id=household,
        region=RegionCode(code="620102001001"),
        occurred_at=occurred,
        actor=Actor(subject="clerk-620102-07", roles=["intake_clerk"], region_prefixes=["620102"]),
        application_id=str(uuid7()),
        applicant_person_id=str(uuid7()),
        incomes=[
            DeclaredIncome(
                person_id=str(uuid7()),
                monthly_amount=Money(fen=85_000 + n % 1000),
                period_months=12,
                description="seasonal farm work",
            )
        ],
        statement="household income below the local standard after the harvest failed",
        requested_amount=Money(fen=42_000),
    )


def _households() -> list[str]:
    return [str(uuid7()) for _ in range(HOUSEHOLDS)]


async def _create_topic(bootstrap: str, partitions: int) -> str:
    name = f"bench.outbox.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


def _create_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[outbox_message, inbox_message])


async def _scratch_database(stack: Stack) -> str:
    name = f"{stack.db_prefix}_bench_outbox"
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = make_engine(stack.database_url(name), pool_size=1)
    async with engine.begin() as conn:
        await conn.run_sync(_create_tables)
    await engine.dispose()
    return name


async def _drop_database(stack: Stack, name: str) -> None:
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


async def _raw_send(bootstrap: str, topic: str, records: list[Record]) -> float:
    """Seconds for a bare idempotent producer to ``send`` ``records`` one by one and have
    them all acknowledged."""
    producer = AIOKafkaProducer(**producer_config(bootstrap, client_id="bench-raw"))
    await producer.start()
    try:
        await producer.partitions_for(topic)
        started = time.perf_counter()
        futures = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        for future in futures:
            await future
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _raw_batches(bootstrap: str, topic: str, records: list[Record]) -> float:
    """Seconds for a bare idempotent producer to publish ``records`` a partition's batch at
    a time (``create_batch``/``send_batch``) and have them all acknowledged."""
    producer = AIOKafkaProducer(**producer_config(bootstrap, client_id="bench-raw-batch"))
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        started = time.perf_counter()
        hashes: dict[bytes, int] = {}
        builders: dict[int, Any] = {}
        futures = []
        for key, value, headers in records:
            hashed = hashes.get(key)
            if hashed is None:
                hashed = hashes[key] = murmur2(key) & 0x7FFFFFFF
            partition = partitions[hashed % len(partitions)]
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                builder.close()
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[partition] = producer.create_batch()
                builder.append(timestamp=None, key=key, value=value, headers=headers)
        for partition, builder in builders.items():
            builder.close()
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        for future in futures:
            await future
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _fill_outbox(engine: AsyncEngine, topic: str, events: int, households: list[str]) -> None:
    sessionmaker = make_sessionmaker(engine)
    chunk = 2000
    for start in range(0, events, chunk):
        keys = [households[n % HOUSEHOLDS] for n in range(start, min(start + chunk, events))]
        batch = [
            OutgoingEvent(_event(key, start + i), key=key, topic=topic)
            for i, key in enumerate(keys)
        ]
        async with sessionmaker() as session, session.begin():
            await enqueue_many(session, batch, source="dibao/bench", actor="clerk-620102-07")
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE outbox_message"))


async def _relay(
    engine: AsyncEngine, bootstrap: str, topic: str, batch_size: int, events: int
) -> float:
    """Seconds for the relay to publish and mark a committed backlog of ``events`` rows."""
    relay = OutboxRelay(engine, bootstrap, name="bench", batch_size=batch_size)
    try:
        await relay.refresh_backlog()
        # Connected, the topic's metadata known, before the clock starts, as the raw ones.
        await relay._ensure_producer({topic})
        started = time.perf_counter()
        published = await relay.drain(timeout_s=3600)
        elapsed = time.perf_counter() - started
    finally:
        await relay.stop()
    if published != events:
        raise RuntimeError(f"relay published {published} of {events}")
    return elapsed


async def _topic_size(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer

    from dibao_common.messaging.dlq import topic_size

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await topic_size(consumer, topic)
    finally:
        await consumer.stop()


async def run(stack: Stack, args: argparse.Namespace) -> Report:
    """Raw producers and relay back to back in every round; medians and ratios."""
    households = _households()
    sample = [
        build_envelope(
            _event(households[n % HOUSEHOLDS], n),
            key=households[n % HOUSEHOLDS],
            source="dibao/bench",
            actor="clerk-620102-07",
        )
        for n in range(args.events)
    ]
    records = [(e.key.encode(), e.payload, e.to_headers()) for e in sample]
    payload_bytes = statistics.mean(len(e.payload) for e in sample)
    database = await _scratch_database(stack)
    engine = make_engine(stack.database_url(database), pool_size=4)
    topics: list[str] = []
    rows: list[list[Any]] = []
    rates: dict[str, list[float]] = {SEND: [], BATCHES: [], RELAY: []}
    loads: list[str] = []

    async def raw(publish: Callable[[str, str, list[Record]], Awaitable[float]]) -> float:
        topic = await _create_topic(stack.kafka_bootstrap, args.partitions)
        topics.append(topic)
        return await publish(stack.kafka_bootstrap, topic, records)

    async def relay() -> float:
        topic = await _create_topic(stack.kafka_bootstrap, args.partitions)
        topics.append(topic)
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE outbox_message"))
        await _fill_outbox(engine, topic, args.events, households)
        seconds = await _relay(engine, stack.kafka_bootstrap, topic, args.batch_size, args.events)
        on_wire = await _topic_size(stack.kafka_bootstrap, topic)
        if on_wire != args.events:
            raise RuntimeError(f"relay topic holds {on_wire} records, not {args.events}")
        return seconds

    contenders: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        (SEND, lambda: raw(_raw_send)),
        (BATCHES, lambda: raw(_raw_batches)),
        (RELAY, relay),
    ]
    try:
        warmup = await _create_topic(stack.kafka_bootstrap, args.partitions)
        topics.append(warmup)
        await _raw_send(stack.kafka_bootstrap, warmup, records[:5000])
        await _raw_batches(stack.kafka_bootstrap, warmup, records[:5000])
        for n in range(1, args.rounds + 1):
            # Each round starts with another one, so none always runs on the freshest
            # (or the most loaded) machine.
            turn = (n - 1) % len(contenders)
            loads.append(_load())
            for name, contender in contenders[turn:] + contenders[:turn]:
                seconds = await contender()
                rates[name].append(args.events / seconds)
                rows.append([n, name, args.events, seconds, args.events / seconds, _load()])
    finally:
        await engine.dispose()
        await _drop_database(stack, database)
        if topics:
            await _delete_topics(stack.kafka_bootstrap, topics)
    send, batches, relayed = (statistics.median(rates[name]) for name in (SEND, BATCHES, RELAY))
    per_round = [r / b for r, b in zip(rates[RELAY], rates[BATCHES], strict=True)]
    return Report(
        title="outbox relay vs raw idempotent producers (events committed -> published)",
        columns=["round", "publisher", "events", "seconds", "events/s", "load 1/5/15 after"],
        rows=rows,
        figures={
            "raw producer, send per record, events/s (median)": round(send),
            "raw producer, send_batch per partition, events/s (median)": round(batches),
            "outbox relay events/s (median)": round(relayed),
            "ratio relay / raw send_batch (medians)": round(relayed / batches, 3),
            "ratio relay / raw send_batch, per round": [round(r, 3) for r in per_round],
            "ratio relay / raw send per record (medians)": round(relayed / send, 3),
            "target": "relay >= 0.5 x the raw producer and >= 10,000 events/s",
            "met against raw send per record": relayed / send >= 0.5 and relayed >= 10_000,
            "met against raw send_batch": relayed / batches >= 0.5 and relayed >= 10_000,
            "load average 1/5/15 at each round's start": loads,
        },
        settings={
            "events": args.events,
            "rounds": args.rounds,
            "relay batch size": args.batch_size,
            "partitions": args.partitions,
            "households (keys)": HOUSEHOLDS,
            "mean payload bytes": round(payload_bytes),
            "producer (raw and relay)": {
                k: v for k, v in producer_config("-").items() if k != "bootstrap_servers"
            },
        },
    )


SEND = "raw producer, send"
BATCHES = "raw producer, send_batch"
RELAY = "outbox relay"


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())
