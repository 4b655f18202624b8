"""Intake stopped while its broker is down: the stop ends within the shutdown timeout, and
what the relay had in flight is published once, by the next relay, never by the old one.

An orchestrator kills a service that takes longer to stop than it allows (Kubernetes'
default grace period is 30 s). The relay abandons the batch the broker did not
acknowledge: its rows stay in the outbox. Its producer must be really gone: an
idempotent aiokafka producer retries until the broker takes its records, so one left
running in the process would deliver them when the broker is back, beside the next
relay's copies.

The stop comes once the relay holds every row the submissions wrote (handed to its
producer, unacknowledged; ``watch_relay``), not after a guessed pause: with the broker
down the relay may take more than 30 s to hand a row over (see ``_scenario``).

Real servers: a Kafka broker of the test's own (``kafka.sh``, stopped and started here) and
the suite's PostgreSQL, with intake's database of this test's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope
from dibao_common.messaging.relay import OutboxRelay
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.kafka_fixtures import eventually, kafka_sh, own_broker
from dibao_common.testing.relay_watch import watch_relay
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake.main import create_app
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import ISSUED_ID_NUMBERS, TEST_NOW, IntakeClient, intake_settings_for

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

INTAKE_TOPIC = "dibao.intake.v1"
SHUTDOWN_TIMEOUT_S = 6.0
# A producer left running reconnects within a second of the broker's return (100 ms
# retry backoff); this is many times that.
ZOMBIE_WINDOW_S = 8.0
# For the relay to hold the submissions' rows once let claim them: it polls every 0.1 s,
# and hands them over without asking the broker anything (it knows their topics).
HOLD_DEADLINE_S = 60.0


async def test_intake_stops_in_time_with_the_broker_down_and_its_events_go_out_once(
    stack: TestStack, tmp_path: Path
) -> None:
    # Offsets 10,000-10,090 but 10,020/10,070 are other tests' brokers and controllers.
    directory = tmp_path / "kafka"
    directory.mkdir()
    with own_broker(directory, port_offset=10_025) as bootstrap:
        kafka_sh("topics", "--bootstrap", bootstrap)
        own = dataclasses.replace(
            stack, kafka_bootstrap=bootstrap, db_prefix=f"{stack.db_prefix}_shutdown"
        )
        await own.recreate_database("intake")
        await own.migrate("intake")
        # Five: a pipelined relay holds three connections, and the test reads with one.
        engine = make_engine(own.database_url("intake"), pool_size=5)
        try:
            await _scenario(own, directory, bootstrap, engine, tmp_path)
        finally:
            await engine.dispose()
            await own.drop_database("intake")


async def _pending(engine: AsyncEngine) -> list[tuple[int, str, str]]:
    """The outbox's pending rows in id order: (id, topic, ce_id)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, topic, ce_id FROM outbox_message WHERE published_at IS NULL ORDER BY id"
            )
        )
        return [(int(row.id), row.topic, str(row.ce_id)) for row in rows]


async def _copies(bootstrap: str, topics: set[str]) -> Counter[str]:
    """How often each ce_id is on ``topics``."""
    copies: Counter[str] = Counter()
    for topic in sorted(topics):
        for record in await read_topic(bootstrap, topic):
            copies[str(Envelope.from_record(record).ce_id)] += 1
    return copies


async def _scenario(
    own: TestStack, directory: Path, bootstrap: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = FrozenClock(TEST_NOW)
    settings = intake_settings_for(
        own,
        tmp_path / "documents",
        intake_timeline_group=f"intake.timeline.shutdown-{uuid.uuid4().hex[:8]}",
        intake_timeline_fetch_wait_ms=0,
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
    )
    app = create_app(settings, clock=clock)

    async def drained() -> bool:
        return not await _pending(engine)

    broker_stopped = False
    try:
        with watch_relay("intake") as watch:
            async with api_client(app) as http:
                synthesizer = Synthesizer(
                    f"shutdown-{uuid.uuid4()}", clock.today(), used=ISSUED_ID_NUMBERS
                )
                intake = IntakeClient(http, TokenFactory().with_clock(clock.now), synthesizer)
                households = [await intake.register() for _ in range(3)]
                bodies = [await intake.complete_application_body(h) for h in households]
                # A read of personal data, recorded on dibao.access.v1 as the submissions'
                # reads are: the relay's producer learns that topic's partitions while the
                # broker is there. Knowing only dibao.intake.v1 (registrations record no
                # read), the relay held none of the submissions' rows 1.5 s after them:
                # asked for dibao.access.v1's partitions with the broker down, the producer
                # polls for them for request_timeout_ms (30 s) before the relay hands the
                # batch over, and the topic's rows then fail (UnknownTopicOrPartition).
                read = await http.get(f"/households/{households[0].id}", headers=intake.headers())
                assert read.status_code == 200, read.text
                await eventually(
                    drained, timeout_s=30, what="the registrations and the read to be published"
                )

                await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
                broker_stopped = True
                # Claimed together: a relay that has handed a batch over waits for its
                # acknowledgements (30 s) before it claims again, and its rows stay in the
                # producer until they expire; left to its polls, it split the submissions
                # across claims in one run of three, the last one's rows not held in 60 s.
                async with watch.claims_held(timeout_s=30):
                    for body in bodies:
                        submitted = await intake.submit(body)
                        assert submitted.status_code == 201, submitted.text
                    held = await _pending(engine)
                # ApplicationSubmitted and ApplicationAccepted of each, and records of reads.
                assert sum(topic == INTAKE_TOPIC for _, topic, _ in held) >= 2 * len(bodies)
                # The relay claims them and hands them to its producer, which waits for a
                # broker that is not there.
                waited = await watch.until_holding(
                    [row_id for row_id, _, _ in held], timeout_s=HOLD_DEADLINE_S
                )
                stopping_at = time.monotonic()
            stopped_in = time.monotonic() - stopping_at

        # Nothing of the stopped app may publish from here on.
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")
        broker_stopped = False
        await asyncio.sleep(ZOMBIE_WINDOW_S)
        topics = {topic for _, topic, _ in held}
        early = await _copies(bootstrap, topics)
        published_by_the_old_app = {ce_id: early[ce_id] for _, _, ce_id in held if early[ce_id]}
        still_pending = await _pending(engine)

        # A new relay publishes what the old one abandoned.
        relay = OutboxRelay(engine, bootstrap, name="intake-after")
        try:
            await relay.drain(timeout_s=60)
        finally:
            await relay.stop()
        copies = await _copies(bootstrap, topics)
    finally:
        if broker_stopped:
            await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "1")

    # Gathered, so that a failure shows all of it: the time, the old producer, the copies.
    assert (
        round(stopped_in, 1) <= SHUTDOWN_TIMEOUT_S + 1.0,
        published_by_the_old_app,
        still_pending,
        {ce_id: copies[ce_id] for _, _, ce_id in held},
    ) == (True, {}, held, {ce_id: 1 for _, _, ce_id in held}), f"stopped in {stopped_in:.1f} s"
    logging.getLogger(__name__).warning(
        "intake stopped in %.1f s with the broker down, its relay holding all %d rows"
        " %.2f s after it was let claim them",
        stopped_in,
        len(held),
        waited,
    )
