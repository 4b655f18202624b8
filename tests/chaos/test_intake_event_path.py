"""Intake's event path when its servers fail: the broker stopped, PostgreSQL restarted,
poison on the timeline's topics.

Everything here is real and the test's own: a Kafka broker started by ``kafka.sh`` in a
directory of the test's (``own_broker``), a PostgreSQL cluster started by ``pg.sh`` as an
instance of the test's (``own_postgres``), so that stopping them disturbs no other test,
and an intake app built by ``create_app`` on both, with its relay and timeline consumer
running in process as in a service. The guide's bar: nothing is lost, nothing applied
twice, a key's events reach ``dibao.intake.v1`` in the outbox's order, and a request the
database cannot serve answers a problem and writes nothing half.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.assessment.v1 import events_pb2 as assessment
from dibao.intake.v1 import events_pb2 as intake_events
from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.messaging.dlq import H_CONSUMER, H_ERROR, StoredRecord, read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.kafka_fixtures import eventually, kafka_sh, own_broker
from dibao_common.testing.stack import REPO_ROOT, TestStack, api_client
from dibao_intake.main import create_app
from dibao_intake.service_layer.timeline import CONSUMER_NAME, DLQ_TOPIC
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import (
    ISSUED_ID_NUMBERS,
    TEST_NOW,
    IntakeClient,
    RegisteredHousehold,
    intake_settings_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

PG_SH = REPO_ROOT / "deploy" / "pg.sh"
INTAKE_TOPIC = "dibao.intake.v1"
ASSESSMENT_TOPIC = "dibao.assessment.v1"
PROBLEM = "application/problem+json"
POSTAL_CARD = {
    "account_number": "6217001234567890123",
    "bank_code": "403",
    "bank_name": "中国邮政储蓄银行",
}


# -- servers of the test's own ---------------------------------------------------------------


@dataclass(frozen=True)
class OwnPostgres:
    """A PostgreSQL cluster of the test's own, driven by ``deploy/pg.sh``."""

    env: dict[str, str]
    admin_dsn: str

    def pg_sh(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(PG_SH), command],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return done.stdout.strip()


def _pg_sh_env(state: Path, port: int) -> dict[str, str]:
    # An instance of its own (its state directory, lock and port); never an operator's
    # server, nor the suite's cluster.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DIBAO_PG_URL", "DIBAO_PGDATA_ROOT", "DIBAO_LOCKED_STATE", "DIBAO_STATE_DIR")
    }
    instance = os.environ.get("DIBAO_INSTANCE", "test")
    return env | {
        "DIBAO_INSTANCE": f"{instance}-chaos-pg",
        "DIBAO_STATE_DIR": str(state),
        "DIBAO_PG_PORT": str(port),
        "DIBAO_KAFKA_PORT": "0",  # pg.sh needs them set for an instance of another name
        "DIBAO_SVC_PORT_BASE": "0",
    }


@contextmanager
def own_postgres(state: Path, *, port_offset: int) -> Iterator[OwnPostgres]:
    """A cluster of the test's own on the suite's PostgreSQL port plus ``port_offset``
    (instances' ports differ by less than that), removed at the end."""
    suite = urlsplit(os.environ["DIBAO_TEST_PG_DSN"]).port or 15430
    env = _pg_sh_env(state, suite + port_offset)
    server = OwnPostgres(env, "")
    try:
        server.pg_sh("start")
        yield OwnPostgres(env, server.pg_sh("dsn"))
    finally:
        server.pg_sh("remove")


@pytest.fixture(scope="module")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka-intake-chaos")
    # Offsets 10,000-10,020 and their controllers (+50) are the other own brokers'.
    with own_broker(directory, port_offset=10_030) as bootstrap:
        kafka_sh("topics", "--bootstrap", bootstrap)
        yield directory, bootstrap


@pytest.fixture(scope="module")
def chaos_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    with own_postgres(tmp_path_factory.mktemp("pg-intake-chaos"), port_offset=1_000) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chaos_stack(chaos_postgres: OwnPostgres, chaos_broker: tuple[Path, str]) -> TestStack:
    """Intake's database on the own cluster, migrated to head, and the own broker."""
    stack = TestStack(chaos_postgres.admin_dsn, chaos_broker[1], "dibao_chaos")
    await stack.recreate_database("intake")
    await stack.migrate("intake")
    return stack


@pytest_asyncio.fixture(loop_scope="session")
async def chaos_engine(chaos_stack: TestStack) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(chaos_stack.database_url("intake"), pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _caught_up(
    bootstrap: str, group: str, topics: Sequence[str], *, timeout_s: float = 60.0
) -> None:
    """Until ``group`` has committed, on every partition of ``topics``, the end offset it
    had when asked: each event published before is handled (applied, skipped as seen, or
    parked), so that what the test counts afterwards is its own."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    try:
        await reader.start()
        try:
            described = await admin.describe_topics(list(topics))
            partitions = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                for partition in topic["partitions"]
            ]
            assert {tp.topic for tp in partitions} == set(topics), described
            ends = await reader.end_offsets(partitions)
        finally:
            await reader.stop()

        async def handled() -> bool:
            try:
                committed = await admin.list_consumer_group_offsets(group)
            except KafkaError:  # the new group's coordinator may not be known yet
                return False
            return all(
                tp in committed and committed[tp].offset >= end
                for tp, end in ends.items()
                if end > 0
            )

        await eventually(handled, timeout_s=timeout_s, what=f"{group} to handle {topics}")
    finally:
        await admin.close()


class ChaosIntake(IntakeClient):
    """A clerk's client of the test's app, which can wait for its timeline consumer."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenFactory,
        synthesizer: Synthesizer,
        *,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
    ) -> None:
        super().__init__(http, tokens, synthesizer)
        self._consumer = (bootstrap, group, tuple(topics))

    async def consumer_caught_up(self) -> None:
        """Until the timeline consumer has handled every event now on its topics. It
        counts an event (``dibao_consumer_events_total``) before it commits the event's
        offset, and the test sees an entry once its transaction commits, a few turns of
        the loop before that count: /metrics is read after this, not after the entry."""
        bootstrap, group, topics = self._consumer
        await _caught_up(bootstrap, group, topics)


@asynccontextmanager
async def intake_on(
    stack: TestStack, tmp_path: Path, **overrides: Any
) -> AsyncIterator[ChaosIntake]:
    """An intake app on ``stack`` with its relay and timeline consumer running (the timeline
    consumer in a group of the test's own), and a clerk's client of it.

    A new group reads its topics from the start (``auto_offset_reset="earliest"``), the
    earlier tests' events among them: the poison test's two are parked again by every
    later test's consumer. The client is handed over once the consumer has handled all
    that, so that what a test then counts (the dead-letter topic, the consumer's
    metrics) is its own events' doing, not a race with that replay."""
    clock = FrozenClock(TEST_NOW)
    group = f"intake.timeline.chaos-{uuid.uuid4().hex[:8]}"
    settings = intake_settings_for(
        stack,
        tmp_path / "documents",
        intake_timeline_group=group,
        intake_timeline_fetch_wait_ms=0,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    async with api_client(app) as http:
        synthesizer = Synthesizer(f"chaos-{uuid.uuid4()}", clock.today(), used=ISSUED_ID_NUMBERS)
        intake = ChaosIntake(
            http,
            TokenFactory().with_clock(clock.now),
            synthesizer,
            bootstrap=stack.kafka_bootstrap,
            group=group,
            topics=settings.intake_timeline_topics,
        )
        if settings.intake_timeline_enabled:
            await intake.consumer_caught_up()
        yield intake


async def _pending(engine: AsyncEngine) -> list[tuple[int, str, str, uuid.UUID]]:
    """The outbox's pending rows in id order: (id, topic, key, ce_id)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, topic, key, ce_id FROM outbox_message"
                " WHERE published_at IS NULL ORDER BY id"
            )
        )
        return [(r.id, r.topic, r.key, r.ce_id) for r in rows]


async def _drained(engine: AsyncEngine, *, timeout_s: float, what: str) -> None:
    async def empty() -> bool:
        try:
            return not await _pending(engine)
        except Exception:  # the server may still be coming back
            return False

    await eventually(empty, timeout_s=timeout_s, what=what)


def _first_copies_by_key(records: list[StoredRecord]) -> tuple[dict[str, list[str]], Counter[str]]:
    """Per key, the ce_ids in log order, first copies only; and how often each ce_id is there."""
    copies: Counter[str] = Counter()
    order: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = Envelope.from_record(record)
        ce_id = str(envelope.ce_id)
        copies[ce_id] += 1
        if copies[ce_id] == 1:
            order[envelope.key].append(ce_id)
    return dict(order), copies


# -- the broker stopped while submissions are accepted -----------------------------------------


async def test_submissions_while_the_broker_is_stopped_are_accepted_and_published_once_in_order(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    directory, bootstrap = chaos_broker
    async with intake_on(chaos_stack, tmp_path) as intake:
        households = [await intake.register() for _ in range(4)]
        bodies = [await intake.complete_application_body(h) for h in households]
        await _drained(chaos_engine, timeout_s=30, what="the relay to publish the registrations")

        await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
        try:
            statuses = []
            applications = []
            for household, body in zip(households, bodies, strict=True):
                submitted = await intake.submit(body)
                statuses.append(submitted.status_code)
                applications.append(submitted.json().get("id"))
                # And a change of the household after it: its key's third event.
                change = await intake.http.post(
                    f"/households/{household.id}/changes",
                    json={
                        "kind": "bank_account_change",
                        "account": POSTAL_CARD | {"holder_person_id": household.person_ids[0]},
                    },
                    headers=intake.headers(),
                )
                statuses.append(change.status_code)
            # Nothing reached the broker: the outbox holds every event, in commit order.
            held = await _pending(chaos_engine)
        finally:
            await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        assert statuses == [201] * len(statuses)
        await _drained(
            chaos_engine, timeout_s=90, what="the relay to publish after the broker's return"
        )
        # The timeline consumer is back in its group too: another service's event is entered.
        await _publish(
            bootstrap,
            ASSESSMENT_TOPIC,
            assessment.CaseOpened(
                household_id=households[0].id, application_id=applications[0], case_id="back"
            ),
            key=households[0].id,
        )

        async def entered() -> bool:
            types = await _timeline_types(intake, applications[0])
            return "dibao.assessment.CaseOpened.v1" in types

        await eventually(entered, timeout_s=60, what="the timeline consumer to rejoin")

    intake_events = [(key, str(ce_id)) for _, topic, key, ce_id in held if topic == INTAKE_TOPIC]
    assert len(intake_events) >= 3 * len(households)
    expected: dict[str, list[str]] = defaultdict(list)
    for key, ce_id in intake_events:
        expected[key].append(ce_id)
    order, copies = _first_copies_by_key(await read_topic(bootstrap, INTAKE_TOPIC))
    held_ids = {ce_id for _, ce_id in intake_events}
    assert {ce_id: copies[ce_id] for ce_id in held_ids} == dict.fromkeys(held_ids, 1)
    for key, ce_ids in expected.items():
        assert [c for c in order[key] if c in held_ids] == ce_ids, key


# -- PostgreSQL restarted under load -----------------------------------------------------------


@dataclass
class Answer:
    at: float
    status: int
    content_type: str
    household_id: str | None
    problem: str | None = None  # a refusal's problem type
    retry_after: str | None = None


async def _registrations(intake: IntakeClient, answers: list[Answer], stop: asyncio.Event) -> None:
    """Register households until ``stop``; every answer recorded (a hang fails the test)."""
    while not stop.is_set():
        plan = intake.plan()
        try:
            response = await asyncio.wait_for(
                intake.http.post(
                    "/households",
                    json=plan.payload(),
                    headers=intake.headers(regions=[plan.region_code]),
                ),
                60,
            )
        except TimeoutError:
            raise AssertionError("a registration did not answer within 60 s") from None
        household_id = response.json().get("id") if response.status_code == 201 else None
        answers.append(
            Answer(
                time.monotonic(),
                response.status_code,
                response.headers.get("content-type", ""),
                household_id,
                response.json().get("type") if response.status_code != 201 else None,
                response.headers.get("retry-after"),
            )
        )
        if response.status_code != 201:
            await asyncio.sleep(0.05)


async def _publish(
    bootstrap: str,
    topic: str,
    message: Message,
    *,
    key: str,
    payload: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Envelope:
    """Another service's event on ``topic`` (its payload or headers replaced, if given)."""
    envelope = build_envelope(message, key=key, source="dibao/assessment", actor="someone-else")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            envelope.payload if payload is None else payload,
            key=key.encode(),
            headers=envelope.to_headers() if headers is None else headers,
        )
    finally:
        await producer.stop()
    return envelope


async def _an_accepted_application(intake: IntakeClient) -> tuple[RegisteredHousehold, str]:
    """A household registered and its complete application submitted, with the id."""
    household = await intake.register()
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    application_id: str = submitted.json()["id"]
    return household, application_id


async def _timeline_types(intake: IntakeClient, application_id: str) -> list[str]:
    response = await intake.http.get(
        f"/applications/{application_id}", headers=intake.headers(Role.AUDITOR, ["62"])
    )
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["timeline"]]


async def test_postgres_restarted_under_load_costs_some_requests_a_problem_and_loses_nothing(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_postgres: OwnPostgres,
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    _, bootstrap = chaos_broker
    async with intake_on(
        chaos_stack, tmp_path, intake_timeline_topics=(ASSESSMENT_TOPIC,)
    ) as intake:
        household, application_id = await _an_accepted_application(intake)

        answers: list[Answer] = []
        stop = asyncio.Event()
        load = [asyncio.create_task(_registrations(intake, answers, stop)) for _ in range(4)]
        try:
            await asyncio.sleep(1.0)
            down_at = time.monotonic()
            await asyncio.to_thread(chaos_postgres.pg_sh, "stop")
            await asyncio.sleep(2.0)
            await asyncio.to_thread(chaos_postgres.pg_sh, "start")
            up_at = time.monotonic()
            await asyncio.sleep(4.0)
        finally:
            stop.set()
            await asyncio.gather(*load)

        # Every request was answered: a registration, or a problem while the server was
        # away; and once it was back, registrations again, with the same app.
        refused = [a for a in answers if a.status != 201]
        assert refused, "no request met the restart: the test proved nothing"
        # Each one told to retry (database-unavailable, Retry-After), none an internal error.
        assert {(a.status, a.content_type) for a in refused} == {(503, PROBLEM)}, Counter(
            (a.status, a.content_type) for a in refused
        )
        assert {(a.problem, a.retry_after) for a in refused} == {
            ("https://dibao.gov.cn/problems/database-unavailable", "5")
        }
        # Answered after the stop began: a request served before it cannot have met it.
        assert all(down_at <= a.at for a in refused), [a.at - down_at for a in refused]
        late = [a for a in answers if a.at > up_at + 2.0]
        assert late
        assert all(a.status == 201 for a in late), [a.status for a in late]
        for _ in range(3):
            assert (
                await intake.http.post(
                    "/households", json=intake.plan().payload(), headers=intake.headers()
                )
            ).status_code == 201

        # Nothing half-written: each household the database has is whole (members) and was
        # published by the relay, which carried on without a restart.
        await _drained(chaos_engine, timeout_s=60, what="the relay to publish after the restart")
        async with chaos_engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT h.id, count(m.*) AS members FROM household h"
                    " LEFT JOIN household_member m ON m.household_id = h.id GROUP BY h.id"
                )
            )
            stored = {str(r.id): int(r.members) for r in rows}
        accepted = {a.household_id for a in answers if a.household_id is not None}
        assert accepted <= set(stored)
        assert all(members > 0 for members in stored.values())
        published = {
            Envelope.from_record(r).key
            for r in await read_topic(bootstrap, INTAKE_TOPIC)
            if Envelope.from_record(r).ce_type == "dibao.intake.HouseholdRegistered.v1"
        }
        assert set(stored) <= published

        # The timeline consumer carried on too: another service's event about the
        # application is entered.
        await _publish(
            bootstrap,
            ASSESSMENT_TOPIC,
            assessment.CaseOpened(
                household_id=household.id, application_id=application_id, case_id="case-after"
            ),
            key=household.id,
        )

        async def entered() -> bool:
            return "dibao.assessment.CaseOpened.v1" in await _timeline_types(intake, application_id)

        await eventually(entered, timeout_s=30, what="the timeline consumer to enter the event")


# -- poison on the timeline's topics -----------------------------------------------------------


def _sample(metrics: str, name: str, **labels: str) -> float:
    """A sample's value in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        if "{" in series:
            metric, raw = series[:-1].split("{", 1)
            found = ",".join(sorted(raw.split(","))) if raw else ""
        else:
            metric, found = series, ""
        if metric == name and found == wanted:
            return float(value)
    return 0.0


async def test_the_timeline_consumer_parks_poison_skips_unknown_applications_and_goes_on(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    _, bootstrap = chaos_broker
    async with intake_on(
        chaos_stack,
        tmp_path,
        intake_timeline_topics=(ASSESSMENT_TOPIC,),
        # The DLQ's size is read every 30 s by default: at once here.
    ) as intake:
        household, application_id = await _an_accepted_application(intake)
        before = (await intake.http.get("/metrics")).text

        def case(case_id: str, application: str = application_id) -> Message:
            return assessment.CaseOpened(
                household_id=household.id, application_id=application, case_id=case_id
            )

        # Bytes that are no protobuf; a type nobody knows; a valid event about an
        # application intake never had; then a good one, all on the household's key.
        garbage = await _publish(
            bootstrap, ASSESSMENT_TOPIC, case("garbage"), key=household.id, payload=b"\xff" * 11
        )
        unknown_type = build_envelope(case("unknown"), key=household.id, source="dibao/assessment")
        await _publish(
            bootstrap,
            ASSESSMENT_TOPIC,
            case("unknown"),
            key=household.id,
            headers=[
                (n, b"dibao.assessment.SomethingNew.v1" if n == "ce_type" else v)
                for n, v in unknown_type.to_headers()
            ],
        )
        stranger = await _publish(
            bootstrap, ASSESSMENT_TOPIC, case("stranger", str(uuid.uuid4())), key=household.id
        )
        good = await _publish(bootstrap, ASSESSMENT_TOPIC, case("good"), key=household.id)

        async def good_entered() -> bool:
            return "dibao.assessment.CaseOpened.v1" in await _timeline_types(intake, application_id)

        await eventually(good_entered, timeout_s=30, what="the good event after the poison")
        await intake.consumer_caught_up()
        parked = [
            r
            for r in await read_topic(bootstrap, DLQ_TOPIC)
            if r.header(H_CONSUMER) == CONSUMER_NAME
        ]
        after = (await intake.http.get("/metrics")).text

    # The two that can never be applied are parked at once, the partition went on.
    assert [(r.header(H_ERROR) or "").split(":")[0] for r in parked] == [
        "UndecodablePayload",
        "UnknownEventType",
    ]
    assert parked[0].value == b"\xff" * 11
    assert parked[0].ce_id == str(garbage.ce_id)
    # The stranger is consumed (its inbox row) and enters no timeline: intake publishes an
    # application before anyone else can know it, so it is nobody's here.
    async with chaos_engine.connect() as conn:
        claimed = {
            r.ce_id
            for r in await conn.execute(
                text("SELECT ce_id FROM inbox_message WHERE consumer = :c"), {"c": CONSUMER_NAME}
            )
        }
        entries = {
            r.ce_id
            for r in await conn.execute(
                text("SELECT ce_id FROM timeline_entry WHERE ce_id = ANY(:ids)"),
                {"ids": [stranger.ce_id, good.ce_id]},
            )
        }
    assert {stranger.ce_id, good.ce_id} <= claimed
    assert entries == {good.ce_id}

    # And /metrics says so.
    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("dibao_consumer_events_total", consumer=CONSUMER_NAME, outcome="dead_lettered") == 2
    assert grew("dibao_consumer_events_total", consumer=CONSUMER_NAME, outcome="processed") == 2
    # Skipped, not silently: counted by type, for an operator to alert on.
    assert (
        grew(
            "dibao_intake_timeline_unknown_applications_total",
            ce_type="dibao.assessment.CaseOpened.v1",
        )
        == 1
    )


async def test_events_arriving_while_postgres_restarts_are_each_entered_once_and_none_parked(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_postgres: OwnPostgres,
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    _, bootstrap = chaos_broker
    async with intake_on(
        chaos_stack, tmp_path, intake_timeline_topics=(ASSESSMENT_TOPIC,)
    ) as intake:
        household, application_id = await _an_accepted_application(intake)
        parked_before = len(await read_topic(bootstrap, DLQ_TOPIC))
        before = (await intake.http.get("/metrics")).text

        # Another service publishes about the application before, through and after the
        # restart: the consumer meets the server going away in the middle of its work.
        sent: list[uuid.UUID] = []
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await producer.start()

        async def publish(count: int, pause_s: float = 0.02) -> None:
            for _ in range(count):
                message = assessment.CaseOpened(
                    household_id=household.id,
                    application_id=application_id,
                    case_id=f"case-{len(sent)}",
                )
                envelope = build_envelope(message, key=household.id, source="dibao/assessment")
                await producer.send_and_wait(
                    ASSESSMENT_TOPIC,
                    envelope.payload,
                    key=household.id.encode(),
                    headers=envelope.to_headers(),
                )
                sent.append(envelope.ce_id)
                await asyncio.sleep(pause_s)

        try:
            await publish(20)
            stopping = asyncio.create_task(asyncio.to_thread(chaos_postgres.pg_sh, "stop"))
            await publish(20)
            await stopping
            # Down for 10 s: longer than a handler's five attempts take (0.5 + 1 + 2 + 4 s),
            # so an outage taken for the event's fault would park it.
            await publish(40, pause_s=0.25)
            await asyncio.to_thread(chaos_postgres.pg_sh, "start")
            await publish(20)
        finally:
            await producer.stop()

        async def all_entered() -> bool:
            try:
                async with chaos_engine.connect() as conn:
                    found = await conn.scalar(
                        text("SELECT count(*) FROM timeline_entry WHERE ce_id = ANY(:ids)"),
                        {"ids": sent},
                    )
            except Exception:  # the test's own engine meets the restart too
                return False
            return int(found or 0) == len(sent)

        await eventually(all_entered, timeout_s=60, what="every event to be entered")
        await intake.consumer_caught_up()
        after = (await intake.http.get("/metrics")).text

    # Each entered once (the key is (ce_id, application_id)), none parked as if it were
    # the event's fault, and the consumer counted each as processed once.
    assert len(await read_topic(bootstrap, DLQ_TOPIC)) == parked_before
    labels = {"consumer": CONSUMER_NAME, "outcome": "processed"}
    grown = _sample(after, "dibao_consumer_events_total", **labels) - _sample(
        before, "dibao_consumer_events_total", **labels
    )
    assert grown == len(sent)
    async with chaos_engine.connect() as conn:
        claimed = await conn.scalar(
            text("SELECT count(*) FROM inbox_message WHERE consumer = :c AND ce_id = ANY(:ids)"),
            {"c": CONSUMER_NAME, "ids": sent},
        )
    assert claimed == len(sent)


async def test_submissions_retried_with_their_key_through_a_postgres_restart_apply_once(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_postgres: OwnPostgres,
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    _, bootstrap = chaos_broker
    async with intake_on(chaos_stack, tmp_path) as intake:
        households = [await intake.register() for _ in range(12)]
        bodies = [await intake.complete_application_body(h) for h in households]
        keys = [str(uuid.uuid4()) for _ in households]
        answers: dict[int, list[int]] = defaultdict(list)
        accepted: dict[int, str] = {}

        async def submit_until_accepted(i: int) -> None:
            # Spread over the restart; a client that got no answer it can trust sends the
            # same request with the same Idempotency-Key again.
            await asyncio.sleep(0.25 * i)
            for _ in range(200):
                response = await asyncio.wait_for(
                    intake.submit(bodies[i], idempotency_key=keys[i]), 60
                )
                answers[i].append(response.status_code)
                if response.status_code == 201:
                    accepted[i] = response.json()["id"]
                    return
                assert response.headers["content-type"] == PROBLEM, response.text
                await asyncio.sleep(0.3)
            raise AssertionError(f"submission {i} never accepted: {answers[i]}")

        clients = [asyncio.create_task(submit_until_accepted(i)) for i in range(len(bodies))]
        await asyncio.sleep(0.6)
        await asyncio.to_thread(chaos_postgres.pg_sh, "stop")
        await asyncio.sleep(1.5)
        await asyncio.to_thread(chaos_postgres.pg_sh, "start")
        await asyncio.gather(*clients)
        await _drained(chaos_engine, timeout_s=60, what="the relay to publish the submissions")

    # Some met the restart; every one ends accepted, with one application per household,
    # the one its answer names, and one ApplicationSubmitted on the topic.
    assert any(len(a) > 1 for a in answers.values()), answers
    assert {s for a in answers.values() for s in a} == {201, 503}, answers
    async with chaos_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT household_id, id FROM application WHERE household_id = ANY(:ids)"),
            {"ids": [uuid.UUID(h.id) for h in households]},
        )
        stored = defaultdict(list)
        for row in rows:
            stored[str(row.household_id)].append(str(row.id))
    assert {h.id: stored[h.id] for h in households} == {
        h.id: [accepted[i]] for i, h in enumerate(households)
    }
    # One ApplicationSubmitted event (one ce_id) per household, naming that application.
    # The wire is at least once (ADR 0003, the relay's docstring): a relay batch that
    # Kafka acknowledged but whose DELETE of its rows the restart refused stays pending
    # and is sent again, the same event twice on the topic; consumers apply it once.
    registry = EventRegistry.default()
    submitted: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for record in await read_topic(bootstrap, INTAKE_TOPIC):
        envelope = Envelope.from_record(record)
        if envelope.ce_type == "dibao.intake.ApplicationSubmitted.v1":
            event = registry.decode(envelope)
            assert isinstance(event, intake_events.ApplicationSubmitted)
            submitted[envelope.key].add((str(envelope.ce_id), event.application_id))
    assert {h.id: [a for _, a in submitted[h.id]] for h in households} == {
        h.id: [accepted[i]] for i, h in enumerate(households)
    }, {h.id: submitted[h.id] for h in households}


async def test_an_idle_timeline_consumer_applies_the_first_event_after_a_restart_at_once(
    chaos_stack: TestStack,
    chaos_broker: tuple[Path, str],
    chaos_postgres: OwnPostgres,
    chaos_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    # The app's pool (no ping on checkout, ADR 0009) still holds the connections the
    # server closed while the consumer waited, and nothing else of the app (the relay is
    # off, the test reads with its own engine) uses one first: the consumer's first
    # transaction after the restart meets one. That is the database's failure, never an
    # attempt of the event's (five restarts in a row would otherwise park a good event).
    _, bootstrap = chaos_broker
    async with intake_on(
        chaos_stack,
        tmp_path,
        intake_timeline_topics=(ASSESSMENT_TOPIC,),
        intake_relay_enabled=False,
    ) as intake:
        household, application_id = await _an_accepted_application(intake)
        sent: list[Envelope] = []

        async def entered() -> bool:
            try:
                async with chaos_engine.connect() as conn:
                    found = await conn.scalar(
                        text("SELECT count(*) FROM timeline_entry WHERE ce_id = ANY(:ids)"),
                        {"ids": [e.ce_id for e in sent]},
                    )
            except Exception:  # the test's own engine meets the restart too
                return False
            return int(found or 0) == len(sent)

        for case_id in ("before", "during"):
            message = assessment.CaseOpened(
                household_id=household.id, application_id=application_id, case_id=case_id
            )
            sent.append(await _publish(bootstrap, ASSESSMENT_TOPIC, message, key=household.id))
            await eventually(entered, timeout_s=30, what=f"the event {case_id}")
        await intake.consumer_caught_up()
        before = (await intake.http.get("/metrics")).text
        await asyncio.to_thread(chaos_postgres.pg_sh, "stop")
        await asyncio.to_thread(chaos_postgres.pg_sh, "start")
        message = assessment.CaseOpened(
            household_id=household.id, application_id=application_id, case_id="after"
        )
        sent.append(await _publish(bootstrap, ASSESSMENT_TOPIC, message, key=household.id))
        await eventually(entered, timeout_s=30, what="the event after the restart")
        await intake.consumer_caught_up()
        after = (await intake.http.get("/metrics")).text

    def grew(outcome: str) -> float:
        labels = {"consumer": CONSUMER_NAME, "outcome": outcome}
        return _sample(after, "dibao_consumer_events_total", **labels) - _sample(
            before, "dibao_consumer_events_total", **labels
        )

    assert (grew("processed"), grew("retried"), grew("dead_lettered")) == (1, 0, 0)


# -- PostgreSQL restarted between a submission's read and its write, or during the write -------

ONE_STATEMENT_MARKER = b"INSERT INTO idempotency_record AS r"
"""In the Parse message of a keyed submission's one statement (ADR 0013): the answer's
INSERT is its body (a household's registration stores its answer so too: armed only
around the submission)."""


class StatementRelay:
    """A TCP relay to the server that passes every byte both ways until, armed, it sees a
    client send the statement containing ``ONE_STATEMENT_MARKER``. Then, on that
    connection only:

    - ``withheld``: the statement is not passed on; the server never sees it (the
      request is between its read and its write when the server goes);
    - ``unanswered``: the statement is passed on, and its execution too, but nothing the
      server answers from then on reaches the client: it may have committed, the client
      cannot know (the response was lost with the server).

    When the server's side of that connection ends, the client's side is closed."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode: str | None = None
        self.caught = asyncio.Event()
        """Set when the marked statement was withheld, or its execution passed on."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def arm(self, mode: str) -> None:
        assert mode in ("withheld", "unanswered")
        self.mode = mode
        self.caught.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        stage = "passing"  # -> "parsed" (unanswered) -> "silent"; or "withheld"

        async def upstream() -> None:
            nonlocal stage
            statement = b""
            with contextlib.suppress(ConnectionError):
                while data := await client_r.read(65536):
                    if stage == "withheld":
                        continue
                    if stage == "passing" and self.mode and ONE_STATEMENT_MARKER in data:
                        mode, self.mode = self.mode, None
                        if mode == "withheld":
                            stage = "withheld"
                            self.caught.set()
                            continue
                        # Its Parse: 'P', length, the statement's name, the SQL.
                        assert data[:1] == b"P", data[:1]
                        statement = data[5 : data.index(b"\0", 5) + 1]
                        stage = "parsed"
                    elif stage == "parsed" and data[:1] == b"B" and statement in data[:300]:
                        # Its execution (Bind names the statement): passed on, and nothing
                        # the server answers from now on reaches the client.
                        stage = "silent"
                        server_w.write(data)
                        await server_w.drain()
                        self.caught.set()
                        continue
                    server_w.write(data)
                    await server_w.drain()

        pumping = asyncio.create_task(upstream())
        try:
            while data := await server_r.read(65536):
                if stage != "silent":
                    client_w.write(data)
                    await client_w.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            self._tasks.discard(task)


@pytest.mark.parametrize("lost", ["withheld", "unanswered"])
async def test_a_submission_the_restart_cut_before_or_during_its_write_is_retried_once(
    chaos_stack: TestStack,
    chaos_postgres: OwnPostgres,
    chaos_engine: AsyncEngine,
    tmp_path: Path,
    lost: str,
) -> None:
    """ADR 0022: a restart before the write leaves nothing, and the retry with the same
    Idempotency-Key creates the application; a restart once the write committed but before
    its answer reached the service (the one ambiguous case) is answered 503 too, and the
    retry gets the stored answer, the same application, never a second one nor a 500."""
    url = make_url(chaos_stack.database_url("intake"))
    relay = StatementRelay(url.host or "127.0.0.1", url.port or 5432)
    port = await relay.start()
    through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    try:
        async with intake_on(
            chaos_stack,
            tmp_path,
            database_url=through,
            intake_timeline_enabled=False,
            intake_relay_enabled=False,  # the outbox keeps what the submissions wrote
        ) as intake:
            household = await intake.register()
            body = await intake.complete_application_body(household)
            key = str(uuid.uuid4())

            relay.arm(lost)
            first = asyncio.create_task(intake.submit(body, idempotency_key=key))
            await asyncio.wait_for(relay.caught.wait(), 30)
            if lost == "unanswered":
                # The write committed; its answer is still to come when the server goes.
                async def committed() -> bool:
                    return bool(await _applications_of(chaos_engine, household.id))

                await eventually(committed, timeout_s=10, what="the write to commit")
            await asyncio.to_thread(chaos_postgres.pg_sh, "stop")
            try:
                response = await asyncio.wait_for(first, 30)
            finally:
                await asyncio.to_thread(chaos_postgres.pg_sh, "start")
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["type"] == "https://dibao.gov.cn/problems/database-unavailable"
            assert response.headers["retry-after"] == "5"

            retried = await intake.submit(body, idempotency_key=key)
            assert retried.status_code == 201, retried.text
            replayed = retried.headers.get("idempotent-replayed")
            assert replayed == ("true" if lost == "unanswered" else None), retried.headers
            again = await intake.submit(body, idempotency_key=key)
            assert again.status_code == 201, again.text
            assert again.headers.get("idempotent-replayed") == "true"
            assert again.json()["id"] == retried.json()["id"]
            assert await _applications_of(chaos_engine, household.id) == [retried.json()["id"]]
            # And its events once: the write that committed, or the retry's.
            async with chaos_engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT ce_type FROM outbox_message"
                        " WHERE key = :k AND ce_type LIKE 'dibao.intake.Application%'"
                    ),
                    {"k": household.id},
                )
                events = Counter(row.ce_type for row in rows)
            assert events == {
                "dibao.intake.ApplicationSubmitted.v1": 1,
                "dibao.intake.ApplicationAccepted.v1": 1,
            }, events
    finally:
        await relay.close()


async def _applications_of(engine: AsyncEngine, household_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM application WHERE household_id = :h"),
            {"h": uuid.UUID(household_id)},
        )
        return [str(row.id) for row in rows]
