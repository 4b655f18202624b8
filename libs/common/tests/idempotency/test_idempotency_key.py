"""Idempotency-Key: 400 missing, 409 in flight, 422 reused, the stored answer otherwise."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.clock import FrozenClock
from dibao_common.db import make_sessionmaker
from dibao_common.errors import PROBLEM_MEDIA_TYPE, ValidationProblem
from dibao_common.idempotency import lock_id, request_digest, request_fingerprint
from dibao_common.messaging.outbox import enqueue, held_rows
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.service_env import fingerprint_key_for_tests

from .http_app import count

pytestmark = pytest.mark.postgres

EFFECTS = "SELECT count(*) FROM kit_http_test.effect"
RECORDS = "SELECT count(*) FROM idempotency_record WHERE key = :key"


def _key() -> str:
    return str(uuid.uuid4())


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://dibao.gov.cn/problems/{slug}"
    return body


async def test_first_request_runs_and_a_retry_gets_the_stored_answer(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    body = {"reference": "P-1", "amount_fen": 74500}
    first = await client.post("/payments", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = await client.post("/payments", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["content-type"] == "application/json"
        assert again.headers["idempotent-replayed"] == "true"
        assert "x-not-stored" not in again.headers
    assert await count(engine, EFFECTS) == 1
    assert await count(engine, RECORDS, key=key) == 1


async def test_missing_key_is_400(client: AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/payments", json={"reference": "P-1", "amount_fen": 1})
    _problem(response, 400, "idempotency-key-missing")
    assert await count(engine, EFFECTS) == 0


@pytest.mark.parametrize("key", [b"", b"has space", b"x" * 256, "中文".encode()])
async def test_malformed_key_is_400(client: AsyncClient, engine: AsyncEngine, key: bytes) -> None:
    headers = {b"Idempotency-Key": key}
    response = await client.post(
        "/payments", json={"reference": "P-1", "amount_fen": 1}, headers=headers
    )
    _problem(response, 400, "idempotency-key-invalid")
    assert await count(engine, EFFECTS) == 0


async def test_key_reused_with_another_body_is_422(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    headers = {"Idempotency-Key": key}
    first = await client.post(
        "/payments", json={"reference": "P-1", "amount_fen": 100}, headers=headers
    )
    assert first.status_code == 201
    other = await client.post(
        "/payments", json={"reference": "P-1", "amount_fen": 101}, headers=headers
    )
    reused = _problem(other, 422, "idempotency-key-reused")
    # Every 422 is a ValidationProblem as the OpenAPI declares it, errors[] included.
    ValidationProblem.model_validate(reused)
    assert [(e["pointer"], e["code"]) for e in reused["errors"]] == [
        ("/header/Idempotency-Key", "idempotency_key_reused")
    ]
    # Same body, another route: another request too.
    elsewhere = await client.post(
        "/other-payments", json={"reference": "P-1", "amount_fen": 100}, headers=headers
    )
    _problem(elsewhere, 422, "idempotency-key-reused")
    # Same body and route, another query string: another request too.
    queried = await client.post(
        "/payments?dry_run=1", json={"reference": "P-1", "amount_fen": 100}, headers=headers
    )
    _problem(queried, 422, "idempotency-key-reused")
    assert await count(engine, EFFECTS) == 1


async def test_a_concurrent_duplicate_is_409_in_flight(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    headers = {"Idempotency-Key": key}
    body = {"reference": "P-2", "amount_fen": 500}
    app.state.gate = asyncio.Event()
    first = asyncio.create_task(client.post("/payments", json=body, headers=headers))
    await asyncio.wait_for(app.state.entered.wait(), 10)
    duplicate = await client.post("/payments", json=body, headers=headers)
    problem = _problem(duplicate, 409, "idempotency-key-in-flight")
    assert problem["title"] == "Request in flight"
    assert duplicate.headers["retry-after"] == "1"
    app.state.gate.set()
    done = await asyncio.wait_for(first, 10)
    assert done.status_code == 201
    replay = await client.post("/payments", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.content == done.content
    assert await count(engine, EFFECTS) == 1


async def test_many_simultaneous_duplicates_run_once(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    body = {"reference": "P-3", "amount_fen": 500}
    responses = await asyncio.gather(
        *(client.post("/payments", json=body, headers={"Idempotency-Key": key}) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    created = {r.content for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert await count(engine, EFFECTS) == 1


async def test_a_failed_request_releases_its_key(client: AsyncClient, engine: AsyncEngine) -> None:
    key = _key()
    headers = {"Idempotency-Key": key}
    failed = await client.post(
        "/payments",
        json={"reference": "P-4", "amount_fen": 1, "fail_with": "conflict"},
        headers=headers,
    )
    _problem(failed, 409, "payment-settled")
    crashed = await client.post(
        "/payments",
        json={"reference": "P-4", "amount_fen": 1, "fail_with": "crash"},
        headers=headers,
    )
    # A different body from the first attempt is fine: nothing was kept of it.
    _problem(crashed, 500, "internal-error")
    assert await count(engine, EFFECTS) == 0
    assert await count(engine, RECORDS, key=key) == 0
    ok = await client.post("/payments", json={"reference": "P-4", "amount_fen": 1}, headers=headers)
    assert ok.status_code == 201
    assert await count(engine, EFFECTS) == 1


async def _lock_holder(engine: AsyncEngine, scope: str, key: str) -> int | None:
    """The backend holding a key's advisory lock (pg_locks splits a bigint in two oids)."""
    unsigned = lock_id(scope, key) & 0xFFFF_FFFF_FFFF_FFFF
    async with engine.connect() as conn:
        row = await conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"
                " AND objsubid = 1"
            ),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF},
        )
        pid = row.scalar_one_or_none()
    return None if pid is None else int(pid)


async def test_a_holder_whose_connection_dies_frees_the_key_at_once(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine
) -> None:
    # A process killed mid-request leaves no claim behind: its transaction, and the lock
    # with it, end with its connection. The retry runs at once, and only it commits.
    key = _key()
    headers = {"Idempotency-Key": key}
    body = {"reference": "P-5", "amount_fen": 9}
    app.state.gate = asyncio.Event()
    stuck = asyncio.create_task(client.post("/payments", json=body, headers=headers))
    await asyncio.wait_for(app.state.entered.wait(), 10)
    holder = await _lock_holder(engine, "anonymous", key)
    assert holder is not None
    _problem(
        await client.post("/payments", json=body, headers=headers), 409, "idempotency-key-in-flight"
    )
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
    gate, app.state.gate = app.state.gate, None
    second = await client.post("/payments", json=body, headers=headers)
    assert second.status_code == 201, second.text
    gate.set()
    late = await asyncio.wait_for(stuck, 10)
    # Its connection gone, the first request is told to retry (503 with Retry-After).
    _problem(late, 503, "database-unavailable")
    assert late.headers["retry-after"] == "5"
    assert await count(engine, EFFECTS) == 1
    replay = await client.post("/payments", json=body, headers=headers)
    assert replay.content == second.content
    assert replay.headers["idempotent-replayed"] == "true"


async def _answer_stored_meanwhile(
    engine: AsyncEngine, clock: FrozenClock, key: str, content: bytes, body: bytes
) -> None:
    """Commit a 201 answer for ``key``, as a twin request that finished first would."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_record (scope, key, fingerprint, state, claim_token,"
                " claimed_at, completed_at, response_status, response_headers, response_body)"
                " VALUES ('anonymous', :key, :fingerprint, 'completed', :token, :now, :now,"
                " 201, CAST(:headers AS jsonb), :body)"
            ),
            {
                "key": key,
                "fingerprint": request_fingerprint(
                    "POST", "/payments", content, key=fingerprint_key_for_tests()
                ),
                "token": uuid.uuid4(),
                "now": clock.now(),
                "headers": '{"content-type": "application/json"}',
                "body": body,
            },
        )


async def test_an_answer_committed_between_the_read_and_the_lock_wins(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    # The claim reads the stored answer and takes the lock in one statement; another
    # request's answer may commit in between. Storing ours then finds it: ours is rolled
    # back with its effects (409, retry), and the retry gets the answer that won.
    key = _key()
    content = b'{"reference":"P-9","amount_fen":12}'
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    app.state.gate = asyncio.Event()
    loser = asyncio.create_task(client.post("/payments", content=content, headers=headers))
    await asyncio.wait_for(app.state.entered.wait(), 10)
    await _answer_stored_meanwhile(engine, clock, key, content, b'{"id": -1, "reference": "P-9"}')
    app.state.gate.set()
    _problem(await asyncio.wait_for(loser, 10), 409, "idempotency-key-in-flight")
    assert await count(engine, EFFECTS) == 0
    retry = await client.post("/payments", content=content, headers=headers)
    assert retry.status_code == 201
    assert retry.content == b'{"id": -1, "reference": "P-9"}'


async def test_a_problem_caused_by_a_twin_that_committed_meanwhile_answers_with_its_answer(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    # As above, but the twin's writes make this run break a rule (the route raises a
    # problem): the client gets the answer stored for its key, not the problem, and what
    # this run wrote before raising is rolled back.
    key = _key()
    content = b'{"reference":"P-10","amount_fen":12,"fail_with":"conflict"}'
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    app.state.gate = asyncio.Event()
    loser = asyncio.create_task(client.post("/payments", content=content, headers=headers))
    await asyncio.wait_for(app.state.entered.wait(), 10)
    await _answer_stored_meanwhile(engine, clock, key, content, b'{"id": -2, "reference": "P-10"}')
    app.state.gate.set()
    answer = await asyncio.wait_for(loser, 10)
    assert answer.status_code == 201, answer.text
    assert answer.content == b'{"id": -2, "reference": "P-10"}'
    assert answer.headers["idempotent-replayed"] == "true"
    assert await count(engine, EFFECTS) == 0
    # Without a stored answer the problem stands, and the key is free again.
    other = {"Idempotency-Key": _key(), "Content-Type": "application/json"}
    _problem(await client.post("/payments", content=content, headers=other), 409, "payment-settled")
    assert await count(engine, EFFECTS) == 0


async def test_a_claim_row_of_an_earlier_release_is_taken_over_once_its_lock_is_free(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    # Releases before ADR 0010 wrote an in-flight row first; its holder is long gone.
    key = _key()
    content = b'{"reference":"P-10","amount_fen":5}'
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_record (scope, key, fingerprint, state, claim_token,"
                " claimed_at) VALUES ('anonymous', :key, :fingerprint, 'in_flight', :token, :now)"
            ),
            {
                "key": key,
                "fingerprint": request_fingerprint(
                    "POST", "/payments", content, key=fingerprint_key_for_tests()
                ),
                "token": uuid.uuid4(),
                "now": clock.now(),
            },
        )
    first = await client.post("/payments", content=content, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/payments", content=content, headers=headers)
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(engine, EFFECTS) == 1
    assert await count(engine, RECORDS, key=key) == 1


async def test_keys_belong_to_their_caller(
    client: AsyncClient, engine: AsyncEngine, token_factory: TokenFactory, clock: FrozenClock
) -> None:
    tokens = token_factory.with_clock(clock.now)
    key = _key()
    body = {"reference": "P-6", "amount_fen": 3}
    alice = tokens.bearer(subject="alice", roles=["finance_officer"], regions=["62"])
    bob = tokens.bearer(subject="bob", roles=["finance_officer"], regions=["62"])
    a1 = await client.post("/my/payments", json=body, headers=alice | {"Idempotency-Key": key})
    b1 = await client.post("/my/payments", json=body, headers=bob | {"Idempotency-Key": key})
    a2 = await client.post("/my/payments", json=body, headers=alice | {"Idempotency-Key": key})
    assert (a1.status_code, b1.status_code, a2.status_code) == (201, 201, 201)
    assert a1.content != b1.content
    assert a2.content == a1.content
    assert await count(engine, EFFECTS) == 2
    assert await count(engine, RECORDS, key=key) == 2


async def test_validation_errors_do_not_claim_the_key(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    bad = await client.post("/payments", json={"reference": ""}, headers={"Idempotency-Key": key})
    _problem(bad, 422, "validation-failed")
    assert await count(engine, RECORDS, key=key) == 0


def test_fingerprint_covers_method_path_and_body() -> None:
    base = request_digest("POST", "/payments", b'{"a":1}')
    assert base == request_digest("post", "/payments", b'{"a":1}')
    assert base != request_digest("PUT", "/payments", b'{"a":1}')
    assert base != request_digest("POST", "/payments/", b'{"a":1}')
    assert base != request_digest("POST", "/payments", b'{"a":2}')
    assert base != request_digest("POST", "/payments", b'{"a":1}', "dry_run=1")
    # Without a query the digest is the one keys were stored with before queries counted
    # (and the plain sha256 that records before keyed fingerprints hold).
    assert base == request_digest("POST", "/payments", b'{"a":1}', "")
    assert (
        base
        == hashlib.sha256(
            b"".join(len(p).to_bytes(8, "big") + p for p in (b"POST", b"/payments", b'{"a":1}'))
        ).digest()
    )
    # Length-prefixed parts: moving bytes between path and body changes the digest.
    assert request_digest("POST", "/a", b"b") != request_digest("POST", "/ab", b"")
    # What is stored is keyed, and differs with the key as with the request.
    key = fingerprint_key_for_tests()
    stored = request_fingerprint("POST", "/payments", b'{"a":1}', key=key)
    assert stored == request_fingerprint("post", "/payments", b'{"a":1}', key=key)
    assert stored != request_fingerprint("POST", "/payments", b'{"a":2}', key=key)
    assert stored != request_fingerprint("POST", "/payments", b'{"a":1}', key=bytes(32))


def _multipart(boundary: str, reference: str, content: bytes, filename: str = "scan.pdf") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="reference"\r\n\r\n'
            f"{reference}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
            "\r\nContent-Type: application/pdf\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


AMOUNTS = "SELECT amount_fen FROM kit_http_test.effect ORDER BY id"


@pytest.mark.parametrize("path", ["/uploads", "/uploads/parsed-here"])
async def test_a_multipart_upload_runs_once_and_a_retry_gets_the_stored_answer(
    client: AsyncClient, engine: AsyncEngine, path: str
) -> None:
    # FastAPI parses the form of /uploads before the dependency runs (the body's stream
    # is then consumed: this was a 500); /uploads/parsed-here reads the form itself.
    key = _key()
    headers = {"Idempotency-Key": key}
    content = b"%PDF-1.4 scan"
    files = {"file": ("scan.pdf", content, "application/pdf")}
    first = await client.post(path, data={"reference": "U-1"}, files=files, headers=headers)
    assert first.status_code == 201, first.text
    # httpx picks a new boundary for each request: the same form is the same request.
    again = await client.post(path, data={"reference": "U-1"}, files=files, headers=headers)
    assert again.status_code == 201, again.text
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(engine, EFFECTS) == 1
    # The route read the whole file after the fingerprint did.
    async with engine.connect() as conn:
        assert (await conn.execute(text(AMOUNTS))).scalars().all() == [len(content)]


@pytest.mark.parametrize(
    ("reference", "content", "filename"),
    [
        ("U-2", b"other content", "scan.pdf"),
        ("U-3", b"%PDF", "scan.pdf"),
        ("U-2", b"%PDF", "b.pdf"),
    ],
)
async def test_a_key_reused_with_another_form_is_422(
    client: AsyncClient, engine: AsyncEngine, reference: str, content: bytes, filename: str
) -> None:
    key = _key()
    first = await client.post(
        "/uploads",
        content=_multipart("first", "U-2", b"%PDF"),
        headers={"Idempotency-Key": key, "Content-Type": "multipart/form-data; boundary=first"},
    )
    assert first.status_code == 201, first.text
    same = await client.post(
        "/uploads",
        content=_multipart("second-boundary", "U-2", b"%PDF"),
        headers={
            "Idempotency-Key": key,
            "Content-Type": "multipart/form-data; boundary=second-boundary",
        },
    )
    assert same.status_code == 201, same.text
    assert same.headers["idempotent-replayed"] == "true"
    other = await client.post(
        "/uploads",
        content=_multipart("first", reference, content, filename),
        headers={"Idempotency-Key": key, "Content-Type": "multipart/form-data; boundary=first"},
    )
    _problem(other, 422, "idempotency-key-reused")
    assert await count(engine, EFFECTS) == 1


async def test_a_urlencoded_form_is_fingerprinted_by_its_fields(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    key = _key()
    headers = {"Idempotency-Key": key}
    first = await client.post(
        "/form-payments", data={"reference": "F-1", "amount_fen": "5"}, headers=headers
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        "/form-payments", data={"reference": "F-1", "amount_fen": "5"}, headers=headers
    )
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post(
        "/form-payments", data={"reference": "F-1", "amount_fen": "6"}, headers=headers
    )
    _problem(other, 422, "idempotency-key-reused")
    assert await count(engine, EFFECTS) == 1


OUTBOX = "SELECT ce_type, payload FROM outbox_message WHERE key = :key ORDER BY id"


async def _outbox(engine: AsyncEngine, key: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(OUTBOX), {"key": key})
        return [ApplicationAccepted.FromString(r.payload).application_id for r in rows]


async def test_the_events_a_keyed_request_enqueues_are_stored_with_its_answer(
    client: AsyncClient, engine: AsyncEngine
) -> None:
    reference = f"EV-{uuid.uuid4()}"
    body = {"reference": reference, "amount_fen": 100}
    headers = {"Idempotency-Key": _key()}
    first = await client.post("/payments", json=body, headers=headers)
    assert first.status_code == 201, first.text
    # Held during the work, written with the answer's statement, committed with both.
    assert await _outbox(engine, reference) == [f"{reference}/1", f"{reference}/2"]
    again = await client.post("/payments", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert await _outbox(engine, reference) == [f"{reference}/1", f"{reference}/2"]
    failed = f"EV-{uuid.uuid4()}"
    crashed = await client.post(
        "/payments",
        json={"reference": failed, "amount_fen": 1, "fail_with": "conflict"},
        headers={"Idempotency-Key": _key()},
    )
    _problem(crashed, 409, "payment-settled")
    assert await _outbox(engine, failed) == []


async def test_held_rows_are_held_only_inside_the_block(engine: AsyncEngine) -> None:
    key = f"EV-{uuid.uuid4()}"
    async with make_sessionmaker(engine)() as session:
        with held_rows(session) as held:
            await enqueue(session, ApplicationAccepted(application_id="held"), key=key, source="t")
        assert len(held) == 1
        assert await count_in(session, key) == 0  # not written: the holder writes it
        event = ApplicationAccepted(application_id="nested")
        with held_rows(session) as outer:
            with held_rows(session) as inner:
                await enqueue(session, event, key=key, source="t")
            await enqueue(session, event, key=key, source="t")
        assert (len(outer), len(inner)) == (1, 1)  # the outer block holds again after the inner
        await enqueue(session, ApplicationAccepted(application_id="direct"), key=key, source="t")
        assert await count_in(session, key) == 1
        await session.rollback()


async def count_in(session: AsyncSession, key: str) -> int:
    found = await session.execute(
        text("SELECT count(*) FROM outbox_message WHERE key = :key"), {"key": key}
    )
    return int(found.scalar_one())


async def test_the_openapi_declares_what_a_key_may_be(app: FastAPI, client: AsyncClient) -> None:
    """Clients read the key's rule from the OpenAPI document (a schema-valid key used to
    be refused): the pattern the service checks, 1 to 255 visible ASCII characters."""
    [header] = [
        p
        for p in app.openapi()["paths"]["/payments"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    ]
    schema = header["schema"]
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)
    assert re.fullmatch(schema["pattern"], "a" * 255)
    assert not re.fullmatch(schema["pattern"], "a b")
    refused = await client.post(
        "/payments", json={"reference": "P-9", "amount_fen": 1}, headers={"Idempotency-Key": "a b"}
    )
    _problem(refused, 400, "idempotency-key-invalid")
