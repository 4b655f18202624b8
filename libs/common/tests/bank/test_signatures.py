"""Bank requests: Standard Webhooks signatures, a 300 s window, replays refused."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.bank import (
    SignedWebhook,
    decode_secret,
    sign_webhook,
    verify_webhook,
)
from dibao_common.clock import FrozenClock
from dibao_common.errors import PROBLEM_MEDIA_TYPE, Unauthorized
from dibao_common.testing.auth_fixtures import TEST_BANK_SECRET, bank_request_headers

from ..idempotency.http_app import count

EFFECTS = "SELECT count(*) FROM kit_http_test.effect"
WEBHOOKS = "SELECT count(*) FROM webhook_message WHERE webhook_id = :id"
RECORDS = "SELECT count(*) FROM idempotency_record WHERE key = :key"
URL = "/bank/confirmations"


def _body(reference: str = "B-1", amount_fen: int = 74500) -> bytes:
    return json.dumps({"reference": reference, "amount_fen": amount_fen}).encode()


def _key() -> str:
    return str(uuid.uuid4())


def _rejected(response: Any, slug: str, status: int = 401) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://dibao.gov.cn/problems/{slug}"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Signature")
    return body


@pytest.mark.postgres
async def test_a_signed_request_is_accepted_once(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    body = _body()
    headers = bank_request_headers(
        body, webhook_id="msg_1", timestamp=clock.now(), idempotency_key=_key()
    )
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert await count(engine, EFFECTS) == 1
    assert await count(engine, WEBHOOKS, id="msg_1") == 1


@pytest.mark.postgres
async def test_wrong_secret(client: AsyncClient, engine: AsyncEngine, clock: FrozenClock) -> None:
    body = _body()
    other = "whsec_" + base64.b64encode(b"another bank's secret, 32 bytes!").decode()
    headers = bank_request_headers(
        body, timestamp=clock.now(), idempotency_key=(key := _key()), secret=other
    )
    _rejected(await client.post(URL, content=body, headers=headers), "webhook-signature-invalid")
    assert await count(engine, EFFECTS) == 0
    # Refused before the key was claimed: nothing of it is kept.
    assert await count(engine, RECORDS, key=key) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("skew_s", [-301, 301, -3600, 86400])
async def test_stale_or_future_timestamp(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock, skew_s: int
) -> None:
    body = _body()
    at = clock.now() + timedelta(seconds=skew_s)
    headers = bank_request_headers(body, timestamp=at, idempotency_key=_key())
    problem = _rejected(
        await client.post(URL, content=body, headers=headers), "webhook-timestamp-out-of-tolerance"
    )
    assert "300 s" in problem["detail"]
    assert await count(engine, EFFECTS) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("skew_s", [-300, 300])
async def test_timestamps_within_300_seconds_either_way(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock, skew_s: int
) -> None:
    body = _body()
    at = clock.now() + timedelta(seconds=skew_s)
    headers = bank_request_headers(body, timestamp=at, idempotency_key=_key())
    assert (await client.post(URL, content=body, headers=headers)).status_code == 201


@pytest.mark.postgres
async def test_altered_body(client: AsyncClient, engine: AsyncEngine, clock: FrozenClock) -> None:
    signed = _body(amount_fen=100)
    headers = bank_request_headers(signed, timestamp=clock.now(), idempotency_key=_key())
    altered = _body(amount_fen=100000)
    _rejected(await client.post(URL, content=altered, headers=headers), "webhook-signature-invalid")
    # The id and timestamp are signed too.
    moved = headers | {"webhook-id": "msg_other"}
    _rejected(await client.post(URL, content=signed, headers=moved), "webhook-signature-invalid")
    later = headers | {"webhook-timestamp": str(int(clock.now().timestamp()) + 1)}
    _rejected(await client.post(URL, content=signed, headers=later), "webhook-signature-invalid")
    assert await count(engine, EFFECTS) == 0


@pytest.mark.postgres
async def test_replayed_id_is_refused_even_under_a_new_key(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    body = _body()
    first_key, second_key = _key(), _key()
    headers = bank_request_headers(
        body, webhook_id="msg_replay", timestamp=clock.now(), idempotency_key=first_key
    )
    assert (await client.post(URL, content=body, headers=headers)).status_code == 201
    # An eavesdropper resends the signed request with a fresh Idempotency-Key (not signed).
    clock.advance(timedelta(seconds=20))
    replay = headers | {"Idempotency-Key": second_key}
    _rejected(await client.post(URL, content=body, headers=replay), "webhook-replayed", 409)
    assert await count(engine, EFFECTS) == 1
    # Its claim on the new key was released with the refused transaction.
    assert await count(engine, RECORDS, key=second_key) == 0


@pytest.mark.postgres
async def test_a_bank_retry_gets_the_stored_answer_and_changes_nothing(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    body, key = _body(), _key()
    first = await client.post(
        URL,
        content=body,
        headers=bank_request_headers(
            body, webhook_id="msg_a", timestamp=clock.now(), idempotency_key=key
        ),
    )
    assert first.status_code == 201
    # The same delivery again (Standard Webhooks keeps the id across retries) ...
    clock.advance(timedelta(seconds=30))
    same_id = await client.post(
        URL,
        content=body,
        headers=bank_request_headers(
            body, webhook_id="msg_a", timestamp=clock.now(), idempotency_key=key
        ),
    )
    # ... or a new delivery of the same operation under a new id.
    new_id = await client.post(
        URL,
        content=body,
        headers=bank_request_headers(
            body, webhook_id="msg_b", timestamp=clock.now(), idempotency_key=key
        ),
    )
    for retry in (same_id, new_id):
        assert retry.status_code == 201
        assert retry.content == first.content
        assert retry.headers["idempotent-replayed"] == "true"
    assert await count(engine, EFFECTS) == 1


@pytest.mark.postgres
async def test_bank_requests_need_an_idempotency_key(
    client: AsyncClient, engine: AsyncEngine, clock: FrozenClock
) -> None:
    body = _body()
    headers = bank_request_headers(body, timestamp=clock.now())
    _rejected(await client.post(URL, content=body, headers=headers), "idempotency-key-missing", 400)
    assert await count(engine, EFFECTS) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("dropped", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_unsigned_requests(client: AsyncClient, clock: FrozenClock, dropped: str) -> None:
    body = _body()
    headers = bank_request_headers(body, timestamp=clock.now(), idempotency_key=_key())
    del headers[dropped]
    _rejected(await client.post(URL, content=body, headers=headers), "webhook-signature-missing")


@pytest.mark.postgres
async def test_openapi_shows_the_signature_headers(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][URL]["post"]
    names = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert names == {"webhook-id", "webhook-timestamp", "webhook-signature", "Idempotency-Key"}
    assert set(operation["responses"]) == {"201", "400", "401", "409", "422"}


# --- the pure verification -----------------------------------------------------------------

KEY = decode_secret(TEST_BANK_SECRET)
NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def _headers(body: bytes, **overrides: str) -> dict[str, str]:
    ts = int(NOW.timestamp())
    headers = {
        "webhook-id": "msg_p",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_webhook(KEY, "msg_p", ts, body),
    }
    return headers | overrides


def test_the_standard_webhooks_reference_vector() -> None:
    # From the Standard Webhooks reference implementations' test suite.
    key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign_webhook(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_any_of_several_signatures_may_match() -> None:
    body = b'{"a":1}'
    good = _headers(body)["webhook-signature"]
    rotating = f"v1,{base64.b64encode(b'x' * 32).decode()} v1a,ignored {good}"
    signed = verify_webhook(KEY, _headers(body, **{"webhook-signature": rotating}), body, now=NOW)
    assert signed == SignedWebhook("msg_p", NOW, NOW, body)


@pytest.mark.parametrize(
    "signature",
    [
        "v2,abc",
        "v1,not base64!",
        "v1,",
        "garbage",
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ],
)
def test_unusable_signatures(signature: str) -> None:
    body = b'{"a":1}'
    with pytest.raises(Unauthorized):
        verify_webhook(KEY, _headers(body, **{"webhook-signature": signature}), body, now=NOW)


@pytest.mark.parametrize(
    ("header", "value"),
    [("webhook-id", "msg.1"), ("webhook-id", "x" * 256), ("webhook-timestamp", "-5")],
)
def test_malformed_id_or_timestamp(header: str, value: str) -> None:
    body = b"{}"
    with pytest.raises(Unauthorized):
        verify_webhook(KEY, _headers(body, **{header: value}), body, now=NOW)
