"""The whole service on the real broker: consumed, checkpointed, and its own reads logged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.checkpoint import VerifierKey
from dibao_audit.main import create_app
from dibao_audit.settings import AuditSettings
from dibao_audit.testing import AuditDb, api_settings, recorded_event
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

ACCESS = "dibao.access.PersonalDataAccessed.v1"
ANOMALY = "dibao.audit.AnomalyDetected.v1"


@pytest_asyncio.fixture(loop_scope="session")
async def topic(audit_db: AuditDb) -> AsyncIterator[str]:
    name = f"dibao.loop{uuid.uuid4().hex[:8]}.v1"
    await create_topic(audit_db.stack.kafka_bootstrap, name, partitions=2)
    try:
        yield name
    finally:
        await delete_topics(audit_db.stack.kafka_bootstrap, [name])


def _settings(audit_db: AuditDb, topic: str, also: str) -> AuditSettings:
    """The whole service over ``audit_db``, consuming ``topic`` and ``also`` as a group of
    its own, signing a checkpoint each half second while the log grows."""
    pattern = "|".join(name.replace(".", "[.]") for name in (topic, also))
    return api_settings(
        audit_db,
        audit_consume=True,
        audit_relay=True,
        audit_consumer_group=f"audit-{topic}",
        audit_topic_pattern=rf"^({pattern})$",
        audit_checkpoint_interval_s=0.5,
    )


async def test_events_are_logged_checkpointed_and_reading_them_is_logged_too(
    audit_db: AuditDb, topic: str, token_factory: TokenFactory
) -> None:
    household = f"hh-{uuid.uuid4().hex[:8]}"
    settings = _settings(audit_db, topic, "dibao.access.v1")
    events = [
        recorded_event(
            intake_pb2.ApplicationWithdrawn(
                household_id=household,
                region=types_pb2.RegionCode(code="620102001001"),
                application_id=f"app-{i}",
            ),
            offset=i,
            key=household,
        )
        for i in range(20)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=audit_db.stack.kafka_bootstrap)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topic, e.payload, key=e.key, headers=list(e.headers))
    finally:
        await producer.stop()

    auditor = token_factory.bearer(roles=["auditor"], regions=["6201"])
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:

        async def entries(**params: Any) -> list[dict[str, Any]]:
            response = await client.get("/audit/entries", params=params, headers=auditor)
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        async def all_consumed() -> bool:
            return len(await entries(household_id=household)) >= 20

        await eventually(all_consumed, timeout_s=60, what="20 entries consumed")

        async def signed() -> bool:
            latest = await client.get("/audit/checkpoints/latest", headers=auditor)
            return latest.status_code == 200 and latest.json()["tree_size"] >= 20

        await eventually(signed, timeout_s=30, what="a timed checkpoint")
        key = VerifierKey.parse((await client.get("/audit/public-key")).json()["vkey"])
        latest = (await client.get("/audit/checkpoints/latest", headers=auditor)).json()
        assert key.verify(latest["signed_note"]).tree_size == latest["tree_size"]

        timeline = await client.get(f"/audit/households/{household}/timeline", headers=auditor)
        assert timeline.status_code == 200
        assert len(timeline.json()["items"]) == 20

        async def read_was_logged() -> bool:
            return bool(await entries(household_id=household, ce_type=ACCESS))

        await eventually(read_was_logged, timeout_s=60, what="the read in the log")
        logged = await entries(household_id=household, ce_type=ACCESS)
        assert logged[0]["actor"] == "test-user"
        assert logged[0]["topic"] == "dibao.access.v1"


async def test_an_event_id_reused_about_an_application_reaches_its_county_over_the_broker(
    audit_db: AuditDb, topic: str, token_factory: TokenFactory
) -> None:
    """A producer puts an application's event on the broker, then a record with its ce_id
    but other content (as a broken or replaying service would). The running service logs
    both, publishes on ``dibao.audit.v1`` an ``AnomalyDetected`` about the application
    (subject ``application``, keyed by its household), and logs that too, in the
    application's region: its county's auditor finds it by household, and another
    county's does not."""
    application, household = str(uuid.uuid4()), str(uuid.uuid4())
    village = "620123101203"
    settings = _settings(audit_db, topic, "dibao.audit.v1")
    submitted = intake_pb2.ApplicationSubmitted(
        household_id=household,
        region=types_pb2.RegionCode(code=village),
        application_id=application,
        kind=enums_pb2.APPLICATION_KIND_DIBAO,
    )
    first = recorded_event(submitted, offset=0, key=household)
    submitted.kind = enums_pb2.APPLICATION_KIND_TEMPORARY
    producer = AIOKafkaProducer(bootstrap_servers=audit_db.stack.kafka_bootstrap)
    await producer.start()
    try:
        for payload in (first.payload, submitted.SerializeToString()):
            await producer.send_and_wait(topic, payload, key=first.key, headers=list(first.headers))
    finally:
        await producer.stop()

    own = token_factory.bearer(roles=["auditor"], regions=["620123"])
    other = token_factory.bearer(roles=["auditor"], regions=["620102"])
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:

        async def anomalies(token: dict[str, str]) -> list[dict[str, Any]]:
            response = await client.get(
                "/audit/entries",
                params={"household_id": household, "ce_type": ANOMALY},
                headers=token,
            )
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        async def logged() -> bool:
            return bool(await anomalies(own))

        await eventually(logged, timeout_s=60, what="the anomaly in the log")
        [entry] = await anomalies(own)
        assert entry["topic"] == "dibao.audit.v1"
        assert entry["region"] == village
        assert await anomalies(other) == []

        async def covered() -> bool:
            response = await client.get(f"/audit/entries/{entry['index']}", headers=own)
            return response.status_code == 200

        await eventually(covered, timeout_s=30, what="a checkpoint covering the anomaly")
        decoded = (await client.get(f"/audit/entries/{entry['index']}", headers=own)).json()
        assert decoded["decoded"]["subject"] == {"kind": "application", "id": application}
        assert decoded["decoded"]["rule"] == "event_id_reused"
        assert decoded["decoded"]["event_ids"] == [dict(first.headers)["ce_id"].decode()]
        refused = await client.get(f"/audit/entries/{entry['index']}", headers=other)
        assert refused.status_code == 404
