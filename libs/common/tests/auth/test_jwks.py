"""Keys from the issuer's JWKS URL, fetched over real HTTP and cached."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning
from pydantic import ValidationError

from dibao_common.auth import AuthSettings, Role, TokenVerifier
from dibao_common.clock import FrozenClock
from dibao_common.errors import ServiceUnavailable, Unauthorized
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.stack import api_client

from .conftest import auth_app

ISSUER = "https://idp.gansu.example"


class JwksServer:
    """A real HTTP server publishing a JWKS that tests can change, counting fetches."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0
        self.failing = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.failing:
                    self.send_error(503)
                    return
                payload = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def publish(self, *keys: tuple[str, Any]) -> None:
        entries = []
        for kid, private_key in keys:
            public = private_key.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = RSAAlgorithm.to_jwk(public, as_dict=True) | {"alg": "RS256"}
            elif isinstance(public, ec.EllipticCurvePublicKey):
                jwk = ECAlgorithm.to_jwk(public, as_dict=True) | {"alg": "ES256"}
            else:
                jwk = OKPAlgorithm.to_jwk(public, as_dict=True) | {"alg": "EdDSA"}
            entries.append(jwk | {"kid": kid, "use": "sig"})
        self.jwks = {"keys": entries}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    try:
        yield server
    finally:
        server.close()


def _settings(url: str) -> AuthSettings:
    return AuthSettings(
        jwt_jwks_url=url,
        jwt_issuer=ISSUER,
        jwt_audience="dibao",
        jwt_jwks_cache_s=300,
        jwt_jwks_min_refresh_s=30,
    )


def _factory(key: Any, algorithm: str, frozen: FrozenClock) -> TokenFactory:
    return TokenFactory(key, algorithm=algorithm, issuer=ISSUER, audience="dibao", now=frozen.now)


async def test_keys_are_fetched_once_and_cached(
    jwks_server: JwksServer, frozen: FrozenClock
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.publish(("r1", rsa_key), ("e1", ec_key))
    verifier = TokenVerifier(_settings(jwks_server.url), now=frozen.now)
    for _ in range(3):
        p = await verifier.verify(_factory(rsa_key, "RS256", frozen)(roles=["auditor"], kid="r1"))
        assert p.roles == {Role.AUDITOR}
        await verifier.verify(_factory(ec_key, "ES256", frozen)(roles=["auditor"], kid="e1"))
    assert jwks_server.fetches == 1
    # After the cache time the keys are fetched again.
    frozen.advance(timedelta(seconds=301))
    await verifier.verify(_factory(rsa_key, "RS256", frozen)(roles=["auditor"], kid="r1"))
    assert jwks_server.fetches == 2


async def test_a_rotated_key_is_picked_up_but_unknown_kids_do_not_flood_the_issuer(
    jwks_server: JwksServer, frozen: FrozenClock
) -> None:
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    jwks_server.publish(("k1", old))
    verifier = TokenVerifier(_settings(jwks_server.url), now=frozen.now)
    await verifier.verify(_factory(old, "EdDSA", frozen)(roles=["auditor"], kid="k1"))
    jwks_server.publish(("k1", old), ("k2", new))
    # Within min_refresh an unknown kid is refused without asking the issuer again.
    with pytest.raises(Unauthorized, match="unknown signing key"):
        await verifier.verify(_factory(new, "EdDSA", frozen)(roles=["auditor"], kid="k2"))
    assert jwks_server.fetches == 1
    frozen.advance(timedelta(seconds=31))
    await verifier.verify(_factory(new, "EdDSA", frozen)(roles=["auditor"], kid="k2"))
    assert jwks_server.fetches == 2
    for _ in range(5):
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(_factory(new, "EdDSA", frozen)(roles=["auditor"], kid="forged"))
    assert jwks_server.fetches == 2


async def test_a_token_under_a_published_kid_but_signed_by_another_key(
    jwks_server: JwksServer, frozen: FrozenClock
) -> None:
    jwks_server.publish(("k1", ed25519.Ed25519PrivateKey.generate()))
    verifier = TokenVerifier(_settings(jwks_server.url), now=frozen.now)
    forged = _factory(ed25519.Ed25519PrivateKey.generate(), "EdDSA", frozen)
    with pytest.raises(Unauthorized, match="bad signature"):
        await verifier.verify(forged(roles=["auditor"], kid="k1"))


async def test_an_unreachable_issuer_is_503_then_old_keys_keep_working(
    jwks_server: JwksServer, frozen: FrozenClock
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    jwks_server.publish(("k1", key))
    jwks_server.failing = True
    app = auth_app(_settings(jwks_server.url), frozen)
    token = _factory(key, "EdDSA", frozen)(roles=["auditor"], kid="k1")
    async with api_client(app) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert response.json()["type"] == "https://dibao.gov.cn/problems/authentication-unavailable"
        jwks_server.failing = False
        frozen.advance(timedelta(seconds=31))
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        # The issuer goes down again after the cache time: the known keys stay in use.
        jwks_server.failing = True
        frozen.advance(timedelta(seconds=301))
        token = _factory(key, "EdDSA", frozen)(roles=["auditor"], kid="k1")
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200


async def test_a_verifier_without_keys_raises_service_unavailable(frozen: FrozenClock) -> None:
    verifier = TokenVerifier(_settings("http://127.0.0.1:1/jwks.json"), now=frozen.now)
    token = TokenFactory(issuer=ISSUER, now=frozen.now)(roles=["auditor"])
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(token)


async def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(
    jwks_server: JwksServer, frozen: FrozenClock
) -> None:
    # Verified tokens are remembered, but never beyond their key: once the issuer stops
    # publishing the key, the token it signed is refused like any other.
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    jwks_server.publish(("k1", old))
    verifier = TokenVerifier(_settings(jwks_server.url), now=frozen.now)
    token = _factory(old, "EdDSA", frozen)(roles=["auditor"], kid="k1")
    for _ in range(2):
        assert (await verifier.verify(token)).roles == {Role.AUDITOR}
    jwks_server.publish(("k2", new))
    frozen.advance(timedelta(seconds=301))
    with pytest.raises(Unauthorized, match="unknown signing key"):
        await verifier.verify(token)


@pytest.mark.parametrize(
    ("private_key", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256"),  # noqa: S505
        (ed448.Ed448PrivateKey.generate(), "EdDSA"),
    ],
    ids=["rsa-1024", "ed448"],
)
async def test_published_keys_obey_the_configured_key_rules(
    jwks_server: JwksServer, frozen: FrozenClock, private_key: Any, algorithm: str
) -> None:
    # RS256 only from 2048 bits and EdDSA only with Ed25519, as for DIBAO_JWT_PUBLIC_KEY:
    # a key the JWKS publishes outside those rules is not used.
    jwks_server.publish(("weak", private_key), ("good", ed25519.Ed25519PrivateKey.generate()))
    verifier = TokenVerifier(_settings(jwks_server.url), now=frozen.now)
    with warnings.catch_warnings():
        # PyJWT only warns about a short RSA key; production does not turn warnings into errors.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = _factory(private_key, algorithm, frozen)(roles=["auditor"], kid="weak")
        with pytest.raises(Unauthorized, match="unknown signing key"):
            await verifier.verify(token)


def test_unknown_kids_cannot_be_allowed_to_refetch_without_pause() -> None:
    """With no pause between refetches, every token with a forged `kid` would make the
    service fetch the issuer's keys: a flood the setting exists to prevent."""
    with pytest.raises(ValidationError, match="jwt_jwks_min_refresh_s"):
        AuthSettings(
            jwt_jwks_url="https://issuer.example/jwks",
            jwt_issuer=ISSUER,
            jwt_audience="dibao",
            jwt_jwks_min_refresh_s=0,
        )
