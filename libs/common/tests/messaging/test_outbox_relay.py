"""The outbox and its relay against the real PostgreSQL and the real Kafka broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.intake.v1.events_pb2 import ApplicationAccepted, ApplicationSubmitted
from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.outbox import enqueue
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.messaging.schema import outbox_message
from dibao_common.testing.kafka_fixtures import applied_order, eventually, read_records
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]


class SimulatedCrash(BaseException):
    """Ends the relay like a kill: nothing after the raise runs, no error handling."""


class CrashAfterAck(OutboxRelay):
    """A relay that dies between the broker's acknowledgement and marking rows published."""

    def __init__(self, *args: Any, crash_on_batch: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches = 0
        self.crash_on_batch = crash_on_batch
        self.acked_but_unmarked = 0

    async def _before_mark(self, ids: list[int]) -> None:
        if not ids:
            # A batch of rows all held back (an earlier row of each key still locked by a
            # relay killed a moment before) acknowledged nothing: not one to die after.
            return
        self.batches += 1
        if self.batches == self.crash_on_batch:
            self.acked_but_unmarked = len(ids)
            raise SimulatedCrash


class StallsAfterClaiming(OutboxRelay):
    """A relay that stalls once it has claimed ``rows`` rows (``stalled`` is set), holding
    the batch it claimed last, until ``go_on`` is set (for good if it never is): a test
    that stops it at some random point still finds work left for the relays after it, and
    one that acts while it is under way is sure to act before the relay is done."""

    def __init__(self, *args: Any, rows: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = rows
        self.claimed_rows = 0
        self.stalled = asyncio.Event()
        self.go_on = asyncio.Event()

    async def _after_claim(self, rows: Sequence[asyncpg.Record]) -> None:
        self.claimed_rows += len(rows)
        if self.claimed_rows >= self.limit and not self.go_on.is_set():
            self.stalled.set()
            await self.go_on.wait()  # or until cancelled


class SlowAfterClaim(OutboxRelay):
    """A relay that stalls (a GC pause, a slow network) holding the rows it claimed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claimed = asyncio.Event()
        self.go_on = asyncio.Event()

    async def _after_claim(self, rows: Sequence[asyncpg.Record]) -> None:
        self.claimed.set()
        await self.go_on.wait()


async def _rows_in_outbox(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM outbox_message"))).scalar_one())


async def test_enqueue_writes_only_with_the_callers_commit(
    sessionmaker: async_sessionmaker[AsyncSession], pending: Pending
) -> None:
    async with sessionmaker() as session:
        await enqueue(session, ApplicationAccepted(household_id="h-1"), key="h-1", source="s")
        await session.rollback()
    assert await pending() == 0

    async with sessionmaker() as session, session.begin():
        envelope = await enqueue(
            session,
            ApplicationAccepted(household_id="h-1", application_id="a-1"),
            key="h-1",
            source="dibao/intake",
            subject="application/a-1",
            actor="clerk-1",
            correlation_id="corr-1",
        )
    async with sessionmaker() as session:
        row = (await session.execute(select(outbox_message))).one()
    assert row.ce_id == envelope.ce_id
    assert row.topic == "dibao.intake.v1"
    assert row.ce_type == "dibao.intake.ApplicationAccepted.v1"
    assert row.key == "h-1"
    assert row.headers == {name: value.decode() for name, value in envelope.to_headers()}
    assert row.headers["ce_actor"] == "clerk-1"
    assert row.published_at is None


async def test_relay_publishes_the_envelope_and_deletes_the_rows(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topic: str,
    pending: Pending,
) -> None:
    sent: list[Envelope] = []
    async with sessionmaker() as session, session.begin():
        for n in range(3):
            sent.append(
                await enqueue(
                    session,
                    ApplicationAccepted(household_id="h-1", application_id=str(n)),
                    key="h-1",
                    source="dibao/intake",
                    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    topic=kafka_topic,
                )
            )
    relay = OutboxRelay(engine, stack.kafka_bootstrap, name="test-basic")
    labels = {"relay": "test-basic"}
    before = REGISTRY.get_sample_value("dibao_outbox_published_total", labels) or 0
    observed = REGISTRY.get_sample_value("dibao_outbox_publish_latency_seconds_count", labels) or 0
    try:
        assert await relay.refresh_backlog() == 3
        assert await relay.drain() == 3
        assert await relay.refresh_backlog() == 0
    finally:
        await relay.stop()

    assert await pending() == 0
    # Published rows are gone, not kept: Kafka and the audit log hold the history.
    assert await _rows_in_outbox(engine) == 0
    records = await read_records(stack, kafka_topic)
    assert [Envelope.from_record(r) for r in records] == sent
    assert all(r.key == b"h-1" for r in records)
    assert dict(records[0].headers)["content-type"] == b"application/protobuf"
    assert REGISTRY.get_sample_value("dibao_outbox_published_total", labels) == before + 3
    assert (
        REGISTRY.get_sample_value("dibao_outbox_publish_latency_seconds_count", labels)
        == observed + 3
    )
    assert REGISTRY.get_sample_value("dibao_outbox_backlog", labels) == 0


# The first relay is cancelled wherever it happens to be, as a kill would stop it: a
# connection it had checked out (between the pool and a batch) is then never handed back,
# and the garbage collector reclaims it later, which pytest reports as an unraisable
# exception from SQLAlchemy's finalizer (seen once in the whole suite under load, 1 Dec
# 2026). That is the kill, not a fault of the relays that carry on; what the test proves
# is below.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.slow
async def test_killed_relays_lose_nothing_and_keep_each_keys_order(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    committed = await commit_events(kafka_topic, events=1000, keys=20)

    # 1. A relay cancelled wherever it happens to be (sending, awaiting acks, marking),
    # once it has published 200 events and before it has claimed 500: unbounded, a fast
    # machine's relay published all 1000 between two looks at the outbox, and the crashing
    # relay below then waited for a second batch for ever (CI, 1 Dec 2026: the suite hung
    # here until its 90 minutes ran out).
    first = StallsAfterClaiming(
        engine, stack.kafka_bootstrap, name="test-kill", batch_size=50, rows=500
    )
    task = asyncio.create_task(first.run_forever())

    async def some_published() -> bool:
        return await pending() <= 800

    await eventually(some_published, what="the first relay to publish 200 events")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.stop()

    # 2. A relay that dies after the broker acknowledged a batch, before marking it.
    crashing = CrashAfterAck(
        engine, stack.kafka_bootstrap, name="test-kill", batch_size=50, crash_on_batch=2
    )
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(crashing.run_forever(), 60)
    assert crashing.acked_but_unmarked > 0
    left = await pending()
    assert 0 < left < 800

    # 3. Three relays restarted together finish the work.
    relays = [
        OutboxRelay(engine, stack.kafka_bootstrap, name=f"test-kill-{i}", batch_size=64)
        for i in range(3)
    ]
    for relay in relays:
        await relay.start()

    async def drained() -> bool:
        return await pending() == 0

    try:
        await eventually(drained, what="the restarted relays to drain the outbox")
    finally:
        for relay in relays:
            await relay.stop()

    records = await read_records(stack, kafka_topic)
    # At least once on the wire: the acknowledged-but-unmarked batch went out twice.
    assert len(records) >= 1000 + crashing.acked_but_unmarked
    assert applied_order(records) == committed


@pytest.mark.slow
async def test_a_relay_process_killed_with_sigkill_loses_nothing(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    committed = await commit_events(kafka_topic, events=1000, keys=20)
    # The test holds the last 500 rows, as another relay would (the process's claims skip
    # them), so that work is left when the process is killed: unheld, a fast machine's
    # relay could publish all 1000 between two looks at the outbox (here 700 go in about
    # 0.5 s), and the test then failed on a process that had finished.
    held = await engine.connect()
    try:
        await held.begin()
        # (FOR UPDATE beside OFFSET would lock the rows skipped too.)
        locked = await held.execute(
            text(
                "SELECT id FROM outbox_message WHERE id IN"
                " (SELECT id FROM outbox_message ORDER BY id OFFSET 500) FOR UPDATE"
            )
        )
        assert len(locked.all()) == 500
        url = engine.url.render_as_string(hide_password=False)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dibao_common.messaging.relay",
            "--database-url",
            url,
            "--bootstrap",
            stack.kafka_bootstrap,
            "--batch-size",
            "7",
            "--name",
            "test-sigkill",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:

            async def under_way() -> bool:
                return await pending() <= 700

            await eventually(under_way, timeout_s=60, what="the relay process to publish")
        finally:
            os.kill(process.pid, signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
    finally:
        await held.close()  # rolls back: the held rows are free
    assert await pending() >= 500, "the process published rows the test held"

    relay = OutboxRelay(engine, stack.kafka_bootstrap, name="test-sigkill-after")
    try:
        await relay.drain()
    finally:
        await relay.stop()
    assert applied_order(await read_records(stack, kafka_topic)) == committed


@pytest.mark.slow
async def test_two_relays_at_once_keep_each_keys_order(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    committed = await commit_events(kafka_topic, events=3000, keys=400, per_transaction=500)
    relays = [
        OutboxRelay(engine, stack.kafka_bootstrap, name=f"test-pair-{i}", batch_size=100)
        for i in range(2)
    ]
    for relay in relays:
        await relay.start()

    async def drained() -> bool:
        return await pending() == 0

    try:
        await eventually(drained, what="two relays to drain the outbox")
    finally:
        for relay in relays:
            await relay.stop()
    records = await read_records(stack, kafka_topic)
    assert applied_order(records) == committed
    # No failure happened, so nothing was sent twice.
    assert len(records) == 3000


async def test_a_relay_never_overtakes_another_holding_a_keys_earlier_rows(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    committed = await commit_events(kafka_topic, events=200, keys=10)
    slow = SlowAfterClaim(engine, stack.kafka_bootstrap, name="test-slow", batch_size=50)
    fast = OutboxRelay(engine, stack.kafka_bootstrap, name="test-fast", batch_size=60)
    stalled = asyncio.create_task(slow.publish_batch())
    try:
        await asyncio.wait_for(slow.claimed.wait(), 30)
        # SKIP LOCKED hands the fast relay rows 51-110, whose keys all have earlier rows
        # in the stalled relay's hands: it must leave them all for later.
        skipped = await fast.publish_batch()
        assert (skipped.claimed, skipped.published, skipped.deferred) == (60, 0, 60)
        slow.go_on.set()
        assert (await stalled).published == 50
        assert await fast.drain() == 150
    finally:
        slow.go_on.set()
        await slow.stop()
        await fast.stop()
    assert await pending() == 0
    assert applied_order(await read_records(stack, kafka_topic)) == committed


async def test_a_refused_event_holds_back_its_key_only(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topic: str,
) -> None:
    async with sessionmaker() as session, session.begin():
        ok_before = await enqueue(
            session, ApplicationAccepted(household_id="a"), key="a", source="s", topic=kafka_topic
        )
        too_big = await enqueue(
            session,
            ApplicationSubmitted(household_id="a", statement="x" * 20_000),
            key="a",
            source="s",
            topic=kafka_topic,
        )
        held_back = await enqueue(
            session, ApplicationAccepted(household_id="a"), key="a", source="s", topic=kafka_topic
        )
        other_key = await enqueue(
            session, ApplicationAccepted(household_id="b"), key="b", source="s", topic=kafka_topic
        )
    relay = OutboxRelay(
        engine,
        stack.kafka_bootstrap,
        name="test-refused",
        producer_overrides={"max_request_size": 10_000},
    )
    try:
        result = await relay.publish_batch()
    finally:
        await relay.stop()
    assert (result.claimed, result.published, result.failed) == (4, 2, 1)

    records = await read_records(stack, kafka_topic)
    assert sorted(str(Envelope.from_record(r).ce_id) for r in records) == sorted(
        [str(ok_before.ce_id), str(other_key.ce_id)]
    )
    async with engine.connect() as conn:
        rows = {
            row.ce_id: row
            for row in await conn.execute(
                text("SELECT ce_id, published_at, attempts, last_error FROM outbox_message")
            )
        }
    assert rows[too_big.ce_id].published_at is None
    assert rows[too_big.ce_id].attempts == 1
    assert "MessageSizeTooLarge" in rows[too_big.ce_id].last_error
    assert rows[held_back.ce_id].published_at is None
    assert rows[held_back.ce_id].attempts == 0


async def test_a_pipelined_relay_sends_other_keys_and_holds_back_only_the_held_one(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
) -> None:
    # Rows 1-10 are household 0's, and a stalled relay holds them; then 600 rows of
    # households 0-9. A relay draining in batches (each claimed while the one before is
    # sent, and deleted while the next is sent) must publish everything of households 1-9
    # and nothing of household 0 until the stalled relay is done: then all, in order.
    first = await commit_events(kafka_topic, events=10, keys=1)
    then = await commit_events(kafka_topic, events=600, keys=10, per_transaction=100)
    committed = {key: first.get(key, []) + then[key] for key in then}
    held = "household-0000"
    slow = SlowAfterClaim(engine, stack.kafka_bootstrap, name="test-held", batch_size=10)
    fast = OutboxRelay(
        engine, stack.kafka_bootstrap, name="test-pipelined", batch_size=100, poll_interval_s=0.02
    )
    stalled = asyncio.create_task(slow.publish_batch())
    draining: asyncio.Task[int] | None = None
    try:
        await asyncio.wait_for(slow.claimed.wait(), 30)
        draining = asyncio.create_task(fast.drain(timeout_s=120))

        async def others_published() -> bool:
            async with engine.connect() as conn:
                left = await conn.execute(
                    text("SELECT count(*) FROM outbox_message WHERE key <> :held"),
                    {"held": held},
                )
                return int(left.scalar_one()) == 0

        await eventually(others_published, what="households 1-9 to be published")
        on_wire = await read_records(stack, kafka_topic)
        assert len(on_wire) == 540
        assert held.encode() not in {r.key for r in on_wire}
        assert await _rows_in_outbox(engine) == 70
        # Let go while the fast relay goes round claiming and deferring household 0.
        slow.go_on.set()
        assert (await stalled).published == 10
        assert await draining == 600
    finally:
        slow.go_on.set()
        if draining is not None and not draining.done():
            draining.cancel()
        await slow.stop()
        await fast.stop()
    assert await _rows_in_outbox(engine) == 0
    records = await read_records(stack, kafka_topic)
    assert len(records) == 610
    assert applied_order(records) == committed


async def test_drain_is_not_done_while_its_last_batch_held_a_row_back(
    stack: TestStack,
    engine: AsyncEngine,
    kafka_topic: str,
    commit_events: CommitEvents,
) -> None:
    # A stalled relay holds household 0's first row; the draining relay's one batch
    # claims household 0's second row (held back) and household 1's (sent). The next
    # claim, made while that batch still locks the held row, finds nothing: that is not
    # a drained outbox, and drain must go on until the held row is out too.
    first = await commit_events(kafka_topic, events=1, keys=1)
    then = await commit_events(kafka_topic, events=2, keys=2)
    slow = SlowAfterClaim(engine, stack.kafka_bootstrap, name="test-held-last", batch_size=1)
    fast = OutboxRelay(
        engine, stack.kafka_bootstrap, name="test-drain-held", batch_size=2, poll_interval_s=0.02
    )
    stalled = asyncio.create_task(slow.publish_batch())
    try:
        await asyncio.wait_for(slow.claimed.wait(), 30)
        with pytest.raises(TimeoutError):
            await fast.drain(timeout_s=1.0)
        on_wire = await read_records(stack, kafka_topic)
        assert [r.key for r in on_wire] == [b"household-0001"]
        slow.go_on.set()
        assert (await stalled).published == 1
        assert await fast.drain(timeout_s=30) == 1
    finally:
        slow.go_on.set()
        await slow.stop()
        await fast.stop()
    assert await _rows_in_outbox(engine) == 0
    records = await read_records(stack, kafka_topic)
    assert applied_order(records) == {
        "household-0000": first["household-0000"] + then["household-0000"],
        "household-0001": then["household-0001"],
    }


async def test_a_row_committed_late_below_the_claimed_ones_is_published(
    stack: TestStack,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    kafka_topic: str,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    # The relay claims after its previous batch while all rows below are its own; a row
    # whose transaction took its id first but committed last must still go out.
    late_session = sessionmaker()
    await late_session.begin()
    late = await enqueue(
        late_session,
        ApplicationAccepted(household_id="late"),
        key="late",
        source="s",
        topic=kafka_topic,
    )
    try:
        await commit_events(kafka_topic, events=2000, keys=40, per_transaction=200)
        # The late row commits while the relay is under way, stalled after claiming 500
        # rows: once it had published 500 as before, a fast machine's relay could publish
        # the other 1500 before the commit, and the late row was then found by a claim
        # from the beginning, not below the claimed ones (the test passed, proving less).
        relay = StallsAfterClaiming(
            engine, stack.kafka_bootstrap, name="test-late", batch_size=50, rows=500
        )
        await relay.start()
        try:
            await asyncio.wait_for(relay.stalled.wait(), 30)
            assert await pending() >= 1500
            await late_session.commit()
            relay.go_on.set()

            async def drained() -> bool:
                return await pending() == 0

            await eventually(drained, what="the late row to be published")
        finally:
            relay.go_on.set()
            await relay.stop()
    finally:
        await late_session.close()
    records = await read_records(stack, kafka_topic)
    assert str(late.ce_id) in {str(Envelope.from_record(r).ce_id) for r in records}
    assert len(records) == 2001
