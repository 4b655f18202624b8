"""``python -m dibao_intake.worker``, the timeline consumer as a process of its own.

The worker runs as a real subprocess on the test stack's database and broker. It joins
the timeline consumer group of that database (``timeline_group_for``; its inbox name is
``CONSUMER_NAME``), the group the test app's in-process timeline consumer is already in,
and that app is package-wide with its consumer running. Had the worker subscribed to the same
topics, the two would split the partitions between them and either could write a given
entry. So the worker here consumes only a fresh topic of its own
(``DIBAO_INTAKE_TIMELINE_TOPICS``), one no other consumer reads: the group's assignment
gives each member partitions of the topics it subscribed to, so every event published
there is the worker's to apply, and its inbox row names that topic. The events are
about an application created through the API, as another service's relay would send them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.assessment.v1 import events_pb2 as assessment
from dibao.audit.v1 import events_pb2 as audit
from dibao_common.auth import Role
from dibao_common.messaging.dlq import H_CONSUMER, H_ERROR, H_TOPIC, StoredRecord, read_topic
from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.auth_fixtures import auth_settings_values
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually
from dibao_common.testing.stack import TestStack
from dibao_intake.service_layer.timeline import CONSUMER_NAME, DLQ_TOPIC
from dibao_intake.testing import IntakeClient, intake_settings_for

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

STOP_TIMEOUT_S = 10.0
# Starting takes a while: importing the worker costs ~6 s of CPU, more in wall time on a
# loaded machine, then joining the group waits for the app's consumer to rejoin too.
START_TIMEOUT_S = 60.0


def _worker_env(stack: TestStack, documents: Path, topic: str) -> dict[str, str]:
    """The environment of a worker on the test stack: the test app's settings
    (``intake_settings_for``), but consuming only ``topic``."""
    settings = intake_settings_for(stack, documents)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    env |= {
        "DIBAO_DATABASE_URL": settings.database_url,
        "DIBAO_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DIBAO_ENVIRONMENT": settings.environment,
        "DIBAO_LOG_LEVEL": settings.log_level,
        "DIBAO_PII_KEYS": settings.pii.keys.get_secret_value(),
        "DIBAO_PII_ACTIVE_KEY_ID": settings.pii.active_key_id,
        "DIBAO_PII_HASH_KEY": settings.pii.hash_key.get_secret_value(),
        "DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": (
            settings.idempotency_fingerprint_keys.get_secret_value()
        ),
        "DIBAO_INTAKE_DOCUMENT_DIR": str(settings.intake_document_dir),
        "DIBAO_INTAKE_TIMELINE_TOPICS": topic,
        "DIBAO_INTAKE_TIMELINE_GROUP": settings.intake_timeline_group,
    }
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in auth_settings_values().items()}
    return env


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def check_running(self) -> None:
        if self.process.returncode is not None:
            raise AssertionError(
                f"the worker exited with {self.process.returncode}:\n{self.output()}"
            )

    async def terminate(self) -> int:
        """SIGTERM, then its exit code (fails if it takes longer than STOP_TIMEOUT_S)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(
                f"the worker did not stop {STOP_TIMEOUT_S} s after SIGTERM:\n{self.output()}"
            ) from None


@asynccontextmanager
async def _worker(stack: TestStack, tmp_path: Path) -> AsyncIterator[tuple[Worker, str]]:
    """A worker process consuming a fresh topic (deleted after); killed if still running."""
    topic = f"test.intake-worker.{uuid.uuid4().hex[:8]}"
    await create_topic(stack.kafka_bootstrap, topic, partitions=3)
    log = tmp_path / "worker.log"
    try:
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dibao_intake.worker",
                env=_worker_env(stack, tmp_path / "documents", topic),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            yield Worker(process, log), topic
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    finally:
        await delete_topics(stack.kafka_bootstrap, [topic])


async def _publish(
    stack: TestStack,
    topic: str,
    message: Message,
    *,
    key: str,
    source: str,
    payload: bytes | None = None,
) -> Envelope:
    """Another service's event on ``topic`` (with ``payload`` instead of its own, if given)."""
    envelope = build_envelope(message, key=key, source=source, actor="someone-else")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            envelope.payload if payload is None else payload,
            key=key.encode(),
            headers=envelope.to_headers(),
        )
    finally:
        await producer.stop()
    return envelope


async def _application(intake: IntakeClient) -> tuple[str, str]:
    """A submitted application's household id and id."""
    household = await intake.register()
    response = await intake.submit(await intake.complete_application_body(household))
    assert response.status_code == 201, response.text
    return household.id, response.json()["id"]


async def _entries(engine: AsyncEngine, ce_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each of ``ce_ids`` that has a timeline entry was recorded."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT ce_id, recorded_at FROM timeline_entry WHERE ce_id = ANY(:ids)"),
            {"ids": ce_ids},
        )
        return {row.ce_id: row.recorded_at for row in rows}


async def _inbox_topics(engine: AsyncEngine, ce_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The topic the timeline consumer claimed each of ``ce_ids`` from."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT ce_id, topic FROM inbox_message"
                " WHERE consumer = :consumer AND ce_id = ANY(:ids)"
            ),
            {"consumer": CONSUMER_NAME, "ids": ce_ids},
        )
        return {row.ce_id: row.topic for row in rows}


async def test_the_worker_process_writes_timeline_entries_and_stops_cleanly_on_sigterm(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine, tmp_path: Path
) -> None:
    household_id, application_id = await _application(intake)
    started = datetime.now(UTC)
    async with _worker(intake_stack, tmp_path) as (worker, topic):
        sent = [
            await _publish(
                intake_stack,
                topic,
                assessment.CaseOpened(
                    household_id=household_id, application_id=application_id, case_id="case-w"
                ),
                key=household_id,
                source="dibao/assessment",
            ),
            await _publish(
                intake_stack,
                topic,
                audit.AnomalyDetected(
                    household_id=household_id,
                    rule="deadline_overrun",
                    severity=audit.SEVERITY_WARNING,
                    subject=audit.Subject(kind="application", id=application_id),
                    details="investigation not started in 3 working days",
                ),
                key=household_id,
                source="dibao/audit",
            ),
        ]
        ce_ids = [e.ce_id for e in sent]

        async def written() -> bool:
            worker.check_running()
            return len(await _entries(intake_engine, ce_ids)) == len(ce_ids)

        await eventually(
            written, timeout_s=START_TIMEOUT_S, what="the worker to write the timeline entries"
        )
        code = await worker.terminate()
        output = worker.output()

    assert code == 0, output
    assert "Traceback" not in output, output
    # The worker wrote them: claimed from its own topic, at the system's time (the test
    # app's consumer records with the frozen test clock).
    assert await _inbox_topics(intake_engine, ce_ids) == dict.fromkeys(ce_ids, topic)
    recorded = await _entries(intake_engine, ce_ids)
    for at in recorded.values():
        assert started - timedelta(seconds=5) <= at <= datetime.now(UTC)
    # And the API shows them (beside intake's own events, which the test app's consumer adds).
    response = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(Role.AUDITOR, ["62"])
    )
    assert response.status_code == 200
    by_type = {e["type"]: e for e in response.json()["timeline"]}
    assert by_type["dibao.assessment.CaseOpened.v1"]["details"]["case_id"] == "case-w"
    assert by_type["dibao.audit.AnomalyDetected.v1"]["details"]["rule"] == "deadline_overrun"


async def test_the_worker_process_dead_letters_an_undecodable_event_and_goes_on(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine, tmp_path: Path
) -> None:
    household_id, application_id = await _application(intake)
    garbage = b"\xff" * 11  # not protobuf: a varint longer than ten bytes
    async with _worker(intake_stack, tmp_path) as (worker, topic):
        bad = await _publish(
            intake_stack,
            topic,
            assessment.CaseOpened(
                household_id=household_id, application_id=application_id, case_id="case-bad"
            ),
            key=household_id,
            source="dibao/assessment",
            payload=garbage,
        )
        good = await _publish(
            intake_stack,
            topic,
            assessment.CaseOpened(
                household_id=household_id, application_id=application_id, case_id="case-good"
            ),
            key=household_id,
            source="dibao/assessment",
        )

        async def dead_letters() -> list[StoredRecord]:
            return [
                r
                for r in await read_topic(intake_stack.kafka_bootstrap, DLQ_TOPIC)
                if r.ce_id == str(bad.ce_id)
            ]

        async def applied_and_parked() -> bool:
            worker.check_running()
            if good.ce_id not in await _entries(intake_engine, [good.ce_id]):
                return False
            return len(await dead_letters()) > 0

        await eventually(
            applied_and_parked,
            timeout_s=START_TIMEOUT_S,
            what="the worker to apply the good event and park the bad one",
        )
        code = await worker.terminate()
        output = worker.output()

    assert code == 0, output
    assert "Traceback" not in output, output
    [parked] = await dead_letters()
    assert parked.value == garbage
    assert parked.key == household_id.encode()
    assert parked.header(H_TOPIC) == topic
    assert parked.header(H_CONSUMER) == CONSUMER_NAME
    assert (parked.header(H_ERROR) or "").startswith("UndecodablePayload")
    assert await _entries(intake_engine, [bad.ce_id]) == {}
    assert await _inbox_topics(intake_engine, [bad.ce_id, good.ce_id]) == {good.ce_id: topic}
