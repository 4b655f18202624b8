"""The log consumer on the real Kafka broker and PostgreSQL: exactly once, across a crash."""

from __future__ import annotations

import struct
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.record.util import calc_crc32c
from structlog.testing import capture_logs

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.appender import AppendResult, LogAppender
from dibao_audit.consumer import LogConsumer
from dibao_audit.models import LogEntry
from dibao_audit.testing import AuditDb
from dibao_audit.verifier import read_export, verify_export
from dibao_common.messaging.envelope import Envelope, ce_type_of
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest_asyncio.fixture(loop_scope="session")
async def topic(audit_db: AuditDb) -> AsyncIterator[str]:
    name = f"dibao.t{uuid.uuid4().hex[:10]}.v1"
    await create_topic(audit_db.stack.kafka_bootstrap, name, partitions=3)
    try:
        yield name
    finally:
        await delete_topics(audit_db.stack.kafka_bootstrap, [name])


def _envelope(i: int) -> Envelope:
    household = f"hh-{i % 7}"
    message = intake_pb2.ApplicationWithdrawn(
        household_id=household,
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return Envelope(
        ce_id=uuid.uuid4(),
        ce_type=ce_type_of(message),
        ce_source="dibao/intake",
        ce_time=datetime(2026, 11, 1, tzinfo=UTC),
        ce_subject=None,
        key=household,
        payload=message.SerializeToString(),
    )


async def _produce(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for env in envelopes:
            await producer.send(topic, env.payload, key=env.key.encode(), headers=env.to_headers())
        await producer.flush()
    finally:
        await producer.stop()


async def _stored_ids(db: AuditDb) -> list[str]:
    async with db.sessions() as session:
        rows = await session.scalars(sa.select(LogEntry.ce_id).order_by(LogEntry.leaf_index))
        return [str(x) for x in rows]


class _Crash(BaseException):
    """The process dies here (not an error the consumer could handle and retry)."""


def _consumer(db: AuditDb, topic: str, **kwargs: object) -> LogConsumer:
    return LogConsumer(
        db.appender(checkpoint_every=50),
        db.stack.kafka_bootstrap,
        group=f"audit-{topic}",
        pattern=f"^{topic.replace('.', '[.]')}$",
        batch_max=40,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_duplicate_delivery_is_appended_once(audit_db: AuditDb, topic: str) -> None:
    envelopes = [_envelope(i) for i in range(120)]
    # The relay delivers at least once: the same events again, ce_id and all.
    await _produce(audit_db.stack.kafka_bootstrap, topic, [*envelopes, *envelopes[10:30]])
    duplicates = 0

    async def count(result: AppendResult) -> None:
        nonlocal duplicates
        duplicates += result.duplicates

    consumer = _consumer(audit_db, topic, after_append=count)
    await consumer.start()
    try:

        async def done() -> bool:
            return len(await _stored_ids(audit_db)) >= 120 and consumer.appended >= 120

        await eventually(done, timeout_s=60, what="120 entries")
        # Redelivered after they were committed: the log's ce_id index knows them.
        await _produce(audit_db.stack.kafka_bootstrap, topic, envelopes[:5])

        async def all_seen() -> bool:
            return duplicates == 25

        await eventually(all_seen, timeout_s=60, what="25 duplicates")
    finally:
        await consumer.stop()
    assert consumer.appended == 120
    ids = await _stored_ids(audit_db)
    assert sorted(ids) == sorted(str(e.ce_id) for e in envelopes)
    assert len(ids) == len(set(ids))


async def test_a_crash_between_commit_and_offset_loses_and_duplicates_nothing(
    audit_db: AuditDb, topic: str
) -> None:
    envelopes = [_envelope(i) for i in range(300)]
    await _produce(audit_db.stack.kafka_bootstrap, topic, envelopes)
    batches = 0

    async def crash_after_second_batch(result: AppendResult) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            # The batch is committed in the database, its offsets are not in Kafka.
            raise _Crash("simulated crash")

    first = _consumer(audit_db, topic, after_append=crash_after_second_batch)
    await first.start()
    assert first.task is not None
    with pytest.raises(_Crash, match="simulated crash"):
        await first.task
    partial = await _stored_ids(audit_db)
    assert 0 < len(partial) < 300

    second = _consumer(audit_db, topic)  # a new process: a new appender, the same group
    await second.start()
    try:

        async def all_there() -> bool:
            return len(await _stored_ids(audit_db)) >= 300

        await eventually(all_there, timeout_s=60, what="300 entries")
    finally:
        await second.stop()
    ids = await _stored_ids(audit_db)
    assert ids[: len(partial)] == partial
    assert sorted(ids) == sorted(str(e.ce_id) for e in envelopes)
    # And the tree over it all is the one the checkpoints signed.
    appender = second.appender
    assert isinstance(appender, LogAppender)
    await appender.checkpoint_if_grown()
    async with audit_db.sessions() as session:
        covering = await repo.latest_checkpoint(session)
        assert covering is not None
        assert covering.tree_size == 300
        lines = [
            line
            async for line in service.export_lines(
                session, 0, 300, covering, appender.signer.origin, ["62"]
            )
        ]
    header, entries = read_export(b"".join(lines).decode().splitlines())
    report = verify_export(header, entries, appender.signer.verifier)
    assert report.ok, report.problems
    assert report.checked == 300


async def _produce_unreadable(bootstrap: str, topic: str, partition: int) -> None:
    """A record whose header name is not UTF-8: Kafka takes it (a header name is bytes on
    the wire; a client in another language can send one), aiokafka cannot hand it over."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        batch = producer.create_batch()
        batch.append(key=b"hh-1", value=b"payload", timestamp=None, headers=[("QQ", b"x")])
        data = bytearray(batch._build())
        at = data.index(b"QQ")
        data[at : at + 2] = b"\xff\xfe"
        struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))  # the batch's CRC
        batch._buffer = bytes(data)
        await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


async def test_a_record_the_client_cannot_read_does_not_end_the_consumer(
    audit_db: AuditDb, topic: str
) -> None:
    """aiokafka raises UnicodeDecodeError (not a KafkaError) for it: the consumer's task
    ended there, and the service went on answering with a log that no longer grew. It
    now retries, logging the error, as for a broker it cannot reach; every record
    before the unreadable one is logged, and nothing after it is skipped."""
    bootstrap = audit_db.stack.kafka_bootstrap
    consumer = _consumer(audit_db, topic)
    await consumer.start()
    try:
        before = [_envelope(i) for i in range(20)]
        await _produce(bootstrap, topic, before)

        async def logged() -> bool:
            return len(await _stored_ids(audit_db)) >= 20

        await eventually(logged, timeout_s=60, what="20 entries")
        # Until the record has failed the consumer twice: the fixed 3 s this waited was
        # no proof on a slow machine, where a consumer that had not fetched the record yet
        # passed too.
        with capture_logs() as logs:
            await _produce_unreadable(bootstrap, topic, partition=0)

            async def retried() -> bool:
                failures = [
                    entry
                    for entry in logs
                    if entry["event"] == "audit_consumer_failed"
                    and "UnicodeDecodeError" in entry["error"]
                ]
                return len(failures) >= 2

            await eventually(retried, timeout_s=60, what="two failed reads of the record")
        assert consumer.task is not None
        assert not consumer.task.done(), consumer.task.exception()
    finally:
        await consumer.stop()
    assert sorted(await _stored_ids(audit_db)) == sorted(str(e.ce_id) for e in before)
