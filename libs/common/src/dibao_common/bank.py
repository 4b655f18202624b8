"""Signed requests from banks, in the Standard Webhooks scheme (standardwebhooks.com).

The bank signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under the
shared secret (``whsec_`` + base64) and sends ``webhook-signature: v1,<base64>`` (several
space-separated signatures while it rotates secrets). A request is accepted when one
signature matches (constant-time), its timestamp is within 300 s of our clock either
way, and its id was never accepted before. Bank requests also carry an
``Idempotency-Key``: a retry of the same operation sends the same key and body (under a
new id and timestamp, or the same id) and gets the stored answer back.

    @router.post("/bank/confirmations", status_code=201,
                 responses=problem_responses(400, 401, 409, 422))
    async def confirm(body: ConfirmationIn, session: Session, webhook: BankWebhook,
                      idempotency: Idempotent) -> Response:
        async def handle() -> Response:
            ...
            return JSONResponse(out.model_dump(mode="json"), status_code=201)

        return await respond_to_bank(session, webhook, idempotency, handle)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_common.errors import Conflict, Unauthorized
from dibao_common.idempotency import Handler, IdempotentRequest
from dibao_common.settings import Secret

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
DEFAULT_TOLERANCE_S = 300
_ID = re.compile(r"^[A-Za-z0-9_:\-]{1,255}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE_AUTH = 'Signature realm="bank", headers="webhook-id webhook-timestamp webhook-signature"'

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_<base64>`` secret (24 to 64 bytes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a bank webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("a bank webhook secret is whsec_ followed by base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("a bank webhook secret holds 24 to 64 bytes")
    return key


class BankSettings(BaseSettings):
    """The secret banks sign their requests with, and how far their clocks may drift."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore", frozen=True)

    bank_webhook_secret: Secret = Field(description="whsec_ + base64 of 24-64 random bytes")
    bank_webhook_tolerance_s: int = Field(default=DEFAULT_TOLERANCE_S, ge=1, le=3600)

    @field_validator("bank_webhook_secret")
    @classmethod
    def _secret_decodes(cls, value: Secret) -> Secret:
        decode_secret(value.get_secret_value())
        return value

    def webhook_key(self) -> bytes:
        return decode_secret(self.bank_webhook_secret.get_secret_value())


@dataclass(frozen=True, slots=True)
class SignedWebhook:
    """A bank request whose signature and timestamp were verified."""

    webhook_id: str
    signed_at: datetime
    received_at: datetime
    body: bytes


def sign_webhook(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message (what the bank sends)."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a signed request (for bank clients and tests)."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(key, webhook_id, timestamp, body),
    }


def _rejected(detail: str, slug: str) -> Unauthorized:
    return Unauthorized(
        detail,
        type_slug=slug,
        title="Request not signed",
        headers={"WWW-Authenticate": _SIGNATURE_AUTH},
    )


def verify_webhook(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = timedelta(seconds=DEFAULT_TOLERANCE_S),
) -> SignedWebhook:
    """Check a request's signature and timestamp; 401 problems when they do not hold.

    ``headers`` must look names up case-insensitively (Starlette's do).
    """
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        raise _rejected(
            "webhook-id, webhook-timestamp and webhook-signature are required",
            "webhook-signature-missing",
        )
    if not _ID.match(webhook_id):
        raise _rejected("webhook-id has characters outside A-Z a-z 0-9 _ - :", "webhook-id-invalid")
    if not _TIMESTAMP.match(timestamp):
        raise _rejected("webhook-timestamp must be Unix seconds", "webhook-timestamp-invalid")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs(now - signed_at) > tolerance:
        raise _rejected(
            f"webhook-timestamp is more than {int(tolerance.total_seconds())} s from our clock",
            "webhook-timestamp-out-of-tolerance",
        )
    expected = base64.b64decode(sign_webhook(key, webhook_id, int(timestamp), body)[3:])
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        # Every candidate is compared, so the time taken says nothing about which matched.
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise _rejected("no webhook-signature matches this request", "webhook-signature-invalid")
    return SignedWebhook(webhook_id=webhook_id, signed_at=signed_at, received_at=now, body=body)


async def record_webhook(session: AsyncSession, webhook: SignedWebhook) -> None:
    """Remember ``webhook`` in the request's transaction; 409 if its id was accepted before."""
    inserted = await session.execute(
        text(
            "INSERT INTO webhook_message (webhook_id, signed_at, received_at)"
            " VALUES (:id, :signed_at, :now) ON CONFLICT (webhook_id) DO NOTHING"
            " RETURNING webhook_id"
        ),
        {"id": webhook.webhook_id, "signed_at": webhook.signed_at, "now": webhook.received_at},
    )
    if inserted.first() is None:
        raise Conflict(
            "This webhook-id was already accepted; a new request needs a new id",
            type_slug="webhook-replayed",
            title="Replayed request",
        )


@dataclass(frozen=True, slots=True)
class BankVerification:
    """Per-application bank settings and clock (``app.state.bank_verification``)."""

    key: bytes
    tolerance: timedelta
    now: Now


def install_bank_verification(app: FastAPI, settings: BankSettings, *, now: Now = _utc_now) -> None:
    """Make ``verified_bank_webhook`` check requests to ``app`` with ``settings``."""
    app.state.bank_verification = BankVerification(
        key=settings.webhook_key(),
        tolerance=timedelta(seconds=settings.bank_webhook_tolerance_s),
        now=now,
    )


def _verification_of(request: Request) -> BankVerification:
    found = getattr(request.app.state, "bank_verification", None)
    if not isinstance(found, BankVerification):
        raise RuntimeError("no bank verification: build the app with bank settings")
    return found


async def verified_bank_webhook(
    request: Request,
    # Declared so that the OpenAPI shows them; read from the request below.
    webhook_id: Annotated[str | None, Header(alias="webhook-id")] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", description="Unix seconds")
    ] = None,
    webhook_signature: Annotated[
        str | None, Header(alias="webhook-signature", description="v1,<base64 HMAC-SHA256>")
    ] = None,
) -> SignedWebhook:
    """Dependency: the verified bank request (401 when unsigned, badly signed or stale)."""
    verification = _verification_of(request)
    webhook = verify_webhook(
        verification.key,
        request.headers,
        await request.body(),
        now=verification.now(),
        tolerance=verification.tolerance,
    )
    request.state.bank_webhook = webhook
    return webhook


BankWebhook = Annotated[SignedWebhook, Depends(verified_bank_webhook)]


async def respond_to_bank(
    session: AsyncSession,
    webhook: SignedWebhook,
    idempotency: IdempotentRequest,
    handle: Handler,
) -> Response:
    """Run a bank request once: its id recorded, its key honoured, all in ``session``.

    A retry with the key gets the stored answer (whatever its id); the same signed body
    under a new key but an accepted id is a replay and gets 409.
    """

    async def guarded() -> Response:
        await record_webhook(session, webhook)
        return await handle()

    return await idempotency.respond(session, guarded)
