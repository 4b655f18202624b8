"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note formats (Ed25519).

Body: the origin line, the tree size, the base64 root hash and one extension line
``time <unix seconds>``; then a blank line and ``— <key name> <base64(key hash ‖ signature)>``.
The key name is the origin; the key hash is the first four bytes of
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), and the verifier key is published as a C2SP
vkey ``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``.

Rotation (docs/adr/0018): the log hands over from one key to the next in one checkpoint,
its **hand-over**: one more extension line ``handover <old vkey> <new vkey>`` and two
signatures, the old key's then the new one's. Checkpoints after it are signed by the new
key alone. :class:`KeyTrust` is how a verifier follows that from the keys it pinned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

_ED25519 = b"\x01"
_DASH = "\u2014 "
_HANDOVER = "handover "
HANDOVER_LINE = "\n" + _HANDOVER
"""What a hand-over's note holds, and no other checkpoint's (its extension line)."""


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


def _body(
    origin: str, tree_size: int, root_hash: bytes, signed_at: datetime, handover: str = ""
) -> str:
    return (
        f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"
        f"time {int(signed_at.timestamp())}\n{handover}"
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


@dataclass(frozen=True, slots=True)
class Handover:
    """What a hand-over checkpoint says, unverified: its size and the two keys it names."""

    tree_size: int
    old: VerifierKey
    new: VerifierKey


def handover_of(note: str) -> Handover | None:
    """The hand-over a note's body names (``handover <old vkey> <new vkey>``), or None when
    it names none; read without checking any signature. CheckpointError when malformed."""
    body = note.partition("\n\n")[0]
    lines = body.split("\n")
    named = [x[len(_HANDOVER) :] for x in lines[3:] if x.startswith(_HANDOVER)]
    if not named:
        return None
    try:
        size = int(lines[1])
        old, new = named[0].split(" ")
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"malformed hand-over line: {exc}") from exc
    if len(named) > 1:
        raise CheckpointError("a checkpoint names one hand-over at most")
    handover = Handover(size, VerifierKey.parse(old), VerifierKey.parse(new))
    if handover.old.name != lines[0] or handover.new.name != lines[0]:
        raise CheckpointError("a hand-over names keys of the checkpoint's origin")
    if handover.old == handover.new:
        raise CheckpointError("a hand-over names two different keys")
    return handover


def _claimed_size(note: str) -> int:
    lines = note.split("\n", 2)
    try:
        return int(lines[1])
    except (ValueError, IndexError) as exc:
        raise CheckpointError("malformed checkpoint body: no tree size") from exc


@dataclass(slots=True)
class _Trusted:
    key: VerifierKey
    since: int
    """The smallest tree size it signs for (0 for a pinned key)."""
    until: int | None = None
    """The hand-over to another key: it signs no tree larger than this."""
    to: VerifierKey | None = None
    """The key it handed over to (at ``until``)."""


@dataclass(slots=True)
class KeyTrust:
    """The keys a verifier trusts at each tree size: the ones it pinned, and those the
    hand-overs it followed introduced.

    A hand-over at size ``h`` from key A to key B (:func:`handover_of`) counts only when A
    and B both sign it and one of them is trusted at ``h``. If A is, B is trusted for trees
    of ``h`` and more, and A for none larger than ``h`` (the log promised to sign with B
    alone from there: a later checkpoint signed by A only fails). If only B is (pinned),
    A is trusted for the trees up to ``h``, back along the log. A checkpoint is accepted
    only with a valid signature by a key trusted at its size.

    Keys are told apart by their public key, never by their 4-byte key id alone: a key
    with a trusted key's id takes about 2^32 tries to make, and is not that key.
    """

    pinned: Sequence[VerifierKey]
    _keys: dict[VerifierKey, _Trusted] = field(default_factory=dict)
    _followed: set[str] = field(default_factory=set)
    handovers: list[dict[str, object]] = field(default_factory=list)
    """The hand-overs followed, oldest first: size, the key trust moved from and to."""
    used: dict[str, VerifierKey] = field(default_factory=dict)
    """The keys whose signatures accepted a checkpoint, by vkey."""

    def __post_init__(self) -> None:
        if not self.pinned:
            raise CheckpointError("no pinned key")
        for key in self.pinned:
            self._keys[key] = _Trusted(key, 0)

    @classmethod
    def of(cls, keys: KeyTrust | VerifierKey | Sequence[VerifierKey]) -> KeyTrust:
        if isinstance(keys, KeyTrust):
            return keys
        return cls([keys] if isinstance(keys, VerifierKey) else list(keys))

    @property
    def names(self) -> set[str]:
        """The key names (the log's origin) of the trusted keys."""
        return {t.key.name for t in self._keys.values()}

    def _at(self, size: int) -> list[VerifierKey]:
        return [
            t.key
            for t in self._keys.values()
            if t.since <= size and (t.until is None or size <= t.until)
        ]

    def follow(self, notes: Iterable[str]) -> list[str]:
        """Follow the hand-overs among ``notes`` (others are skipped; one already followed
        is not again); the problems with those that do not count."""
        problems: list[str] = []
        pending: list[tuple[Handover, str]] = []
        for note in notes:
            if note in self._followed:
                continue
            try:
                handover = handover_of(note)
            except CheckpointError as exc:
                problems.append(f"hand-over checkpoint: {exc}")
                continue
            if handover is not None:
                pending.append((handover, note))
        pending.sort(key=lambda p: p[0].tree_size)
        moved = True
        while pending and moved:  # forward first; backward from a pinned new key
            moved = False
            for item in list(pending):
                handover, note = item
                at = set(self._at(handover.tree_size))
                if handover.old not in at and handover.new not in at:
                    continue
                pending.remove(item)
                moved = True
                self._followed.add(note)
                try:
                    handover.old.verify(note)
                    handover.new.verify(note)
                except CheckpointError as exc:
                    problems.append(
                        f"hand-over at {handover.tree_size} from {handover.old.key_id} to "
                        f"{handover.new.key_id} is not signed by both keys: {exc}"
                    )
                    continue
                conflict = self._move(handover, forward=handover.old in at)
                if conflict is not None:
                    problems.append(conflict)
        for handover, note in pending:
            self._followed.add(note)
            problems.append(
                f"hand-over at {handover.tree_size} from {handover.old.key_id} to "
                f"{handover.new.key_id} is signed by no key trusted there: the new key is "
                "not trusted"
            )
        return problems

    def _move(self, handover: Handover, *, forward: bool) -> str | None:
        """Trust moved by a hand-over signed by both keys; a problem instead when its old
        key already handed over, at another size or to another key (a key hands over
        once: two hand-overs from one key are two logs, one of them by someone else
        holding it)."""
        h = handover.tree_size
        old = self._keys.get(handover.old)
        if old is not None and old.until is not None and (old.until, old.to) != (h, handover.new):
            to = "" if old.to is None else f" to {old.to.key_id}"
            return (
                f"hand-over at {h} from {handover.old.key_id} to {handover.new.key_id}: that "
                f"key already handed over at {old.until}{to}; two hand-overs from one key "
                "are two logs (the key was abused)"
            )
        new = self._keys.get(handover.new)
        if forward:
            assert old is not None
            old.until, old.to = h, handover.new
            if new is None:
                self._keys[handover.new] = _Trusted(handover.new, h)
            else:
                new.since = min(new.since, h)
        elif old is None:
            self._keys[handover.old] = _Trusted(handover.old, 0, h, handover.new)
        self.handovers.append(
            {
                "tree_size": h,
                "from": handover.old.vkey(),
                "to": handover.new.vkey(),
                "followed": "forward" if forward else "backward",
            }
        )
        return None

    def verify(self, note: str) -> Checkpoint:
        """The checkpoint of a note with a valid signature by a key trusted at its size."""
        return self.verify_by(note)[0]

    def verify_by(self, note: str) -> tuple[Checkpoint, VerifierKey]:
        """:meth:`verify`, and the key the log signs with from that checkpoint on: the new
        key of a hand-over, else the trusted key whose signature it carries."""
        size = _claimed_size(note)
        keys = self._at(size)
        errors = []
        for key in keys:
            try:
                checkpoint = key.verify(note)
            except CheckpointError as exc:
                errors.append(str(exc))
                continue
            self.used.setdefault(key.vkey(), key)
            handover = handover_of(note)
            return checkpoint, key if handover is None else handover.new
        sigs = note.partition("\n\n")[2].splitlines()
        retired = [
            f"{t.key.key_id}, which handed over at {t.until}"
            for t in self._keys.values()
            if t.until is not None and size > t.until and any(_names_key(x, t.key) for x in sigs)
        ]
        why = "; ".join(errors + [f"it is signed by {r}" for r in retired]) or "none signs it"
        raise CheckpointError(f"no signature by a key trusted at size {size}: {why}")

    def summary(self) -> dict[str, object]:
        """Which keys were pinned, which signed what was accepted, where trust moved."""
        return {
            "pinned": [k.vkey() for k in self.pinned],
            "used": sorted(k.vkey() for k in self.used.values()),
            "handovers": self.handovers,
        }


def _names_key(line: str, key: VerifierKey) -> bool:
    if not line.startswith(_DASH):
        return False
    name, _, encoded = line[len(_DASH) :].rpartition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    return name == key.name and raw[:4] == key.key_hash


class CheckpointSigner:
    """Signs tree heads with the log's Ed25519 key; the key name is the log's origin.

    With ``next_seed`` it hands over to that key (docs/adr/0018): :meth:`sign_after` signs
    the first checkpoint after one by the current key with both (a hand-over, naming both
    keys in its body) and every one after it with the next key alone."""

    def __init__(self, seed: bytes, origin: str, *, next_seed: bytes | None = None) -> None:
        if not origin or any(c in origin for c in " +\n"):
            raise ValueError("a log origin has no spaces, plus signs or newlines")
        self.origin = origin
        self._private = _private_key(seed)
        self.verifier = VerifierKey(origin, _public_raw(self._private))
        self._next = None if next_seed is None else _private_key(next_seed)
        self.next_verifier = (
            None if self._next is None else VerifierKey(origin, _public_raw(self._next))
        )
        if self.next_verifier == self.verifier:
            raise ValueError("the next audit signing key is the current one")

    @property
    def keys(self) -> tuple[VerifierKey, ...]:
        """The keys it holds: the current one, and the next if any."""
        return (
            (self.verifier,) if self.next_verifier is None else (self.verifier, self.next_verifier)
        )

    def sign(self, tree_size: int, root_hash: bytes, signed_at: datetime) -> str:
        """The signed note for one tree head, by the current key."""
        body = _body(self.origin, tree_size, root_hash, signed_at)
        return body + "\n" + _signature(self._private, self.verifier, body)

    def key_after(self, note: str, tree_size: int, root_hash: bytes) -> str:
        """The id of the key the log signs with after the stored checkpoint ``note`` (of
        ``tree_size`` and ``root_hash`` as its row says), read from its signatures, not
        from the ``key_id`` column (no hash covers it: an SQL edit would have the signer
        skip the hand-over or make a second one): the new key of a hand-over one of the
        keys it holds signed, else the one of them that signed it. CheckpointError when
        none of them signs it or it is not the row's checkpoint."""
        for key in self.keys:
            try:
                signed = key.verify(note)
            except CheckpointError:
                continue
            if (signed.tree_size, signed.root_hash) != (tree_size, root_hash):
                raise CheckpointError(
                    f"the log's last checkpoint ({tree_size}) holds the note of another "
                    f"({signed.tree_size}, or another root)"
                )
            handover = handover_of(note)
            return key.key_id if handover is None else handover.new.key_id
        raise CheckpointError(
            f"the log's last checkpoint ({tree_size}) is signed by none of the keys "
            f"{', '.join(k.key_id for k in self.keys)} (DIBAO_AUDIT_SIGNING_KEY, "
            "DIBAO_AUDIT_NEXT_SIGNING_KEY): a new key is introduced by a hand-over, with the "
            "old key as DIBAO_AUDIT_SIGNING_KEY and the new one as "
            "DIBAO_AUDIT_NEXT_SIGNING_KEY (docs/adr/0018)"
        )

    def signing_key(self, last_key_id: str | None) -> VerifierKey:
        """The key the log signs with after a checkpoint signed by ``last_key_id`` (None:
        no checkpoint yet); CheckpointError when it holds neither that key nor the next."""
        if last_key_id is None or last_key_id == self.verifier.key_id:
            return self.next_verifier or self.verifier
        if self.next_verifier is not None and last_key_id == self.next_verifier.key_id:
            return self.next_verifier
        raise CheckpointError(
            f"the log's last checkpoint is signed by key {last_key_id}, not by "
            f"{self.verifier.key_id} (DIBAO_AUDIT_SIGNING_KEY): a new key is introduced by a "
            "hand-over, with the old key as DIBAO_AUDIT_SIGNING_KEY and the new one as "
            "DIBAO_AUDIT_NEXT_SIGNING_KEY (docs/adr/0018)"
        )

    def sign_after(
        self, last_key_id: str | None, tree_size: int, root_hash: bytes, signed_at: datetime
    ) -> tuple[str, str]:
        """The note for a tree head following a checkpoint signed by ``last_key_id`` (None:
        the first), and the id of the key the log signs with from it on: by the current
        key; with a next key, a hand-over signed by both after one by the current key (or
        as the first), then by the next key alone. CheckpointError as :meth:`signing_key`."""
        key = self.signing_key(last_key_id)
        if key == self.verifier:
            return self.sign(tree_size, root_hash, signed_at), key.key_id
        assert self._next is not None
        if last_key_id == key.key_id:
            body = _body(self.origin, tree_size, root_hash, signed_at)
            return body + "\n" + _signature(self._next, key, body), key.key_id
        handover = f"{_HANDOVER}{self.verifier.vkey()} {key.vkey()}\n"
        body = _body(self.origin, tree_size, root_hash, signed_at, handover)
        signatures = _signature(self._private, self.verifier, body) + _signature(
            self._next, key, body
        )
        return body + "\n" + signatures, key.key_id


def _private_key(seed: bytes) -> Ed25519PrivateKey:
    if len(seed) != 32:
        raise ValueError("an audit signing key is a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _signature(private: Ed25519PrivateKey, key: VerifierKey, body: str) -> str:
    """One signature line of a signed note over ``body``."""
    encoded = base64.b64encode(key.key_hash + private.sign(body.encode())).decode()
    return f"{_DASH}{key.name} {encoded}\n"
