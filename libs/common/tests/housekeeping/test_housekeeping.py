"""Housekeeping of idempotency_record and webhook_message on the real intake database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from structlog.testing import capture_logs

from dibao_common.app import build_app
from dibao_common.bank import BankSettings
from dibao_common.clock import FrozenClock
from dibao_common.housekeeping import (
    WEBHOOK_MARGIN,
    Housekeeping,
    Purged,
    purge_expired,
    start_housekeeping,
    stop_housekeeping,
)
from dibao_common.settings import CommonSettings
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack

from .conftest import NOW, SCOPE, WEBHOOK_PREFIX

pytestmark = pytest.mark.postgres

RETENTION = timedelta(days=7)
TOLERANCE = timedelta(seconds=300)
RECORDS = "SELECT key FROM idempotency_record WHERE scope = :scope ORDER BY key"
WEBHOOKS = "SELECT webhook_id FROM webhook_message WHERE starts_with(webhook_id, :p) ORDER BY 1"
FAILED = "housekeeping failed, retrying next interval"
KEPT_RECORDS = ["edge", "in-flight", "recent"]
KEPT_WEBHOOKS = [f"{WEBHOOK_PREFIX}inside-margin", f"{WEBHOOK_PREFIX}recent"]


async def _insert_record(
    conn: AsyncConnection, key: str, completed_at: datetime | None, claimed_at: datetime
) -> None:
    completed = completed_at is not None
    await conn.execute(
        sa.text(
            "INSERT INTO idempotency_record (scope, key, fingerprint, state, claim_token,"
            " claimed_at, completed_at, response_status, response_headers, response_body)"
            " VALUES (:scope, :key, 'f', :state, :token, :claimed_at, :completed_at,"
            " :status, CAST(:headers AS jsonb), :body)"
        ),
        {
            "scope": SCOPE,
            "key": key,
            "state": "completed" if completed else "in_flight",
            "token": uuid.uuid4(),
            "claimed_at": claimed_at,
            "completed_at": completed_at,
            "status": 201 if completed else None,
            "headers": "{}" if completed else None,
            "body": b"{}" if completed else None,
        },
    )


async def _insert_webhook(conn: AsyncConnection, webhook_id: str, signed_at: datetime) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO webhook_message (webhook_id, signed_at, received_at)"
            " VALUES (:id, :signed_at, :signed_at)"
        ),
        {"id": f"{WEBHOOK_PREFIX}{webhook_id}", "signed_at": signed_at},
    )


async def _seed(engine: AsyncEngine, *, expired: int = 12) -> None:
    """``expired`` answers past the retention and one id past tolerance + margin; the
    rows just inside each limit, a recent answer and an old claim row, which stay."""
    cutoff = NOW - RETENTION
    async with engine.begin() as conn:
        for i in range(expired):
            old = cutoff - timedelta(seconds=1 + i)
            await _insert_record(conn, f"old-{i:03d}", old, old)
        await _insert_record(conn, "edge", cutoff, cutoff)
        await _insert_record(conn, "recent", NOW - timedelta(hours=1), NOW - timedelta(hours=1))
        await _insert_record(conn, "in-flight", None, NOW - timedelta(days=30))
        webhook_cutoff = NOW - TOLERANCE - WEBHOOK_MARGIN
        await _insert_webhook(conn, "expired", webhook_cutoff - timedelta(seconds=1))
        # Past the tolerance (refused anyway) but inside the margin: kept a while longer.
        await _insert_webhook(conn, "inside-margin", NOW - TOLERANCE - timedelta(seconds=1))
        await _insert_webhook(conn, "recent", NOW - timedelta(seconds=10))


async def _rows(engine: AsyncEngine) -> tuple[list[str], list[str]]:
    async with engine.connect() as conn:
        records = (await conn.execute(sa.text(RECORDS), {"scope": SCOPE})).scalars().all()
        hooks = (await conn.execute(sa.text(WEBHOOKS), {"p": WEBHOOK_PREFIX})).scalars().all()
    return list(records), list(hooks)


async def test_expired_rows_are_deleted_in_batches_and_the_rest_kept(engine: AsyncEngine) -> None:
    await _seed(engine)
    housekeeping = Housekeeping(RETENTION, TOLERANCE, batch_size=5)
    purged = await purge_expired(engine, housekeeping, now=NOW)
    # Answers: batches of 5, 5 and 2; webhook ids: one batch of 1.
    assert purged == Purged(idempotency_records=12, webhook_messages=1, batches=4)
    assert await _rows(engine) == (KEPT_RECORDS, KEPT_WEBHOOKS)
    # A full last batch is followed by one that finds nothing.
    assert await purge_expired(engine, housekeeping, now=NOW) == Purged(batches=2)


async def test_a_batch_as_large_as_the_backlog_is_followed_by_an_empty_one(
    engine: AsyncEngine,
) -> None:
    await _seed(engine, expired=10)
    purged = await purge_expired(engine, Housekeeping(RETENTION, TOLERANCE, batch_size=5), now=NOW)
    assert purged == Purged(idempotency_records=10, webhook_messages=1, batches=4)


async def test_webhook_ids_are_left_alone_without_bank_verification(engine: AsyncEngine) -> None:
    await _seed(engine)
    purged = await purge_expired(engine, Housekeeping(RETENTION), now=NOW)
    assert purged == Purged(idempotency_records=12, webhook_messages=0, batches=1)
    records, hooks = await _rows(engine)
    assert records == KEPT_RECORDS
    assert f"{WEBHOOK_PREFIX}expired" in hooks


async def test_rows_another_transaction_holds_are_skipped_not_waited_for(
    engine: AsyncEngine,
) -> None:
    await _seed(engine, expired=3)
    async with engine.connect() as holder:
        await holder.execute(
            sa.text(
                "SELECT 1 FROM idempotency_record WHERE scope = :s AND key = 'old-000' FOR UPDATE"
            ),
            {"s": SCOPE},
        )
        purged = await asyncio.wait_for(
            purge_expired(engine, Housekeeping(RETENTION, TOLERANCE), now=NOW), 10
        )
        assert purged.idempotency_records == 2
        await holder.rollback()
    assert (await _rows(engine))[0] == ["edge", "in-flight", "old-000", "recent"]


def _settings(stack: TestStack, interval_s: float) -> CommonSettings:
    return CommonSettings(
        service_name="kit-housekeeping",
        database_url=stack.database_url("intake"),
        kafka_bootstrap=stack.kafka_bootstrap,
        **common_secret_values(),
        housekeeping_interval_s=interval_s,
    )


def _housekeeping_tasks() -> set[asyncio.Task[Any]]:
    """The housekeeping tasks running (a session-scoped app of another suite's may have
    one of its own: the tests compare with what ran before they started theirs)."""
    return {t for t in asyncio.all_tasks() if t.get_name() == "dibao-housekeeping"}


async def test_the_app_purges_on_its_interval_by_its_clock_and_stops_with_it(
    stack: TestStack, engine: AsyncEngine, hk_clock: FrozenClock, bank_settings: BankSettings
) -> None:
    await _seed(engine)
    app = build_app(
        _settings(stack, 0.05),
        title="kit housekeeping",
        description="test app",
        bank=bank_settings,  # its tolerance, 300 s, decides which webhook ids go
        clock=hk_clock,
    )
    others = _housekeeping_tasks()
    with capture_logs() as logs:
        async with app.router.lifespan_context(app):
            assert len(_housekeeping_tasks() - others) == 1

            async def purged() -> bool:
                return await _rows(engine) == (KEPT_RECORDS, KEPT_WEBHOOKS)

            await eventually(purged, timeout_s=10, what="the expired rows to be purged")
        assert _housekeeping_tasks() - others == set()
    reports = [e for e in logs if e["event"] == "housekeeping purged"]
    assert reports[0]["idempotency_records"] >= 12
    assert reports[0]["webhook_messages"] >= 1
    assert reports[0]["log_level"] == "info"


async def test_an_interval_of_zero_runs_no_housekeeping(
    stack: TestStack, engine: AsyncEngine, hk_clock: FrozenClock
) -> None:
    await _seed(engine)
    app = build_app(_settings(stack, 0), title="kit", description="test app", clock=hk_clock)
    others = _housekeeping_tasks()
    async with app.router.lifespan_context(app):
        assert _housekeeping_tasks() - others == set()
        await asyncio.sleep(0.2)
    assert len((await _rows(engine))[0]) == 12 + len(KEPT_RECORDS)


@pytest.fixture
async def impatient_engine(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    """An engine whose statements give up after 100 ms waiting for a lock."""
    engine = create_async_engine(
        stack.database_url("intake"),
        connect_args={"server_settings": {"timezone": "UTC", "lock_timeout": "100ms"}},
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def _lock_tables(conn: AsyncConnection) -> None:
    await conn.execute(
        sa.text("LOCK TABLE idempotency_record, webhook_message IN ACCESS EXCLUSIVE MODE")
    )


async def test_a_failing_pass_is_logged_and_retried_at_the_next_interval(
    engine: AsyncEngine, impatient_engine: AsyncEngine
) -> None:
    await _seed(engine)
    housekeeping = Housekeeping(RETENTION, TOLERANCE)
    with capture_logs() as logs:
        async with engine.connect() as holder:
            await _lock_tables(holder)
            task = start_housekeeping(
                impatient_engine, housekeeping, now=lambda: NOW, interval_s=0.05
            )
            assert task is not None

            async def failed_twice() -> bool:
                return len([e for e in logs if e["event"] == FAILED]) >= 2

            await eventually(failed_twice, timeout_s=10, what="two failed passes")
            assert not task.done()
            await holder.rollback()

        async def purged() -> bool:
            return await _rows(engine) == (KEPT_RECORDS, KEPT_WEBHOOKS)

        await eventually(purged, timeout_s=10, what="a pass after the lock is released")
        await stop_housekeeping(task)
    assert task.cancelled()
    failure = next(e for e in logs if e["event"] == FAILED)
    assert "lock timeout" in failure["error"]
    assert failure["log_level"] == "warning"
    assert any(e["event"] == "housekeeping purged" for e in logs)


async def test_stopping_cancels_a_pass_waiting_on_the_database(engine: AsyncEngine) -> None:
    await _seed(engine)
    async with engine.connect() as holder:
        await _lock_tables(holder)
        task = start_housekeeping(
            engine, Housekeeping(RETENTION, TOLERANCE), now=lambda: NOW, interval_s=0.05
        )

        async def waiting() -> bool:
            async with engine.connect() as conn:
                found = await conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND starts_with(query, 'DELETE FROM idempotency_record')"
                    )
                )
                return bool(found.scalar_one())

        await eventually(waiting, timeout_s=10, what="the purge to wait for the lock")
        await asyncio.wait_for(stop_housekeeping(task), 5)
        assert task is not None
        assert task.cancelled()
        await eventually(lambda: _negated(waiting), timeout_s=5, what="the statement to end")
        await holder.rollback()
    # Nothing was deleted: the cancelled batch rolled back.
    assert len((await _rows(engine))[0]) == 12 + len(KEPT_RECORDS)


async def _negated(check: Callable[[], Awaitable[bool]]) -> bool:
    return not await check()


@pytest.fixture
async def undeleting_engine(stack: TestStack, engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An engine running as a role that may read the kit tables but not delete from them
    (as the audit service's runtime role may do neither)."""
    role = f"{stack.db_prefix}_housekeeping_test"
    tables = "idempotency_record, webhook_message"
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        await conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
        await conn.execute(sa.text(f'GRANT "{role}" TO CURRENT_USER'))
        await conn.execute(sa.text(f'GRANT SELECT ON {tables} TO "{role}"'))
    limited = create_async_engine(
        stack.database_url("intake"),
        connect_args={"server_settings": {"timezone": "UTC", "role": role}},
    )
    try:
        yield limited
    finally:
        await limited.dispose()
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'REVOKE ALL ON {tables} FROM "{role}"'))
            await conn.execute(sa.text(f'DROP ROLE "{role}"'))


async def test_tables_the_role_may_not_delete_from_are_skipped(
    engine: AsyncEngine, undeleting_engine: AsyncEngine
) -> None:
    await _seed(engine)
    purged = await purge_expired(undeleting_engine, Housekeeping(RETENTION, TOLERANCE), now=NOW)
    assert purged == Purged(skipped=("idempotency_record", "webhook_message"))
    purged = await purge_expired(undeleting_engine, Housekeeping(RETENTION), now=NOW)
    assert purged == Purged(skipped=("idempotency_record",))
    records, hooks = await _rows(engine)
    assert len(records) == 12 + len(KEPT_RECORDS)
    assert len(hooks) == 1 + len(KEPT_WEBHOOKS)
