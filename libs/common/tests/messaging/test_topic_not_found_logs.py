"""A topic that does not exist, looked up by the relay: what the logs say of it.

aiokafka logs "Topic ... not found in cluster metadata" as an ERROR for every metadata
answer while it looks the topic up, every ~100 ms. Through the kit's log pipeline that is
one WARNING per topic per minute (``observability.TopicNotFoundFilter``), beside the
relay's own warning with the count of the rows it could not publish.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common import observability
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.observability import TOPIC_NOT_FOUND, TopicNotFoundFilter
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.stack import TestStack

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The kit's log pipeline (DEBUG), into a buffer; a reader of its JSON lines."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("DEBUG", service_name="kit-test", stream=stream, force=True)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root = logging.getLogger()
        if observability._handler is not None:
            root.removeHandler(observability._handler)
        observability._configured, observability._handler = previous
        if previous[1] is not None:
            root.addHandler(previous[1])


def _not_found(lines: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if "not found in cluster metadata" in line["event"] and topic in line["event"]
    ]


# Before the filter: 21 ERROR lines for the one topic in the 2 s lookup.
@pytest.mark.postgres
@pytest.mark.kafka
async def test_a_missing_topic_is_logged_once_as_a_warning_beside_the_relays_count(
    engine: AsyncEngine, stack: TestStack, commit_events: CommitEvents, log_lines: LogLines
) -> None:
    missing = f"test.missing.{uuid.uuid4().hex[:10]}"
    await commit_events(missing, events=3, keys=3)
    relay = OutboxRelay(
        engine, stack.kafka_bootstrap, name="test-missing-logs", metadata_timeout_s=2.0
    )

    async def recorded() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM outbox_message WHERE topic = :t AND attempts > 0"),
                {"t": missing},
            )
            return int(found.scalar_one()) == 3

    await relay.start()
    try:
        await eventually(recorded, timeout_s=20, what="the failed lookup on the rows")
    finally:
        await relay.stop()

    lines = log_lines()
    shown = _not_found(lines, missing)
    assert [(line["level"], line["logger"]) for line in shown] == [
        ("warning", "aiokafka.cluster")
    ], f"{len(shown)} lines: {[line['level'] for line in shown]}"
    relays = [line for line in lines if line["event"] == "outbox rows failed to publish"]
    assert relays
    assert relays[0]["failed"] == 3
    assert relays[0]["first_error"].startswith("TopicMetadataUnavailableError")


# Before: 21 lines on its stderr, each an ERROR ("Topic ... not found in cluster metadata"
# printed by logging's last resort handler, the process configuring no logging). Until 3
# Dec 2026 (helper hBH) its own lines went to stdout in structlog's console format and
# aiokafka's to stderr as plain text; now both are the kit's JSON lines on stdout.
@pytest.mark.postgres
@pytest.mark.kafka
async def test_the_relay_process_logs_a_missing_topic_once_in_the_kits_json_lines(
    engine: AsyncEngine, stack: TestStack, commit_events: CommitEvents
) -> None:
    missing = f"test.missing.{uuid.uuid4().hex[:10]}"
    await commit_events(missing, events=3, keys=3)

    async def recorded() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM outbox_message WHERE topic = :t AND attempts > 0"),
                {"t": missing},
            )
            return int(found.scalar_one()) == 3

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dibao_common.messaging.relay",
        "--database-url",
        engine.url.render_as_string(hide_password=False),
        "--bootstrap",
        stack.kafka_bootstrap,
        "--name",
        "test-missing-process",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # The lookup's bound, read as the services read it: 2 s of aiokafka asking. The
        # service whose relay it is names its lines.
        env={
            **os.environ,
            "DIBAO_RELAY_METADATA_TIMEOUT_S": "2",
            "DIBAO_SERVICE_NAME": "intake",
            "DIBAO_LOG_LEVEL": "INFO",
        },
    )
    try:
        await eventually(recorded, timeout_s=30, what="the process's failed lookup on the rows")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    # Nothing on stderr but the interpreter's own warning of ``-m`` on a module its
    # package imports (dibao_common.messaging imports the relay), printed before the
    # module runs.
    assert [
        line for line in stderr.decode().splitlines() if "found in sys.modules" not in line
    ] == []
    lines = [json.loads(line) for line in stdout.decode().splitlines()]
    assert lines
    for line in lines:
        assert {"event", "level", "logger", "timestamp", "service"} <= line.keys(), line
        assert line["service"] == "intake-relay"
    events = [(line["logger"], line["level"], line["event"]) for line in lines]
    assert ("dibao_common.messaging.relay", "info", "outbox relay running") in events
    shown = [line for line in lines if "not found in cluster metadata" in line["event"]]
    assert [(line["logger"], line["level"]) for line in shown] == [
        ("aiokafka.cluster", "warning")
    ], shown
    assert missing in shown[0]["event"]
    failed = [line for line in lines if line["event"] == "outbox rows failed to publish"]
    assert failed
    assert failed[0]["relay"] == "test-missing-process"
    assert failed[0]["level"] == "warning"


def _record(topic: str) -> logging.LogRecord:
    return logging.LogRecord(
        "aiokafka.cluster", logging.ERROR, "cluster.py", 262, TOPIC_NOT_FOUND, (topic,), None
    )


def test_the_filter_passes_each_topic_once_a_window_with_the_count_left_out() -> None:
    now = [0.0]
    quiet = TopicNotFoundFilter(60.0, clock=lambda: now[0])
    first = _record("a")
    assert quiet.filter(first)
    assert (first.levelno, first.levelname) == (logging.WARNING, "WARNING")
    assert first.getMessage() == "Topic a not found in cluster metadata"
    # Another topic has its own window; the same topic again within it is left out.
    assert quiet.filter(_record("b"))
    for step in range(1, 600):
        now[0] = step * 0.1
        assert not quiet.filter(_record("a"))
    now[0] = 60.0
    again = _record("a")
    assert quiet.filter(again)
    assert again.getMessage() == (
        "Topic a not found in cluster metadata (599 more times since the last record of it,"
        " not logged)"
    )
    # Every other record of aiokafka's passes as it is.
    other = logging.LogRecord(
        "aiokafka.cluster", logging.ERROR, "cluster.py", 264, "Topic %s is not authorized",
        ("a",), None,
    )  # fmt: skip
    assert quiet.filter(other)
    assert other.levelno == logging.ERROR
