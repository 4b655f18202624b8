"""The fingerprint keys: how a stored fingerprint is matched, the setting that holds the
keys, and the development secrets that provide it (ADR 0010)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dibao_common import devsecrets
from dibao_common.idempotency import (
    Fingerprint,
    FingerprintKeys,
    IdempotencyConfig,
    request_digest,
)
from dibao_common.settings import CommonSettings

OLD, NEW, OTHER = os.urandom(32), os.urandom(32), os.urandom(32)
DIGEST = request_digest("POST", "/households", b'{"id_number": "62010219800101123X"}')
BASE: dict[str, Any] = {
    "service_name": "kit",
    "database_url": "postgresql+asyncpg://u@h/d",
    "kafka_bootstrap": "k:1",
}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def keyed_fingerprint(digest: bytes, key: bytes) -> str:
    return FingerprintKeys((key,)).keyed(digest)


def test_the_first_key_writes_and_every_listed_key_matches() -> None:
    fingerprint = Fingerprint(DIGEST, FingerprintKeys((NEW, OLD)))
    assert fingerprint.stored == keyed_fingerprint(DIGEST, NEW)
    assert fingerprint.stored.startswith("hmac1:")
    assert fingerprint.stored == "hmac1:" + hmac.new(NEW, DIGEST, hashlib.sha256).hexdigest()
    assert fingerprint.matches(keyed_fingerprint(DIGEST, NEW))
    assert fingerprint.matches(keyed_fingerprint(DIGEST, OLD))
    assert not fingerprint.matches(keyed_fingerprint(DIGEST, OTHER))
    other = request_digest("POST", "/households", b'{"id_number": "620102198001011238"}')
    assert not fingerprint.matches(keyed_fingerprint(other, NEW))
    assert not fingerprint.matches(keyed_fingerprint(other, OLD))


def test_a_plain_sha256_of_an_earlier_release_matches_its_request_alone() -> None:
    fingerprint = Fingerprint(DIGEST, FingerprintKeys((NEW,)))
    assert fingerprint.matches(DIGEST.hex())
    assert fingerprint.matches(hashlib.sha256(b"").hexdigest()) is False
    # A keyed value is never taken for a plain one, nor the digest under the prefix.
    assert not fingerprint.matches("hmac1:" + DIGEST.hex())
    assert not fingerprint.matches("")


def test_the_keys_are_32_bytes_at_least() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FingerprintKeys(())
    with pytest.raises(ValueError, match="32 bytes"):
        FingerprintKeys((NEW, OLD[:16]))
    config = IdempotencyConfig(FingerprintKeys((NEW, OLD)))
    assert config.fingerprint("POST", "/households", b"{}").stored == keyed_fingerprint(
        request_digest("POST", "/households", b"{}"), NEW
    )


def test_the_setting_lists_the_keys_the_writing_one_first() -> None:
    settings = CommonSettings(**BASE, idempotency_fingerprint_keys=f" {_b64(NEW)} ,{_b64(OLD)},")
    assert settings.fingerprint_keys() == (NEW, OLD)
    assert _b64(NEW) not in repr(settings)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BASE.items():
        monkeypatch.setenv(f"DIBAO_{name.upper()}", value)
    monkeypatch.delenv("DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS", raising=False)
    with pytest.raises(ValidationError, match="idempotency_fingerprint_keys"):
        CommonSettings()
    monkeypatch.setenv("DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS", _b64(NEW))
    assert CommonSettings().fingerprint_keys() == (NEW,)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("not base64!", "base64"),
        (_b64(NEW[:16]), "32 bytes"),
        (f"{_b64(NEW)},{_b64(OLD + b'x')}", "32 bytes"),
        (" , ", "at least one"),
        ("changeme", "placeholder"),
    ],
)
def test_the_setting_refuses_bad_keys(keys: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CommonSettings(**BASE, idempotency_fingerprint_keys=keys)


def _read_env(env_file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines())


def test_development_secrets_provide_a_key(tmp_path: Path) -> None:
    env_file = tmp_path / "secrets.env"
    devsecrets.create(env_file)
    keys = _read_env(env_file)["DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS"]
    assert CommonSettings(**BASE, idempotency_fingerprint_keys=keys).fingerprint_keys()


def test_development_secrets_of_an_earlier_release_get_the_key_appended(tmp_path: Path) -> None:
    # An instance whose secrets were written before the key existed: `make up` must not
    # leave its services without it, nor change the secrets it has.
    env_file = tmp_path / "secrets.env"
    devsecrets.create(env_file)
    lines = env_file.read_text().splitlines()
    earlier = "\n".join(line for line in lines if "IDEMPOTENCY" not in line)  # no final newline
    env_file.write_text(earlier)
    devsecrets.create(env_file)
    completed = env_file.read_text()
    assert completed.startswith(earlier + "\n")
    values = _read_env(env_file)
    assert set(values) == {line.split("=", 1)[0] for line in lines}
    devsecrets.create(env_file)
    assert env_file.read_text() == completed
    assert len(base64.b64decode(values["DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS"])) == 32
