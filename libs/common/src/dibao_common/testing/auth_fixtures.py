"""Auth fixtures: a test signing key, a token factory, test secrets.

The test key pair and bank secret are derived from fixed seeds: they are public, and
nothing outside tests accepts them. Build a service's test settings with them::

    IntakeSettings(database_url=..., kafka_bootstrap=..., **auth_settings_values())

and sign requests with the fixtures::

    headers = token_factory.bearer(roles=[Role.INTAKE_CLERK], regions=["620102"])
    headers = bank_request_headers(body, idempotency_key="k-1")
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dibao_common.auth import ACCESS_TOKEN_TYPE, AuthSettings
from dibao_common.bank import BankSettings, decode_secret, webhook_headers

TEST_JWT_ISSUER = "https://test.dibao.local"
TEST_JWT_AUDIENCE = "dibao"
TEST_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"dibao test JWT signing key; accepted by tests only").digest()
)
TEST_BANK_SECRET = (
    "whsec_"
    + base64.b64encode(
        hashlib.sha256(b"dibao test bank webhook secret; accepted by tests only").digest()
    ).decode()
)


def public_key_b64(private_key: Any) -> str:
    """What ``DIBAO_JWT_PUBLIC_KEY`` holds for a private key: base64 of its public PEM."""
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode()


def auth_settings_values() -> dict[str, Any]:
    """``AuthSettings`` field values matching ``TEST_SIGNING_KEY`` (for composed settings)."""
    return {
        "jwt_public_key": public_key_b64(TEST_SIGNING_KEY),
        "jwt_issuer": TEST_JWT_ISSUER,
        "jwt_audience": TEST_JWT_AUDIENCE,
    }


def bank_settings_values() -> dict[str, Any]:
    """``BankSettings`` field values matching ``TEST_BANK_SECRET``."""
    return {"bank_webhook_secret": TEST_BANK_SECRET}


def make_auth_settings(**overrides: Any) -> AuthSettings:
    return AuthSettings(**(auth_settings_values() | overrides))


def make_bank_settings(**overrides: Any) -> BankSettings:
    return BankSettings(**(bank_settings_values() | overrides))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TokenFactory:
    """Mints test bearer tokens, by default valid for the test settings."""

    def __init__(
        self,
        key: Any = TEST_SIGNING_KEY,
        *,
        algorithm: str = "EdDSA",
        issuer: str = TEST_JWT_ISSUER,
        audience: str = TEST_JWT_AUDIENCE,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.key = key
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.now = now

    def with_clock(self, now: Callable[[], datetime]) -> TokenFactory:
        """The same factory issuing tokens at ``now()`` (e.g. a ``FrozenClock``'s)."""
        return TokenFactory(
            self.key,
            algorithm=self.algorithm,
            issuer=self.issuer,
            audience=self.audience,
            now=now,
        )

    def __call__(
        self,
        *,
        roles: Iterable[str] = (),
        regions: Iterable[str] = (),
        subject: str = "test-user",
        expires_in: timedelta | int = timedelta(hours=1),
        issued_at: datetime | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        key: Any = None,
        algorithm: str | None = None,
        kid: str | None = None,
        typ: str | None = ACCESS_TOKEN_TYPE,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed token; a negative ``expires_in`` gives an expired one. Its header's
        ``typ`` is ``at+jwt``, as the services require, unless ``typ`` says otherwise
        (None: no ``typ``)."""
        issued = issued_at or self.now()
        lifetime = (
            expires_in if isinstance(expires_in, timedelta) else timedelta(seconds=expires_in)
        )
        claims: dict[str, Any] = {
            "sub": subject,
            "roles": [str(r) for r in roles],
            "regions": list(regions),
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "exp": int((issued + lifetime).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        claims.update(extra_claims or {})
        return jwt.encode(
            claims,
            key if key is not None else self.key,
            algorithm=algorithm or self.algorithm,
            headers={"typ": typ} | ({"kid": kid} if kid is not None else {}),
        )

    def bearer(self, **claims: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for a token made with ``claims``."""
        return {"Authorization": f"Bearer {self(**claims)}"}


def bank_request_headers(
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: datetime | int | None = None,
    idempotency_key: str | None = None,
    secret: str = TEST_BANK_SECRET,
) -> dict[str, str]:
    """Headers of a bank request signed with ``secret`` (the test secret by default)."""
    if timestamp is None:
        timestamp = _utc_now()
    seconds = int(timestamp.timestamp()) if isinstance(timestamp, datetime) else timestamp
    headers = webhook_headers(
        decode_secret(secret), webhook_id or f"msg_{uuid.uuid4().hex}", seconds, body
    )
    headers["content-type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


@pytest.fixture
def token_factory() -> TokenFactory:
    """Mints tokens the ``auth_settings`` accept: ``token_factory(roles=..., regions=...)``."""
    return TokenFactory()


@pytest.fixture
def auth_settings() -> AuthSettings:
    """``AuthSettings`` that trust ``TEST_SIGNING_KEY``."""
    return make_auth_settings()


@pytest.fixture
def bank_settings() -> BankSettings:
    """``BankSettings`` with ``TEST_BANK_SECRET``."""
    return make_bank_settings()
