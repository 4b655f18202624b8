"""From a consumed record to a log row: identity, decoded view and the query keys.

The audit log records everything it is given, including records other consumers would
send to a dead-letter topic: an event without a usable ``ce_id`` gets one derived from
its position, and a payload that does not decode is kept with ``decoded`` empty.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from dibao_audit.entry import RecordedEvent, canonical_bytes
from dibao_audit.merkle import leaf_hash
from dibao_common.messaging.envelope import (
    H_ACTOR,
    H_ID,
    H_TIME,
    H_TYPE,
    EventRegistry,
    InvalidEnvelopeError,
    PoisonEventError,
)
from dibao_common.messaging.envelope import Envelope as KitEnvelope

_POSITION_NS = uuid.UUID("6f1d5a34-7c1b-4d0c-9a53-1b2f0c9e8a41")
UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True, slots=True)
class EntryRow:
    """Everything stored for one entry except its index (given by the appender)."""

    event: RecordedEvent
    ce_id: uuid.UUID
    ce_type: str
    ce_time: datetime | None
    decoded: dict[str, Any] | None
    household_id: str | None
    application_id: str | None
    case_id: str | None
    region: str | None
    actor: str | None
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


def _str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) and value else None


def project(event: RecordedEvent, registry: EventRegistry) -> EntryRow:
    """The row for one record (never raises for a malformed record: audit keeps them all)."""
    envelope: KitEnvelope | None = None
    decoded: dict[str, Any] | None = None
    try:
        envelope = KitEnvelope.from_record(_KeyedRecord(event))
        decoded = MessageToDict(registry.decode(envelope), preserving_proto_field_name=True)
    except InvalidEnvelopeError:
        envelope = None
    except PoisonEventError:
        decoded = None
    ce_id: uuid.UUID
    if envelope is not None:
        ce_id = envelope.ce_id
    else:
        try:
            ce_id = uuid.UUID(_text(event.header(H_ID)) or "")
        except ValueError:
            ce_id = position_id(event.topic, event.partition, event.offset)
    ce_time = envelope.ce_time if envelope is not None else _parse_time(event.header(H_TIME))
    view = decoded or {}
    region = view.get("region")
    actor_obj = view.get("actor")
    return EntryRow(
        event=event,
        ce_id=ce_id,
        ce_type=_text(event.header(H_TYPE)) or UNKNOWN_TYPE,
        ce_time=ce_time,
        decoded=decoded,
        household_id=_str(view, "household_id"),
        application_id=_str(view, "application_id"),
        case_id=_str(view, "case_id"),
        region=_str(region, "code") if isinstance(region, dict) else None,
        actor=_text(event.header(H_ACTOR))
        or (_str(actor_obj, "subject") if isinstance(actor_obj, dict) else None),
        leaf_hash=leaf_hash(canonical_bytes(event)),
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
