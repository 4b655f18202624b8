"""AuthSettings and BankSettings refuse what would make verification unsafe."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from dibao_common.auth import AuthSettings
from dibao_common.bank import BankSettings
from dibao_common.testing.auth_fixtures import (
    TEST_SIGNING_KEY,
    auth_settings_values,
    make_auth_settings,
    make_bank_settings,
    public_key_b64,
)


def test_the_test_values_build_settings() -> None:
    settings = make_auth_settings()
    assert settings.jwt_public_key == public_key_b64(TEST_SIGNING_KEY)
    assert make_bank_settings().webhook_key()


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values = auth_settings_values()
    monkeypatch.setenv("DIBAO_JWT_PUBLIC_KEY", values["jwt_public_key"])
    monkeypatch.setenv("DIBAO_JWT_ISSUER", "https://env.example")
    monkeypatch.setenv("DIBAO_JWT_AUDIENCE", "dibao")
    monkeypatch.setenv("DIBAO_BANK_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"k" * 32).decode())
    assert AuthSettings().jwt_issuer == "https://env.example"
    assert BankSettings().webhook_key() == b"k" * 32


def test_the_longest_token_lifetime_is_12_hours_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert make_auth_settings().jwt_max_lifetime_s == 12 * 3600
    monkeypatch.setenv("DIBAO_JWT_MAX_LIFETIME_S", "3600")
    assert AuthSettings(**auth_settings_values()).jwt_max_lifetime_s == 3600


@pytest.mark.parametrize("seconds", [0, 59, 24 * 3600 + 1])
def test_a_token_lifetime_beyond_a_day_or_under_a_minute_is_refused(seconds: int) -> None:
    with pytest.raises(ValidationError, match="jwt_max_lifetime_s"):
        make_auth_settings(jwt_max_lifetime_s=seconds)


def test_exactly_one_key_source() -> None:
    values = auth_settings_values()
    with pytest.raises(ValidationError, match="exactly one"):
        AuthSettings(jwt_issuer="i", jwt_audience="a")
    with pytest.raises(ValidationError, match="exactly one"):
        AuthSettings(**values, jwt_jwks_url="https://idp.example/jwks.json")
    AuthSettings(jwt_jwks_url="https://idp.example/jwks.json", jwt_issuer="i", jwt_audience="a")


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://idp.gansu.example/.well-known/jwks.json", True),
        # Keys fetched in clear from another host could be swapped on the way: anyone on
        # the path could then sign tokens for any role and region.
        ("http://idp.gansu.example/.well-known/jwks.json", False),
        ("http://10.0.0.7:8080/jwks.json", False),
        ("http://127.0.0.1:8080/jwks.json", True),
        ("http://localhost:8080/jwks.json", True),
        ("http://[::1]:8080/jwks.json", True),
        ("http://localhost.idp.example/jwks.json", False),
        ("http://127.0.0.1.idp.example/jwks.json", False),
        ("ftp://idp.gansu.example/jwks.json", False),
        ("https://", False),
        ("idp.gansu.example/jwks.json", False),
    ],
)
def test_keys_are_fetched_over_https_unless_from_this_machine(url: str, accepted: bool) -> None:
    if accepted:
        AuthSettings(jwt_jwks_url=url, jwt_issuer="i", jwt_audience="a")
        return
    with pytest.raises(ValidationError, match="must be an https URL"):
        AuthSettings(jwt_jwks_url=url, jwt_issuer="i", jwt_audience="a")


@pytest.mark.parametrize(
    "key",
    [
        "changeme",
        base64.b64encode(
            b"-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n"
        ).decode(),
        public_key_b64(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - must be refused
        public_key_b64(ec.generate_private_key(ec.SECP384R1())),
    ],
)
def test_unusable_public_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        make_auth_settings(jwt_public_key=key)


def test_a_raw_pem_is_accepted_too() -> None:
    pem = base64.b64decode(public_key_b64(TEST_SIGNING_KEY)).decode()
    assert make_auth_settings(jwt_public_key=pem).jwt_public_key == pem


@pytest.mark.parametrize("blank", ["jwt_issuer", "jwt_audience"])
def test_issuer_and_audience_are_required(blank: str) -> None:
    with pytest.raises(ValidationError):
        make_auth_settings(**{blank: " "})


@pytest.mark.parametrize(
    "secret",
    [
        "changeme",
        "",
        base64.b64encode(b"k" * 32).decode(),  # no whsec_ prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(b"k" * 65).decode(),
    ],
)
def test_bank_secrets_must_be_real(secret: str) -> None:
    with pytest.raises(ValidationError):
        make_bank_settings(bank_webhook_secret=secret)


def test_bank_secret_is_never_printed() -> None:
    settings = make_bank_settings()
    assert settings.bank_webhook_secret.get_secret_value() not in repr(settings)
