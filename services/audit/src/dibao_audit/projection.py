"""From a consumed record to a log row: identity, query keys and (later) the decoded view.

The audit log records everything it is given, including records other consumers would
send to a dead-letter topic: an event without a usable ``ce_id`` gets one derived from
its position, and a payload that does not decode is kept without query keys. The JSON
view of a payload costs more than everything else an append does (``MessageToDict`` is
pure Python), so it is made off the append path by ``projector.EntryProjector``.

This is the append's hot path (every record of every topic passes here once), so it is
written for speed: a row is a named tuple in the order of ``log_entry``'s columns, the
message class and key fields of each event type are looked up once (``KeyReader``), and
the header block is built from cached name prefixes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message

from dibao_audit.entry import (
    HeaderPicker,
    MalformedEntryError,
    RecordedEvent,
    canonical_from_parts,
    parse_header_block,
    sorted_header_block,
)
from dibao_audit.merkle import leaf_hash
from dibao_common.clock import has_utc_instant
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

_CANONICAL_UUID = re.compile(
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
).fullmatch
_POSITION_NS = uuid.UUID("6f1d5a34-7c1b-4d0c-9a53-1b2f0c9e8a41")
UNKNOWN_TYPE = "unknown"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EntryRow(NamedTuple):
    """Everything stored for one entry except its index (given by the appender).

    The first fifteen fields are ``log_entry``'s columns in ``repository.ROW_COLUMNS``
    order; ``leaf_hash`` goes to ``merkle_node``.
    """

    ce_id: str
    """The ``ce_id`` in canonical text form (lower-case, hyphenated), as asyncpg takes it."""
    ce_type: str
    ce_time: datetime | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    header_block: bytes
    payload: bytes
    household_id: str | None
    application_id: str | None
    case_id: str | None
    region: str | None
    actor: str | None
    regions: tuple[str, ...] | None
    """Every region the record names besides ``region`` (``PersonalDataAccessed.regions``:
    each region a search could show rows of), distinct, in the record's order; None when it
    names none."""
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


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_KEY_CHARS = 512
"""At most 2,048 UTF-8 bytes: a key and its leaf index fit a B-tree entry (2,704 bytes)."""


def _storable(value: str | None) -> str | None:
    """A query key as a text column and its index can hold it.

    PostgreSQL text holds no NUL and a B-tree entry is at most 2,704 bytes; a record
    carrying either would fail its batch, which the consumer retries for ever. Such a
    key is kept recognisable (NUL as U+FFFD, cut to ``_KEY_CHARS``), never dropped: a
    household or region that is present stays present, so the entry's visibility does
    not change. The leaf hashes the record as it was delivered, whatever the key.
    """
    if value is None or (len(value) <= _KEY_CHARS and "\x00" not in value):
        return value
    return value.replace("\x00", "\ufffd")[:_KEY_CHARS]


def _storable_text(value: str) -> str:
    """:func:`_storable` of a present value (a text array's element)."""
    if len(value) <= _KEY_CHARS and "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")[:_KEY_CHARS]


Keys = tuple[str | None, str | None, str | None, str | None, str | None, tuple[str, ...] | None]
"""household, application, case, region, actor, regions (from the payload)."""
_NO_KEYS: Keys = (None, None, None, None, None, None)
_Reader = Callable[[bytes], Keys]


def _reader_of(cls: type[Message]) -> _Reader:
    """Parses a payload of ``cls`` and reads its query keys (raises ``DecodeError``)."""
    fields = cls.DESCRIPTOR.fields_by_name

    def get(name: str) -> Callable[[Message], Any]:
        if name in fields:
            return lambda m: getattr(m, name)
        return lambda m: None

    household, application, case = get("household_id"), get("application_id"), get("case_id")
    region, actor = get("region"), get("actor")
    regions = _regions_reader(cls)
    parse = cls.FromString

    def read(payload: bytes) -> Keys:
        m = parse(payload)
        return (
            _nonempty(household(m)),
            _nonempty(application(m)),
            _nonempty(case(m)),
            _nonempty(getattr(region(m), "code", None)),
            _nonempty(getattr(actor(m), "subject", None)),
            regions(m),
        )

    return read


def _no_regions(_: Message) -> None:
    return None


def _regions_reader(cls: type[Message]) -> Callable[[Message], tuple[str, ...] | None]:
    """How to read the regions a message names besides ``region``: a repeated message field
    ``regions`` whose elements have a ``code`` (``PersonalDataAccessed``), else none."""
    field = cls.DESCRIPTOR.fields_by_name.get("regions")
    if (
        field is None
        or not _is_repeated(field)
        or field.message_type is None
        or "code" not in field.message_type.fields_by_name
    ):
        return _no_regions

    def read(m: Message) -> tuple[str, ...] | None:
        listed = getattr(m, "regions")  # noqa: B009 - a field found by its descriptor
        if not listed:
            return None
        codes: dict[str, None] = {}  # distinct, in order (a loop: half the cost of genexprs)
        for r in listed:
            code = r.code
            if code:
                codes[_storable_text(code)] = None
        return tuple(codes) or None

    return read


def _is_repeated(field: Any) -> bool:
    is_repeated = getattr(field, "is_repeated", None)
    if isinstance(is_repeated, bool):
        return is_repeated
    return bool(field.label == field.LABEL_REPEATED)


class KeyReader:
    """The query keys of payloads, each event type's message class resolved once.

    Same outcome as decoding through ``registry.decode`` (unknown type, another content
    type or an undecodable payload give no keys), without an envelope per record.
    """

    def __init__(self, registry: EventRegistry) -> None:
        self._registry = registry
        self._readers: dict[str, _Reader | None] = {}

    def _resolve(self, ce_type: str) -> _Reader | None:
        if ce_type not in self._registry:
            return None  # not cached: the type may be registered later
        probe = KitEnvelope(
            ce_id=_POSITION_NS,
            ce_type=ce_type,
            ce_source="",
            ce_time=_EPOCH,
            ce_subject=None,
            key="",
            payload=b"",
        )
        reader = _reader_of(type(self._registry.decode(probe)))
        self._readers[ce_type] = reader
        return reader

    def keys(self, ce_type: str, content_type: str, payload: bytes) -> Keys:
        if content_type != CONTENT_TYPE:
            return _NO_KEYS
        reader = self._readers.get(ce_type)
        if reader is None:
            reader = self._resolve(ce_type)
            if reader is None:
                return _NO_KEYS
        try:
            return reader(payload)
        except DecodeError:
            return _NO_KEYS


_readers: dict[int, tuple[EventRegistry, KeyReader]] = {}


def key_reader(registry: EventRegistry) -> KeyReader:
    """The (shared) ``KeyReader`` of a registry."""
    found = _readers.get(id(registry))
    if found is None or found[0] is not registry:
        found = (registry, KeyReader(registry))
        _readers[id(registry)] = found
    return found[1]


class Columns(NamedTuple):
    """An entry's query columns, as made from what its leaf hashes (``columns_of``)."""

    ce_id: str
    ce_type: str
    ce_time: datetime | None
    household_id: str | None
    application_id: str | None
    case_id: str | None
    region: str | None
    actor: str | None
    regions: tuple[str, ...] | None


QUERY_COLUMNS: tuple[str, ...] = Columns._fields
"""The ``log_entry`` columns queries filter on, every one made from the headers and payload."""


def columns_of(
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
    payload: bytes,
    reader: KeyReader,
) -> Columns:
    """The query columns of a record (never raises for a malformed record).

    Reads the CloudEvents headers itself rather than through the kit's envelope parser:
    the log keeps and indexes what it can of a record the parser would refuse. They are a
    function of the hashed record alone (topic, position, headers, payload), so anyone
    holding the record can make them again (``contradictions``): ``headers`` are in the
    leaf's order (``header_block``: sorted by name, then value), and of a header repeated
    the last in that order is read, where the kit's parser reads the last on the wire (an
    order the leaf does not keep; dibao's relays never repeat one).
    """
    return Columns._make(_columns(topic, partition, offset, headers, payload, reader))


def _columns(
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes]],
    payload: bytes,
    reader: KeyReader,
) -> tuple[Any, ...]:
    """:func:`columns_of` as a plain tuple (the append's hot path)."""
    found = dict(headers)
    ce_type = _storable(_text(found.get(H_TYPE))) or UNKNOWN_TYPE
    ce_id = _text(found.get(H_ID)) or ""
    if not _CANONICAL_UUID(ce_id):
        try:
            ce_id = str(uuid.UUID(ce_id))
        except ValueError:
            ce_id = str(position_id(topic, partition, offset))
    ce_time = _parse_time(found.get(H_TIME))
    household, application, case, region, actor, regions = reader.keys(
        ce_type, _text(found.get(H_CONTENT_TYPE)) or CONTENT_TYPE, payload
    )
    return (
        ce_id,
        ce_type,
        ce_time,
        _storable(household),
        _storable(application),
        _storable(case),
        _storable(region),
        _storable(_text(found.get(H_ACTOR)) or actor),
        regions,
    )


def project_parts(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Iterable[tuple[str, bytes]] | None,
    payload: bytes,
    reader: KeyReader,
) -> EntryRow:
    """The row of one record given as its parts (never raises for a malformed record)."""
    pairs = sorted(headers) if headers else []
    ce_id, ce_type, ce_time, household, application, case, region, actor, regions = _columns(
        topic, partition, offset, pairs, payload, reader
    )
    block = sorted_header_block(pairs)
    leaf = leaf_hash(canonical_from_parts(topic, partition, offset, key, block, payload))
    return EntryRow(
        ce_id,
        ce_type,
        ce_time,
        topic,
        partition,
        offset,
        key,
        block,
        payload,
        household,
        application,
        case,
        region,
        actor,
        regions,
        leaf,
    )


Content = tuple[str, bytes | None, bytes, bytes]
"""What makes two records the same event sent twice: topic, key, headers and payload (not
the position: a relay that sends an event again gives it a new offset)."""

_REUSED_NS = uuid.UUID("0b6a4b0e-2f8c-4d53-9d0e-5c1f7a3e6b21")


def reused_id(ce_id: str, content: Content) -> str:
    """The log's id for a record that carries the ``ce_id`` of another entry but other
    content: derived from both, so the same record delivered again is still appended once."""
    topic, key, headers, payload = content
    digest = hashlib.sha256()
    for part in (topic.encode(), b"\x00" if key is None else b"\x01" + key, headers, payload):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return str(uuid.uuid5(_REUSED_NS, f"{ce_id}/{digest.hexdigest()}"))


_AGREE_HEADERS = {
    name.encode(): slot for slot, name in enumerate((H_ID, H_TYPE, H_TIME, H_CONTENT_TYPE, H_ACTOR))
}
_pick_agree_headers = HeaderPicker(_AGREE_HEADERS)


def columns_agree(stored: Columns, block: bytes, payload: bytes, reader: KeyReader) -> bool:
    """Whether the columns :func:`columns_of` makes of a record are exactly ``stored``,
    decided without making them (the reads' fast path: an export checks every entry).

    True only when they are: the stored ``ce_id`` and ``ce_type`` are the header bytes as
    they are (a canonical UUID; a type ``_storable`` keeps), the time the header's, and
    the payload's keys (read as ``columns_of`` reads them) and the actor are the stored
    ones as ``_storable`` keeps them. False when they may differ, or the block is not one
    (``contradictions`` then says how): a ``reused_id``, an id spelt otherwise or derived
    from the position, a record without a type header take that way too. The position
    and key enter the columns only through those cases, so they are not asked for."""
    found = _pick_agree_headers(block)
    if found is None:
        return False
    raw_id, raw_type, raw_time, raw_content_type, raw_actor = found
    ce_id, ce_type = stored.ce_id, stored.ce_type
    if (
        raw_id is None
        or raw_type is None
        or raw_id != ce_id.encode()
        or raw_type != ce_type.encode()
        or not ce_type
        or _storable(ce_type) is not ce_type
        or not _CANONICAL_UUID(ce_id)
        or _parse_time(raw_time) != stored.ce_time
    ):
        return False
    household, application, case, region, actor, regions = reader.keys(
        ce_type, _text(raw_content_type) or CONTENT_TYPE, payload
    )
    return (
        _storable(household),
        _storable(application),
        _storable(case),
        _storable(region),
        _storable(_text(raw_actor) or actor),
        regions,
    ) == stored[3:]


def contradictions(
    stored: Columns,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    block: bytes,
    payload: bytes,
    reader: KeyReader,
) -> tuple[Columns | None, dict[str, tuple[Any, Any]]]:
    """The stored query columns the hashed record contradicts: ``{column: (stored, made)}``,
    beside the columns made from the record (None when its header block is malformed,
    then every column is contradicted).

    A stored ``ce_id`` may also be the ``reused_id`` of the made one (a record that came
    with another entry's id). Nothing else about the columns is trusted: they are not
    hashed, so an edit of them (a region that hides an entry from its auditors) shows only
    here."""
    if columns_agree(stored, block, payload, reader):
        return stored, {}
    try:
        headers = parse_header_block(block)
    except MalformedEntryError:
        return None, {
            name: (value, None) for name, value in zip(QUERY_COLUMNS, stored, strict=True)
        }
    made = columns_of(topic, partition, offset, headers, payload, reader)
    out: dict[str, tuple[Any, Any]] = {}
    for name, was, now in zip(QUERY_COLUMNS, stored, made, strict=True):
        if was == now:
            continue
        if name == "ce_id" and was == reused_id(made.ce_id, (topic, key, block, payload)):
            continue
        out[name] = (was, now)
    return made, out


def project_records(records: Iterable[Any], reader: KeyReader) -> list[EntryRow]:
    """The rows of consumed aiokafka records (``ConsumerRecord``), no copy in between.

    A null header value (possible on the wire, never sent by dibao) is kept as empty, and
    a null value as an empty payload, as ``consumer.recorded`` does.
    """
    rows = []
    for r in records:
        topic, partition, offset, key, value = r.topic, r.partition, r.offset, r.key, r.value
        try:
            row = project_parts(topic, partition, offset, key, r.headers, value or b"", reader)
        except TypeError:  # a null header value: every value's length is taken
            headers = tuple((k, b"" if v is None else v) for k, v in r.headers)
            row = project_parts(topic, partition, offset, key, headers, value or b"", reader)
        rows.append(row)
    return rows


def project(event: RecordedEvent, registry: EventRegistry) -> EntryRow:
    """The row for one record (never raises for a malformed record: audit keeps them all)."""
    return project_parts(
        event.topic,
        event.partition,
        event.offset,
        event.key,
        event.headers,
        event.payload,
        key_reader(registry),
    )


def decode(event: RecordedEvent, registry: EventRegistry) -> Message | None:
    """The payload as its message, or None for a record the registry cannot read."""
    try:
        return registry.decode(KitEnvelope.from_record(_KeyedRecord(event)))
    except PoisonEventError:
        return None


def decoded_view(event: RecordedEvent, registry: EventRegistry) -> dict[str, Any] | None:
    """The JSON view of a payload (proto field names, enums by name), None if undecodable.

    jsonb holds no NUL: one in a string (or a map key) is shown as U+FFFD, as in the query
    keys (``_storable``), else the projector's batch would fail for ever. Only a payload
    with a zero byte can hold one, so the others are not walked."""
    message = decode(event, registry)
    if message is None:
        return None
    view = MessageToDict(message, preserving_proto_field_name=True)
    if b"\x00" in event.payload:
        view = _without_nul(view)
    return view


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


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
    # The driver sends the instant in UTC: 0001-01-01T00:00+01:00 has none.
    return parsed if parsed.tzinfo is not None and has_utc_instant(parsed) else None
