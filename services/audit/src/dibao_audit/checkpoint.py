"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note formats (Ed25519).

Body: the origin line, the tree size, the base64 root hash and one extension line
``time <unix seconds>``; then a blank line and ``— <key name> <base64(key hash ‖ signature)>``.
The key name is the origin; the key hash is the first four bytes of
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), and the verifier key is published as a C2SP
vkey ``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

_ED25519 = b"\x01"
_DASH = "\u2014 "


class CheckpointError(ValueError):
    """A note that is malformed or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a verified checkpoint says."""

    origin: str
    tree_size: int
    root_hash: bytes
    signed_at: datetime


def _key_hash(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_raw).digest()[:4]


def _body(origin: str, tree_size: int, root_hash: bytes, signed_at: datetime) -> str:
    return (
        f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"
        f"time {int(signed_at.timestamp())}\n"
    )


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """The public half: a C2SP vkey."""

    name: str
    public_raw: bytes

    @property
    def key_hash(self) -> bytes:
        return _key_hash(self.name, self.public_raw)

    @property
    def key_id(self) -> str:
        return self.key_hash.hex()

    def vkey(self) -> str:
        encoded = base64.b64encode(_ED25519 + self.public_raw).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``name+hash+base64key``; raises CheckpointError when it is inconsistent."""
        try:
            name, hash_hex, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise CheckpointError(f"malformed verifier key: {exc}") from exc
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise CheckpointError("verifier key is not an Ed25519 key")
        key = cls(name, raw[1:])
        if key.key_id != hash_hex:
            raise CheckpointError("verifier key hash does not match its name and key")
        return key

    def verify(self, note: str) -> Checkpoint:
        """Check the note's signature by this key and parse its body."""
        body, sep, sigs = note.partition("\n\n")
        if not sep:
            raise CheckpointError("a signed note has a blank line before its signatures")
        body += "\n"
        public = Ed25519PublicKey.from_public_bytes(self.public_raw)
        for line in sigs.splitlines():
            if not line.startswith(_DASH):
                raise CheckpointError("malformed signature line")
            name, _, encoded = line[len(_DASH) :].rpartition(" ")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise CheckpointError("signature is not base64") from exc
            if name != self.name or raw[:4] != self.key_hash:
                continue
            try:
                public.verify(raw[4:], body.encode())
            except InvalidSignature as exc:
                raise CheckpointError("checkpoint signature does not verify") from exc
            return _parse_body(body, self.name)
        raise CheckpointError(f"no signature by {self.name}+{self.key_id}")


def _parse_body(body: str, origin: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or lines[0] != origin:
        raise CheckpointError("checkpoint origin does not match the key")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
        stamps = [int(x[5:]) for x in lines[3:] if x.startswith("time ")]
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError(f"malformed checkpoint body: {exc}") from exc
    if size < 0 or len(root) != 32 or len(stamps) != 1:
        raise CheckpointError("checkpoint needs a size, a 32-byte root and one time line")
    return Checkpoint(origin, size, root, datetime.fromtimestamp(stamps[0], UTC))


class CheckpointSigner:
    """Signs tree heads with the log's Ed25519 key; the key name is the log's origin."""

    def __init__(self, seed: bytes, origin: str) -> None:
        if len(seed) != 32:
            raise ValueError("the audit signing key is a 32-byte Ed25519 seed")
        if not origin or any(c in origin for c in " +\n"):
            raise ValueError("a log origin has no spaces, plus signs or newlines")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public_raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.origin = origin
        self.verifier = VerifierKey(origin, public_raw)

    def sign(self, tree_size: int, root_hash: bytes, signed_at: datetime) -> str:
        """The signed note for one tree head."""
        body = _body(self.origin, tree_size, root_hash, signed_at)
        signature = self._private.sign(body.encode())
        encoded = base64.b64encode(self.verifier.key_hash + signature).decode()
        return f"{body}\n{_DASH}{self.origin} {encoded}\n"
