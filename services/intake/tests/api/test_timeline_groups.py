"""The timeline consumer of an intake app the tests build over a database of its own (the
demo's, the fuzz run's) is another deployment on the test broker: it reads the other
services' topics in a group of its own, and takes none of the events the package's app
(``intake_app``) is to enter in the shared database's timelines."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from dibao.assessment.v1 import events_pb2 as assessment
from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.messaging.envelope import topic_of
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake.main import create_app
from dibao_intake.testing import (
    TEST_NOW,
    IntakeClient,
    intake_database_of_its_own,
    intake_settings_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OPENED = "dibao.assessment.CaseOpened.v1"


async def _publish_on_every_partition(
    stack: TestStack, household_id: str, application_id: str, prefix: str
) -> list[str]:
    """A CaseOpened about ``application_id`` on each partition of assessment's topic, as
    assessment's relay would send it: their case ids."""
    topic = topic_of(assessment.CaseOpened())
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        assert len(partitions) > 1, partitions
        case_ids = [f"{prefix}-{p}-{uuid.uuid4().hex[:6]}" for p in partitions]
        for partition, case_id in zip(partitions, case_ids, strict=True):
            message = assessment.CaseOpened(
                household_id=household_id, application_id=application_id, case_id=case_id
            )
            envelope = build_envelope(message, key=household_id, source="dibao/assessment")
            await producer.send_and_wait(
                topic,
                envelope.payload,
                key=household_id.encode(),
                partition=partition,
                headers=envelope.to_headers(),
            )
        return case_ids
    finally:
        await producer.stop()


async def test_an_app_on_a_database_of_its_own_takes_no_share_of_the_shared_apps_events(
    intake: IntakeClient, intake_stack: TestStack, tmp_path: Path
) -> None:
    """While an app on another database runs, its timeline consumer reads the other
    services' topics (an event on every partition of assessment's topic reaches its inbox),
    and CaseOpened about an application of the shared database, on every partition, is
    each in that application's timeline.

    In ``intake.timeline``, the package app's group, the other app's consumer read nothing
    for 60 s (the group's rebalance for the new member had not ended), and once it had
    ended it would have held
    a share of the partitions, where it skipped the shared database's events as unknown
    and committed their offsets."""
    household = await intake.register()
    submitted = await intake.submit(await intake.complete_application_body(household))
    application_id = submitted.json()["id"]
    own = await intake_database_of_its_own("timeline_groups")
    other_settings = intake_settings_for(own, tmp_path / "documents")
    other = create_app(other_settings, clock=FrozenClock(TEST_NOW))
    engine = make_engine(own.database_url("intake"), pool_size=1)
    try:
        async with api_client(other):
            # The other app's consumer has partitions once it has read an event: one about
            # an application neither database has, on every partition (its inbox keeps it,
            # and the shared app's consumer skips it as unknown).
            await _publish_on_every_partition(
                intake_stack, household.id, str(uuid.uuid4()), "probe"
            )

            async def consuming() -> bool:
                async with engine.connect() as conn:
                    found = await conn.scalar(
                        text("SELECT count(*) FROM inbox_message WHERE ce_type = :t"),
                        {"t": OPENED},
                    )
                return bool(found)

            await eventually(consuming, timeout_s=60, what="the other app's timeline consumer")
            case_ids = await _publish_on_every_partition(
                intake_stack, household.id, application_id, "case"
            )

            async def opened() -> list[Any]:
                response = await intake.http.get(
                    f"/applications/{application_id}",
                    headers=intake.headers(Role.AUDITOR, ["62"]),
                )
                assert response.status_code == 200, response.text
                timeline = response.json()["timeline"]
                return sorted(e["details"]["case_id"] for e in timeline if e["type"] == OPENED)

            async def all_entered() -> bool:
                return await opened() == sorted(case_ids)

            await eventually(all_entered, what="every CaseOpened in the shared timeline")
    finally:
        await engine.dispose()
