"""From consumed records to log rows: identity and query keys, whatever the record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.consumer import recorded
from dibao_audit.entry import (
    HeaderPicker,
    MalformedEntryError,
    RecordedEvent,
    canonical_bytes,
    header_block,
    parse_header_block,
    pick_headers,
    split_canonical,
)
from dibao_audit.merkle import leaf_hash
from dibao_audit.projection import (
    QUERY_COLUMNS,
    UNKNOWN_TYPE,
    Columns,
    EntryRow,
    KeyReader,
    columns_agree,
    columns_of,
    contradictions,
    decoded_view,
    position_id,
    project,
    project_records,
    reused_id,
)
from dibao_audit.repository import CanonicalRange
from dibao_audit.testing import recorded_event
from dibao_common.messaging.envelope import EventRegistry

REGISTRY = EventRegistry.default()


def test_query_keys_come_from_the_payload_and_the_actor_header() -> None:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-9",
        region=types_pb2.RegionCode(code="620102001001"),
        actor=types_pb2.Actor(subject="clerk-in-payload"),
        application_id="app-9",
    )
    event = recorded_event(message, offset=4, key="hh-9", actor="clerk-in-header")
    row = project(event, REGISTRY)
    assert (row.household_id, row.application_id, row.case_id) == ("hh-9", "app-9", None)
    assert (row.region, row.actor) == ("620102001001", "clerk-in-header")
    assert row.ce_type == "dibao.intake.ApplicationWithdrawn.v1"
    assert row.leaf_hash == leaf_hash(canonical_bytes(event))
    without_header = recorded_event(message, offset=5, key="hh-9")
    assert project(without_header, REGISTRY).actor == "clerk-in-payload"
    view = decoded_view(event, REGISTRY)
    assert view is not None
    assert view["application_id"] == "app-9"


def test_a_record_nobody_can_read_is_still_a_row() -> None:
    junk = RecordedEvent("dibao.intake.v1", 2, 77, None, (("x", b"\xff"),), b"\x08\x96")
    row = project(junk, REGISTRY)
    assert row.ce_id == str(position_id("dibao.intake.v1", 2, 77))
    assert row.ce_type == UNKNOWN_TYPE
    assert (row.household_id, row.region, row.actor) == (None, None, None)
    assert decoded_view(junk, REGISTRY) is None
    message = intake_pb2.ApplicationWithdrawn(household_id="hh-1")
    good = recorded_event(message, offset=1, key="hh-1")
    garbled = RecordedEvent(good.topic, 0, 1, good.key, good.headers, b"\xff\xff\xff")
    row = project(garbled, REGISTRY)
    assert row.ce_id == good.header("ce_id").decode()  # type: ignore[union-attr]
    assert row.household_id is None


def test_consumed_records_project_as_their_recorded_events() -> None:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-3", region=types_pb2.RegionCode(code="620102001001")
    )
    good = recorded_event(message, offset=9, key="hh-3", partition=1, actor="clerk-3")
    consumed: list[ConsumerRecord[bytes, bytes]] = [
        ConsumerRecord(good.topic, 1, 9, 0, 0, good.key, good.payload, None, 0, 0, good.headers),
        # A null header value, headers given as a list, no key, a null value.
        ConsumerRecord("dibao.x.v1", 0, 3, 0, 0, None, None, None, 0, 0, [("é", None)]),
        ConsumerRecord("dibao.x.v1", 0, 4, 0, 0, b"k", b"v", None, 0, 0, []),
    ]
    reader = KeyReader(REGISTRY)
    rows = project_records(consumed, reader)
    assert rows == [project(recorded(r), REGISTRY) for r in consumed]
    assert rows[0].household_id == "hh-3"
    assert rows[1].header_block == header_block([("é", b"")])
    assert rows[1].leaf_hash == leaf_hash(canonical_bytes(recorded(consumed[1])))


def test_the_header_block_sorts_names_by_their_bytes() -> None:
    headers = [("ｚ", b"1"), ("é", b"2"), ("a", b"3"), ("é", b"1"), ("Z", b"")]
    by_bytes = sorted((n.encode(), v) for n, v in headers)
    block = header_block(headers)
    assert [(n.encode(), v) for n, v in parse_header_block(block)] == by_bytes


def test_a_ce_id_is_kept_in_its_canonical_form() -> None:
    message = intake_pb2.ApplicationWithdrawn(household_id="hh-2")
    event = recorded_event(message, offset=2, key="hh-2")
    ce_id = event.header("ce_id")
    assert ce_id is not None
    spellings = [ce_id.upper(), b"{" + ce_id + b"}", b"urn:uuid:" + ce_id, ce_id.replace(b"-", b"")]
    for spelling in spellings:
        headers = tuple((k, spelling if k == "ce_id" else v) for k, v in event.headers)
        other = RecordedEvent(event.topic, 0, 2, event.key, headers, event.payload)
        assert project(other, REGISTRY).ce_id == ce_id.decode()  # one entry, however spelled


def test_a_searchs_other_regions_come_from_the_payload() -> None:
    """A search names every region it could show rows of (``PersonalDataAccessed.regions``):
    each is a query key beside ``region``, distinct, in the record's order; a read of one
    record, and any type without the field, names none."""
    search = access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code="620102000000"),
        regions=[
            types_pb2.RegionCode(code="620102000000"),
            types_pb2.RegionCode(code="620103000000"),
            types_pb2.RegionCode(code=""),
            types_pb2.RegionCode(code="620103000000"),
        ],
        operation="GET /households",
    )
    row = project(recorded_event(search, offset=1, key=""), REGISTRY)
    assert (row.region, row.regions) == ("620102000000", ("620102000000", "620103000000"))
    one = access_pb2.PersonalDataAccessed(
        household_id="hh-1", region=types_pb2.RegionCode(code="620102000000")
    )
    assert project(recorded_event(one, offset=2, key="hh-1"), REGISTRY).regions is None
    withdrawn = intake_pb2.ApplicationWithdrawn(household_id="hh-1")
    assert project(recorded_event(withdrawn, offset=3, key="hh-1"), REGISTRY).regions is None


def test_a_read_of_an_application_is_keyed_by_it() -> None:
    """An access record naming the application read (``PersonalDataAccessed.application_id``,
    since 2 Dec 2026) is found by an audit query for that application; one of a household,
    and one logged before the field, by its household only."""
    read = access_pb2.PersonalDataAccessed(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        record_type=access_pb2.RECORD_TYPE_APPLICATION,
        record_id="app-1",
        application_id="app-1",
    )
    row = project(recorded_event(read, offset=1, key="hh-1"), REGISTRY)
    assert (row.household_id, row.application_id) == ("hh-1", "app-1")
    before = access_pb2.PersonalDataAccessed(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        record_type=access_pb2.RECORD_TYPE_APPLICATION,
        record_id="app-1",
    )
    row = project(recorded_event(before, offset=2, key="hh-1"), REGISTRY)
    assert (row.household_id, row.application_id) == ("hh-1", None)


def _stored(row: EntryRow) -> Columns:
    return Columns(
        row.ce_id,
        row.ce_type,
        row.ce_time,
        row.household_id,
        row.application_id,
        row.case_id,
        row.region,
        row.actor,
        row.regions,
    )


def _made(row: EntryRow, reader: KeyReader) -> Columns:
    """The columns the record gives, made the long way (what ``columns_agree`` spares)."""
    headers = parse_header_block(row.header_block)
    return columns_of(row.topic, row.partition, row.offset, headers, row.payload, reader)


def _other(name: str, value: Any) -> list[Any]:
    """Stored values a column could be edited to in SQL, none of them ``value``."""
    if name == "ce_time":
        later = datetime(2026, 11, 2, tzinfo=UTC) if value is None else value + timedelta(0, 1)
        return [later, None] if value is not None else [later]
    if name == "regions":
        return [v for v in (None, ("620103000000",), (*(value or ()), "x")) if v != value]
    if name == "ce_id":
        return [str(uuid.uuid4()), value.upper()]
    changed = ["x" if value is None else value + "x", "x" * 600]
    return [*changed, None] if value is not None and name != "ce_type" else changed


def test_columns_agree_only_when_the_record_gives_exactly_the_stored_columns() -> None:
    """The reads' fast path (an export checks every entry): ``columns_agree`` is True for
    an entry whose stored columns are the ones its record gives, and for no stored column
    edited to anything else (the full check, ``contradictions``, then names it); whenever
    it is True the long way gives exactly the stored columns. Records it leaves to the
    long way (False although they agree) are the rare ones: an id spelt otherwise or
    derived (none, a reused id), no type header."""
    reader = KeyReader(REGISTRY)
    withdrawn = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        application_id="app-1",
        region=types_pb2.RegionCode(code="620102001001"),
        actor=types_pb2.Actor(subject="clerk-in-payload"),
    )
    search = access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code="620102000000"),
        regions=[types_pb2.RegionCode(code="620102000000"), types_pb2.RegionCode(code="6201")],
        operation="GET /households",
    )
    plain = [
        recorded_event(withdrawn, offset=1, key="hh-1", actor="clerk-in-header"),
        recorded_event(withdrawn, offset=2, key="hh-1"),
        recorded_event(search, offset=3, key=""),
        # keys as _storable keeps them: cut, a NUL replaced
        recorded_event(intake_pb2.ApplicationWithdrawn(household_id="h" * 600), offset=4, key="hh"),
        recorded_event(intake_pb2.ApplicationWithdrawn(household_id="h\x00"), offset=5, key="h"),
    ]
    event = plain[0]
    ce_id = event.header("ce_id")
    assert ce_id is not None

    def edited(name: str, value: bytes | None) -> RecordedEvent:
        headers = tuple((k, v) for k, v in event.headers if k != name)
        return RecordedEvent(
            event.topic, 0, 5, event.key, headers + (((name, value),) if value else ()), b""
        )

    long_way = [
        RecordedEvent(event.topic, 0, 6, None, edited("ce_id", ce_id.upper()).headers, b""),
        RecordedEvent(event.topic, 0, 7, None, edited("ce_id", None).headers, b""),
        edited("ce_type", b""),
        RecordedEvent("dibao.intake.v1", 2, 77, None, (("x", b"\xff"),), b"\x08\x96"),
    ]
    others = [
        edited("ce_time", None),
        edited("ce_time", b"yesterday"),
        edited("content-type", b"application/json"),
        edited("ce_type", b"dibao.x.Unknown.v1"),
        edited("ce_actor", b""),
    ]
    for e in plain + long_way + others:
        row = project(e, REGISTRY)
        stored = _stored(row)
        assert _made(row, reader) == stored
        agree = columns_agree(stored, row.header_block, row.payload, reader)
        assert agree is (e not in long_way), e
        for at, name in enumerate(QUERY_COLUMNS):
            for value in _other(name, stored[at]):
                bad = stored._replace(**{name: value})
                assert not columns_agree(bad, row.header_block, row.payload, reader), (name, e)
                made, differ = contradictions(
                    bad,
                    row.topic,
                    row.partition,
                    row.offset,
                    row.key,
                    row.header_block,
                    row.payload,
                    reader,
                )
                assert made == stored, (name, value, e)
                assert set(differ) == {name}, (name, value, e)
    # A reused id (another entry's ce_id, other content): the long way accepts it.
    row = project(event, REGISTRY)
    again = _stored(row)._replace(
        ce_id=reused_id(row.ce_id, (row.topic, row.key, row.header_block, row.payload))
    )
    assert not columns_agree(again, row.header_block, row.payload, reader)
    assert (
        contradictions(
            again,
            row.topic,
            row.partition,
            row.offset,
            row.key,
            row.header_block,
            row.payload,
            reader,
        )[1]
        == {}
    )


def test_pick_headers_reads_a_block_as_parse_header_block_does() -> None:
    """``pick_headers`` gives what ``dict(parse_header_block(block))`` holds of the names
    asked (the last of a repeated one) and None for every block the parser refuses: each
    truncation, a trailing byte, a header name that is not UTF-8."""
    wanted = {b"ce_id": 0, "é".encode(): 1, b"z": 2, b"none": 3}
    blocks = [
        header_block([]),
        header_block([("ce_id", b"1"), ("é", b"\x00" * 300), ("z", b""), ("z", b"2")]),
        header_block([("a", b"x"), ("ce_id", b"")]),
        b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\x00\x00\x00\x00",
        b"\x00\x00\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x01\xfe\x00\x00\x00\x00",
    ]
    for block in blocks:
        for candidate in [block[:cut] for cut in range(len(block))] + [block, block + b"x"]:
            try:
                found = dict(parse_header_block(candidate))
            except MalformedEntryError:
                assert pick_headers(candidate, wanted) is None, candidate
                continue
            names = [n.decode() for n in wanted]
            assert pick_headers(candidate, wanted) == [found.get(n) for n in names], candidate
    # Remembered layouts: every block read twice (the second time by its layout, if it
    # has one), blocks of one length but another layout between, as pick_headers reads.
    picker = HeaderPicker(wanted, limit=3)
    same_length = [
        header_block([("ce_id", b"ab"), ("z", b"c")]),
        header_block([("ce_id", b"a"), ("z", b"cd")]),
        header_block([("ce_id", b"abc"), ("z", b"")]),
        header_block([("ce_id", b"xy"), ("y", b"c")]),
        header_block([("ce_ie", b"xy"), ("z", b"c")]),
    ]
    candidates = [
        c for b in blocks + same_length for c in [b[:cut] for cut in range(len(b))] + [b, b + b"x"]
    ]
    for candidate in candidates + same_length * 2 + candidates:
        assert picker(candidate) == pick_headers(candidate, wanted), candidate


def test_an_export_chunk_slices_each_block_and_payload_from_the_bytes_end() -> None:
    """``CanonicalRange.parts``: the header block and payload from the sizes the range
    query reads beside the bytes, as ``split_canonical`` finds them by walking."""
    events = [
        RecordedEvent("dibao.t.v1", 3, 2**40, key, headers, payload)
        for key in (None, b"", b"k" * 70_000)
        for headers in ((), (("ce_type", b"x"), ("é", b"\x00" * 300)))
        for payload in (b"", b"p" * 5)
    ]
    data = [canonical_bytes(e) for e in events]
    blocks = [header_block(e.headers) for e in events]
    chunk = CanonicalRange(
        list(range(len(events))),
        data,
        [b""] * len(events),
        [],
        [len(b) for b in blocks],
        [len(e.payload) for e in events],
    )
    for at, d in enumerate(data):
        assert chunk.parts(at) == split_canonical(d)[4:] == (blocks[at], events[at].payload)
