"""From a consumed record to a log row: identity, query keys and (later) the decoded view.

The audit log records everything it is given, including records other consumers would
send to a dead-letter topic: an event without a usable ``ce_id`` gets one derived from
its position, and a payload that does not decode is kept without query keys. The JSON
view of a payload costs more than everything else an append does (``MessageToDict`` is
pure Python), so it is made off the append path by ``projector.EntryProjector``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from dibao_audit.entry import RecordedEvent, canonical_from_parts, header_block
from dibao_audit.merkle import leaf_hash
from dibao_common.messaging.envelope import (
    CONTENT_TYPE,
    H_ACTOR,
    H_CONTENT_TYPE,
    H_ID,
    H_TIME,
    H_TYPE,
    EventRegistry,
    PoisonEventError,
)
from dibao_common.messaging.envelope import Envelope as KitEnvelope

_POSITION_NS = uuid.UUID("6f1d5a34-7c1b-4d0c-9a53-1b2f0c9e8a41")
UNKNOWN_TYPE = "unknown"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EntryRow:
    """Everything stored for one entry except its index (given by the appender)."""

    event: RecordedEvent
    ce_id: uuid.UUID
    ce_type: str
    ce_time: datetime | None
    household_id: str | None
    application_id: str | None
    case_id: str | None
    region: str | None
    actor: str | None
    header_block: bytes
    leaf_hash: bytes


def position_id(topic: str, partition: int, offset: int) -> uuid.UUID:
    """A stable id for a record that has none of its own (it is still logged once)."""
    return uuid.uuid5(_POSITION_NS, f"{topic}/{partition}/{offset}")


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode() or None
    except UnicodeDecodeError:
        return None


def _field(message: Message, name: str) -> Any:
    return getattr(message, name) if name in message.DESCRIPTOR.fields_by_name else None


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decode(event: RecordedEvent, registry: EventRegistry) -> Message | None:
    """The payload as its message, or None for a record the registry cannot read."""
    try:
        return registry.decode(KitEnvelope.from_record(_KeyedRecord(event)))
    except PoisonEventError:
        return None


def decoded_view(event: RecordedEvent, registry: EventRegistry) -> dict[str, Any] | None:
    """The JSON view of a payload (proto field names, enums by name), None if undecodable."""
    message = decode(event, registry)
    if message is None:
        return None
    return MessageToDict(message, preserving_proto_field_name=True)


def project(event: RecordedEvent, registry: EventRegistry) -> EntryRow:
    """The row for one record (never raises for a malformed record: audit keeps them all).

    Reads the CloudEvents headers itself rather than through the kit's envelope parser:
    the log keeps and indexes what it can of a record the parser would refuse.
    """
    found: dict[str, bytes] = {}
    for name, value in event.headers:
        found[name] = value  # the last one wins, as in the kit's parser
    ce_type = _text(found.get(H_TYPE)) or UNKNOWN_TYPE
    try:
        ce_id = uuid.UUID(_text(found.get(H_ID)) or "")
    except ValueError:
        ce_id = position_id(event.topic, event.partition, event.offset)
    ce_time = _parse_time(found.get(H_TIME))
    message: Message | None = None
    if ce_type in registry:
        content_type = _text(found.get(H_CONTENT_TYPE)) or CONTENT_TYPE
        envelope = KitEnvelope(
            ce_id=ce_id,
            ce_type=ce_type,
            ce_source="",
            ce_time=ce_time or _EPOCH,
            ce_subject=None,
            key="",
            payload=event.payload,
            content_type=content_type,
        )
        try:
            message = registry.decode(envelope)
        except PoisonEventError:
            message = None
    region = _field(message, "region") if message is not None else None
    actor = _field(message, "actor") if message is not None else None
    block = header_block(event.headers)
    canonical = canonical_from_parts(
        event.topic, event.partition, event.offset, event.key, block, event.payload
    )
    return EntryRow(
        event=event,
        ce_id=ce_id,
        ce_type=ce_type,
        ce_time=ce_time,
        household_id=_nonempty(_field(message, "household_id")) if message else None,
        application_id=_nonempty(_field(message, "application_id")) if message else None,
        case_id=_nonempty(_field(message, "case_id")) if message else None,
        region=_nonempty(getattr(region, "code", None)),
        actor=_text(found.get(H_ACTOR)) or _nonempty(getattr(actor, "subject", None)),
        header_block=block,
        leaf_hash=leaf_hash(canonical),
    )


class _KeyedRecord:
    """A consumed record as the kit's envelope parser reads it."""

    def __init__(self, event: RecordedEvent) -> None:
        self.key = event.key
        self.value = event.payload
        self.headers = event.headers


def _parse_time(raw: bytes | None) -> datetime | None:
    text = _text(raw)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
