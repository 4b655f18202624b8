"""Logs, metrics and trace context: JSON logs carrying trace and correlation ids, Prometheus
metrics, and W3C trace context through HTTP requests and Kafka headers.

A request's (or a consumed event's) trace context and correlation id live in context
variables; every log line written while they are set carries them. Anything that looks
like a resident ID number, or a bank card number (a run of 16 to 19 digits), is masked
before a log line is written, whatever field it is in (not inside a hex digest or id, nor
in what a float prints after its point). A logged exception, and every exception chained
to it, is written without the DETAIL of a database error and the values it quotes
(``logged_errors``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, TypeVar

import prometheus_client
import structlog
from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict, WrappedLogger

from dibao_common.crypto import ID_NUMBER_LIKE, mask_id_number
from dibao_common.logged_errors import (
    describe_exception,
    format_exception,
    print_exception_safely,
    withhold_database_detail,
)

# --------------------------------------------------------------------------- trace context

_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>.*)$"
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One W3C trace context: the trace, the current span, its parent and the flags."""

    trace_id: str
    span_id: str
    flags: int = 1
    parent_span_id: str | None = None

    def to_traceparent(self) -> str:
        """The ``traceparent`` header value (version 00)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> TraceContext:
        """A new span of the same trace, whose parent is this span."""
        return TraceContext(self.trace_id, new_span_id(), self.flags, self.span_id)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)


def new_trace_id() -> str:
    # Generated ids are re-drawn when they contain 18 decimal digits in a row. The log mask
    # leaves such a run alone among hex letters (since 2 Dec 2026), but one of 32 digits
    # would be masked, and an id like an ID number is refused as a correlation id.
    while True:
        candidate = os.urandom(16).hex()
        if candidate != _ZERO_TRACE and not ID_NUMBER_LIKE.search(candidate):
            return candidate


def new_span_id() -> str:
    # As a trace id: one of 16 decimal digits (1 in ~1,850) would be masked as a card number.
    while True:
        candidate = os.urandom(8).hex()
        if candidate != _ZERO_SPAN and not carries_card_number(candidate):
            return candidate


def new_trace() -> TraceContext:
    """The root span of a new trace."""
    return TraceContext(new_trace_id(), new_span_id())


def parse_traceparent(value: str | bytes | None) -> TraceContext | None:
    """A valid ``traceparent`` value as a context, anything else as None (W3C rules:
    lowercase hex, version ff invalid, zero ids invalid, version 00 exactly 55 chars)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id = match["version"], match["trace_id"], match["span_id"]
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    rest = match["rest"]
    # Version 00 has exactly four fields; a later version may append fields after a dash.
    if (version == "00" and rest) or (rest and not rest.startswith("-")):
        return None
    return TraceContext(trace_id, span_id, int(match["flags"], 16))


_trace: ContextVar[TraceContext | None] = ContextVar("dibao_trace", default=None)
_correlation: ContextVar[str | None] = ContextVar("dibao_correlation_id", default=None)


def current_trace() -> TraceContext | None:
    """The trace context of the request or event being handled, if any."""
    return _trace.get()


def current_traceparent() -> str | None:
    """The current ``traceparent`` value, e.g. for ``outbox.enqueue(traceparent=...)``."""
    ctx = _trace.get()
    return ctx.to_traceparent() if ctx is not None else None


def current_correlation_id() -> str | None:
    return _correlation.get()


_DIGIT_RUN = re.compile(r"(?<!\d)\d{16,19}(?!\d)")
_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_LETTERS = frozenset("abcdefABCDEF")
_HEX_ID = 32
"""A digit run inside a run of this many hex characters or more (a letter among them) is
part of a digest, a trace id or a UUID's hex: a sha256 in hex holds 16 digits in a row one
time in ~40, 18 one time in ~100."""
_CHECK_X = frozenset("XxＸｘ")
_ASCII_DIGITS = frozenset("0123456789")
_FLOAT_DIGITS = 17
"""The most significant digits Python prints of a float (``repr``, ``str``, JSON)."""


def _in_hex_id(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (ASCII hex) lies inside a run of 32 hex characters or
    more that holds a letter: a digest, a trace id, a UUID's hex. A run of digits alone,
    however long, is not one (two ID numbers written together are 36 digits)."""
    if not all(c in _HEX for c in text[start:end]):
        return False
    low, high = start, end
    while low > 0 and text[low - 1] in _HEX:
        low -= 1
    while high < len(text) and text[high] in _HEX:
        high += 1
    return high - low >= _HEX_ID and not _HEX_LETTERS.isdisjoint(text[low:high])


def _in_float(text: str, start: int, end: int) -> bool:
    """Whether the digit run around ``text[start:end]`` is what a float prints after its
    point: ASCII digits after one digit and a point (``0.30000000000000004``,
    ``1.2345678901234567e-05``), no more than 17 significant digits in all. A card number
    after a full stop (``card no.6222021234567890123``, a list's ``1.6222021234567890123``)
    is none: no digit before the point, or more digits than a float has."""
    low, high = start, end
    while low > 0 and text[low - 1] in _ASCII_DIGITS:
        low -= 1
    while high < len(text) and text[high] in _ASCII_DIGITS:
        high += 1
    if not all(c in _ASCII_DIGITS for c in text[start:end]) or low < 2 or text[low - 1] != ".":
        return False
    whole = text[low - 2]
    if whole not in _ASCII_DIGITS or (low > 2 and text[low - 3] in _ASCII_DIGITS):
        return False
    fraction = text[low:high]
    if whole != "0":
        return len(fraction) < _FLOAT_DIGITS
    # 0.000123...: repr prints up to three zeros after the point before the digits.
    significant = fraction.lstrip("0")
    return len(fraction) - len(significant) <= 3 and len(significant) <= _FLOAT_DIGITS


def _card_runs(text: str) -> list[tuple[int, int]]:
    """Spans of the runs of 16 to 19 digits in ``text`` that may be bank card numbers: not
    17 digits and an X (an ID number's, ``crypto.ID_NUMBER_LIKE``), not inside a run of
    32 hex characters or more (a digest, an id), not a float's fraction."""
    spans = []
    for m in _DIGIT_RUN.finditer(text):
        start, end = m.span()
        if end - start == 17 and text[end : end + 1] in _CHECK_X:
            continue
        if not _in_hex_id(text, start, end) and not _in_float(text, start, end):
            spans.append((start, end))
    return spans


def _id_runs(text: str) -> list[tuple[int, int]]:
    """Spans of what may be resident ID numbers (``crypto.ID_NUMBER_LIKE``): 18 digits not
    inside a hex digest or id nor a float's fraction, or 17 digits and an X anywhere."""
    spans = []
    for m in ID_NUMBER_LIKE.finditer(text):
        start, end = m.span()
        if text[end - 1] in _CHECK_X or not (
            _in_hex_id(text, start, end) or _in_float(text, start, end)
        ):
            spans.append((start, end))
    return spans


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    parts, at = [], 0
    for start, end in spans:
        parts += [text[at:start], mask_id_number(text[start:end])]
        at = end
    return "".join([*parts, text[at:]])


def _ranges_of(points: Iterable[int]) -> str:
    """The inside of a character class matching ``points``, in ranges."""
    ordered = sorted(set(points))
    ranges: list[list[int]] = []
    for point in ordered:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


_DEFAULT_IGNORABLE = [
    *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFEFF, 0xFFA0),
    *range(0x180B, 0x1810),
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2070),
    *range(0xFE00, 0xFE10),
    *range(0xFFF0, 0xFFF9),
    *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B),
    *range(0xE0000, 0xE1000),
]
"""Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): what a renderer
shows as nothing, the Hangul fillers and variation selectors among it."""
_UNPRINTED_CONTROLS = [*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0x85)]
_UNPRINTED_CONTROLS += range(0x86, 0xA0)
"""The control characters (C0, DEL, C1) that are no white space."""
_NOT_SHOWN = re.compile(
    "["
    + _ranges_of(
        [
            *(c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"),
            *_DEFAULT_IGNORABLE,
            *_UNPRINTED_CONTROLS,
        ]
    )
    + "]"
)
"""What shows as nothing between two digits: every format character (general category
Cf: the soft hyphen, zero width space, joiners, word joiner, byte order mark, direction
marks, embeddings, overrides and isolates, tags), every default-ignorable code point
(Hangul fillers, variation selectors) and the control characters that are no white space.
A number with one of them inside shows as the number (ADR 0005, 3 Dec 2026)."""


def _mask_as_shown(text: str, runs: Callable[[str], list[tuple[int, int]]]) -> str:
    """``text`` with each of ``runs`` masked as it shows: the runs are looked for in the
    text without the characters ``_NOT_SHOWN`` matches, and each is replaced whole, those
    characters inside it too, by its mask; every other character stays as it was."""
    if _NOT_SHOWN.search(text) is None:
        spans = runs(text)
        return _masked(text, spans) if spans else text
    kept = [i for i, c in enumerate(text) if _NOT_SHOWN.match(c) is None]
    shown = "".join(text[i] for i in kept)
    spans = runs(shown)
    if not spans:
        return text
    parts, at = [], 0
    for start, end in spans:
        parts += [text[at : kept[start]], mask_id_number(shown[start:end])]
        at = kept[end - 1] + 1
    return "".join([*parts, text[at:]])


def carries_card_number(text: str) -> bool:
    """Whether ``text`` holds a run of 16 to 19 digits that may be a bank card number (as
    the log mask judges it: not in a long hex run, not a float's fraction)."""
    return bool(_card_runs(text))


def mask_card_and_id_numbers_in(text: str) -> str:
    """``text`` with every run that may be a bank card number (16 to 19 digits) masked as
    :func:`crypto.mask_id_number` masks a number (the first six and last four kept), then
    every run that may be an ID number (``crypto.ID_NUMBER_LIKE``). Neither inside a hex
    digest or id (32 hex characters or more, a letter among them) nor in what a float
    prints after its point (a digit, a point, no more than 17 significant digits). Each
    is looked for as the text shows, without what shows as nothing (``_NOT_SHOWN``: a zero
    width space, a soft hyphen, a direction mark...): a number with such characters inside
    is masked whole, them with it (3 Dec 2026)."""
    text = _mask_as_shown(text, _card_runs)
    return _mask_as_shown(text, _id_runs)


_CORRELATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")


def valid_correlation_id(value: str | bytes | None) -> str | None:
    """``value`` if it is an acceptable correlation id (1-128 plain characters, nothing
    like an ID number or a bank card number: it goes into every event the request
    writes), else None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    if ID_NUMBER_LIKE.search(value) or carries_card_number(value):
        return None
    return value if _CORRELATION_ID.match(value) else None


def new_correlation_id() -> str:
    return str(uuid.uuid4())


@contextmanager
def use_trace(
    parent: TraceContext | None = None, *, correlation_id: str | None = None
) -> Iterator[TraceContext]:
    """Handle work as a new span: a child of ``parent`` (e.g. ``extract_trace`` of a consumed
    record) or, without one, the root of a new trace. ``correlation_id`` replaces the
    current one when given. Log lines written inside carry both."""
    ctx = parent.child() if parent is not None else new_trace()
    trace_token = _trace.set(ctx)
    correlation_token = _correlation.set(correlation_id) if correlation_id is not None else None
    try:
        yield ctx
    finally:
        if correlation_token is not None:
            _correlation.reset(correlation_token)
        _trace.reset(trace_token)


# --------------------------------------------------------------------------- Kafka headers

TRACEPARENT_HEADER = "traceparent"
CORRELATION_HEADER = "x-correlation-id"


def inject_trace(
    headers: list[tuple[str, bytes]], ctx: TraceContext | None = None
) -> TraceContext | None:
    """Put ``ctx`` (default: the current trace) into Kafka ``headers`` as ``traceparent``,
    replacing any there. Returns what was written; without a trace, changes nothing."""
    ctx = ctx if ctx is not None else _trace.get()
    if ctx is None:
        return None
    headers[:] = [(k, v) for k, v in headers if k.lower() != TRACEPARENT_HEADER]
    headers.append((TRACEPARENT_HEADER, ctx.to_traceparent().encode("ascii")))
    return ctx


def extract_trace(headers: Iterable[tuple[str, bytes | None]] | None) -> TraceContext | None:
    """The producer's trace context from Kafka record headers (None if absent or invalid)."""
    for key, value in headers or ():
        if key.lower() == TRACEPARENT_HEADER:
            return parse_traceparent(value)
    return None


# --------------------------------------------------------------------------- logging


_Plain = (bool, float, type(None))


_MAX_DEPTH = 16


def _mask_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_card_and_id_numbers_in(withhold_database_detail(value))
    if isinstance(value, _Plain):
        return value
    if isinstance(value, BaseException):
        # An exception given as a field's value: its text as a logged traceback shows it.
        return mask_card_and_id_numbers_in(describe_exception(value))
    # Past the depth limit (or in a cycle) a value is judged by its text, like any object.
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {_mask_key(k): _mask_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_mask_value(v, depth + 1) for v in value]
    # ints, UUIDs, custom objects: judged by how they would be rendered.
    text = str(value)
    masked = mask_card_and_id_numbers_in(withhold_database_detail(text))
    return masked if masked != text else value


def _mask_key(key: Any) -> Any:
    # Keys stay hashable: a key is judged by its text, as a value past the depth limit.
    text = key if isinstance(key, str) else str(key)
    masked = mask_card_and_id_numbers_in(text)
    return masked if masked != text else key


def mask_id_numbers(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: masks every run of characters that looks like an 18-digit
    resident ID number (``crypto.ID_NUMBER_LIKE``) or a bank card number (16 to 19 digits),
    neither inside a hex digest or id nor a float's fraction (``mask_card_and_id_numbers_in``),
    in any field and any mapping's keys, at any depth. A string loses a database error's
    DETAIL (``logged_errors.withhold_database_detail``) and an exception given as a value
    is written as ``logged_errors.describe_exception`` renders it."""
    return {_mask_key(k): _mask_value(v) for k, v in event_dict.items()}


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: adds ``trace_id``, ``span_id`` and ``correlation_id``."""
    ctx = _trace.get()
    if ctx is not None:
        event_dict.setdefault("trace_id", ctx.trace_id)
        event_dict.setdefault("span_id", ctx.span_id)
    correlation = _correlation.get()
    if correlation is not None:
        event_dict.setdefault("correlation_id", correlation)
    return event_dict


_format_exc_info = structlog.processors.ExceptionRenderer(format_exception)
"""structlog's ``format_exc_info`` with ``logged_errors.format_exception``: every exception
of the chain without a database error's DETAIL or the values it quotes."""

_SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    add_trace_context,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    structlog.processors.StackInfoRenderer(),
]


def _json_default(value: object) -> str:
    # UUIDs, datetimes, enums, paths: their plain text, not their repr.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


_configured = False
_handler: logging.Handler | None = None

TOPIC_NOT_FOUND = "Topic %s not found in cluster metadata"
"""aiokafka's record (logger ``aiokafka.cluster``, ERROR) for each metadata answer that
lacks a topic its client asks for: every ~100 ms while a topic is looked up."""

_LEFT_OUT = " (%d more times since the last record of it, not logged)"


class _OncePerWindow(logging.Filter):
    """Records of one kind (:meth:`key`; ``None``: not one of them, passed as it is) once
    per ``window_s`` each, as WARNINGs, the next one passed saying how many were left out.
    One instance may sit on several loggers: its windows are shared."""

    def __init__(
        self, window_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._shown: dict[Hashable, float] = {}
        self._left_out: dict[Hashable, int] = {}

    def key(self, record: logging.LogRecord) -> Hashable | None:
        raise NotImplementedError

    def forget(self) -> None:
        """Every window closed, no count kept (a test's fresh start)."""
        self._shown.clear()
        self._left_out.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.args, tuple):
            return True
        key = self.key(record)
        if key is None:
            return True
        now = self._clock()
        shown = self._shown.get(key)
        if shown is not None and now - shown < self._window_s:
            self._left_out[key] = self._left_out.get(key, 0) + 1
            return False
        if len(self._shown) >= 10_000:
            # Topics and nodes are few; a bound all the same on what a filter keeps.
            self._shown.clear()
            self._left_out.clear()
        self._shown[key] = now
        left_out = self._left_out.pop(key, 0)
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        if left_out:
            record.msg = f"{record.msg}{_LEFT_OUT}"
            record.args = (*record.args, left_out)
        return True


class TopicNotFoundFilter(_OncePerWindow):
    """aiokafka's "Topic ... not found in cluster metadata", once per topic per
    ``window_s`` (60 s), as a WARNING, the next one saying how many were left out.

    While the relay (or a producer) looks up a topic that does not exist, aiokafka asks
    the broker again every ``retry_backoff_ms`` (100 ms) and logs each answer as an ERROR:
    ten a second for as long as the topic is missing, which an operator's alerting would
    page on. The condition is the operator's to fix (topics are not created on first use),
    but the relay goes on with the other topics and says what it holds back itself (its
    warning "outbox rows failed to publish" with the count, the rows' ``last_error``, the
    errors metric): the first record per topic in a window says which topic, at WARNING.
    """

    def key(self, record: logging.LogRecord) -> Hashable | None:
        args = record.args
        if record.msg != TOPIC_NOT_FOUND or not isinstance(args, tuple):
            return None
        return str(args[0]) if args else ""


KAFKA_CONNECTION_MESSAGES: Mapping[str, tuple[int, ...]] = {
    # logger "aiokafka" (its client): connections and metadata
    'Unable connect to "%s:%s": %s': (0, 1),
    'Unable to request metadata from "%s:%s": %s': (0, 1),
    "Unable connect to node with id %s: %s": (0,),
    "Unable to request metadata from node with id %s: %r": (0,),
    "Unable to update metadata from %s": (),
    # "aiokafka.producer.sender"
    "Got error produce response: %s": (),
    "Cannot send %r to %s: %r": (1,),
    # "aiokafka.consumer.fetcher"
    "Failed fetch messages from %s: %s": (0,),
    "Failed fetch offsets from %s: %s": (0,),
    # "aiokafka.consumer.group_coordinator"
    "Group Coordinator Request failed: %s": (),
    "Error sending %s to node %s [%s] -- marking coordinator dead": (1,),
    "Heartbeat send request failed: %s. Will retry.": (),
    "Heartbeat session expired - marking coordinator dead": (),
}
"""aiokafka's records (0.14) of a broker it cannot reach, each with the positions of its
arguments that name the node or server (none: the message alone is the kind)."""

KAFKA_CONNECTION_LOGGERS = (
    "aiokafka",
    "aiokafka.producer.sender",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
)
"""The loggers of :data:`KAFKA_CONNECTION_MESSAGES` (aiokafka's client logs as
``aiokafka``)."""


class KafkaConnectionErrorFilter(_OncePerWindow):
    """aiokafka's records of a broker it cannot reach (:data:`KAFKA_CONNECTION_MESSAGES`),
    once per message, node and kind of error per ``window_s`` (60 s), as WARNINGs, the
    next one saying how many were left out.

    While the broker is down, every aiokafka client of a process (the relay's producer, a
    consumer's consumer, its dead-letter producer and its size reader) logs an ERROR for
    each connection it fails to open, each metadata update it fails to make, each fetch
    and each produce request it cannot send: a hundred lines a second with a relay and a
    consumer (``test_kafka_outage_logs.py``), each one a page for an operator's alerting,
    and the service's own lines lost among them. The service says what the outage does to
    it itself (the relay's "outbox relay batch failed, retrying", the consumer's "consumer
    session failed, restarting", ``/readyz``, the lag and backlog metrics): of aiokafka's
    the first per node (or per message) in a window says which broker and what failed.
    The error's class is part of the kind: another failure of the same node still shows.
    """

    def key(self, record: logging.LogRecord) -> Hashable | None:
        named = KAFKA_CONNECTION_MESSAGES.get(record.msg) if isinstance(record.msg, str) else None
        args = record.args
        if named is None or not isinstance(args, tuple):
            return None
        error = args[-1] if args else None
        kind = type(error).__name__ if isinstance(error, BaseException) else None
        return (record.msg, *(str(args[i]) for i in named if i < len(args)), kind)


_topic_not_found = TopicNotFoundFilter()
_kafka_connection_errors = KafkaConnectionErrorFilter()


def quiet_repeated_kafka_errors() -> None:
    """Install :class:`TopicNotFoundFilter` on aiokafka's cluster logger and
    :class:`KafkaConnectionErrorFilter` on the loggers of its connection messages (once)."""
    logging.getLogger("aiokafka.cluster").addFilter(_topic_not_found)
    for name in KAFKA_CONNECTION_LOGGERS:
        logging.getLogger(name).addFilter(_kafka_connection_errors)


def route_uvicorn_logs() -> None:
    """uvicorn's loggers through the kit's handler: its own handlers (which
    ``uvicorn.Config`` installs, its ``LOGGING_CONFIG``) would print plain text, a
    traceback with the values a database error quotes among it; its access log repeats
    ours and goes. :func:`configure_logging` does this; so must code that builds a
    ``uvicorn.Config`` after it ran (a test serving an app already built), as
    ``uvicorn --factory`` builds its config before the factory configures the kit."""
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def configure_logging(
    level: str = "INFO",
    *,
    service_name: str | None = None,
    stream: IO[str] | None = None,
    force: bool = False,
) -> None:
    """JSON lines on stdout for structlog and stdlib loggers alike, once per process.

    Later calls only change the level, unless ``force`` (tests use it with ``stream``).
    """
    global _configured, _handler
    root = logging.getLogger()
    if _configured and not force:
        root.setLevel(level)
        return

    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        if service_name is not None:
            event_dict.setdefault("service", service_name)
        return event_dict

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            add_service,
            # Tracebacks without the values a database error quotes (logged_errors).
            _format_exc_info,
            # Last before rendering, so exception texts are masked too.
            mask_id_numbers,
            structlog.processors.JSONRenderer(default=_json_default),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)
    # Only our own previous handler goes: others (pytest's capture) are not ours to drop.
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    root.setLevel(level)
    route_uvicorn_logs()
    quiet_repeated_kafka_errors()
    # An exception nothing caught is printed to stderr (the service's log) by Python
    # itself: as a logged one, without the values a database error quotes.
    sys.excepthook = print_exception_safely

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before this call must still pick up this pipeline.
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; its lines go through ``configure_logging``'s pipeline."""
    return structlog.stdlib.get_logger(name)


# --------------------------------------------------------------------------- metrics

REGISTRY: CollectorRegistry = prometheus_client.REGISTRY
"""The registry ``/metrics`` exposes: prometheus_client's default one (with the process,
platform and GC collectors), so any metric created the ordinary way is exposed."""

_M = TypeVar("_M", Counter, Gauge, Histogram)
_metrics: dict[str, Counter | Gauge | Histogram] = {}


def _metric(kind: type[_M], name: str, documentation: str, labels: Sequence[str], **kw: Any) -> _M:
    # Idempotent, so a module imported twice or a component built twice reuses its metric.
    existing = _metrics.get(name)
    if existing is not None:
        if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
            raise ValueError(f"metric {name!r} already exists with another type or labels")
        return existing
    created = kind(name, documentation, list(labels), registry=REGISTRY, **kw)
    _metrics[name] = created
    return created


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in ``REGISTRY`` (the same object if already created with that name)."""
    return _metric(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge in ``REGISTRY`` (the same object if already created with that name)."""
    return _metric(Gauge, name, documentation, labels)


def histogram(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    """A histogram in ``REGISTRY`` (the same object if already created with that name)."""
    return _metric(Histogram, name, documentation, labels, buckets=tuple(buckets))


HTTP_REQUEST_DURATION = histogram(
    "dibao_http_request_duration_seconds",
    "HTTP request latency by method, route template and status",
    ["method", "route", "status"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "<unmatched>"


def _route_template(scope: Scope) -> str:
    # The router leaves the matched route in the scope; the raw path would make one
    # time series per household id.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED


# --------------------------------------------------------------------------- middleware


class ObservabilityMiddleware:
    """Per HTTP request: trace context from ``traceparent`` (or a new trace), correlation
    id from ``X-Correlation-ID`` (or a new one, echoed in the response), one access log
    line and one latency observation."""

    def __init__(self, app: ASGIApp, *, quiet_paths: Iterable[str] = ()) -> None:
        self.app = app
        # Probes and scrapes would drown the access log; they are logged at DEBUG.
        self.quiet_paths = frozenset(quiet_paths)
        self.log = get_logger("dibao.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        parent = parse_traceparent(headers.get(TRACEPARENT_HEADER))
        correlation = valid_correlation_id(headers.get(CORRELATION_HEADER)) or (
            new_correlation_id()
        )
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Correlation-ID"] = correlation
            await send(message)

        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        started = time.perf_counter()
        with use_trace(parent, correlation_id=correlation):
            try:
                await self.app(scope, receive, send_with_ids)
            except Exception:
                status = 500
                self.log.exception("http.request.failed", method=method, path=scope["path"])
                raise
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                HTTP_REQUEST_DURATION.labels(method, route, str(status)).observe(elapsed)
                level = logging.DEBUG if scope["path"] in self.quiet_paths else logging.INFO
                # The path without its query string: queries may carry names and numbers.
                self.log.log(
                    level,
                    "http.request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                )


def install_observability(app: FastAPI, *, metrics_path: str = "/metrics") -> None:
    """Add the request middleware and the Prometheus endpoint to ``app``."""

    @app.get(
        metrics_path, tags=["operations"], summary="Prometheus metrics", response_class=Response
    )
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(ObservabilityMiddleware, quiet_paths=("/healthz", "/readyz", metrics_path))
