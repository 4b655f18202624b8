"""From consumed records to log rows: identity and query keys, whatever the record."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.consumer import recorded
from dibao_audit.entry import RecordedEvent, canonical_bytes, header_block, parse_header_block
from dibao_audit.merkle import leaf_hash
from dibao_audit.projection import (
    UNKNOWN_TYPE,
    KeyReader,
    decoded_view,
    position_id,
    project,
    project_records,
)
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
