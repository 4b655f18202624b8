"""The outbox relay: publishes committed outbox rows to Kafka, in order per key.

Each batch is one database transaction: claim the oldest pending rows
(``FOR UPDATE SKIP LOCKED``), keep for each key only the run of its oldest pending rows
that this relay holds (another relay may hold earlier ones), send them all with an
idempotent producer, await the acknowledgements, mark the acknowledged rows published
with one ``UPDATE ... WHERE id = ANY(...)``, commit. A relay killed anywhere in between
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
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import Row, Select, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import BigInteger, Text

from dibao_common.messaging import metrics
from dibao_common.messaging.schema import outbox_message as t

log = structlog.get_logger(__name__)

_CLAIM_COLUMNS = (
    t.c.id,
    t.c.topic,
    t.c.key,
    t.c.headers,
    t.c.payload,
    t.c.created_at,
)
_PENDING = t.c.published_at.is_(None)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
_IDS = bindparam("ids", type_=ARRAY(BigInteger))


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


class BrokerUnavailableError(Exception):
    """Records sent by the relay were not acknowledged in time."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one relay batch did."""

    claimed: int
    published: int
    failed: int
    deferred: int
    """Rows left for the relay that holds an earlier row of their key."""


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


_Sent = list[tuple[Row[Any], "asyncio.Future[Any]"]]


@dataclass(slots=True)
class _Batch:
    """A claimed batch whose transaction is open until its acknowledgements are in."""

    conn: AsyncConnection
    claimed: Sequence[Row[Any]]
    kept: int
    sent: _Sent
    errors: dict[int, str]
    started: float

    @property
    def sent_ids(self) -> frozenset[int]:
        return frozenset(row.id for row, _ in self.sent)


@dataclass(frozen=True, slots=True)
class _Outcome:
    published: int
    failed: int
    drained: bool


class OutboxRelay:
    """Publishes a database's outbox to Kafka; see the module docstring for the guarantees."""

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap: str,
        *,
        name: str = "outbox",
        batch_size: int = 1000,
        poll_interval_s: float = 0.1,
        ack_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        backlog_refresh_s: float = 5.0,
        retention_s: float | None = 7 * 24 * 3600.0,
        producer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.name = name
        self._engine = engine
        self._bootstrap = bootstrap
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._ack_timeout_s = ack_timeout_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._backlog_refresh_s = backlog_refresh_s
        self._retention_s = retention_s
        self._producer_overrides = dict(producer_overrides or {})
        self._producer: Any = None
        self._in_flight: _Sent = []
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_housekeeping = 0.0
        self._next_purge = 0.0
        self._claim: Select[Any] = (
            select(*_CLAIM_COLUMNS)
            .where(_PENDING)
            .order_by(t.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Run :meth:`run_forever` in a background task (from a service's lifespan)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self.run_forever(), name=f"outbox-relay-{self.name}")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the current batch, close the producer and end the background task."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout_s)
            except TimeoutError:
                log.warning("outbox relay did not stop in time, cancelled", relay=self.name)
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
                        error=repr(exc),
                        retry_in_s=delay,
                    )
                    await self._pause(delay)
                    continue
                if outcome.failed:
                    await self._pause(self._backoff.next())
                    continue
                self._backoff.reset()
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
        """One batch on its own: claim, send, await acknowledgements, mark, commit."""
        await self._settle_in_flight()
        batch = await self._open_batch(frozenset(), set())
        if batch is None:
            return BatchResult(0, 0, 0, 0)
        result, _failed_keys = await self._close_batch(batch)
        return result

    async def _pump(self) -> _Outcome:
        """Batches back to back: while one batch awaits its acknowledgements and is marked,
        the next is claimed and sent.

        The next batch may send a key's later rows before the earlier ones are marked:
        they went out first on the same producer, which keeps each partition's order.
        Returns when nothing is left to claim, when a batch was all held back by other
        relays, or when rows failed (the caller waits before the next round).
        """
        await self._settle_in_flight()
        previous: _Batch | None = None
        current: _Batch | None = None
        closing: asyncio.Task[tuple[BatchResult, set[str]]] | None = None
        blocked: set[str] = set()
        published = failed = 0
        try:
            while True:
                earlier: frozenset[int] = frozenset()
                if previous is not None:
                    earlier = previous.sent_ids
                    closing = asyncio.create_task(self._close_batch(previous))
                    previous = None
                if not self._stopping.is_set():
                    current = await self._open_batch(earlier, blocked)
                if closing is not None:
                    task, closing = closing, None
                    result, blocked = await task
                    published += result.published
                    failed += result.failed
                    await self._housekeeping()
                if current is None:
                    return _Outcome(published, failed, drained=True)
                if failed or not current.sent:
                    batch, current = current, None
                    result, _ = await self._close_batch(batch)
                    return _Outcome(
                        published + result.published, failed + result.failed, drained=False
                    )
                previous, current = current, None
        except BaseException as exc:
            # Failed or killed: a batch being closed may finish (not when killed); what is
            # still open is rolled back, and its records, already with the producer, are
            # marked later if the broker acknowledges them.
            if closing is not None:
                if not isinstance(exc, Exception):
                    closing.cancel()
                with contextlib.suppress(BaseException):
                    await closing
            for leftover in (previous, current):
                if leftover is not None:
                    await self._abandon(leftover)
            raise

    async def _open_batch(self, earlier: frozenset[int], blocked: set[str]) -> _Batch | None:
        """Begin a transaction, claim rows, keep each key's oldest, send them (no waiting)."""
        producer = await self._ensure_producer()
        conn = await self._engine.connect()
        try:
            await conn.begin()
            # Losing a mark in a server crash only sends its rows again, which consumers
            # absorb anyway: the relay need not wait for its commits to reach the disk.
            await conn.execute(_ASYNC_COMMIT)
            started = time.monotonic()
            claimed = (await conn.execute(self._claim)).all()
            if not claimed:
                await conn.close()
                return None
            await self._after_claim(claimed)
            rows = await _own_key_prefixes(conn, claimed, earlier)
            sent, errors = await self._send(producer, rows, blocked)
        except BaseException:
            await conn.close()
            raise
        return _Batch(conn, claimed, len(rows), sent, errors, started)

    async def _close_batch(self, batch: _Batch) -> tuple[BatchResult, set[str]]:
        """Await the batch's acknowledgements, mark what was acknowledged, commit.

        Also returns the keys that failed, whose next rows must wait.
        """
        try:
            if batch.sent:
                _done, pending = await asyncio.wait(
                    [future for _, future in batch.sent], timeout=self._ack_timeout_s
                )
                if pending:
                    raise BrokerUnavailableError(
                        f"{len(pending)} of {len(batch.sent)} records unacknowledged "
                        f"after {self._ack_timeout_s} s"
                    )
            published, failed = _acknowledged_prefixes(batch.sent)
            batch.errors.update(failed)
            await self._before_mark(published)
            await _mark_published(batch.conn, published)
            await _record_errors(batch.conn, batch.errors)
            await batch.conn.commit()
        except BaseException:
            # Keep what was sent: once acknowledged it is marked, not sent again.
            self._in_flight.extend(batch.sent)
            raise
        finally:
            await batch.conn.close()
        self._observe(published, batch, batch.errors)
        if batch.errors:
            log.warning(
                "outbox rows failed to publish",
                relay=self.name,
                failed=len(batch.errors),
                first_error=next(iter(batch.errors.values())),
            )
        failed_keys = {row.key for row in batch.claimed if row.id in batch.errors}
        result = BatchResult(
            len(batch.claimed), len(published), len(batch.errors), len(batch.claimed) - batch.kept
        )
        return result, failed_keys

    async def _abandon(self, batch: _Batch) -> None:
        self._in_flight.extend(batch.sent)
        await batch.conn.close()

    async def _send(
        self, producer: Any, rows: Sequence[Row[Any]], blocked: set[str]
    ) -> tuple[_Sent, dict[int, str]]:
        sent: _Sent = []
        errors: dict[int, str] = {}
        stopped = set(blocked)
        for row in rows:
            if row.key in stopped:
                continue
            headers: Mapping[str, str] = row.headers
            try:
                future = await producer.send(
                    row.topic,
                    row.payload,
                    key=row.key.encode(),
                    headers=[(name, value.encode()) for name, value in headers.items()],
                )
            except Exception as exc:
                # Refused before it was queued (too large, unknown topic): nothing of this
                # key after it may go out in this batch.
                stopped.add(row.key)
                errors[row.id] = repr(exc)
                continue
            sent.append((row, future))
        return sent, errors

    async def _after_claim(self, rows: Sequence[Row[Any]]) -> None:
        """Rows claimed, nothing sent yet (a seam for tests of slow or dying relays)."""

    async def _before_mark(self, ids: list[int]) -> None:
        """Between the broker's acknowledgement and the mark (a seam for crash tests)."""

    def _observe(self, published: list[int], batch: _Batch, errors: Mapping[int, str]) -> None:
        metrics.OUTBOX_BATCH_SECONDS.labels(self.name).observe(time.monotonic() - batch.started)
        if published:
            metrics.OUTBOX_PUBLISHED.labels(self.name).inc(len(published))
            now = datetime.now(UTC)
            latency = metrics.OUTBOX_PUBLISH_LATENCY.labels(self.name)
            ids = set(published)
            for row, _ in batch.sent:
                if row.id in ids:
                    latency.observe(max(0.0, (now - row.created_at).total_seconds()))
        if errors:
            metrics.OUTBOX_PUBLISH_ERRORS.labels(self.name).inc(len(errors))

    async def _settle_in_flight(self) -> None:
        """Wait for records of an earlier timed-out batch before sending anything new."""
        if not self._in_flight:
            return
        _done, pending = await asyncio.wait(
            [future for _, future in self._in_flight], timeout=self._ack_timeout_s
        )
        if pending:
            raise BrokerUnavailableError(f"{len(pending)} earlier records still unacknowledged")
        published, _failed = _acknowledged_prefixes(self._in_flight)
        self._in_flight = []
        async with self._engine.begin() as conn:
            await _mark_published(conn, published)

    # -- producer and housekeeping -------------------------------------------------------

    async def _ensure_producer(self) -> Any:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **producer_config(
                    self._bootstrap, client_id=f"relay-{self.name}", **self._producer_overrides
                )
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self._ack_timeout_s)
            except Exception as exc:
                log.warning("outbox relay producer did not close", relay=self.name, error=repr(exc))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self._backlog_refresh_s
            await self.refresh_backlog()
        if self._retention_s is not None and now >= self._next_purge:
            self._next_purge = now + 60.0
            await self.purge_published(self._retention_s)

    async def refresh_backlog(self) -> int:
        """Set the backlog gauges from the table; the number of pending rows."""
        async with self._engine.connect() as conn:
            pending = (await conn.execute(select(func.count()).where(_PENDING))).scalar_one()
            oldest = (
                await conn.execute(select(t.c.created_at).where(_PENDING).order_by(t.c.id).limit(1))
            ).scalar_one_or_none()
        metrics.OUTBOX_BACKLOG.labels(self.name).set(pending)
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        metrics.OUTBOX_OLDEST_PENDING_AGE.labels(self.name).set(max(0.0, age))
        return int(pending)

    async def purge_published(self, older_than_s: float, *, chunk: int = 10_000) -> int:
        """Delete rows published more than ``older_than_s`` ago, a chunk per transaction."""
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


async def _own_key_prefixes(
    conn: AsyncConnection, claimed: Sequence[Row[Any]], earlier: frozenset[int]
) -> list[Row[Any]]:
    """The claimed rows that are the oldest pending rows of their key.

    SKIP LOCKED lets another relay hold a key's earlier rows; publishing ours first would
    reorder the key. Rows in ``earlier`` were sent by this relay's previous batch, on the
    same producer, so they count as ours. The fast check: every pending row up to our
    newest is ours. Otherwise look at the keys one by one.
    """
    max_id = claimed[-1].id
    not_ours = select(func.count()).where(_PENDING, t.c.id <= max_id)
    if earlier:
        # Only rows below our oldest can be the previous batch's: check just those.
        not_ours = not_ours.where(
            or_(
                t.c.id >= claimed[0].id,
                t.c.id != func.all(bindparam("earlier", sorted(earlier), type_=ARRAY(BigInteger))),
            )
        )
    if (await conn.execute(not_ours)).scalar_one() == len(claimed):
        return list(claimed)
    keys = sorted({row.key for row in claimed})
    others = await conn.execute(
        select(t.c.key, t.c.id)
        .where(
            _PENDING,
            t.c.key == func.any(bindparam("keys", keys, type_=ARRAY(Text))),
            t.c.id <= max_id,
        )
        .order_by(t.c.id)
    )
    ours = {row.id for row in claimed}
    blocked: set[str] = set()
    keep: set[int] = set()
    for key, row_id in others:
        if key in blocked or row_id in earlier:
            continue
        if row_id in ours:
            keep.add(row_id)
        else:
            blocked.add(key)
    return [row for row in claimed if row.id in keep]


def _acknowledged_prefixes(sent: _Sent) -> tuple[list[int], dict[int, str]]:
    """Acknowledged rows up to each key's first failure, and the failures."""
    published: list[int] = []
    errors: dict[int, str] = {}
    failed_keys: set[str] = set()
    for row, future in sent:
        if row.key in failed_keys:
            continue
        exc = future.exception()
        if exc is not None:
            failed_keys.add(row.key)
            errors[row.id] = repr(exc)
            continue
        published.append(row.id)
    return published, errors


async def _mark_published(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(
            update(t)
            .where(t.c.id == func.any(_IDS), _PENDING)
            .values(published_at=func.clock_timestamp()),
            {"ids": ids},
        )


async def _record_errors(conn: AsyncConnection, errors: Mapping[int, str]) -> None:
    for row_id, error in errors.items():
        await conn.execute(
            update(t)
            .where(t.c.id == row_id)
            .values(attempts=t.c.attempts + 1, last_error=error[:2000])
        )


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


async def _main(args: argparse.Namespace) -> None:
    from dibao_common.db import make_engine

    engine = make_engine(args.database_url, pool_size=2)
    relay = OutboxRelay(
        engine,
        args.bootstrap,
        name=args.name,
        batch_size=args.batch_size,
        poll_interval_s=args.poll_interval,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.start()
    log.info("outbox relay running", relay=args.name)
    try:
        await stop.wait()
    finally:
        await relay.stop()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m dibao_common.messaging.relay``."""
    asyncio.run(_main(_parse_args(argv)))


if __name__ == "__main__":
    main()
