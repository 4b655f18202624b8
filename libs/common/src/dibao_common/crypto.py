"""Personal data: field encryption with rotating keys, a keyed hash for lookups, masking.

See docs/adr/0005-personal-data.md. A stored ciphertext is::

    version (1 byte, 0x01) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ct+tag

The header and the caller's ``context`` (which table and column, ideally which row) are
AES-GCM associated data, so a ciphertext copied to another field or with its key id edited
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dibao_common.settings import Secret

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class PiiError(Exception):
    """Base of the personal-data crypto errors."""


class UnknownKeyIdError(PiiError):
    """The ciphertext names a key this process does not have."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no personal-data key with id {key_id!r} is configured")


class MalformedCiphertextError(PiiError):
    """The bytes are not a ciphertext of this format."""


class DecryptionFailedError(PiiError):
    """Authentication failed: the ciphertext was altered or the context differs."""


def _decode_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def parse_key_ring(spec: str) -> dict[str, bytes]:
    """``"k1:<b64>,k2:<b64>"`` -> ``{"k1": key, "k2": key}``, each key 32 bytes."""
    ring: dict[str, bytes] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError("each key must be written <id>:<base64>, id of [A-Za-z0-9_.-]{1,32}")
        if key_id in ring:
            raise ValueError(f"key id {key_id!r} appears twice")
        ring[key_id] = _decode_key(encoded, f"key {key_id!r}")
    if not ring:
        raise ValueError("at least one key is required")
    return ring


class PiiSettings(BaseSettings):
    """Keys for personal data: ``DIBAO_PII_KEYS``, ``DIBAO_PII_ACTIVE_KEY_ID``,
    ``DIBAO_PII_HASH_KEY`` (see ``devsecrets.py``)."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_PII_", extra="ignore", frozen=True)

    keys: Secret
    """Every key that may still be needed to decrypt: ``k1:<b64 32 bytes>,k2:...``."""
    active_key_id: str
    """The key new ciphertexts are written with."""
    hash_key: Secret
    """Base64 of 32 bytes, the HMAC key of the lookup hash. It never rotates silently:
    changing it means recomputing every stored hash."""

    @model_validator(mode="after")
    def _check(self) -> PiiSettings:
        ring = parse_key_ring(self.keys.get_secret_value())
        if self.active_key_id not in ring:
            raise ValueError(f"active key id {self.active_key_id!r} is not among the keys")
        _decode_key(self.hash_key.get_secret_value(), "the hash key")
        return self

    def key_ring(self) -> dict[str, bytes]:
        return parse_key_ring(self.keys.get_secret_value())

    def hash_key_bytes(self) -> bytes:
        return _decode_key(self.hash_key.get_secret_value(), "the hash key")


@dataclass(frozen=True, slots=True)
class _Header:
    key_id: str
    raw: bytes


class FieldCipher:
    """AES-256-GCM for one field value at a time; encrypts with the active key, decrypts
    with any configured one."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"active key id {active_key_id!r} is not among the keys")
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise ValueError(f"bad key id {key_id!r}")
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_settings(cls, settings: PiiSettings) -> FieldCipher:
        return cls(settings.key_ring(), settings.active_key_id)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``context`` (e.g. ``"intake.member.id_number"``)."""
        header = _header(self.active_key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.active_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), header + context.encode("utf-8")
        )
        return header + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        """The plaintext, or ``UnknownKeyIdError`` / ``MalformedCiphertextError`` /
        ``DecryptionFailedError``."""
        head, nonce, sealed = _split(blob)
        aead = self._aead.get(head.key_id)
        if aead is None:
            raise UnknownKeyIdError(head.key_id)
        try:
            plain = aead.decrypt(nonce, sealed, head.raw + context.encode("utf-8"))
        except InvalidTag:
            raise DecryptionFailedError(
                "ciphertext does not authenticate (altered, or another context)"
            ) from None
        return plain.decode("utf-8")

    def needs_rotation(self, blob: bytes) -> bool:
        """Whether ``blob`` was written with a key other than the active one."""
        return key_id_of(blob) != self.active_key_id

    def reencrypt(self, blob: bytes, *, context: str) -> bytes:
        """``blob`` under the active key (unchanged if it already is), for rotation jobs."""
        if not self.needs_rotation(blob):
            return blob
        return self.encrypt(self.decrypt(blob, context=context), context=context)


def key_id_of(blob: bytes) -> str:
    """The id of the key a ciphertext was written with."""
    return _split(blob)[0].key_id


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes([FORMAT_VERSION, len(encoded)]) + encoded


def _split(blob: bytes) -> tuple[_Header, bytes, bytes]:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise MalformedCiphertextError("unknown ciphertext format version")
    end = 2 + blob[1]
    # 16 bytes: the GCM tag, present even for an empty plaintext.
    if blob[1] == 0 or len(blob) < end + NONCE_BYTES + 16:
        raise MalformedCiphertextError("ciphertext is truncated")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedCiphertextError("key id is not ASCII") from None
    return _Header(key_id, blob[:end]), blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


def normalise_id_number(id_number: str) -> str:
    """The canonical spelling of a resident ID number: half-width, no spaces, upper X."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", id_number)).upper()


class PersonHasher:
    """A keyed hash of identifiers: equal for equal people, useless without the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"the hash key must be at least {KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_settings(cls, settings: PiiSettings) -> PersonHasher:
        return cls(settings.hash_key_bytes())

    @property
    def key_id(self) -> str:
        """A fingerprint of the key (``PersonRef.hash_key_id``): tells which key made a
        stored hash without revealing anything usable about it."""
        check = hmac.new(self._key, b"dibao.person-hash.key-id", hashlib.sha256).hexdigest()
        return f"h{check[:8]}"

    def hash_id_number(self, id_number: str) -> str:
        """Hex HMAC-SHA256 of the normalised ID number, for lookup and de-duplication."""
        normalised = normalise_id_number(id_number)
        return hmac.new(self._key, normalised.encode("ascii"), hashlib.sha256).hexdigest()


ID_NUMBER_LIKE = re.compile(r"\d{17}[\dXxＸｘ]")
"""A run of characters that may be an 18-character resident ID number (a bank card
number of 18 or 19 digits contains one too). Full-width digits are digits to ``re``, and
the check character may be a full-width X, as a Chinese input method types them."""


def carries_id_number(text: str) -> bool:
    """Whether ``text`` holds something that may be a resident ID (or card) number."""
    return ID_NUMBER_LIKE.search(text) is not None


def mask_id_numbers_in(text: str) -> str:
    """``text`` with every run that may be an ID (or card) number masked, as
    :func:`mask_id_number` masks one, wherever it stands. Logs and problem details use
    ``observability.mask_card_and_id_numbers_in``, which masks card numbers of 16 and 17
    digits too and leaves a run inside a hex digest or id, or a float's fraction, alone."""
    return ID_NUMBER_LIKE.sub(lambda m: mask_id_number(m.group()), text)


def mask_id_number(id_number: str) -> str:
    """``62010219800101123X`` -> ``620102********123X`` (region and last four kept)."""
    value = normalise_id_number(id_number)
    if len(value) < 11:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


_NAME_SEPARATORS = re.compile(r"([·•・.\s-]+)")


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def mask_name(name: str) -> str:
    """``张三丰`` -> ``张*丰``, ``张三`` -> ``张*``, ``买买提·艾力`` -> ``买**·艾*``,
    ``John Smith`` -> ``J*** S****``."""
    value = name.strip()
    if not value:
        return ""
    parts = _NAME_SEPARATORS.split(value)
    if len(parts) == 1 and all(_is_cjk(c) for c in value):
        if len(value) == 1:
            return "*"
        if len(value) == 2:
            return value[0] + "*"
        return value[0] + "*" * (len(value) - 2) + value[-1]
    # Names in several parts (Latin, or transliterated with a middle dot): each part
    # keeps only its first letter.
    return "".join(
        part if _NAME_SEPARATORS.fullmatch(part) else part[0] + "*" * (len(part) - 1)
        for part in parts
        if part
    )


def mask_account(account: str) -> str:
    """``6222020200112233445`` -> ``6222 **** **** 3445``; the length is not revealed."""
    value = re.sub(r"[\s-]+", "", account)
    if len(value) < 8:
        return "*" * len(value)
    return f"{value[:4]} **** **** {value[-4:]}"
