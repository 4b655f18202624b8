"""The stored fingerprint is keyed (ADR 0010, 1 Dec 2026): an HMAC-SHA256 under the
server's ``DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS``, never the plain sha256 of a body that may
hold ID numbers. Records stored before, with the plain sha256, are still answered; a
record under a key being rotated out too, while the key is still listed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import AuthSettings
from dibao_common.bank import BankSettings
from dibao_common.clock import FrozenClock
from dibao_common.errors import PROBLEM_MEDIA_TYPE
from dibao_common.idempotency import FINGERPRINT_VERSION, request_fingerprint
from dibao_common.testing.service_env import TEST_FINGERPRINT_KEYS, fingerprint_key_for_tests
from dibao_common.testing.stack import TestStack, api_client

from .http_app import count, http_app

pytestmark = pytest.mark.postgres

EFFECTS = "SELECT count(*) FROM kit_http_test.effect"
FINGERPRINT = "SELECT fingerprint FROM idempotency_record WHERE scope = 'anonymous' AND key = :key"
# The transaction path (ADR 0010) and the one-statement path (ADR 0013).
URLS = ["/payments", "/one-statement/payments"]
JSON = {"Content-Type": "application/json"}


def _content(amount_fen: int = 100) -> bytes:
    # A reference that is a resident ID number: what a household registration holds.
    body = {"reference": f"62010219800101123X-{uuid.uuid4().hex[:8]}", "amount_fen": amount_fen}
    return json.dumps(body).encode()


def _plain(method: str, path: str, body: bytes) -> str:
    """What releases before 1 Dec 2026 stored: the hex sha256 of the framed request."""
    framed = b"".join(len(p).to_bytes(8, "big") + p for p in (method.encode(), path.encode(), body))
    return hashlib.sha256(framed).hexdigest()


def _other_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def _stored_fingerprint(engine: AsyncEngine, key: str) -> str:
    async with engine.connect() as conn:
        value = (await conn.execute(text(FINGERPRINT), {"key": key})).scalar_one()
    assert isinstance(value, str)
    return value


def _reused(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"] == "https://dibao.gov.cn/problems/idempotency-key-reused"


def _replayed(response: Any, content: bytes) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["idempotent-replayed"] == "true"
    assert response.content == content


@pytest.mark.parametrize("url", URLS)
async def test_the_stored_fingerprint_is_keyed_and_a_retry_still_replays(
    client: AsyncClient, engine: AsyncEngine, url: str
) -> None:
    key, content = str(uuid.uuid4()), _content()
    headers = JSON | {"Idempotency-Key": key}
    first = await client.post(url, content=content, headers=headers)
    assert first.status_code == 201, first.text
    stored = await _stored_fingerprint(engine, key)
    plain = _plain("POST", url, content)
    assert stored.startswith(FINGERPRINT_VERSION)
    assert plain not in stored
    # HMAC-SHA256 of the request's sha256 under the server's key.
    test_key = fingerprint_key_for_tests()
    keyed = hmac.new(test_key, bytes.fromhex(plain), hashlib.sha256).hexdigest()
    assert stored == FINGERPRINT_VERSION + keyed
    assert stored == request_fingerprint("POST", url, content, key=test_key)
    assert stored != request_fingerprint("POST", url, content, key=os.urandom(32))
    _replayed(await client.post(url, content=content, headers=headers), first.content)
    _reused(await client.post(url, content=_content(101), headers=headers))
    assert await count(engine, EFFECTS) == 1


@pytest.mark.parametrize("url", URLS)
async def test_a_record_with_a_plain_sha256_still_replays_and_refuses_another_body(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock, url: str
) -> None:
    # A retry spanning the deploy: its record was stored by the release before.
    key, content = str(uuid.uuid4()), _content()
    answer = b'{"id": -7, "stored": "before keyed fingerprints"}'
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
                "fingerprint": _plain("POST", url, content),
                "token": uuid.uuid4(),
                "now": clock.now(),
                "headers": '{"content-type": "application/json"}',
                "body": answer,
            },
        )
    headers = JSON | {"Idempotency-Key": key}
    _replayed(await client.post(url, content=content, headers=headers), answer)
    _reused(await client.post(url, content=_content(101), headers=headers))
    assert await count(engine, EFFECTS) == 0
    # The record is answered as it is, not rewritten.
    assert await _stored_fingerprint(engine, key) == _plain("POST", url, content)


async def test_a_record_under_a_key_being_rotated_out_replays_while_the_key_is_listed(
    client: AsyncClient,
    engine: AsyncEngine,
    stack: TestStack,
    clock: FrozenClock,
    auth_settings: AuthSettings,
    bank_settings: BankSettings,
) -> None:
    key, content = str(uuid.uuid4()), _content()
    headers = JSON | {"Idempotency-Key": key}
    first = await client.post("/payments", content=content, headers=headers)
    assert first.status_code == 201, first.text
    new = _other_key()

    def app(keys: str) -> FastAPI:
        return http_app(stack, clock, auth=auth_settings, bank=bank_settings, fingerprint_keys=keys)

    # The new key first, the old one kept: old records still match, new ones use the new.
    async with api_client(app(f"{new},{TEST_FINGERPRINT_KEYS}")) as rotated:
        _replayed(await rotated.post("/payments", content=content, headers=headers), first.content)
        _reused(await rotated.post("/payments", content=_content(101), headers=headers))
        fresh = str(uuid.uuid4())
        made = await rotated.post(
            "/payments", content=content, headers=JSON | {"Idempotency-Key": fresh}
        )
        assert made.status_code == 201, made.text
    new_key = base64.b64decode(new)
    assert await _stored_fingerprint(engine, fresh) == request_fingerprint(
        "POST", "/payments", content, key=new_key
    )
    # Once the old key is dropped, its records no longer match: the key is refused as
    # reused (ADR 0010: drop a key only after the retention).
    async with api_client(app(new)) as dropped:
        _reused(await dropped.post("/payments", content=content, headers=headers))
    assert await count(engine, EFFECTS) == 2
