"""The canonical bytes of a log entry: what its Merkle leaf hashes (ADR 0006).

Everything a verifier needs to recompute a leaf is in the Kafka record as consumed:
topic, partition, offset, headers and payload. The encoding is length-prefixed and
deterministic, so a verifier in any language rebuilds it from an export alone.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_DOMAIN = b"dibao.audit.entry.v1"


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One consumed Kafka record, exactly as it was delivered."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    payload: bytes

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


_PACK_U32 = struct.Struct(">I").pack
_PACK_POSITION = struct.Struct(">IQ").pack
_U32 = struct.Struct(">I")
_IQ = struct.Struct(">IQ")
_DOMAIN_FIELD = _PACK_U32(len(ENTRY_DOMAIN)) + ENTRY_DOMAIN


def header_block(headers: Iterable[tuple[str, bytes]]) -> bytes:
    """``u32(n) {field(name) field(value)}*n``, sorted by (name bytes, value bytes).

    The part of the canonical bytes the log stores as it is (``log_entry.header_block``).
    On the append path, so written for speed: the pairs are sorted as they are (UTF-8
    byte order is code point order, so sorting the names as text sorts their bytes) and
    the encoded name fields of the few header names in use are cached.
    """
    return sorted_header_block(sorted(headers))


def sorted_header_block(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    """:func:`header_block` of pairs already in its order (sorted)."""
    parts = [_PACK_U32(len(pairs))]
    names = _NAME_FIELDS
    for name, value in pairs:
        parts.append(names.get(name) or _name_field(name))
        parts.append(_PACK_U32(len(value)))
        parts.append(value)
    return b"".join(parts)


_NAME_FIELDS: dict[str, bytes] = {}
_NAME_CACHE_MAX = 1024


def _name_field(name: str) -> bytes:
    encoded = name.encode()
    out = _PACK_U32(len(encoded)) + encoded
    if len(_NAME_FIELDS) < _NAME_CACHE_MAX:
        _NAME_FIELDS[name] = out
    return out


def canonical_from_parts(
    topic: str, partition: int, offset: int, key: bytes | None, headers: bytes, payload: bytes
) -> bytes:
    """:func:`canonical_bytes` from the stored parts (``headers`` a :func:`header_block`)."""
    if partition < 0 or offset < 0:
        raise ValueError("a consumed record has a non-negative partition and offset")
    encoded = topic.encode()
    return b"".join(
        (
            _DOMAIN_FIELD,
            _PACK_U32(len(encoded)),
            encoded,
            _PACK_POSITION(partition, offset),
            b"\x00" if key is None else b"\x01" + _PACK_U32(len(key)) + key,
            headers,
            _PACK_U32(len(payload)),
            payload,
        )
    )


def canonical_bytes(event: RecordedEvent) -> bytes:
    """The leaf's preimage: domain, topic, partition, offset, key, sorted headers, payload.

    ``field(domain) field(topic) u32(partition) u64(offset) key u32(n) {field(name)
    field(value)}*n field(payload)``, where ``key`` is ``u8(0)`` for a record without a
    key and ``u8(1) field(key)`` otherwise, ``field(x)`` is a big-endian u32 length then
    the bytes; names are UTF-8; headers are sorted by (name bytes, value bytes), so the
    broker's header order does not matter.
    """
    return canonical_from_parts(
        event.topic,
        event.partition,
        event.offset,
        event.key,
        header_block(event.headers),
        event.payload,
    )


def parse_header_block(block: bytes) -> tuple[tuple[str, bytes], ...]:
    """The headers a :func:`header_block` holds, in its (sorted) order.

    Every read path checks stored columns against the record with it (the API, exports,
    ``dbcheck``), so it slices the bytes directly, one precompiled unpack per length."""
    size = len(block)
    unpack = _U32.unpack_from
    out = []
    try:
        (count,) = unpack(block, 0)
        pos = 4
        for _ in range(count):
            end = pos + 4 + unpack(block, pos)[0]
            if end > size:
                raise MalformedEntryError("header block is truncated")
            name = block[pos + 4 : end].decode()
            pos = end + 4 + unpack(block, end)[0]
            if pos > size:
                raise MalformedEntryError("header block is truncated")
            out.append((name, block[end + 4 : pos]))
    except struct.error as exc:
        raise MalformedEntryError("header block is truncated") from exc
    except UnicodeDecodeError as exc:
        raise MalformedEntryError("a header name is not UTF-8") from exc
    if pos != size:
        raise MalformedEntryError("trailing bytes after the headers")
    return tuple(out)


def pick_headers(block: bytes, wanted: dict[bytes, int]) -> list[bytes | None] | None:
    """The values of the headers ``wanted`` names (name -> slot; of a name repeated, the
    last in the block's order, as ``dict(parse_header_block(block))`` gives), or None
    where :func:`parse_header_block` would raise. Only the names are compared (and checked
    to be UTF-8): no header is decoded or kept but those asked for."""
    size = len(block)
    unpack = _U32.unpack_from
    out: list[bytes | None] = [None] * len(wanted)
    try:
        (count,) = unpack(block, 0)
        pos = 4
        for _ in range(count):
            # A length past the end makes the next unpack raise (or the last one leave
            # pos != size), so the bounds are not tested per field.
            end = pos + 4 + unpack(block, pos)[0]
            name = block[pos + 4 : end]
            pos = end + 4 + unpack(block, end)[0]
            slot = wanted.get(name)
            if slot is not None:
                out[slot] = block[end + 4 : pos]
            elif not name.isascii():
                name.decode()
    except (struct.error, UnicodeDecodeError):
        return None
    if pos != size:
        return None
    return out


_Layout = tuple[struct.Struct, tuple[Any, ...], struct.Struct, tuple[tuple[int, int], ...]]


class HeaderPicker:
    """:func:`pick_headers` of ``wanted``, remembering the layout of the blocks it read.

    A layout is a block's sequence of (name, value length): the records of one producer
    share a few (dibao's relays write the same headers, values of fixed length but the
    actor's). A block of a remembered length is read with two precompiled unpacks rather
    than a loop: one gives every length field and name (the skeleton), which must equal
    the remembered block's, so the walk of :func:`pick_headers` would go the same way and
    succeed; the other gives the values asked for. Any other block is walked, and its
    layout remembered (at most ``limit`` lengths, then forgotten at once)."""

    def __init__(self, wanted: dict[bytes, int], limit: int = 256) -> None:
        self._wanted = wanted
        self._limit = limit
        self._layouts: dict[int, _Layout] = {}

    def __call__(self, block: bytes) -> list[bytes | None] | None:
        layout = self._layouts.get(len(block))
        if layout is not None:
            skeleton, expected, values, slots = layout
            if skeleton.unpack_from(block) == expected:
                got = values.unpack_from(block)
                out: list[bytes | None] = [None] * len(self._wanted)
                for slot, at in slots:
                    out[slot] = got[at]
                return out
        found = pick_headers(block, self._wanted)
        if found is not None:
            if len(self._layouts) >= self._limit:
                self._layouts.clear()
            self._layouts[len(block)] = self._layout_of(block)
        return found

    def _layout_of(self, block: bytes) -> _Layout:
        """The layout of a block :func:`pick_headers` read (so well formed)."""
        unpack = _U32.unpack_from
        (count,) = unpack(block, 0)
        pos = 4
        skeleton, values = [">I"], [">4x"]
        slots: list[tuple[int, int]] = []
        for _ in range(count):
            n = unpack(block, pos)[0]
            name = block[pos + 4 : pos + 4 + n]
            size = unpack(block, pos + 4 + n)[0]
            pos += 8 + n + size
            skeleton.append(f"I{n}sI{size}x")
            slot = self._wanted.get(name)
            if slot is None:
                values.append(f"{8 + n + size}x")
            else:
                values.append(f"{8 + n}x{size}s")
                slots.append((slot, len(slots)))
        shape = struct.Struct("".join(skeleton))
        return shape, shape.unpack_from(block), struct.Struct("".join(values)), tuple(slots)


class MalformedEntryError(ValueError):
    """Bytes that are not a canonical entry."""


def parse_canonical(data: bytes) -> RecordedEvent:
    """The record a canonical entry encodes (inverse of :func:`canonical_bytes`)."""
    view = memoryview(data)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise MalformedEntryError("canonical entry is truncated")
        out = bytes(view[pos : pos + n])
        pos += n
        return out

    def field() -> bytes:
        return take(struct.unpack(">I", take(4))[0])

    try:
        if field() != ENTRY_DOMAIN:
            raise MalformedEntryError("not a dibao.audit.entry.v1")
        topic = field().decode()
        partition, offset = struct.unpack(">IQ", take(12))
        flag = take(1)
        if flag not in (b"\x00", b"\x01"):
            raise MalformedEntryError("the key flag is neither 0 nor 1")
        key = field() if flag == b"\x01" else None
        count = struct.unpack(">I", take(4))[0]
        headers = tuple((field().decode(), field()) for _ in range(count))
        payload = field()
    except UnicodeDecodeError as exc:
        raise MalformedEntryError("a name is not UTF-8") from exc
    if pos != len(view):
        raise MalformedEntryError("trailing bytes after the payload")
    return RecordedEvent(topic, partition, offset, key, headers, payload)


CanonicalParts = tuple[str, int, int, bytes | None, bytes, bytes]
"""A canonical entry's parts as ``log_entry`` stores them: topic, partition, offset, key,
header block (as it is, not parsed) and payload."""


def split_canonical(data: bytes) -> CanonicalParts:
    """The stored parts of a canonical entry (inverse of :func:`canonical_from_parts`);
    the header block is only walked, not decoded."""
    size = len(data)
    unpack_u32 = _U32.unpack_from
    try:
        pos = 4 + unpack_u32(data, 0)[0]
        if data[4:pos] != ENTRY_DOMAIN:
            raise MalformedEntryError("not a dibao.audit.entry.v1")
        n = unpack_u32(data, pos)[0]
        topic = data[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        partition, offset = _IQ.unpack_from(data, pos)
        pos += 12
        flag = data[pos : pos + 1]
        pos += 1
        key = None
        if flag == b"\x01":
            n = unpack_u32(data, pos)[0]
            key = data[pos + 4 : pos + 4 + n]
            pos += 4 + n
        elif flag != b"\x00":
            raise MalformedEntryError("the key flag is neither 0 nor 1")
        block_at = pos
        count = unpack_u32(data, pos)[0]
        pos += 4
        for _ in range(2 * count):
            pos += 4 + unpack_u32(data, pos)[0]
        block = data[block_at:pos]
        n = unpack_u32(data, pos)[0]
        payload = data[pos + 4 : pos + 4 + n]
        pos += 4 + n
    except (struct.error, UnicodeDecodeError) as exc:
        raise MalformedEntryError(f"canonical entry is malformed: {exc}") from exc
    if pos != size:
        raise MalformedEntryError("canonical entry is truncated or has trailing bytes")
    return topic, partition, offset, key, block, payload


def entry_to_b64(event: RecordedEvent) -> str:
    """How an export line carries an entry: its canonical bytes in standard base64."""
    return base64.b64encode(canonical_bytes(event)).decode()
