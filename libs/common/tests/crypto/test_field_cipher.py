"""Field encryption: round trip, tampering, context binding, key rotation, settings."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from dibao_common import devsecrets
from dibao_common.crypto import (
    DecryptionFailedError,
    FieldCipher,
    MalformedCiphertextError,
    PiiSettings,
    UnknownKeyIdError,
    key_id_of,
    parse_key_ring,
)

K1 = bytes(range(32))
K2 = bytes(range(32, 64))
ID = "62010219800101123X"
CTX = "intake.member.id_number:0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_round_trip() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    for text in (ID, "张三丰", "", "a" * 10_000):
        blob = cipher.encrypt(text, context=CTX)
        assert cipher.decrypt(blob, context=CTX) == text


def test_layout_version_key_id_nonce() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    blob = cipher.encrypt(ID, context=CTX)
    assert blob[0] == 1
    assert blob[1] == 2
    assert blob[2:4] == b"k1"
    # version + length + id + 12-byte nonce + ciphertext + 16-byte tag
    assert len(blob) == 1 + 1 + 2 + 12 + len(ID) + 16
    assert ID.encode() not in blob
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert blob != cipher.encrypt(ID, context=CTX)


def test_any_altered_byte_is_detected() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    blob = cipher.encrypt(ID, context=CTX)
    for i in range(4, len(blob)):  # nonce, ciphertext and tag
        altered = bytearray(blob)
        altered[i] ^= 0x01
        with pytest.raises(DecryptionFailedError):
            cipher.decrypt(bytes(altered), context=CTX)
    with pytest.raises(DecryptionFailedError):
        cipher.decrypt(blob[:-1] + b"", context=CTX)


def test_wrong_context_does_not_decrypt() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    blob = cipher.encrypt(ID, context=CTX)
    with pytest.raises(DecryptionFailedError):
        cipher.decrypt(blob, context="intake.member.name:0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00")
    with pytest.raises(DecryptionFailedError):
        cipher.decrypt(blob, context=CTX.replace("1f00", "1f01"))


def test_rotation_old_key_decrypts_new_key_writes() -> None:
    old = FieldCipher({"k1": K1}, "k1")
    written_before = old.encrypt(ID, context=CTX)

    rotated = FieldCipher({"k1": K1, "k2": K2}, "k2")
    assert rotated.decrypt(written_before, context=CTX) == ID
    written_after = rotated.encrypt(ID, context=CTX)
    assert key_id_of(written_before) == "k1"
    assert key_id_of(written_after) == "k2"
    assert rotated.needs_rotation(written_before)
    assert not rotated.needs_rotation(written_after)

    rewritten = rotated.reencrypt(written_before, context=CTX)
    assert key_id_of(rewritten) == "k2"
    assert rotated.decrypt(rewritten, context=CTX) == ID
    assert rotated.reencrypt(written_after, context=CTX) is written_after

    # Once k1 is retired, what was rewritten still reads; what was not, says why.
    retired = FieldCipher({"k2": K2}, "k2")
    assert retired.decrypt(rewritten, context=CTX) == ID
    with pytest.raises(UnknownKeyIdError) as raised:
        retired.decrypt(written_before, context=CTX)
    assert raised.value.key_id == "k1"


def test_editing_the_key_id_does_not_pick_another_key() -> None:
    # Same key material under two ids: the header is authenticated, so relabelling fails.
    cipher = FieldCipher({"k1": K1, "k9": K1}, "k1")
    blob = cipher.encrypt(ID, context=CTX)
    relabelled = blob[:2] + b"k9" + blob[4:]
    with pytest.raises(DecryptionFailedError):
        cipher.decrypt(relabelled, context=CTX)


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x02\x02k1" + bytes(40), b"\x01\x00" + bytes(40), b"\x01\x02k1" + bytes(20)],
)
def test_malformed_ciphertexts(blob: bytes) -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    with pytest.raises(MalformedCiphertextError):
        cipher.decrypt(blob, context=CTX)


def test_cipher_refuses_bad_keys() -> None:
    with pytest.raises(ValueError, match="active key id"):
        FieldCipher({"k1": K1}, "k2")
    with pytest.raises(ValueError, match="32 bytes"):
        FieldCipher({"k1": K1[:16]}, "k1")
    with pytest.raises(ValueError, match="bad key id"):
        FieldCipher({"k 1": K1}, "k 1")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIBAO_PII_KEYS", f"k1:{b64(K1)}, k2:{b64(K2)}")
    monkeypatch.setenv("DIBAO_PII_ACTIVE_KEY_ID", "k2")
    monkeypatch.setenv("DIBAO_PII_HASH_KEY", b64(os.urandom(32)))
    settings = PiiSettings()
    assert settings.key_ring() == {"k1": K1, "k2": K2}
    cipher = FieldCipher.from_settings(settings)
    assert key_id_of(cipher.encrypt(ID, context=CTX)) == "k2"
    assert "k1:" not in repr(settings)  # secrets are not printed


def test_settings_from_devsecrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "dev.env"
    devsecrets.create(env_file)
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    cipher = FieldCipher.from_settings(PiiSettings())
    assert cipher.decrypt(cipher.encrypt(ID, context=CTX), context=CTX) == ID


@pytest.mark.parametrize(
    ("keys", "active", "hash_key", "message"),
    [
        (f"k1:{b64(K1)}", "k2", b64(K2), "active key id"),
        (f"k1:{b64(K1[:31])}", "k1", b64(K2), "32 bytes"),
        ("k1:not-base64!", "k1", b64(K2), "base64"),
        (f"k1:{b64(K1)},k1:{b64(K2)}", "k1", b64(K2), "twice"),
        (b64(K1), "k1", b64(K2), "<id>:<base64>"),
        (f"k1:{b64(K1)}", "k1", b64(K2[:8]), "hash key"),
        (f"k1:{b64(K1)}", "k1", "changeme", "placeholder"),
        ("changeme", "k1", b64(K2), "placeholder"),
    ],
)
def test_settings_refuse_bad_values(keys: str, active: str, hash_key: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PiiSettings(keys=keys, active_key_id=active, hash_key=hash_key)


def test_key_ring_ignores_blank_items() -> None:
    assert parse_key_ring(f" k1:{b64(K1)} ,, ") == {"k1": K1}
