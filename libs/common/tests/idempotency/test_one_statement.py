"""A keyed request whose writes go as one statement with its answer (ADR 0013)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.db import make_sessionmaker
from dibao_common.idempotency import FingerprintKeys, IdempotencyConfig, IdempotentRequest
from dibao_common.messaging.dlq import read_topic
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.service_env import fingerprint_key_for_tests
from dibao_common.testing.stack import TestStack

from .http_app import count

pytestmark = pytest.mark.postgres

URL = "/one-statement/payments"
EFFECTS = "SELECT count(*) FROM kit_http_test.effect WHERE reference = :r"
RECORDS = "SELECT count(*) FROM idempotency_record WHERE key = :key"
OUTBOX = "SELECT ce_id, payload FROM outbox_message WHERE ce_source = 'test'"


async def _events(engine: AsyncEngine, stack: TestStack, reference: str) -> int:
    """The test's events with this reference, pending in the outbox or, should a service's
    relay be running on the same database, already published (counted once by ce_id)."""
    ids: set[str] = set()
    async with engine.connect() as conn:
        for row in await conn.execute(text(OUTBOX)):
            if ApplicationAccepted.FromString(row.payload).application_id == reference:
                ids.add(str(row.ce_id))
    for record in await read_topic(stack.kafka_bootstrap, "dibao.intake.v1"):
        ours = record.header("ce_source") == "test"
        if ours and ApplicationAccepted.FromString(record.value or b"").application_id == reference:
            ids.add(record.header("ce_id") or "")
    return len(ids)


async def _written(
    engine: AsyncEngine, stack: TestStack, reference: str, key: str
) -> tuple[int, int, int]:
    return (
        await count(engine, EFFECTS, r=reference),
        await _events(engine, stack, reference),
        await count(engine, RECORDS, key=key),
    )


async def test_the_writes_the_events_and_the_answer_go_in_together_once(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine, stack: TestStack
) -> None:
    reference, key = f"OS-{uuid.uuid4()}", str(uuid.uuid4())
    body = {"reference": reference, "amount_fen": 100}
    first = await client.post(URL, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert await _written(engine, stack, reference, key) == (1, 1, 1)
    # The key is checked when the answer is stored: a retry runs the work again, and
    # its statement, failing on the key, writes nothing.
    ran = app.state.inside
    again = await client.post(URL, json=body, headers={"Idempotency-Key": key})
    assert app.state.inside == ran + 1
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await _written(engine, stack, reference, key) == (1, 1, 1)
    reused = await client.post(
        URL, json={"reference": reference, "amount_fen": 7}, headers={"Idempotency-Key": key}
    )
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert await _written(engine, stack, reference, key) == (1, 1, 1)


@pytest.mark.parametrize(
    ("fail_with", "status"), [("conflict", 409), ("broken-write", 500)], ids=["work", "statement"]
)
async def test_a_request_that_fails_writes_nothing_and_frees_its_key(
    client: AsyncClient, engine: AsyncEngine, stack: TestStack, fail_with: str, status: int
) -> None:
    """Whether the work raises before anything is sent, or one held write breaks the
    statement (a NOT NULL violation): no effect, no event, no answer; a retry runs."""
    reference, key = f"OS-{uuid.uuid4()}", str(uuid.uuid4())
    failed = await client.post(
        URL,
        json={"reference": reference, "amount_fen": 1, "fail_with": fail_with},
        headers={"Idempotency-Key": key},
    )
    assert failed.status_code == status, failed.text
    assert await _written(engine, stack, reference, key) == (0, 0, 0)
    # The key is free: the same key with a request that works runs and is stored.
    retried = await client.post(
        URL, json={"reference": reference, "amount_fen": 1}, headers={"Idempotency-Key": key}
    )
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert await _written(engine, stack, reference, key) == (1, 1, 1)


async def test_concurrent_duplicates_both_run_and_one_write_stands(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine, stack: TestStack
) -> None:
    """No lock is held across the work: both duplicates get past the lookup and run; the
    second statement fails on the key, writes nothing, and answers the first's answer."""
    reference, key = f"OS-{uuid.uuid4()}", str(uuid.uuid4())
    body = {"reference": reference, "amount_fen": 5}
    app.state.gate = asyncio.Event()
    app.state.inside = 0
    requests = [
        asyncio.create_task(client.post(URL, json=body, headers={"Idempotency-Key": key}))
        for _ in range(2)
    ]

    async def both_inside() -> bool:
        return bool(app.state.inside == 2)

    # Bounded at 30 s (it was 5: two requests through a loaded machine's pool).
    await eventually(both_inside, timeout_s=30, what="both duplicates inside the work at once")
    app.state.gate.set()
    first, second = await asyncio.wait_for(asyncio.gather(*requests), 30)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.content == second.content
    replayed = sorted(str(r.headers.get("idempotent-replayed")) for r in (first, second))
    assert replayed == ["None", "true"]
    assert await _written(engine, stack, reference, key) == (1, 1, 1)


async def test_a_session_in_a_transaction_is_refused(engine: AsyncEngine) -> None:
    config = IdempotencyConfig(FingerprintKeys((fingerprint_key_for_tests(),)))
    request = IdempotentRequest(
        key="k",
        fingerprint=config.fingerprint("POST", URL, b"{}"),
        request=None,
        config=config,
        scope="test",
    )

    async def handle() -> Response:
        raise AssertionError("not run")

    async with make_sessionmaker(engine)() as session, session.begin():
        await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="autocommit"):
            await request.respond_in_one_statement(session, handle)
