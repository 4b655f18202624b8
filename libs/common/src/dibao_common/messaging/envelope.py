"""CloudEvents 1.0 binary mode over Kafka: the envelope of every dibao event.

The payload is the protobuf message's bytes (record value); the event attributes travel
as record headers (``ce_id``, ``ce_type``, ...), and the record key is the ordering key
(the household id), so one household's events stay on one partition, in order.
"""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Final, Protocol

from google.protobuf.message import DecodeError, Message

SPEC_VERSION: Final = "1.0"
CONTENT_TYPE: Final = "application/protobuf"

# Header names. CloudEvents extension attributes are lower-case alphanumerics, hence
# ``ce_actor`` and ``ce_correlationid``; ``traceparent`` is the W3C header as is.
H_SPECVERSION: Final = "ce_specversion"
H_ID: Final = "ce_id"
H_TYPE: Final = "ce_type"
H_SOURCE: Final = "ce_source"
H_TIME: Final = "ce_time"
H_SUBJECT: Final = "ce_subject"
H_CONTENT_TYPE: Final = "content-type"
H_TRACEPARENT: Final = "traceparent"
H_ACTOR: Final = "ce_actor"
H_CORRELATION_ID: Final = "ce_correlationid"

_VERSION = re.compile(r"v\d+")


class PoisonEventError(Exception):
    """An event that can never be processed as it is: it goes to the DLQ without retries."""


class InvalidEnvelopeError(PoisonEventError):
    """The record lacks a required CloudEvents header, or one is malformed."""


class UnknownEventType(PoisonEventError):  # noqa: N818 (name fixed by the kit plan)
    """No message class is registered for the record's ``ce_type``."""


class UndecodablePayload(PoisonEventError):  # noqa: N818 (name fixed by the kit plan)
    """The payload is not protobuf, or not the message its ``ce_type`` names."""


class KafkaRecord(Protocol):
    """What the envelope needs of a consumed record (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


def _format_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("ce_time must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as it travels: CloudEvents attributes, ordering key and protobuf payload."""

    ce_id: uuid.UUID
    ce_type: str
    ce_source: str
    ce_time: datetime
    ce_subject: str | None
    key: str
    payload: bytes
    traceparent: str | None = None
    actor: str | None = None
    correlation_id: str | None = None
    content_type: str = field(default=CONTENT_TYPE)

    def to_headers(self) -> list[tuple[str, bytes]]:
        """The Kafka record headers of this event (binary content mode)."""
        headers = [
            (H_SPECVERSION, SPEC_VERSION.encode()),
            (H_ID, str(self.ce_id).encode()),
            (H_TYPE, self.ce_type.encode()),
            (H_SOURCE, self.ce_source.encode()),
            (H_TIME, _format_time(self.ce_time).encode()),
            (H_CONTENT_TYPE, self.content_type.encode()),
        ]
        for name, value in (
            (H_SUBJECT, self.ce_subject),
            (H_TRACEPARENT, self.traceparent),
            (H_ACTOR, self.actor),
            (H_CORRELATION_ID, self.correlation_id),
        ):
            if value is not None:
                headers.append((name, value.encode()))
        return headers

    @classmethod
    def from_record(cls, record: KafkaRecord) -> Envelope:
        """Read the envelope of a consumed record; raises :class:`InvalidEnvelopeError`."""
        found: dict[str, str] = {}
        try:
            for name, raw in record.headers or ():
                # Kafka allows a header without a value: it is absent, not a crash.
                if raw is not None:
                    found[name] = raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidEnvelopeError(f"a header is not UTF-8: {exc}") from exc

        def required(name: str) -> str:
            value = found.get(name)
            if not value:
                raise InvalidEnvelopeError(f"header {name} is missing")
            return value

        spec = found.get(H_SPECVERSION, SPEC_VERSION)
        if spec != SPEC_VERSION:
            raise InvalidEnvelopeError(f"unsupported CloudEvents specversion {spec!r}")
        try:
            ce_id = uuid.UUID(required(H_ID))
        except ValueError as exc:
            raise InvalidEnvelopeError(f"ce_id is not a UUID: {found[H_ID]!r}") from exc
        try:
            ce_time = datetime.fromisoformat(required(H_TIME))
        except ValueError as exc:
            raise InvalidEnvelopeError(f"ce_time is not RFC 3339: {found[H_TIME]!r}") from exc
        if ce_time.tzinfo is None:
            raise InvalidEnvelopeError("ce_time has no UTC offset")
        if record.key is None:
            raise InvalidEnvelopeError("the record has no key")
        try:
            key = record.key.decode()
        except UnicodeDecodeError as exc:
            raise InvalidEnvelopeError("the record key is not UTF-8") from exc
        return cls(
            ce_id=ce_id,
            ce_type=required(H_TYPE),
            ce_source=required(H_SOURCE),
            ce_time=ce_time,
            ce_subject=found.get(H_SUBJECT),
            key=key,
            payload=record.value or b"",
            traceparent=found.get(H_TRACEPARENT),
            actor=found.get(H_ACTOR),
            correlation_id=found.get(H_CORRELATION_ID),
            content_type=found.get(H_CONTENT_TYPE, CONTENT_TYPE),
        )


def ce_type_of(message: Message | type[Message]) -> str:
    """``dibao.intake.v1.ApplicationSubmitted`` -> ``dibao.intake.ApplicationSubmitted.v1``.

    A message whose package does not end in a version keeps its full name.
    """
    full_name: str = message.DESCRIPTOR.full_name
    package, _, name = full_name.rpartition(".")
    head, _, version = package.rpartition(".")
    if head and _VERSION.fullmatch(version):
        return f"{head}.{name}.{version}"
    return full_name


def topic_of(message: Message | type[Message]) -> str:
    """The topic of a message's package: ``dibao.intake.v1.*`` -> ``dibao.intake.v1``."""
    full_name: str = message.DESCRIPTOR.full_name
    package = full_name.rpartition(".")[0]
    if not package:
        raise ValueError(f"{full_name} has no package, so no topic")
    return package


class EventRegistry:
    """Maps ``ce_type`` to the generated protobuf class that decodes its payload."""

    def __init__(self, classes: Iterable[type[Message]] = ()) -> None:
        self._classes: dict[str, type[Message]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Message]) -> None:
        """Add a message class; a second class for the same ``ce_type`` is an error."""
        ce_type = ce_type_of(cls)
        existing = self._classes.get(ce_type)
        if existing is not None and existing is not cls:
            raise ValueError(f"{ce_type} is registered twice ({existing} and {cls})")
        self._classes[ce_type] = cls

    def __contains__(self, ce_type: object) -> bool:
        return ce_type in self._classes

    def __len__(self) -> int:
        return len(self._classes)

    def types(self) -> list[str]:
        return sorted(self._classes)

    def message_class(self, ce_type: str) -> type[Message] | None:
        """The message class of ``ce_type``, or None when it is not registered."""
        return self._classes.get(ce_type)

    def decode(self, envelope: Envelope) -> Message:
        """The payload as its message; raises ``UnknownEventType`` / ``UndecodablePayload``."""
        cls = self._classes.get(envelope.ce_type)
        if cls is None:
            raise UnknownEventType(f"no message class for ce_type {envelope.ce_type!r}")
        if envelope.content_type != CONTENT_TYPE:
            raise UndecodablePayload(
                f"content-type {envelope.content_type!r}, expected {CONTENT_TYPE}"
            )
        message = cls()
        try:
            message.ParseFromString(envelope.payload)
        except DecodeError as exc:
            raise UndecodablePayload(f"payload is not a {envelope.ce_type}: {exc}") from exc
        return message

    @classmethod
    def default(cls) -> EventRegistry:
        """Every message of the generated ``dibao.<package>.v<N>`` modules (dibao-contracts)."""
        registry = cls()
        for module in _contract_modules():
            for name in dir(module):
                value = getattr(module, name)
                if (
                    isinstance(value, type)
                    and issubclass(value, Message)
                    and value.DESCRIPTOR.file.name == module.DESCRIPTOR.name
                    and value.DESCRIPTOR.containing_type is None
                ):
                    registry.register(value)
        return registry


def _contract_modules() -> list[ModuleType]:
    try:
        root = importlib.import_module("dibao")
    except ModuleNotFoundError:
        return []
    names: set[str] = set()
    # dibao/ and dibao/<package>/ are namespace packages, which pkgutil does not walk.
    for base in map(Path, root.__path__):
        for generated in base.glob("*/v*/*_pb2.py"):
            package, version = generated.parent.parent.name, generated.parent.name
            if package.isidentifier() and _VERSION.fullmatch(version):
                names.add(f"dibao.{package}.{version}.{generated.stem}")
    return [importlib.import_module(name) for name in sorted(names)]


def now_utc() -> datetime:
    """The current instant, UTC-aware (the default ``ce_time``)."""
    return datetime.now(UTC)
