"""The consumer runner: consumed events applied in database transactions, then the offset.

For each record, in partition order: read the envelope, decode the payload, then in one
transaction claim the event in the inbox and run the handler; commit; and only after
the database commit, commit the Kafka offset. The records of one fetch are applied
together, up to ``batch_size`` per transaction (one BEGIN and one durable COMMIT for all
of them), their inbox rows claimed with one statement. A runner given a
``batch_handler`` hands it the run's new events at once (a handler that writes them with
one statement; it runs outside any one event's trace context, so it should neither log
per event nor enqueue events). If any handler raises, that transaction rolls back and its
records are applied one by one with ``handler`` as described here, the failed run
counting as one attempt (with a batch handler, which event failed is unknown, so none
is counted).

A redelivered event finds its inbox row and changes nothing. A handler that raises is
rolled back (its effects and its inbox row) and retried with backoff; after
``max_attempts`` the record goes to the dead-letter topic with provenance headers and
the partition moves on. A record that can never be processed (no envelope, unknown type,
payload not protobuf, a handler raising ``PoisonEventError``) goes there at once. Lost
database connections are not the event's fault: they are retried without limit, so an
outage never fills the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dibao_common.db.outage import is_database_outage
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging import metrics
from dibao_common.messaging.dlq import dead_letter_headers, topic_size
from dibao_common.messaging.envelope import Envelope, EventRegistry, PoisonEventError
from dibao_common.messaging.inbox import record_many, record_once
from dibao_common.messaging.relay import Backoff, abort_producer, producer_config
from dibao_common.observability import extract_trace, mask_card_and_id_numbers_in, use_trace

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncSession, Envelope, Message], Awaitable[None]]
"""Applies one event inside the runner's transaction; never commits; raises to roll back."""
BatchHandler = Callable[[AsyncSession, Sequence[tuple[Envelope, Message]]], Awaitable[None]]
"""Applies a run's new events at once (in their order), as :data:`Handler` does one."""


_ABORT_GRACE_S = 1.0
"""Seconds a consumer being stopped has, once its time is up, to end its cancelled session."""


def is_infrastructure_error(exc: BaseException) -> bool:
    """A lost or refused database connection: retried without limit, never dead-lettered.
    The kit's one classifier (:func:`dibao_common.db.is_database_outage`), the one that
    makes a request's answer 503; and a connection whose protocol a cancelled operation
    left midway (:func:`_left_midway`)."""
    return is_database_outage(exc) or _left_midway(exc)


def _left_midway(exc: BaseException) -> bool:
    """asyncpg's ``InternalClientError`` anywhere in the chain: "cannot switch to state
    ...; another operation (...) is in progress", "protocol is in the failed state", "not
    connected". It is the connection's state, not the event's: an operation cancelled
    midway (a fast shutdown, a timeout) left the protocol in it, and whatever uses the
    connection next fails. Counted as a failed attempt, it could dead-letter a good event.
    asyncpg's ``InterfaceError`` "another operation is in progress", two users of one
    connection at once, stays a bug of the code."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, asyncpg.InternalClientError):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Remembers partitions taken away so that their fetched records are left alone."""

    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.revoked.update(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.revoked.difference_update(assigned)


@contextlib.contextmanager
def _in_context_of(record: Any, envelope: Envelope) -> Iterator[None]:
    """The producer's trace (a child span) and correlation id, and the event's ids in the
    log context: the handler's log lines and the events it enqueues carry them on."""
    with (
        use_trace(extract_trace(record.headers), correlation_id=envelope.correlation_id),
        structlog.contextvars.bound_contextvars(
            ce_id=str(envelope.ce_id), ce_type=envelope.ce_type
        ),
    ):
        yield


@dataclass(frozen=True, slots=True)
class _Together:
    committed: int  # records applied and committed (0: the transaction rolled back)
    stop: int  # when rolled back, the record that stopped the run
    attempted: bool  # ... and whether its handler ran and failed


class ConsumerRunner:
    """Consumes ``topics`` as consumer group ``name`` and applies ``handler`` once per event."""

    def __init__(
        self,
        name: str,
        topics: list[str],
        handler: Handler,
        sessionmaker: async_sessionmaker[AsyncSession],
        bootstrap: str,
        *,
        registry: EventRegistry,
        dlq_topic: str,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_records: int = 500,
        batch_size: int = 100,
        dlq_size_refresh_s: float = 30.0,
        consumer_overrides: Mapping[str, Any] | None = None,
        batch_handler: BatchHandler | None = None,
        group_id: str | None = None,
    ) -> None:
        """``group_id``: the Kafka consumer group, ``name`` unless given; ``name`` stays the
        inbox's, the dead letters' and the metrics' (two deployments sharing one broker,
        such as a test run's stacks, each need a group of their own: in one group they
        split the partitions and each applied the other's share to its own database)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = name
        self.group_id = group_id or name
        self._topics = list(topics)
        self._handler = handler
        self._batch_handler = batch_handler
        self._sessionmaker = sessionmaker
        self._bootstrap = bootstrap
        self._registry = registry
        self._dlq_topic = dlq_topic
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._max_records = max_records
        self._batch_size = batch_size
        self._dlq_size_refresh_s = dlq_size_refresh_s
        self._consumer_overrides = dict(consumer_overrides or {})
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: Any = None
        self._next_dlq_size = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Run :meth:`run_forever` in a background task (from a service's lifespan)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self.run_forever(), name=f"consumer-{self.name}")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the event in hand, commit its offset, leave the group: within
        ``timeout_s`` seconds in all, however the broker fares. Past that the session is
        cancelled (an event in hand is rolled back and delivered again, its inbox row
        absorbing a copy; its Kafka clients are closed without waiting, the dead-letter
        producer aborted so that nothing it held goes out later)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        grace = min(_ABORT_GRACE_S, timeout_s / 2)
        done, _ = await asyncio.wait({task}, timeout=timeout_s - grace)
        if not done:
            log.warning("consumer did not stop in time, cancelled", consumer=self.name)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                log.warning("consumer task still ending after stop", consumer=self.name)

    async def run_forever(self) -> None:
        """Consume until stopped; a broken broker session is rebuilt after a backoff."""
        self._stopping.clear()
        backoff = Backoff(self._backoff_s, self._backoff_max_s)
        while not self._stopping.is_set():
            try:
                await self._session()
                backoff.reset()
            except Exception as exc:
                delay = backoff.next()
                log.warning(
                    "consumer session failed, restarting",
                    consumer=self.name,
                    error=describe_exception(exc),
                    retry_in_s=delay,
                )
                await self._pause(delay)

    # -- one broker session ----------------------------------------------------------------

    async def _session(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            client_id=f"consumer-{self.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._consumer_overrides,
        )
        listener = _Revocations()
        consumer.subscribe(self._topics, listener=listener)
        producer = AIOKafkaProducer(
            **producer_config(self._bootstrap, client_id=f"dlq-{self.name}")
        )
        sizer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        try:
            await producer.start()
            self._producer = producer
            await sizer.start()
            await consumer.start()
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
                for tp, records in batch.items():
                    await self._partition(consumer, listener, tp, records)
                    if self._stopping.is_set():
                        break
                await self._refresh_dlq_size(sizer)
        finally:
            self._producer = None
            # Side by side, as tasks: a stop cancelled because the broker does not answer
            # leaves them closing, and aborts the producer (nothing of it goes out later).
            closing = [asyncio.ensure_future(c.stop()) for c in (consumer, sizer, producer)]
            try:
                await asyncio.wait(closing)
            except BaseException:
                abort_producer(producer)
                raise
            for done in closing:
                if (exc := done.exception()) is not None:
                    log.warning(
                        "kafka client did not close",
                        consumer=self.name,
                        error=describe_exception(exc),
                    )

    async def _partition(
        self, consumer: Any, listener: _Revocations, tp: TopicPartition, records: Sequence[Any]
    ) -> None:
        next_offset: int | None = None
        done = 0
        while done < len(records):
            if self._stopping.is_set() or tp in listener.revoked:
                break
            chunk = records[done : done + self._batch_size]
            together = await self._apply_together(chunk)
            if together.committed:
                done += together.committed
                next_offset = records[done - 1].offset + 1
                continue
            # Nothing of the chunk was committed: its records up to the one that stopped
            # it go one by one (that one's failed run counts as one of its attempts).
            for index, record in enumerate(chunk[: together.stop + 1]):
                if self._stopping.is_set() or tp in listener.revoked:
                    break
                counted = 1 if index == together.stop and together.attempted else 0
                if not await self._handle(record, attempts_made=counted):
                    break
                next_offset = record.offset + 1
                done += 1
            else:
                continue
            break
        if next_offset is None:
            return
        try:
            await consumer.commit({tp: next_offset})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member: it resumes from the last committed
            # offset, and the inbox turns what we already applied into no-ops.
            log.info(
                "offset commit refused after a rebalance",
                consumer=self.name,
                error=describe_exception(exc),
            )
            return
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(
                max(0, highwater - next_offset)
            )

    # -- one record --------------------------------------------------------------------

    async def _apply_together(self, records: Sequence[Any]) -> _Together:
        """Apply the leading decodable ``records`` in one transaction: one BEGIN and one
        durable COMMIT for all of them instead of one each.

        An undecodable record ends the run before it (it goes alone to the dead letters).
        When a handler raises, the whole run rolls back: ``stop`` says which record, and
        ``attempted`` whether its handler ran and failed (a lost database is not the
        event's fault, nor is a failed COMMIT any one record's).
        """
        decoded: list[tuple[Any, Envelope, Message]] = []
        for record in records:
            try:
                envelope = Envelope.from_record(record)
                decoded.append((record, envelope, self._registry.decode(envelope)))
            except PoisonEventError:
                break
        if not decoded:
            return _Together(committed=0, stop=0, attempted=False)
        started = time.monotonic()
        outcomes: list[bool] = []
        claimed = handled = False
        try:
            async with self._sessionmaker() as session, session.begin():
                # The run's inbox rows in one statement, then the handlers of the new ones.
                firsts = await record_many(
                    session,
                    self.name,
                    [(e, r.topic, r.partition, r.offset) for r, e, _ in decoded],
                )
                claimed = True
                if self._batch_handler is not None:
                    new = [
                        (e, m) for (_, e, m), first in zip(decoded, firsts, strict=True) if first
                    ]
                    if new:
                        await self._batch_handler(session, new)
                    outcomes = firsts
                else:
                    for (record, envelope, message), first in zip(decoded, firsts, strict=True):
                        if first:
                            with _in_context_of(record, envelope):
                                await self._handler(session, envelope, message)
                        outcomes.append(first)
                handled = True
        except Exception as exc:
            if handled:  # the COMMIT failed
                return _Together(committed=0, stop=len(decoded) - 1, attempted=False)
            # A failed claim is the database's, not any one event's.
            attempted = (
                claimed
                and not isinstance(exc, PoisonEventError)
                and not is_infrastructure_error(exc)
            )
            if self._batch_handler is not None and claimed:
                # Which event failed the batch is unknown: all of them go one by one, each
                # with all its attempts.
                log.warning(
                    "batch handler failed, the run is redone one event at a time",
                    consumer=self.name,
                    events=len(decoded),
                    error=describe_exception(exc),
                )
                metrics.CONSUMER_EVENTS.labels(self.name, "batch_redone").inc(len(decoded))
                return _Together(committed=0, stop=len(decoded) - 1, attempted=False)
            return _Together(committed=0, stop=len(outcomes), attempted=attempted)
        each = (time.monotonic() - started) / len(outcomes)
        for first in outcomes:
            metrics.CONSUMER_HANDLE_SECONDS.labels(self.name).observe(each)
            metrics.CONSUMER_EVENTS.labels(self.name, "processed" if first else "duplicate").inc()
        return _Together(committed=len(outcomes), stop=0, attempted=False)

    async def _handle(self, record: Any, *, attempts_made: int = 0) -> bool:
        """Apply, skip or dead-letter one record; False if stopping left it undone."""
        try:
            envelope = Envelope.from_record(record)
            message = self._registry.decode(envelope)
        except PoisonEventError as exc:
            return await self._dead_letter(record, exc, attempts=0)
        outage = Backoff(self._backoff_s, self._backoff_max_s)
        attempt = attempts_made
        with _in_context_of(record, envelope):
            while True:
                attempt += 1
                started = time.monotonic()
                try:
                    first = await self._apply(record, envelope, message)
                except PoisonEventError as exc:
                    return await self._dead_letter(record, exc, attempts=attempt)
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        attempt -= 1
                        delay = outage.next()
                        log.warning(
                            "database unavailable, event retried",
                            consumer=self.name,
                            error=describe_exception(exc),
                            retry_in_s=delay,
                        )
                    elif attempt >= self._max_attempts:
                        return await self._dead_letter(record, exc, attempts=attempt)
                    else:
                        delay = min(self._backoff_s * 2 ** (attempt - 1), self._backoff_max_s)
                        metrics.CONSUMER_EVENTS.labels(self.name, "retried").inc()
                        log.warning(
                            "handler failed, event retried",
                            consumer=self.name,
                            attempt=attempt,
                            error=describe_exception(exc),
                            retry_in_s=delay,
                        )
                    await self._pause(delay)
                    if self._stopping.is_set():
                        return False
                    continue
                metrics.CONSUMER_HANDLE_SECONDS.labels(self.name).observe(
                    time.monotonic() - started
                )
                metrics.CONSUMER_EVENTS.labels(
                    self.name, "processed" if first else "duplicate"
                ).inc()
                return True

    async def _apply(self, record: Any, envelope: Envelope, message: Message) -> bool:
        async with self._sessionmaker() as session, session.begin():
            return await self._run(session, record, envelope, message)

    async def _run(
        self, session: AsyncSession, record: Any, envelope: Envelope, message: Message
    ) -> bool:
        """Claim the event in the inbox and, the first time, run the handler (no commit)."""
        first = await record_once(
            session, self.name, envelope, record.topic, record.partition, record.offset
        )
        if first:
            await self._handler(session, envelope, message)
        return first

    async def _dead_letter(self, record: Any, error: BaseException, *, attempts: int) -> bool:
        # What failed, as a log shows it (no DETAIL of a database error, nor the values
        # it quotes; numbers masked): the header is read wherever the topic is.
        described = mask_card_and_id_numbers_in(describe_exception(error))
        headers = dead_letter_headers(
            list(record.headers or ()),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=described,
            consumer=self.name,
            attempts=attempts,
        )
        backoff = Backoff(self._backoff_s, self._backoff_max_s)
        while True:
            try:
                await self._producer.send_and_wait(
                    self._dlq_topic,
                    record.value if record.value is not None else b"",
                    key=record.key,
                    headers=headers,
                )
            except KafkaError as exc:
                # Never skip a record we could not park: it would be lost.
                if self._stopping.is_set():
                    return False
                delay = backoff.next()
                log.error(
                    "dead-letter topic unavailable",
                    consumer=self.name,
                    dlq=self._dlq_topic,
                    error=describe_exception(exc),
                    retry_in_s=delay,
                )
                await self._pause(delay)
                continue
            metrics.CONSUMER_EVENTS.labels(self.name, "dead_lettered").inc()
            log.error(
                "event dead-lettered",
                consumer=self.name,
                dlq=self._dlq_topic,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                attempts=attempts,
                error=described,
            )
            self._next_dlq_size = 0.0
            return True

    async def _refresh_dlq_size(self, sizer: Any) -> None:
        now = time.monotonic()
        if now < self._next_dlq_size:
            return
        self._next_dlq_size = now + self._dlq_size_refresh_s
        try:
            size = await topic_size(sizer, self._dlq_topic)
        except (KafkaError, LookupError) as exc:
            log.warning(
                "dead-letter topic size unknown",
                dlq=self._dlq_topic,
                error=describe_exception(exc),
            )
            return
        metrics.DLQ_SIZE.labels(self.name, self._dlq_topic).set(size)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
