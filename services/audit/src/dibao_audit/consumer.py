"""The audit log's own consumer: every ``dibao.*`` topic, in batches, exactly once.

The kit's ``ConsumerRunner`` runs one transaction per event, which caps the log at a few
hundred appends a second; the log needs thousands. This runner keeps the kit's
exactly-once semantics for a whole fetched batch at a time, without the kit's inbox
table: the log's own unique ``ce_id`` is its inbox (ADR 0011), so the appender skips
the ids the log already holds in the same transaction as the append, and the Kafka
offsets are committed only after the database commit. Unlike other consumers it has no
dead-letter path: the log records every record it sees, decodable or not (see
``projection``), and retries a failing database without limit rather than skip anything.
"""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from dibao_audit.appender import AppendResult
from dibao_audit.entry import RecordedEvent
from dibao_audit.projection import EntryRow
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging.relay import Backoff

log = structlog.get_logger(__name__)

AfterAppend = Callable[[AppendResult], Awaitable[None]]
_Offsets = dict[TopicPartition, int]


class Sink(Protocol):
    """Where consumed batches go: the log's appender (a benchmark's baseline fits too)."""

    def project_records(self, records: Sequence[Any]) -> list[EntryRow]: ...

    async def append_rows(self, rows: Sequence[EntryRow]) -> AppendResult: ...


_PROJECT_CHUNK = 250
_ABORT_GRACE_S = 1.0
"""Seconds a consumer being stopped has, once its time is up, to end its cancelled task."""


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.revoked.update(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.revoked.difference_update(assigned)


def recorded(record: Any) -> RecordedEvent:
    """A consumed aiokafka record as the log keeps it."""
    return RecordedEvent(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        # A null header value (possible on the wire, never sent by dibao) is kept as empty.
        headers=tuple((k, v if v is not None else b"") for k, v in record.headers or ()),
        payload=record.value or b"",
    )


class LogConsumer:
    """Consumes the topics matching ``pattern`` as ``group`` into the appender."""

    def __init__(
        self,
        appender: Sink,
        bootstrap: str,
        *,
        group: str,
        pattern: str,
        batch_max: int = 2000,
        poll_timeout_ms: int = 200,
        metadata_max_age_ms: int = 10_000,
        after_append: AfterAppend | None = None,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        re.compile(pattern)
        self._appender = appender
        self._bootstrap = bootstrap
        self._group = group
        self._pattern = pattern
        self._batch_max = batch_max
        self._poll_timeout_ms = poll_timeout_ms
        self._metadata_max_age_ms = metadata_max_age_ms
        self._after_append = after_append
        self._overrides = dict(consumer_overrides or {})
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.appended = 0

    async def start(self) -> None:
        """Run :meth:`run_forever` in a background task."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run_forever(), name=f"audit-log-{self._group}")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Append and acknowledge the batch in hand, close the client: within
        ``timeout_s`` seconds in all, however the broker fares. Past that the task is
        cancelled (a batch not committed is rolled back and delivered again, the log's
        ``ce_id`` absorbing a copy) and given a last moment to close its client; a client
        still closing then is left to it, never waited for (an orchestrator kills a
        process that takes longer to stop, ADR 0003)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        grace = min(_ABORT_GRACE_S, timeout_s / 2)
        done, _ = await asyncio.wait({task}, timeout=timeout_s - grace)
        if not done:
            log.warning("audit_consumer_stop_timed_out", group=self._group, timeout_s=timeout_s)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                log.warning("audit_consumer_still_ending_after_stop", group=self._group)
        if done and not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("audit_consumer_ended_with_an_error", error=describe_exception(exc))

    @property
    def appender(self) -> Sink:
        return self._appender

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def run_forever(self) -> None:
        """Consume until :meth:`stop`; a broker outage is waited out, never skipped.

        So is any other error: the consumer starts again from the committed offsets (a
        new client, so nothing fetched and not appended is passed over). A record the
        client cannot hand over at all (aiokafka raises ``UnicodeDecodeError`` for a header
        name that is not UTF-8) stops the log there, logged as an error at each retry,
        rather than ending this task and leaving a service whose log no longer grows.
        """
        backoff = Backoff(0.2, 10.0)
        while not self._stopping.is_set():
            try:
                await self._run()
                return
            except KafkaError as exc:
                delay = backoff.next()
                log.warning(
                    "audit_consumer_broker_error", error=describe_exception(exc), retry_in_s=delay
                )
            except Exception as exc:
                delay = backoff.next()
                log.error("audit_consumer_failed", error=describe_exception(exc), retry_in_s=delay)
            await asyncio.sleep(delay)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            client_id=f"audit-log-{self._group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=self._metadata_max_age_ms,
            max_poll_records=self._batch_max,
            **self._overrides,
        )
        listener = _Revocations()
        consumer.subscribe(pattern=self._pattern, listener=listener)
        try:
            # Inside the try: a start that fails (broker down) must still close the client.
            await consumer.start()
            # Two batches in flight: the next one is fetched and decoded while the last
            # one's transaction runs; they are appended and acknowledged strictly in order.
            # Only the offsets of a batch are kept until it is acknowledged: its records are
            # let go once projected (fewer live objects for the collector to walk).
            pending: tuple[asyncio.Task[AppendResult | None], _Offsets] | None = None
            try:
                while not self._stopping.is_set():
                    offsets, rows = await self._fetch(consumer)
                    if pending is not None:
                        done, pending = pending, None
                        await self._acknowledge(consumer, listener, *done)
                    if offsets:
                        task = asyncio.create_task(self._append(rows))
                        pending = (task, offsets)
            finally:
                if pending is not None:
                    done, pending = pending, None
                    await self._acknowledge(consumer, listener, *done)
        finally:
            # As a task: a stop cancelled because the broker does not answer leaves the
            # client closing on its own rather than half closed.
            closing = asyncio.ensure_future(consumer.stop())
            await asyncio.wait({closing})
            if (exc := closing.exception()) is not None:
                log.warning("audit_consumer_client_not_closed", error=describe_exception(exc))

    async def _fetch(self, consumer: AIOKafkaConsumer) -> tuple[_Offsets, list[EntryRow]]:
        """The next batch's rows, and the offsets that acknowledge it.

        A batch is thousands of records and rows, small objects in no reference cycle;
        while they are made (the client decodes the records as they are handed over), the
        cyclic collector would walk the whole heap again and again for nothing, about a
        fifth of the consumer's CPU. It is paused meanwhile and runs after the batch (an
        idle consumer returns from ``getmany`` every ``poll_timeout_ms``, so the rest of
        the process still has its cycles collected at least that often).
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            batch = await consumer.getmany(
                timeout_ms=self._poll_timeout_ms, max_records=self._batch_max
            )
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
            records = [r for records in batch.values() for r in records]
            del batch
            rows: list[EntryRow] = []
            for i in range(0, len(records), _PROJECT_CHUNK):
                rows += self._appender.project_records(records[i : i + _PROJECT_CHUNK])
                await asyncio.sleep(0)  # let the transaction in flight send its next statement
            return offsets, rows
        finally:
            if collecting:
                gc.enable()

    async def _acknowledge(
        self,
        consumer: AIOKafkaConsumer,
        listener: _Revocations,
        task: asyncio.Task[AppendResult | None],
        offsets: _Offsets,
    ) -> None:
        result = await task
        if result is None:
            return  # stopped before the batch could be appended: it will be redelivered
        self.appended += result.appended
        if self._after_append is not None:
            await self._after_append(result)
        owned = {tp: offset for tp, offset in offsets.items() if tp not in listener.revoked}
        try:
            if owned:
                await consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:
            # Another member now owns the partition and will redeliver; the log's ce_id skips it.
            log.info("audit_offset_commit_skipped", error=describe_exception(exc))

    async def _append(self, rows: Sequence[EntryRow]) -> AppendResult | None:
        backoff = Backoff(0.1, 10.0)
        while True:
            try:
                return await self._appender.append_rows(rows)
            except Exception as exc:
                # The log must not skip anything: wait for the database and try again.
                delay = backoff.next()
                log.error("audit_append_failed", error=describe_exception(exc), retry_in_s=delay)
                if self._stopping.is_set():
                    return None
                await asyncio.sleep(delay)
