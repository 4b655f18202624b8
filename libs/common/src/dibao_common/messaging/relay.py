"""The outbox relay: publishes committed outbox rows to Kafka, in order per key.

Each batch is one database transaction: claim the oldest pending rows
(``FOR UPDATE SKIP LOCKED``), keep for each key only the run of its oldest pending rows
that this relay holds (another relay may hold earlier ones), send them all with an
idempotent producer, await the acknowledgements, delete the acknowledged rows with one
``DELETE ... WHERE id = ANY(...)``, commit. The Kafka log, and the audit service's log
of every event, keep the history; the outbox keeps only what is still to be published,
and rows that failed (``attempts``, ``last_error``). A relay killed anywhere in between
leaves its rows pending, and the next batch sends them again: the wire is at least once,
consumers apply each ``ce_id`` once through their inbox (see docs/adr/0003).

Several relays may run against one database; they split the work by key and never
publish a key's events out of order. The relay knows nothing of FastAPI: a service
starts it from its lifespan (``await relay.start()`` / ``await relay.stop()``), or runs
it as its own process with ``python -m dibao_common.messaging.relay``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.conn import CloseReason, collect_hosts
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import BigInteger

from dibao_common.health import kafka_probe
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging import metrics
from dibao_common.messaging.schema import outbox_message as t
from dibao_common.settings import CommonSettings, RelayProcessSettings

# Named, not ``__name__``: run as ``python -m`` this module is ``__main__``, and its lines
# would say so instead of naming the relay.
log = structlog.get_logger("dibao_common.messaging.relay")

_PENDING = t.c.published_at.is_(None)
_IDS = bindparam("ids", type_=ARRAY(BigInteger))

# The hot statements go to asyncpg directly: rows come back as records (no per-row
# objects of an ORM), ids go in as one array. One round trip claims the rows and counts,
# in the claim's snapshot, the pending rows up to the newest claimed one that are not in
# ``$3``, the rows this relay's earlier batches hold or sent (still pending while their
# transactions commit): when the count equals the rows claimed, every key's claimed rows
# are its oldest pending ones. ``$2`` starts the scan after the previous batch, whose
# rows are locked by this relay (skipping each one costs as much as locking it); a row
# committed late below it makes the count differ, and the next claim starts from the
# beginning. The rows come out of the CTE in its order (no sort of wide rows; the relay
# checks). ``published_at`` is only set on rows published before the relay deleted
# rows on publication (they are never sent again); the partial indexes are on its
# absence.
_CLAIM = """
WITH claimed AS MATERIALIZED (
    SELECT id, topic, key, headers, payload, created_at
    FROM outbox_message
    WHERE published_at IS NULL AND id > $2
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT c.id, c.topic, c.key, c.headers::text, c.payload, date_part('epoch', c.created_at),
    (SELECT count(*) FROM outbox_message p
      WHERE p.published_at IS NULL
        AND p.id <= (SELECT max(id) FROM claimed)
        AND p.id NOT IN (SELECT unnest($3::bigint[])))
FROM claimed c
"""
_ID, _TOPIC, _KEY, _HEADERS, _PAYLOAD, _CREATED, _PENDING_UP_TO = range(7)
_KEY_ROWS = """
SELECT key, id FROM outbox_message
WHERE published_at IS NULL AND key = ANY($1::text[]) AND id <= $2
ORDER BY id
"""
_BEGIN = "BEGIN; SET LOCAL synchronous_commit = off"
_RECORD_ERROR = "UPDATE outbox_message SET attempts = attempts + 1, last_error = $2 WHERE id = $1"
_PARTITION_CACHE_SIZE = 100_000
# Seconds a relay being stopped has to end its cleanup once its time is up (roll back,
# hand back its connections, abort the producer): none of it waits for the broker.
_ABORT_GRACE_S = 1.0
# ``json.loads`` checks its argument and skips whitespace around the value: twice the
# time of the decoder itself on the headers PostgreSQL writes out.
_decode_json = json.JSONDecoder().raw_decode


_RESUMES = {
    "broker": "broker answers again, outbox relay resumes",
    "database": "database answers again, outbox relay resumes",
}
"""The relay's line when a pause ends early, by what answered again
(:meth:`OutboxRelay._back_off`)."""


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings of the relay's producer (the benchmark's baseline uses the same ones).

    Idempotence makes retries safe and, with aiokafka's one request in flight per
    partition, keeps each partition's records in the order they were sent.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
    }
    config.update(overrides)
    return config


class RelayOptions(TypedDict):
    """What a process's settings say of its relay (:func:`relay_options`)."""

    stop_timeout_s: float
    metadata_timeout_s: float
    backoff_max_s: float


def relay_options(settings: CommonSettings | RelayProcessSettings) -> RelayOptions:
    """The relay's arguments a service or a relay of its own reads from its settings:
    ``DIBAO_SHUTDOWN_TIMEOUT_S``, ``DIBAO_RELAY_METADATA_TIMEOUT_S`` and
    ``DIBAO_RELAY_BACKOFF_MAX_S`` (``OutboxRelay(engine, bootstrap, name=...,
    **relay_options(settings))``)."""
    return RelayOptions(
        stop_timeout_s=settings.shutdown_timeout_s,
        metadata_timeout_s=settings.relay_metadata_timeout_s,
        backoff_max_s=settings.relay_backoff_max_s,
    )


class BrokerUnavailableError(Exception):
    """Records sent by the relay were not acknowledged in time."""


class TopicMetadataUnavailableError(Exception):
    """The broker did not tell a topic's partitions in time (down, or no such topic)."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one relay batch did."""

    claimed: int
    published: int
    failed: int
    deferred: int
    """Rows left for the relay that holds an earlier row of their key."""
    held: int = 0
    """Rows left pending because their topic's partitions are not known yet (its lookup
    is under way, or failed: then the row's ``last_error`` says so)."""


class Backoff:
    """Exponential delays between ``initial`` and ``maximum`` seconds."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial


class _Link:
    """A pooled connection the relay drives through asyncpg, beginning and ending its
    transactions itself: SQLAlchemy sees none, so a link that fails is invalidated,
    never handed back with a transaction open."""

    __slots__ = ("conn", "driver")

    def __init__(self, conn: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.conn = conn
        self.driver = driver

    async def discard(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.invalidate()
        with contextlib.suppress(Exception):
            await self.conn.close()


class _ProducerBatch:
    """Records for one partition, handed to the producer whole (``send_batch``)."""

    __slots__ = ("builder", "future", "partition", "topic")

    def __init__(self, producer: Any, topic: str, partition: int) -> None:
        self.builder = producer.create_batch()
        self.topic = topic
        self.partition = partition
        self.future: asyncio.Future[Any] | None = None

    def append(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
        """Add a record (timestamped now); False when the batch is full."""
        return (
            self.builder.append(timestamp=None, key=key, value=value, headers=headers) is not None
        )


# A sent row and the producer batch it went out in (the batch's future is its ack).
_Sent = list[tuple[asyncpg.Record, _ProducerBatch]]
# What the relay keeps in order: a key's rows on one topic (Kafka orders nothing across
# topics, so a topic held back holds back no other topic's rows of the key).
_Stream = tuple[str, str]


def _stream(row: asyncpg.Record) -> _Stream:
    return row[_TOPIC], row[_KEY]


@dataclass(slots=True)
class _Batch:
    """Claimed rows whose transaction stays open until their acknowledgements are in."""

    link: _Link
    claimed: Sequence[asyncpg.Record]
    rows: Sequence[asyncpg.Record]
    """The claimed rows that are their key's oldest pending ones: the ones to send."""
    contiguous: bool
    """Every pending row up to the newest claimed one was this relay's."""
    started: float
    sent: _Sent = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    """Rows the producer or the broker refused: failures, which the relay backs off on."""
    lookup_errors: dict[int, str] = field(default_factory=dict)
    """Rows whose topic's metadata could not be had: recorded, but no failure of the
    relay's (other topics go on); the topic is looked up again for the next batch."""
    held: int = 0
    """Rows not sent because their topic's partitions are not known (yet)."""

    @property
    def newest(self) -> int:
        return int(self.claimed[-1][_ID])

    def sent_ids(self) -> list[int]:
        return [row[_ID] for row, _ in self.sent]

    def unsent_streams(self) -> set[_Stream]:
        """Topics and keys of which a claimed row was not sent: their later rows must wait."""
        if len(self.sent) == len(self.claimed):
            return set()
        sent = {row[_ID] for row, _ in self.sent}
        return {_stream(row) for row in self.claimed if row[_ID] not in sent}


@dataclass(frozen=True, slots=True)
class _Outcome:
    published: int
    failed: int
    drained: bool
    held: int = 0


class OutboxRelay:
    """Publishes a database's outbox to Kafka; see the module docstring for the guarantees."""

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap: str,
        *,
        name: str = "outbox",
        batch_size: int = 2000,
        poll_interval_s: float = 0.1,
        ack_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        backlog_refresh_s: float = 5.0,
        retention_s: float | None = 7 * 24 * 3600.0,
        producer_overrides: Mapping[str, Any] | None = None,
        stop_timeout_s: float = 10.0,
        metadata_timeout_s: float = 5.0,
        probe_interval_s: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if stop_timeout_s <= 0:
            raise ValueError("stop_timeout_s must be positive")
        if metadata_timeout_s <= 0:
            raise ValueError("metadata_timeout_s must be positive")
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s, both positive")
        if probe_interval_s <= 0:
            raise ValueError("probe_interval_s must be positive")
        self.name = name
        self._engine = engine
        self._bootstrap = bootstrap
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._ack_timeout_s = ack_timeout_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._backoff_max_s = backoff_max_s
        # While backing off, the broker and the database are asked this often whether they
        # answer (a bootstrap: a connection and a metadata request; SELECT 1 on a
        # connection of the probe's; each at most this long).
        self._probe_interval_s = probe_interval_s
        self._probe = kafka_probe(bootstrap)
        # The database is asked as the engine connects (host, port, login, database, the
        # URL's query such as a socket directory or ssl), on a connection of the probe's.
        _cargs, connect_args = engine.dialect.create_connect_args(engine.url)
        self._database_connect_args: dict[str, Any] = dict(connect_args)
        self._backlog_refresh_s = backlog_refresh_s
        self._retention_s = retention_s
        self._producer_config = producer_config(
            bootstrap, client_id=f"relay-{name}", **dict(producer_overrides or {})
        )
        self._max_request_size: int = self._producer_config.get("max_request_size", 1048576)
        self._producer: Any = None
        # Topics of every row claimed so far, and the lookups of the partitions of those
        # the producer has no metadata for, run beside the batches (never awaited by one).
        self._metadata_timeout_s = metadata_timeout_s
        self._topics: set[str] = set()
        self._lookups: dict[str, asyncio.Task[list[int] | Exception]] = {}
        self._key_hashes: dict[str, int] = {}
        self._links: list[_Link] = []
        self._in_flight: _Sent = []
        self._stopping = asyncio.Event()
        self._stop_timeout_s = stop_timeout_s
        self._stop_deadline: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_housekeeping = 0.0
        self._next_purge = 0.0

    @property
    def stop_timeout_s(self) -> float:
        """Seconds :meth:`stop` takes at most when not given its own bound."""
        return self._stop_timeout_s

    @property
    def metadata_timeout_s(self) -> float:
        """Seconds a lookup of a topic's partitions takes at most."""
        return self._metadata_timeout_s

    @property
    def backoff_max_s(self) -> float:
        """The longest pause after failures (cut short when the broker or the database
        answers again)."""
        return self._backoff_max_s

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Run :meth:`run_forever` in a background task (from a service's lifespan)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping.clear()
        self._stop_deadline = None
        self._task = asyncio.create_task(self.run_forever(), name=f"outbox-relay-{self.name}")

    async def stop(self, timeout_s: float | None = None) -> None:
        """End the background task and close the producer within ``timeout_s`` seconds
        in all (``stop_timeout_s`` unless given), however the broker fares.

        The batch in hand finishes if it can in that time; otherwise it is abandoned: its
        transaction is rolled back (its rows stay pending, the next relay publishes them
        again, consumers absorb a copy the broker may have had; ADR 0003), and the
        producer is aborted, its unacknowledged records failed and its sender cancelled,
        so that it cannot deliver them later beside the relay that sends them again.
        """
        budget = self._stop_timeout_s if timeout_s is None else timeout_s
        # The last moments of the budget are for the cleanup of an abandoned batch.
        grace = min(_ABORT_GRACE_S, budget / 2)
        deadline = time.monotonic() + budget - grace
        self._stop_deadline = deadline
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                log.warning(
                    "outbox relay did not stop in time, its batch abandoned",
                    relay=self.name,
                    stop_timeout_s=budget,
                )
                task.cancel()
                # Its cleanup rolls the batch back and aborts the producer at once.
                done, _ = await asyncio.wait({task}, timeout=grace)
                if not done:
                    log.warning("outbox relay task still ending after stop", relay=self.name)
            if done and not task.cancelled() and (exc := task.exception()) is not None:
                log.warning(
                    "outbox relay ended with an error",
                    relay=self.name,
                    error=describe_exception(exc),
                )
        await self._close_producer()

    async def run_forever(self) -> None:
        """Publish until stopped; database and broker errors are logged and retried."""
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                try:
                    outcome = await self._pump()
                    await self._housekeeping()
                except Exception as exc:
                    delay = self._backoff.next()
                    log.warning(
                        "outbox relay batch failed, retrying",
                        relay=self.name,
                        error=describe_exception(exc),
                        retry_in_s=delay,
                    )
                    await self._back_off(delay)
                    continue
                if outcome.failed:
                    await self._back_off(self._backoff.next())
                    continue
                self._backoff.reset()
                if outcome.held and not outcome.published:
                    # All that is left waits for a topic's partitions: wait for the lookup.
                    await self._pause_for_lookups()
                    continue
                # The backlog is drained, or other relays hold what is left of it.
                await self._pause(self._poll_interval_s)
        finally:
            await self._close_producer()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; how many were published."""
        return (await self.publish_batch()).published

    async def drain(self, *, timeout_s: float = 60.0) -> int:
        """Publish until no pending row is left to claim (tests, benchmarks, tools)."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while True:
            outcome = await self._pump()
            total += outcome.published
            if outcome.drained:
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox not drained in {timeout_s} s")
            await asyncio.sleep(self._poll_interval_s)

    # -- batches -------------------------------------------------------------------------

    async def publish_batch(self) -> BatchResult:
        """One batch on its own: claim, send, await acknowledgements, delete, commit."""
        await self._settle_in_flight()
        try:
            batch = await self._claim([], None)
            if batch is None:
                return BatchResult(0, 0, 0, 0)
            try:
                await self._send(batch, set())
            except BaseException:
                await self._abandon(batch)
                raise
            result, _failed_keys = await self._close_batch(batch)
            return result
        finally:
            await self._release_links()

    async def _pump(self) -> _Outcome:
        """Batches in a pipeline: while one batch is sent, the next is claimed and the
        previous one awaits its acknowledgements and is deleted.

        A batch may send a key's later rows before the earlier ones are deleted: they
        went out first on the same producer, which keeps each partition's order. A key
        of which the previous batch left a row unsent, or whose row failed, is not sent.
        Returns when nothing is left to claim, when a batch was all held back by other
        relays, or when rows failed (the caller waits before the next round).
        """
        await self._settle_in_flight()
        current: _Batch | None = None
        claiming: asyncio.Task[_Batch | None] | None = None
        closing: asyncio.Task[tuple[BatchResult, set[_Stream]]] | None = None
        refused: set[_Stream] = set()  # topics and keys whose rows failed: no more now
        unsent: set[_Stream] = set()  # those the previous batch did not send all of
        sent_before: list[int] = []
        published = failed = held = 0
        # Rows a batch claimed but did not send stay pending, and the next claim, made
        # while that batch still holds them, skips them: finding nothing after such a
        # batch is not a drained outbox.
        left_behind = False
        try:
            current = await self._claim([], None)
            while current is not None:
                if not self._stopping.is_set():
                    after = current.newest if current.contiguous else None
                    earlier = [row[_ID] for row in current.claimed] + sent_before
                    claiming = asyncio.create_task(self._claim(earlier, after))
                await self._send(current, refused | unsent)
                if closing is not None:
                    task, closing = closing, None
                    result, failed_streams = await task
                    published += result.published
                    failed += result.failed
                    held += result.held
                    refused |= failed_streams
                    await self._housekeeping()
                if failed or not current.sent:
                    if claiming is not None:
                        claimed, claiming = claiming, None
                        following = await claimed
                        if following is not None:
                            await self._rollback(following.link)
                    batch, current = current, None
                    result, _ = await self._close_batch(batch)
                    return _Outcome(
                        published + result.published,
                        failed + result.failed,
                        drained=False,
                        held=held + result.held,
                    )
                unsent = current.unsent_streams()
                left_behind = left_behind or bool(unsent)
                sent_before = current.sent_ids()
                closing = asyncio.create_task(self._close_batch(current))
                current = None
                if claiming is not None:
                    claimed, claiming = claiming, None
                    current = await claimed
            if closing is not None:
                task, closing = closing, None
                result, _ = await task
                published += result.published
                failed += result.failed
                held += result.held
                await self._housekeeping()
            return _Outcome(published, failed, drained=not left_behind, held=held)
        except BaseException as exc:
            # Failed or killed: a batch being closed may finish (not when killed); what is
            # still open is rolled back, and its records, already with the producer, are
            # deleted later if the broker acknowledges them.
            killed = not isinstance(exc, Exception)
            if closing is not None:
                if killed:
                    closing.cancel()
                with contextlib.suppress(BaseException):
                    await closing
            if claiming is not None:
                if killed:
                    claiming.cancel()
                with contextlib.suppress(BaseException):
                    following = await claiming
                    if following is not None:
                        await following.link.discard()
            if current is not None:
                await self._abandon(current)
            raise
        finally:
            await self._release_links()

    async def _claim(self, earlier: list[int], after: int | None) -> _Batch | None:
        """Begin a transaction, claim rows and keep each key's oldest (``None``: none).

        ``earlier``: rows this relay holds in other batches or sent before; ``after``:
        the newest of them when all pending rows up to it were this relay's.
        """
        link = await self._checkout()
        try:
            # Losing a delete in a server crash only sends its rows again, which consumers
            # absorb anyway: the relay need not wait for its commits to reach the disk.
            await link.driver.execute(_BEGIN)
            started = time.monotonic()
            claimed = await link.driver.fetch(_CLAIM, self._batch_size, after or 0, earlier)
            if not claimed and after is not None:
                # Nothing after the previous batch: look again from the beginning, for a
                # row committed late below it.
                claimed = await link.driver.fetch(_CLAIM, self._batch_size, 0, earlier)
            if not claimed:
                await self._rollback(link)
                return None
            if any(a[_ID] > b[_ID] for a, b in itertools.pairwise(claimed)):
                claimed.sort(key=lambda row: row[_ID])
            await self._after_claim(claimed)
            contiguous = claimed[0][_PENDING_UP_TO] == len(claimed)
            if contiguous:
                rows: Sequence[asyncpg.Record] = claimed
            else:
                rows = await _own_key_prefixes(link.driver, claimed, frozenset(earlier))
        except BaseException:
            await link.discard()
            raise
        return _Batch(link, claimed, rows, contiguous, started)

    async def _close_batch(self, batch: _Batch) -> tuple[BatchResult, set[_Stream]]:
        """Await the batch's acknowledgements, delete what was acknowledged, commit.

        Also returns the topics and keys that failed, whose next rows must wait.
        """
        link = batch.link
        try:
            futures = _futures(batch.sent)
            if futures:
                _done, pending = await asyncio.wait(futures, timeout=self._ack_timeout_s)
                if pending:
                    raise BrokerUnavailableError(
                        f"records of {len(pending)} of {len(futures)} producer batches "
                        f"unacknowledged after {self._ack_timeout_s} s"
                    )
            published, failed = _acknowledged_prefixes(batch.sent)
            batch.errors.update(failed)
            await self._before_mark(published)
            for row_id, error in itertools.chain(batch.errors.items(), batch.lookup_errors.items()):
                await link.driver.execute(_RECORD_ERROR, row_id, error[:2000])
            # One round trip: the ids are integers of our own rows, written as a literal.
            ids = ",".join(map(str, published))
            await link.driver.execute(
                f"DELETE FROM outbox_message WHERE id = ANY('{{{ids}}}'::bigint[]); COMMIT"  # noqa: S608
            )
        except BaseException:
            # Keep what was sent: once acknowledged it is deleted, not sent again.
            self._in_flight.extend(batch.sent)
            await link.discard()
            raise
        self._checkin(link)
        errors = {**batch.errors, **batch.lookup_errors}
        self._observe(published, batch, errors)
        if errors:
            log.warning(
                "outbox rows failed to publish",
                relay=self.name,
                failed=len(errors),
                first_error=next(iter(errors.values())),
            )
        failed_streams = (
            {_stream(row) for row in batch.claimed if row[_ID] in batch.errors}
            if batch.errors
            else set()
        )
        result = BatchResult(
            len(batch.claimed),
            len(published),
            len(batch.errors),
            len(batch.claimed) - len(batch.rows),
            batch.held,
        )
        return result, failed_streams

    async def _abandon(self, batch: _Batch) -> None:
        self._in_flight.extend(batch.sent)
        await batch.link.discard()

    async def _checkout(self) -> _Link:
        """A connection of the relay's own (kept between batches of a round: no pool
        checkout, ping and reset per batch)."""
        if self._links:
            return self._links.pop()
        conn = await self._engine.connect()
        try:
            raw = await conn.get_raw_connection()
        except BaseException:
            await conn.close()
            raise
        driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
        return _Link(conn, driver)

    def _checkin(self, link: _Link) -> None:
        self._links.append(link)

    async def _rollback(self, link: _Link) -> None:
        try:
            await link.driver.execute("ROLLBACK")
        except BaseException:
            await link.discard()
            raise
        self._checkin(link)

    async def _release_links(self) -> None:
        """Hand the relay's connections back to the pool (none is in a transaction)."""
        links, self._links = self._links, []
        for link in links:
            with contextlib.suppress(Exception):
                await link.conn.close()

    async def _send(self, batch: _Batch, blocked: set[_Stream]) -> None:
        """Hand the batch's rows to the producer, one producer batch per partition, in id
        order, except the topics and keys in ``blocked``; no waiting for acknowledgements.

        One ``send_batch`` per partition instead of one ``send`` per record: no future,
        partitioner call or metadata wait per record. Keys are placed as Kafka's default
        partitioner places them (murmur2), so every producer of a key agrees. A topic whose
        partitions the producer does not know is looked up beside the batches
        (:meth:`_partitions_of`): its rows are held back, the other topics' rows go out.
        """
        producer = await self._ensure_producer({row[_TOPIC] for row in batch.rows})
        sent = batch.sent
        errors = batch.errors
        stopped = set(blocked)
        open_batches: dict[tuple[str, int], _ProducerBatch] = {}
        partitions: dict[str, list[int] | Exception] = {}
        hashes = self._key_hashes
        if len(hashes) > _PARTITION_CACHE_SIZE:
            hashes.clear()
        max_size = self._max_request_size
        decode = _decode_json
        turn = 0
        try:
            for row in batch.rows:
                turn += 1
                if turn == 256:
                    # Let the claim of the next batch, running beside, take its turn.
                    turn = 0
                    await asyncio.sleep(0)
                key: str = row[_KEY]
                topic: str = row[_TOPIC]
                stream = (topic, key)
                if stream in stopped:
                    continue
                known = partitions.get(topic)
                if known is None:
                    found = self._partitions_of(producer, topic)
                    # Not known: its rows wait (a lookup runs), its other rows after it too.
                    known = partitions[topic] = found if found is not None else []
                if not known:
                    stopped.add(stream)
                    batch.held += 1
                    continue
                if isinstance(known, Exception):
                    stopped.add(stream)
                    batch.held += 1
                    batch.lookup_errors[row[_ID]] = repr(known)
                    continue
                key_bytes = key.encode()
                payload: bytes = row[_PAYLOAD]
                text: str = row[_HEADERS]
                headers = [(name, value.encode()) for name, value in decode(text)[0].items()]
                # A character takes at most 4 bytes: only a large record needs measuring.
                if len(payload) + 4 * len(text) + len(key_bytes) + 256 > max_size:
                    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
                        key_bytes, payload, headers
                    )
                    if size > max_size:
                        # Refused before it was queued: nothing of this key on this topic
                        # after it may go out in this batch.
                        stopped.add(stream)
                        errors[row[_ID]] = repr(
                            MessageSizeTooLargeError(
                                f"The message is {size} bytes when serialized, more than "
                                f"max_request_size ({max_size})"
                            )
                        )
                        continue
                hashed = hashes.get(key)
                if hashed is None:
                    hashed = hashes[key] = murmur2(key_bytes) & 0x7FFFFFFF
                partition = known[hashed % len(known)]
                pending = open_batches.get((topic, partition))
                if pending is None:
                    pending = _ProducerBatch(producer, topic, partition)
                    open_batches[topic, partition] = pending
                if not pending.append(key_bytes, payload, headers):
                    await _hand_over(producer, pending)
                    pending = _ProducerBatch(producer, topic, partition)
                    open_batches[topic, partition] = pending
                    pending.append(key_bytes, payload, headers)
                sent.append((row, pending))
            for pending in open_batches.values():
                await _hand_over(producer, pending)
        except Exception as exc:
            # The producer refused a batch (closed, or no room in time): what it did not
            # take is not sent; the rows stay pending for the next round.
            for row, pending in sent:
                if pending.future is None:
                    errors[row[_ID]] = repr(exc)
            sent[:] = [(row, pending) for row, pending in sent if pending.future is not None]

    def _partitions_of(self, producer: Any, topic: str) -> list[int] | Exception | None:
        """The topic's partitions sorted by id (as the default partitioner indexes them),
        from the producer's metadata, without waiting: ``None`` while a lookup runs.

        aiokafka's ``send_batch`` and ``partitions_for`` wait for a topic's metadata up to
        the request timeout (30 s) when it has none, and while the broker is down or the
        topic does not exist it has none: one unknown topic held every batch, every row
        of every topic, that long. So a topic the producer does not know is looked up in
        a task of its own, bounded by ``metadata_timeout_s``, and its rows wait for the
        next batch that finds it known. A lookup that failed is returned once (its rows
        record the error) and the next batch starts another.
        """
        self._topics.add(topic)
        found = producer.client.cluster.partitions_for_topic(topic)
        if found:
            return sorted(found)
        lookup = self._lookups.get(topic)
        if lookup is not None:
            if not lookup.done():
                return None
            del self._lookups[topic]
            return lookup.result()
        # The producer's metadata requests name every topic the relay has sent to, not
        # only this one: aiokafka keeps the topics of its last metadata answer and
        # forgets the others.
        producer.client.set_topics(self._topics)
        self._lookups[topic] = asyncio.create_task(
            _look_up(producer, topic, self._metadata_timeout_s),
            name=f"outbox-relay-{self.name}-metadata",
        )
        return None

    async def _pause_for_lookups(self) -> None:
        """Wait until a topic's lookup ends (at most ``metadata_timeout_s``) or the relay
        stops; the poll interval when none is under way."""
        running = {lookup for lookup in self._lookups.values() if not lookup.done()}
        if not running:
            await self._pause(self._poll_interval_s)
            return
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait(
                {*running, stopping},
                timeout=self._metadata_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopping.cancel()

    def _cancel_lookups(self) -> None:
        lookups, self._lookups = self._lookups, {}
        for lookup in lookups.values():
            lookup.cancel()

    async def _after_claim(self, rows: Sequence[asyncpg.Record]) -> None:
        """Rows claimed, nothing sent yet (a seam for tests of slow or dying relays)."""

    async def _before_mark(self, ids: list[int]) -> None:
        """Between the broker's acknowledgement and the delete (a seam for crash tests)."""

    def _observe(self, published: list[int], batch: _Batch, errors: Mapping[int, str]) -> None:
        metrics.OUTBOX_BATCH_SECONDS.labels(self.name).observe(time.monotonic() - batch.started)
        if published:
            metrics.OUTBOX_PUBLISHED.labels(self.name).inc(len(published))
            now = time.time()
            observe = metrics.OUTBOX_PUBLISH_LATENCY.labels(self.name).observe
            if len(published) == len(batch.sent):
                for row, _ in batch.sent:
                    observe(max(0.0, now - row[_CREATED]))
            else:
                ids = set(published)
                for row, _ in batch.sent:
                    if row[_ID] in ids:
                        observe(max(0.0, now - row[_CREATED]))
        if errors:
            metrics.OUTBOX_PUBLISH_ERRORS.labels(self.name).inc(len(errors))

    async def _settle_in_flight(self) -> None:
        """Wait for records of an earlier timed-out batch before sending anything new."""
        if not self._in_flight:
            return
        futures = _futures(self._in_flight)
        if futures:
            _done, pending = await asyncio.wait(futures, timeout=self._ack_timeout_s)
            if pending:
                raise BrokerUnavailableError(
                    f"records of {len(pending)} earlier producer batches still unacknowledged"
                )
        published, _failed = _acknowledged_prefixes(self._in_flight)
        self._in_flight = []
        if published:
            async with self._engine.begin() as conn:
                await conn.execute(delete(t).where(t.c.id == func.any(_IDS)), {"ids": published})

    # -- producer and housekeeping -------------------------------------------------------

    async def _ensure_producer(self, topics: set[str]) -> Any:
        """The relay's producer, started with the metadata of ``topics`` (those of the
        batch in hand) and of every topic the relay sent to before, if the broker gives
        them within ``metadata_timeout_s``: one metadata request, the broker having just
        answered. (aiokafka starts knowing no topic: each would otherwise wait for a
        lookup, :meth:`_partitions_of`, and the first batch send nothing.)"""
        if self._producer is None:
            producer = AIOKafkaProducer(**self._producer_config)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            self._topics |= topics
            if self._topics:
                learnt = producer.client.set_topics(self._topics)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(learnt, self._metadata_timeout_s)
        return self._producer

    async def _close_producer(self) -> None:
        """Close the producer: flush it until the stop's deadline (``ack_timeout_s`` when
        not stopping), then abort it (:func:`abort_producer`): never a producer left
        running on its own."""
        producer, self._producer = self._producer, None
        # Lookups ask this producer: a new one starts its own.
        self._cancel_lookups()
        if producer is None:
            return
        deadline = self._stop_deadline
        timeout = self._ack_timeout_s if deadline is None else deadline - time.monotonic()
        closing = asyncio.ensure_future(producer.stop())
        try:
            done, _ = await asyncio.wait({closing}, timeout=max(0.0, timeout))
            if not done:
                log.warning("outbox relay producer did not flush in time, aborted", relay=self.name)
                self._abort(producer)
                done, _ = await asyncio.wait({closing}, timeout=_ABORT_GRACE_S)
        except BaseException:
            # Cancelled while closing: abort it all the same.
            self._abort(producer)
            raise
        if not done:
            log.warning("outbox relay producer did not close", relay=self.name)
            return
        if (exc := closing.exception()) is not None:
            log.warning(
                "outbox relay producer did not close",
                relay=self.name,
                error=describe_exception(exc),
            )

    def _abort(self, producer: Any) -> None:
        """:func:`abort_producer`, and the relay's own futures of what it failed let go.

        ``send_batch`` hands the relay a shield of the producer's batch future, which
        fails a moment after the batch does. The batches it abandoned (rolled back, their
        rows pending) are in ``_in_flight``, and nothing awaits them once the relay has
        stopped: their errors are retrieved as they come, or asyncio reports each one it
        collects as "Future exception was never retrieved". A relay started again still
        settles them (:meth:`_settle_in_flight`): failed, their rows are sent again.
        """
        abort_producer(producer)
        for future in _futures(self._in_flight):
            future.add_done_callback(_retrieve_exception)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _back_off(self, seconds: float) -> None:
        """Pause ``seconds`` after a failure, or less if the broker or the database, found
        not answering meanwhile, answers again.

        The backoff doubles up to ``backoff_max_s`` (30 s): after a long outage the rows
        would wait up to that long once the broker or the database is back, every
        service's events and the audit log of them lagging behind. So a pause longer than
        ``probe_interval_s`` asks both at once (the broker: a connection, then a
        bootstrap, :meth:`_broker_answers`; the database: ``SELECT 1`` on a connection of
        its own, :meth:`_database_answers`; each at most ``probe_interval_s``), and then,
        every ``probe_interval_s``, the one or ones that did not answer, until they do:
        then the pause ends. Both answering at the first probe leaves the pause as it was
        (the failure was elsewhere: records the broker refused, a statement that
        failed), and nothing more is asked. A server that is down is so asked once a
        probe interval per relay; one that answers, once a pause.
        """
        if seconds <= self._probe_interval_s:
            await self._pause(seconds)
            return
        started = time.monotonic()
        deadline = started + seconds
        probes = {"database": self._database_answers, "broker": self._broker_answers}
        unanswered: set[str] | None = None
        while not self._stopping.is_set():
            asked = time.monotonic()
            names = sorted(probes) if unanswered is None else sorted(unanswered)
            answers = await asyncio.gather(*(probes[name]() for name in names))
            silent = {name for name, answered in zip(names, answers, strict=True) if not answered}
            if unanswered is None and not silent:
                break
            if unanswered is not None and not silent:
                for name in sorted(unanswered):
                    log.info(
                        _RESUMES[name],
                        relay=self.name,
                        paused_s=round(time.monotonic() - started, 3),
                        backoff_s=seconds,
                    )
                return
            unanswered = silent
            next_probe = min(asked + self._probe_interval_s, deadline)
            await self._pause(max(0.0, next_probe - time.monotonic()))
            if time.monotonic() >= deadline:
                return
        await self._pause(max(0.0, deadline - time.monotonic()))

    async def _broker_answers(self) -> bool:
        """Whether the broker answers a bootstrap within ``probe_interval_s``.

        Only once a bootstrap server accepts a connection: aiokafka's bootstrap logs each
        refused one as an ERROR, which once a second would be the log spam of an outage.
        """
        try:
            async with asyncio.timeout(self._probe_interval_s):
                if not await _listening(self._bootstrap):
                    return False
                await self._probe()
        except Exception:
            return False
        return True

    async def _database_answers(self) -> bool:
        """Whether the database answers ``SELECT 1`` within ``probe_interval_s``, on a
        connection opened for it and closed at once: not one of the pool's, which may all
        be ended by the outage (or busy, when the relay shares a service's engine)."""
        try:
            async with asyncio.timeout(self._probe_interval_s):
                connection = await asyncpg.connect(
                    **self._database_connect_args,
                    server_settings={"application_name": f"dibao-relay-probe-{self.name}"},
                )
                try:
                    await connection.fetchval("SELECT 1")
                    await connection.close()
                finally:
                    if not connection.is_closed():
                        connection.terminate()
        except Exception:
            return False
        return True

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self._backlog_refresh_s
            await self.refresh_backlog()
        if self._retention_s is not None and now >= self._next_purge:
            self._next_purge = now + 60.0
            await self.purge_published(self._retention_s)
            # Only relays from before rows were deleted on publication marked rows: once
            # none is left, this relay need not look again (a restart looks once more).
            async with self._engine.connect() as conn:
                marked = select(t.c.id).where(t.c.published_at.is_not(None)).limit(1)
                if (await conn.execute(marked)).first() is None:
                    self._next_purge = float("inf")

    async def refresh_backlog(self) -> int:
        """Set the backlog gauges from the table; the number of pending rows."""
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(
                            func.date_part("epoch", func.now() - func.min(t.c.created_at)), 0.0
                        ),
                    ).where(_PENDING)
                )
            ).one()
        pending, age = int(found[0]), float(found[1])
        metrics.OUTBOX_BACKLOG.labels(self.name).set(pending)
        metrics.OUTBOX_OLDEST_PENDING_AGE.labels(self.name).set(max(0.0, age))
        return pending

    async def purge_published(self, older_than_s: float, *, chunk: int = 10_000) -> int:
        """Delete rows marked published more than ``older_than_s`` ago, a chunk per
        transaction: rows published before the relay deleted them on publication."""
        total = 0
        while True:
            cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s)
            victims = (
                select(t.c.id)
                .where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
                .order_by(t.c.id)
                .limit(chunk)
                .scalar_subquery()
            )
            async with self._engine.begin() as conn:
                deleted = (await conn.execute(delete(t).where(t.c.id.in_(victims)))).rowcount
            total += deleted
            if deleted < chunk:
                return total


ABORT_PRODUCER_AIOKAFKA = "0.14."
"""The aiokafka release whose internals :func:`abort_producer` reaches (a test fails on
another one, so that they are checked again before it is taken)."""


def abort_producer(producer: Any) -> None:
    """Make a producer that could not flush give up, at once and for good.

    An idempotent aiokafka producer retries a record until the broker takes it, and its
    ``stop()`` waits for that; cancelling the wait leaves its sender running, which
    delivers the records when the broker is back, beside the next relay's copies of the
    same rows. So: fail every record it still holds (its flush ends), cancel its sender
    (it drains nothing more) and close its connections (a request on the wire fails
    instead of awaiting its answer). The futures it failed are retrieved at once: nobody
    awaits them any more (the sender is cancelled, the caller abandons what it sent; the
    relay lets go of its own shields of them, :meth:`OutboxRelay._abort`), and asyncio
    reports each failed future it collects unretrieved as "Future exception was never
    retrieved", an ERROR with a traceback at every stop during an outage.

    aiokafka has no public abort; these are its internals as of 0.14
    (:data:`ABORT_PRODUCER_AIOKAFKA`; ``test_relay_abort.py`` pins them on a real
    producer, stops a relay with the broker down and checks that nothing comes later and
    nothing is reported).
    """
    producer._closed = True
    accumulator = producer._message_accumulator
    batches = [batch for queue in accumulator._batches.values() for batch in queue]
    batches += list(accumulator._pending_batches)
    accumulator.fail_all(KafkaConnectionError("the relay stopped before the broker acknowledged"))
    for batch in batches:
        # The batch's own, its drain waiter and its records' (``send``'s) futures.
        for future in (batch.future, batch._drain_waiter, *(f for f, _ in batch._msg_futures)):
            _retrieve_exception(future)
    sender = producer._sender
    task = sender.sender_task if sender is not None else None
    if task is not None and not task.done():
        task.cancel()
    for conn in list(producer.client._conns.values()):
        conn.close(reason=CloseReason.SHUTDOWN)


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Mark a failed future's error seen (nobody is left to await it)."""
    if future.done() and not future.cancelled():
        future.exception()


async def _listening(bootstrap: str) -> bool:
    """Whether one of the bootstrap servers accepts a connection (closed at once)."""
    for host, port, _family in collect_hosts(bootstrap, randomize=False):
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def _look_up(producer: Any, topic: str, timeout_s: float) -> list[int] | Exception:
    """The topic's partitions sorted by id, asked of the broker for at most ``timeout_s``
    seconds; the error instead of raising it (nobody may be left to retrieve it)."""
    try:
        return sorted(await asyncio.wait_for(producer.partitions_for(topic), timeout_s))
    except TimeoutError:
        return TopicMetadataUnavailableError(
            f"no partitions of topic {topic} from the broker in {timeout_s} s"
        )
    except Exception as exc:
        return exc


async def _hand_over(producer: Any, batch: _ProducerBatch) -> None:
    # Closed: the producer sends it at once instead of lingering for more records.
    batch.builder.close()
    batch.future = await producer.send_batch(batch.builder, batch.topic, partition=batch.partition)


def _futures(sent: _Sent) -> list[asyncio.Future[Any]]:
    seen: dict[int, asyncio.Future[Any]] = {}
    for _row, batch in sent:
        if batch.future is not None and id(batch) not in seen:
            seen[id(batch)] = batch.future
    return list(seen.values())


async def _own_key_prefixes(
    driver: asyncpg.Connection, claimed: Sequence[asyncpg.Record], earlier: frozenset[int]
) -> list[asyncpg.Record]:
    """The claimed rows that are the oldest pending rows of their key.

    SKIP LOCKED lets another relay hold a key's earlier rows; publishing ours first would
    reorder the key. Rows in ``earlier`` were sent by this relay's previous batch, on the
    same producer, so they count as ours. The claim found that some pending row up to
    our newest is not ours: look at the keys one by one.
    """
    keys = sorted({row[_KEY] for row in claimed})
    others = await driver.fetch(_KEY_ROWS, keys, claimed[-1][_ID])
    ours = {row[_ID] for row in claimed}
    blocked: set[str] = set()
    keep: set[int] = set()
    for key, row_id in others:
        if key in blocked or row_id in earlier:
            continue
        if row_id in ours:
            keep.add(row_id)
        else:
            blocked.add(key)
    return [row for row in claimed if row[_ID] in keep]


def _acknowledged_prefixes(sent: _Sent) -> tuple[list[int], dict[int, str]]:
    """Acknowledged rows up to each topic and key's first failure, and the failures."""
    failures = {
        id(batch): exc
        for batch in {id(batch): batch for _, batch in sent}.values()
        if batch.future is not None and (exc := batch.future.exception()) is not None
    }
    if not failures:
        return [row[_ID] for row, _ in sent], {}
    published: list[int] = []
    errors: dict[int, str] = {}
    failed_streams: set[_Stream] = set()
    for row, batch in sent:
        stream = _stream(row)
        if stream in failed_streams:
            continue
        exc = failures.get(id(batch))
        if exc is not None:
            failed_streams.add(stream)
            errors[row[_ID]] = repr(exc)
            continue
        published.append(row[_ID])
    return published, errors


# -- a relay as its own process -----------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_common.messaging.relay",
        description="Publish a service database's outbox to Kafka until SIGTERM/SIGINT.",
    )
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://...")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--name", default="outbox", help="relay name (metrics label)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds")
    return parser.parse_args(argv)


def _relay_process(
    args: argparse.Namespace, settings: RelayProcessSettings, engine: AsyncEngine
) -> OutboxRelay:
    """The relay of ``python -m dibao_common.messaging.relay``: its arguments, and the
    relay settings a service's relay reads (:func:`relay_options`): its stop bounded by
    ``DIBAO_SHUTDOWN_TIMEOUT_S``, its topic lookups and its backoff."""
    return OutboxRelay(
        engine,
        args.bootstrap,
        name=args.name,
        batch_size=args.batch_size,
        poll_interval_s=args.poll_interval,
        **relay_options(settings),
    )


async def _main(args: argparse.Namespace, settings: RelayProcessSettings) -> None:
    from dibao_common.db import make_engine
    from dibao_common.heap import settle_heap

    # At most four at once: the batch being sent, the next one being claimed and the one
    # being closed (the relay keeps these connections between batches), and the backlog
    # refresh or the purge. A fixed pool (ADR 0014): with fewer, the housekeeping would
    # wait for a batch to finish.
    engine = make_engine(args.database_url, pool_size=4)
    relay = _relay_process(args, settings, engine)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    settle_heap()
    log.info("outbox relay running", relay=args.name)
    try:
        await stop.wait()
    finally:
        await relay.stop()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m dibao_common.messaging.relay``."""
    from dibao_common import loop as event_loop
    from dibao_common.observability import configure_logging

    args = _parse_args(argv)
    # Read before the loop starts: a bad DIBAO_SHUTDOWN_TIMEOUT_S stops the process here.
    settings = RelayProcessSettings()
    # JSON lines on stdout as every service writes them, aiokafka's among them (which
    # went to stderr as plain text, its connection errors a hundred a second in an
    # outage): the kit's pipeline quiets them (observability.quiet_repeated_kafka_errors).
    service = f"{settings.service_name}-relay" if settings.service_name else "relay"
    configure_logging(settings.log_level, service_name=service)
    event_loop.run(_main(args, settings))


if __name__ == "__main__":
    main()
