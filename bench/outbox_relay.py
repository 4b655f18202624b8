"""Outbox relay throughput beside a raw idempotent aiokafka producer, same broker, same run.

Both publish the same events (an ``ApplicationSubmitted`` with CloudEvents headers, keyed
by one of 10,000 households) to their own fresh topic with the same partitions and the
same producer settings (``relay.producer_config``). The raw producer sends prepared
records without awaiting each acknowledgement, then awaits them all: the most a Python
client gets out of this broker. The relay starts from a committed backlog in the outbox
and is timed until every row is published and marked, which includes claiming rows,
checking key order, building headers and the UPDATE. Rounds alternate raw and relay;
the medians are reported. ``python -m bench.run outbox --events 100000 --rounds 3``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
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
from dibao_common.messaging.schema import create_messaging_tables

HOUSEHOLDS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000, help="relay rows per batch")
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
    with Operations.context(MigrationContext.configure(connection)):
        create_messaging_tables()


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


async def _raw(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> float:
    """Seconds for a bare idempotent producer to publish ``records`` and have them acked."""
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


async def _relay(engine: AsyncEngine, bootstrap: str, batch_size: int, events: int) -> float:
    """Seconds for the relay to publish and mark a committed backlog of ``events`` rows."""
    relay = OutboxRelay(engine, bootstrap, name="bench", batch_size=batch_size)
    try:
        await relay.refresh_backlog()
        await relay._ensure_producer()  # connected before the clock starts, as the raw one
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
    """Alternate raw and relay rounds; report medians and their ratio."""
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
    engine = make_engine(stack.database_url(database), pool_size=2)
    topics: list[str] = []
    rows: list[list[Any]] = []
    raw_rates: list[float] = []
    relay_rates: list[float] = []
    try:
        warmup = await _create_topic(stack.kafka_bootstrap, args.partitions)
        topics.append(warmup)
        await _raw(stack.kafka_bootstrap, warmup, records[:5000])
        for n in range(1, args.rounds + 1):
            raw_topic = await _create_topic(stack.kafka_bootstrap, args.partitions)
            relay_topic = await _create_topic(stack.kafka_bootstrap, args.partitions)
            topics += [raw_topic, relay_topic]
            raw_s = await _raw(stack.kafka_bootstrap, raw_topic, records)
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE outbox_message"))
            await _fill_outbox(engine, relay_topic, args.events, households)
            relay_s = await _relay(engine, stack.kafka_bootstrap, args.batch_size, args.events)
            on_wire = await _topic_size(stack.kafka_bootstrap, relay_topic)
            if on_wire != args.events:
                raise RuntimeError(f"relay topic holds {on_wire} records, not {args.events}")
            raw_rates.append(args.events / raw_s)
            relay_rates.append(args.events / relay_s)
            rows.append([n, "raw producer", args.events, raw_s, args.events / raw_s])
            rows.append([n, "outbox relay", args.events, relay_s, args.events / relay_s])
    finally:
        await engine.dispose()
        await _drop_database(stack, database)
        if topics:
            await _delete_topics(stack.kafka_bootstrap, topics)
    raw = statistics.median(raw_rates)
    relay = statistics.median(relay_rates)
    return Report(
        title="outbox relay vs raw idempotent producer (events committed -> published)",
        columns=["round", "publisher", "events", "seconds", "events/s"],
        rows=rows,
        figures={
            "raw producer events/s (median)": round(raw),
            "outbox relay events/s (median)": round(relay),
            "ratio relay/raw": round(relay / raw, 3),
            "target": "ratio >= 0.5 and relay >= 10,000 events/s",
            "met": relay / raw >= 0.5 and relay >= 10_000,
        },
        settings={
            "events": args.events,
            "rounds": args.rounds,
            "relay batch size": args.batch_size,
            "partitions": args.partitions,
            "households (keys)": HOUSEHOLDS,
            "mean payload bytes": round(payload_bytes),
            "producer": {k: v for k, v in producer_config("-").items() if k != "bootstrap_servers"},
        },
    )
