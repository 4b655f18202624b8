"""The CloudEvents envelope and the event registry: pure, no servers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.wrappers_pb2 import Int64Value

from dibao.intake.v1.events_pb2 import ApplicationAccepted, ApplicationSubmitted
from dibao_common.messaging.envelope import (
    Envelope,
    EventRegistry,
    InvalidEnvelopeError,
    UndecodablePayload,
    UnknownEventType,
    ce_type_of,
    topic_of,
)
from dibao_common.messaging.outbox import build_envelope


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _envelope(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "ce_id": uuid.UUID("0192f3a4-5b6c-7d8e-9f00-112233445566"),
        "ce_type": "dibao.intake.ApplicationAccepted.v1",
        "ce_source": "dibao/intake",
        "ce_time": datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC),
        "ce_subject": "application/0192",
        "key": "household-1",
        "payload": ApplicationAccepted(household_id="household-1").SerializeToString(),
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "actor": "clerk-7",
        "correlation_id": "req-42",
    }
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def _record(envelope: Envelope) -> Record:
    return Record(envelope.key.encode(), envelope.payload, envelope.to_headers())


def test_headers_are_cloudevents_binary_mode() -> None:
    headers = dict(_envelope().to_headers())
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"0192f3a4-5b6c-7d8e-9f00-112233445566",
        "ce_type": b"dibao.intake.ApplicationAccepted.v1",
        "ce_source": b"dibao/intake",
        "ce_time": b"2026-03-01T08:30:15.123456Z",
        "ce_subject": b"application/0192",
        "content-type": b"application/protobuf",
        "traceparent": b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ce_actor": b"clerk-7",
        "ce_correlationid": b"req-42",
    }


def test_optional_attributes_are_left_out_when_absent() -> None:
    envelope = _envelope(ce_subject=None, traceparent=None, actor=None, correlation_id=None)
    names = [name for name, _ in envelope.to_headers()]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "content-type",
    ]
    assert Envelope.from_record(_record(envelope)) == envelope


def test_record_round_trip_gives_the_same_envelope() -> None:
    envelope = _envelope()
    assert Envelope.from_record(_record(envelope)) == envelope


def test_time_is_written_in_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    envelope = _envelope(ce_time=datetime(2026, 3, 1, 16, 30, tzinfo=shanghai))
    assert dict(envelope.to_headers())["ce_time"] == b"2026-03-01T08:30:00.000000Z"
    assert Envelope.from_record(_record(envelope)).ce_time == envelope.ce_time


@pytest.mark.parametrize("missing", ["ce_id", "ce_type", "ce_source", "ce_time"])
def test_a_missing_required_header_is_an_invalid_envelope(missing: str) -> None:
    envelope = _envelope()
    headers = [(n, v) for n, v in envelope.to_headers() if n != missing]
    with pytest.raises(InvalidEnvelopeError, match=missing):
        Envelope.from_record(Record(b"household-1", envelope.payload, headers))


@pytest.mark.parametrize(
    ("name", "value"),
    [("ce_id", b"not-a-uuid"), ("ce_time", b"yesterday"), ("ce_specversion", b"0.3")],
)
def test_a_malformed_header_is_an_invalid_envelope(name: str, value: bytes) -> None:
    envelope = _envelope()
    headers = [(n, value if n == name else v) for n, v in envelope.to_headers()]
    with pytest.raises(InvalidEnvelopeError):
        Envelope.from_record(Record(b"household-1", envelope.payload, headers))


def test_a_record_without_key_or_headers_is_an_invalid_envelope() -> None:
    envelope = _envelope()
    with pytest.raises(InvalidEnvelopeError, match="key"):
        Envelope.from_record(Record(None, envelope.payload, envelope.to_headers()))
    with pytest.raises(InvalidEnvelopeError):
        Envelope.from_record(Record(b"k", b"{}", []))


def test_ce_type_and_topic_follow_the_package() -> None:
    assert ce_type_of(ApplicationSubmitted) == "dibao.intake.ApplicationSubmitted.v1"
    assert ce_type_of(ApplicationSubmitted()) == "dibao.intake.ApplicationSubmitted.v1"
    assert topic_of(ApplicationSubmitted()) == "dibao.intake.v1"
    # A package without a version keeps the full name.
    assert ce_type_of(Int64Value) == "google.protobuf.Int64Value"


def test_default_registry_knows_every_contract_event() -> None:
    registry = EventRegistry.default()
    assert "dibao.intake.ApplicationSubmitted.v1" in registry
    assert "dibao.assessment.BenefitApproved.v1" in registry
    assert "dibao.payments.PaymentSettled.v1" in registry
    assert all(t.startswith("dibao.") and t.endswith(".v1") for t in registry.types())


def test_registry_decodes_the_payload_as_its_type() -> None:
    registry = EventRegistry([ApplicationAccepted])
    message = ApplicationAccepted(household_id="h-1", application_id="a-1")
    envelope = build_envelope(message, key="h-1", source="dibao/intake")
    assert envelope.ce_id.version == 7
    assert registry.decode(envelope) == message


def test_registry_refuses_unknown_types_and_foreign_payloads() -> None:
    registry = EventRegistry([ApplicationAccepted])
    with pytest.raises(UnknownEventType):
        registry.decode(_envelope(ce_type="dibao.intake.NoSuchThing.v1"))
    with pytest.raises(UndecodablePayload):
        registry.decode(_envelope(payload=b'{"household_id": "h-1"}'))
    with pytest.raises(UndecodablePayload):
        registry.decode(_envelope(content_type="application/json"))


def test_registering_a_class_again_changes_nothing() -> None:
    registry = EventRegistry([ApplicationAccepted])
    registry.register(ApplicationAccepted)  # the same class again is fine
    assert len(registry) == 1


def test_an_event_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        build_envelope(ApplicationAccepted(), key="", source="dibao/intake")
