"""The canonical bytes of a log entry: what its Merkle leaf hashes (ADR 0006).

Everything a verifier needs to recompute a leaf is in the Kafka record as consumed:
topic, partition, offset, headers and payload. The encoding is length-prefixed and
deterministic, so a verifier in any language rebuilds it from an export alone.
"""

from __future__ import annotations

import base64
import struct
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


def _field(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def canonical_bytes(event: RecordedEvent) -> bytes:
    """The leaf's preimage: domain, topic, partition, offset, sorted headers, payload.

    ``field(domain) field(topic) u32(partition) u64(offset) key u32(n) {field(name)
    field(value)}*n field(payload)``, where ``key`` is ``u8(0)`` for a record without a
    key and ``u8(1) field(key)`` otherwise, ``field(x)`` is a big-endian u32 length then
    the bytes; names are UTF-8; headers are sorted by (name bytes, value bytes), so the
    broker's header order does not matter.
    """
    if event.partition < 0 or event.offset < 0:
        raise ValueError("a consumed record has a non-negative partition and offset")
    headers = sorted((name.encode(), value) for name, value in event.headers)
    parts = [
        _field(ENTRY_DOMAIN),
        _field(event.topic.encode()),
        struct.pack(">IQ", event.partition, event.offset),
        b"\x00" if event.key is None else b"\x01" + _field(event.key),
        struct.pack(">I", len(headers)),
    ]
    for name, value in headers:
        parts.append(_field(name))
        parts.append(_field(value))
    parts.append(_field(event.payload))
    return b"".join(parts)


def event_to_json(event: RecordedEvent) -> dict[str, Any]:
    """The verifiable part of an export line (bytes in standard base64)."""
    return {
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "key": None if event.key is None else base64.b64encode(event.key).decode(),
        "headers": [[k, base64.b64encode(v).decode()] for k, v in event.headers],
        "payload": base64.b64encode(event.payload).decode(),
    }


def event_from_json(obj: dict[str, Any]) -> RecordedEvent:
    """Inverse of :func:`event_to_json`; raises KeyError/ValueError on a malformed line."""
    return RecordedEvent(
        topic=str(obj["topic"]),
        partition=int(obj["partition"]),
        offset=int(obj["offset"]),
        key=None if obj["key"] is None else base64.b64decode(obj["key"], validate=True),
        headers=tuple((str(k), base64.b64decode(v, validate=True)) for k, v in obj["headers"]),
        payload=base64.b64decode(obj["payload"], validate=True),
    )
