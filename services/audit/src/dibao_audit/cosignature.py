"""Witness cosignatures of checkpoints: C2SP tlog-cosignature, the Ed25519 ``cosignature/v1``.

A cosignature is one more signature line of a checkpoint's signed note, by a witness:

    — <witness name> base64(key ID[4] ‖ timestamp[8, big-endian] ‖ Ed25519 signature[64])

The key ID is SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4] (0x04: the cosignature/v1 key
type, so a witness key can never pass for a log key, 0x01), and the signature covers

    cosignature/v1\\n
    time <timestamp>\\n
    <the checkpoint's whole note body, extension lines included, with its final newline>

It says: as of that time, the largest tree the witness has seen of the log of that origin,
consistent with every earlier one it saw, has this root (docs/adr/0024). A witness's
verifier key is a C2SP vkey ``<name>+<hex key ID>+<base64(0x04 ‖ public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

COSIGNATURE_V1 = b"\x04"
"""The key type of an Ed25519 cosignature/v1 key (C2SP tlog-cosignature)."""
_HEADER = "cosignature/v1\n"
_DASH = "\u2014 "
_MAX_TIMESTAMP = 2**63 - 1


class CosignatureError(ValueError):
    """A witness key or cosignature that is malformed, missing or does not verify."""


def note_body(note: str) -> str:
    """The body of a signed note (its text before the blank line, with its final newline):
    what a cosignature covers. CosignatureError when the note has no signature block."""
    body, sep, _ = note.partition("\n\n")
    if not sep:
        raise CosignatureError("a signed note has a blank line before its signatures")
    return body + "\n"


def signed_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header line, time line, the checkpoint's body."""
    if not body.endswith("\n"):
        raise CosignatureError("a note body ends with a newline")
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise CosignatureError(f"a cosignature's timestamp is 0 to 2^63-1, not {timestamp}")
    return f"{_HEADER}time {timestamp}\n{body}".encode()


def _key_id(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public_raw).digest()[:4]


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c in name for c in " +\n") and name.isprintable()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: by which witness, at what time."""

    witness: WitnessKey
    timestamp: int
    line: str
    """The signature line as it appears in the note (without its newline)."""

    @property
    def signed_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A witness's public key: its name and its raw Ed25519 public key."""

    name: str
    public_raw: bytes

    @property
    def key_hash(self) -> bytes:
        return _key_id(self.name, self.public_raw)

    @property
    def key_id(self) -> str:
        return self.key_hash.hex()

    def vkey(self) -> str:
        encoded = base64.b64encode(COSIGNATURE_V1 + self.public_raw).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """Parse ``name+keyid+base64(0x04 ‖ key)``; CosignatureError when it is malformed,
        not a cosignature/v1 key, or its key ID is not its name's and key's."""
        try:
            name, hash_hex, encoded = vkey.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise CosignatureError(f"malformed witness key: {exc}") from exc
        if len(raw) != 33 or raw[:1] != COSIGNATURE_V1:
            raise CosignatureError(
                "a witness key is an Ed25519 cosignature/v1 key (type 0x04, 32 bytes)"
            )
        if not _valid_name(name):
            raise CosignatureError("a witness name has no spaces, plus signs or newlines")
        key = cls(name, raw[1:])
        if key.key_id != hash_hex:
            raise CosignatureError("witness key ID does not match its name and key")
        return key

    def lines_in(self, note: str) -> list[tuple[str, bytes]]:
        """The signature lines of ``note`` that name this witness (name and key ID), with
        their decoded bytes."""
        found = []
        for line in note.partition("\n\n")[2].splitlines():
            if not line.startswith(_DASH):
                continue
            name, _, encoded = line[len(_DASH) :].rpartition(" ")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            if name == self.name and raw[:4] == self.key_hash:
                found.append((line, raw))
        return found

    def verify(self, note: str) -> Cosignature:
        """This witness's cosignature of ``note``: the first of its lines that verifies over
        the note's body. CosignatureError when it carries none, or none verifies."""
        body = note_body(note)
        public = Ed25519PublicKey.from_public_bytes(self.public_raw)
        lines = self.lines_in(note)
        if not lines:
            raise CosignatureError(f"no cosignature by {self.name}+{self.key_id}")
        for line, raw in lines:
            if len(raw) != 4 + 8 + 64:
                continue
            timestamp = int.from_bytes(raw[4:12], "big")
            try:
                public.verify(raw[12:], signed_message(body, timestamp))
            except (InvalidSignature, CosignatureError):
                continue
            return Cosignature(self, timestamp, line)
        raise CosignatureError(f"the cosignature by {self.name}+{self.key_id} does not verify")


def timestamp_of(line: str) -> int:
    """The timestamp a cosignature/v1 signature line carries (unverified)."""
    try:
        raw = base64.b64decode(line.rpartition(" ")[2], validate=True)
    except binascii.Error as exc:
        raise CosignatureError("a cosignature is base64") from exc
    if len(raw) != 4 + 8 + 64:
        raise CosignatureError("a cosignature/v1 is a key ID, a timestamp and a signature")
    return int.from_bytes(raw[4:12], "big")


class Cosigner:
    """A witness's signing half: cosigns checkpoint notes with its Ed25519 key."""

    def __init__(self, seed: bytes, name: str) -> None:
        if len(seed) != 32:
            raise ValueError("a witness signing key is a 32-byte Ed25519 seed")
        if not _valid_name(name):
            raise ValueError("a witness name has no spaces, plus signs or newlines")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key = WitnessKey(name, public)

    def cosign(self, note: str, timestamp: int) -> str:
        """The signature line (with its newline) of this witness's cosignature of ``note``
        (a signed note: its body is what is signed) at ``timestamp`` (POSIX seconds)."""
        message = signed_message(note_body(note), timestamp)
        raw = self.key.key_hash + timestamp.to_bytes(8, "big") + self._private.sign(message)
        return f"{_DASH}{self.key.name} {base64.b64encode(raw).decode()}\n"


def with_cosignatures(note: str, lines: Sequence[str]) -> str:
    """``note`` with the signature lines ``lines`` appended (a signed note may carry any
    number of signatures; a verifier ignores those of keys it does not know)."""
    out = note if note.endswith("\n") else note + "\n"
    for line in lines:
        out += line if line.endswith("\n") else line + "\n"
    return out


@dataclass(slots=True)
class Quorum:
    """Which of the witnesses a verifier trusts cosigned a note, and whether k of them did."""

    required: int
    cosigned: list[Cosignature]
    problems: list[str]
    """Lines of trusted witnesses that did not verify (forged or of another note)."""
    missing: list[WitnessKey]

    @property
    def met(self) -> bool:
        return len(self.cosigned) >= self.required

    def summary(self) -> dict[str, object]:
        return {
            "required": self.required,
            "cosigned_by": [c.witness.vkey() for c in self.cosigned],
            "missing": [k.vkey() for k in self.missing],
            "met": self.met,
        }


def check_quorum(note: str, witnesses: Sequence[WitnessKey], required: int) -> Quorum:
    """Count the distinct trusted witnesses whose cosignature of ``note`` verifies.

    A witness counts once however many lines it has; two vkeys with the same public key
    (the cosignature does not commit to the name) count once too. ``required`` is k of the
    n witnesses given (1 <= k <= n)."""
    if not witnesses:
        raise CosignatureError("no witness key")
    if not 1 <= required <= len(witnesses):
        raise CosignatureError(f"a quorum is 1 to {len(witnesses)} witnesses, not {required}")
    cosigned: list[Cosignature] = []
    problems: list[str] = []
    missing: list[WitnessKey] = []
    seen: set[bytes] = set()
    for key in dict.fromkeys(witnesses):
        try:
            found = key.verify(note)
        except CosignatureError as exc:
            missing.append(key)
            if key.lines_in(note):
                problems.append(str(exc))
            continue
        if key.public_raw in seen:
            continue
        seen.add(key.public_raw)
        cosigned.append(found)
    return Quorum(required, cosigned, problems, missing)
