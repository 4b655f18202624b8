"""Housekeeping of the kit's HTTP tables: expired rows deleted in bounded batches.

Nothing else deletes from them, so without it they grow forever:

- ``idempotency_record``: completed answers whose ``completed_at`` is older than the
  retention (``DIBAO_IDEMPOTENCY_RETENTION_S``, 7 days; never under the 24 h promised to
  clients). Claim rows (``in_flight``, from releases before ADR 0010) are left alone.
- ``webhook_message``: accepted bank request ids signed longer ago than the bank's
  tolerance plus :data:`WEBHOOK_MARGIN`; a request that old is refused by its timestamp
  before its id is looked up, so the id no longer guards anything. Only in an app that
  verifies bank requests.

A table the database role may not delete from (the audit service's runtime role has no
right on either: it serves no keyed or bank request) is skipped, not retried in vain.

``build_app`` runs :func:`run_housekeeping` in its lifespan every
``DIBAO_HOUSEKEEPING_INTERVAL_S`` (600 s; 0 disables it); :func:`purge_expired` is one
pass, for tests and scripts. Each batch is one short transaction deleting at most
``batch_size`` rows, the rows another transaction holds locked skipped, so replicas
purging at once wait neither for each other nor for a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.logged_errors import describe_exception

_log = structlog.get_logger("dibao_common.housekeeping")

BATCH_SIZE = 5000
WEBHOOK_MARGIN = timedelta(minutes=10)
"""Kept beyond the tolerance: for clocks of replicas that disagree, and for a request
verified just inside the tolerance whose transaction records its id a little later."""

Now = Callable[[], datetime]

# ctid = ANY(ARRAY(...)): a TID scan of the rows the index scan found, nothing else.
_PURGE_IDEMPOTENCY = text(
    "DELETE FROM idempotency_record WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM idempotency_record WHERE state = 'completed' AND completed_at < :before"
    " LIMIT :limit FOR UPDATE SKIP LOCKED))"
)
_PURGE_WEBHOOKS = text(
    "DELETE FROM webhook_message WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM webhook_message WHERE signed_at < :before"
    " LIMIT :limit FOR UPDATE SKIP LOCKED))"
)


_DELETABLE = text(
    "SELECT has_table_privilege('idempotency_record', 'DELETE') AS idempotency_record,"
    " has_table_privilege('webhook_message', 'DELETE') AS webhook_message"
)


@dataclass(frozen=True, slots=True)
class Purged:
    """What one pass deleted, in how many batches (statements), and the tables it skipped
    because the role may not delete from them."""

    idempotency_records: int = 0
    webhook_messages: int = 0
    batches: int = 0
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """What to purge: the retention of answers, and the bank tolerance when there is one."""

    idempotency_retention: timedelta
    webhook_tolerance: timedelta | None = None
    batch_size: int = BATCH_SIZE

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")


async def _purge(
    engine: AsyncEngine, statement: TextClause, before: datetime, batch_size: int
) -> tuple[int, int]:
    """Delete in batches until one deletes fewer than ``batch_size``: (rows, batches)."""
    deleted = batches = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(statement, {"before": before, "limit": batch_size})
        batches += 1
        deleted += result.rowcount
        if result.rowcount < batch_size:
            return deleted, batches


async def purge_expired(
    engine: AsyncEngine, housekeeping: Housekeeping, *, now: datetime
) -> Purged:
    """One pass: expired answers, then (with a bank tolerance) expired webhook ids."""
    async with engine.connect() as conn:
        deletable = (await conn.execute(_DELETABLE)).one()._asdict()
    wanted = ["idempotency_record"]
    if housekeeping.webhook_tolerance is not None:
        wanted.append("webhook_message")
    skipped = tuple(table for table in wanted if not deletable[table])
    records = webhooks = batches = 0
    if "idempotency_record" not in skipped:
        records, batches = await _purge(
            engine,
            _PURGE_IDEMPOTENCY,
            now - housekeeping.idempotency_retention,
            housekeeping.batch_size,
        )
    if housekeeping.webhook_tolerance is not None and "webhook_message" not in skipped:
        webhooks, more = await _purge(
            engine,
            _PURGE_WEBHOOKS,
            now - housekeeping.webhook_tolerance - WEBHOOK_MARGIN,
            housekeeping.batch_size,
        )
        batches += more
    return Purged(
        idempotency_records=records, webhook_messages=webhooks, batches=batches, skipped=skipped
    )


async def run_housekeeping(
    engine: AsyncEngine, housekeeping: Housekeeping, *, now: Now, interval_s: float
) -> None:
    """Purge every ``interval_s`` (first after one interval) until cancelled.

    A failing pass (the database away, a statement refused) is logged and tried again at
    the next interval; the batches it committed before failing stay deleted.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    while True:
        await asyncio.sleep(interval_s)
        started = time.perf_counter()
        try:
            purged = await purge_expired(engine, housekeeping, now=now())
        except Exception as exc:
            _log.warning(
                "housekeeping failed, retrying next interval",
                error=describe_exception(exc),
                retry_in_s=interval_s,
            )
            continue
        log = _log.info if purged.idempotency_records or purged.webhook_messages else _log.debug
        log(
            "housekeeping purged",
            idempotency_records=purged.idempotency_records,
            webhook_messages=purged.webhook_messages,
            batches=purged.batches,
            skipped=list(purged.skipped),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )


def start_housekeeping(
    engine: AsyncEngine, housekeeping: Housekeeping, *, now: Now, interval_s: float
) -> asyncio.Task[None] | None:
    """:func:`run_housekeeping` as a background task; ``None`` when ``interval_s`` is 0."""
    if interval_s <= 0:
        return None
    return asyncio.create_task(
        run_housekeeping(engine, housekeeping, now=now, interval_s=interval_s),
        name="dibao-housekeeping",
    )


async def stop_housekeeping(task: asyncio.Task[None] | None) -> None:
    """Cancel the task and wait for it (a batch in progress is rolled back)."""
    if task is None:
        return
    task.cancel()
    # gather: the task's cancellation is its result here, while a cancellation of the
    # caller itself still propagates.
    await asyncio.gather(task, return_exceptions=True)
