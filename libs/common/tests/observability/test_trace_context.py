"""W3C trace context: parsing, new ids, the context variables, Kafka headers."""

from __future__ import annotations

import re

import pytest

from dibao_common.observability import (
    TraceContext,
    current_correlation_id,
    current_trace,
    current_traceparent,
    extract_trace,
    inject_trace,
    new_trace,
    new_trace_id,
    parse_traceparent,
    use_trace,
    valid_correlation_id,
)

SAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_the_spec_example() -> None:
    ctx = parse_traceparent(SAMPLE)
    assert ctx == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert ctx.sampled
    assert ctx.to_traceparent() == SAMPLE
    assert parse_traceparent(SAMPLE.encode()) == ctx
    assert parse_traceparent(f"  {SAMPLE} ") == ctx
    unsampled = parse_traceparent(SAMPLE[:-2] + "00")
    assert unsampled is not None
    assert not unsampled.sampled


def test_a_later_version_may_carry_more_fields() -> None:
    ctx = parse_traceparent("cc" + SAMPLE[2:] + "-what-the-future-adds")
    assert ctx is not None
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        SAMPLE.upper(),  # hex must be lowercase
        "ff" + SAMPLE[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        SAMPLE + "-extra",  # version 00 has exactly four fields
        "cc" + SAMPLE[2:] + "extra",  # later fields must follow a dash
        SAMPLE[:-1],  # flags too short
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # trace id too short
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        b"\xff\xfe",
    ],
)
def test_invalid_traceparents_are_refused(value: str | bytes | None) -> None:
    assert parse_traceparent(value) is None


def test_new_ids_are_well_formed_and_never_look_like_id_numbers() -> None:
    seen = set()
    for _ in range(3000):
        ctx = new_trace()
        assert re.fullmatch(r"[0-9a-f]{32}", ctx.trace_id)
        assert re.fullmatch(r"[0-9a-f]{16}", ctx.span_id)
        assert not re.fullmatch(r"\d{16}", ctx.span_id)  # masked in logs as a card number
        assert not re.search(r"\d{17}[\dXx]", ctx.trace_id)
        assert parse_traceparent(ctx.to_traceparent()) == ctx
        seen.add(ctx.trace_id)
    assert len(seen) == 3000
    assert not re.search(r"\d{18}", new_trace_id())


def test_use_trace_sets_and_restores_the_context() -> None:
    assert current_trace() is None
    assert current_correlation_id() is None
    parent = parse_traceparent(SAMPLE)
    with use_trace(parent, correlation_id="corr-1") as ctx:
        assert current_trace() == ctx
        assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert ctx.parent_span_id == "00f067aa0ba902b7"
        assert ctx.span_id != "00f067aa0ba902b7"
        assert current_traceparent() == ctx.to_traceparent()
        assert current_correlation_id() == "corr-1"
        with use_trace() as root:
            assert root.trace_id != ctx.trace_id
            assert root.parent_span_id is None
            assert current_correlation_id() == "corr-1"  # kept when not given
        assert current_trace() == ctx
    assert current_trace() is None
    assert current_traceparent() is None
    assert current_correlation_id() is None


def test_inject_then_extract_round_trip() -> None:
    headers: list[tuple[str, bytes]] = [("ce_id", b"x"), ("TraceParent", b"stale")]
    with use_trace() as ctx:
        written = inject_trace(headers)
    assert written == ctx
    assert headers == [("ce_id", b"x"), ("traceparent", ctx.to_traceparent().encode())]
    assert extract_trace(headers) == TraceContext(ctx.trace_id, ctx.span_id, ctx.flags)


def test_inject_an_explicit_context_and_nothing_without_one() -> None:
    headers: list[tuple[str, bytes]] = []
    assert inject_trace(headers) is None
    assert headers == []
    explicit = parse_traceparent(SAMPLE)
    assert inject_trace(headers, explicit) == explicit
    assert headers == [("traceparent", SAMPLE.encode())]


def test_extract_tolerates_missing_and_bad_headers() -> None:
    assert extract_trace(None) is None
    assert extract_trace([]) is None
    assert extract_trace([("traceparent", None)]) is None
    assert extract_trace([("traceparent", b"00-zz")]) is None
    assert extract_trace([("other", b"1"), ("TRACEPARENT", SAMPLE.encode())]) is not None


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("5f0c7a1e-2b7d-4e8c-9d3a-1b2c3d4e5f60", True),
        ("portal:req/42", True),
        ("", False),
        ("has space", False),
        ("-leading-dash", False),
        ("x" * 129, False),
        ("带中文", False),
        # It travels in every event the request writes (ce_correlationid), which audit
        # keeps forever: one carrying an ID number is replaced, like any invalid one.
        ("applicant-62010219800101123X", False),
        ("620102198001011234", False),
        ("6201021980", True),
        # Nor a bank card number (16 to 19 digits), which no ID-like run catches under 18.
        ("6222021234567890", False),
        ("card-62220212345678901", False),
        ("pay:6222021234567890123/1", False),
        ("order-622202123456789", True),
        # A trace id or a digest's hex with 16 digits in a row is not a card number.
        ("1234567890123456abcdefabcdefabcd", True),
    ],
)
def test_correlation_ids(value: str, accepted: bool) -> None:
    assert (valid_correlation_id(value) == value) is accepted
