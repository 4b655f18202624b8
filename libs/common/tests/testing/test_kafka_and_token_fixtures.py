"""The plugin's ``kafka_topic`` (a fresh real topic per test, deleted after it) and
``token_factory`` (tokens the ``auth_settings`` fixture accepts) fixtures."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from dibao_common.auth import AuthSettings, Role, TokenVerifier
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.kafka_fixtures import eventually, read_records
from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.kafka

_first_topic: list[str] = []


async def _topics(stack: TestStack) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_1_a_test_gets_an_empty_topic_of_its_own(stack: TestStack, kafka_topic: str) -> None:
    assert kafka_topic in await _topics(stack)
    assert "test_1_a_test_gets_an_empty_topic_of_its_own" in kafka_topic
    assert await read_records(stack, kafka_topic) == []
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(kafka_topic, b"left behind", key=b"k")
    finally:
        await producer.stop()
    _first_topic.append(kafka_topic)


async def test_2_the_next_test_gets_another_and_the_last_one_is_deleted(
    stack: TestStack, kafka_topic: str
) -> None:
    assert _first_topic, "run with test_1 before it"
    assert kafka_topic != _first_topic[0]
    assert await read_records(stack, kafka_topic) == []

    async def deleted() -> bool:
        return _first_topic[0] not in await _topics(stack)

    await eventually(deleted, what="the previous test's topic to be deleted")


async def test_token_factory_mints_tokens_the_auth_settings_accept(
    token_factory: TokenFactory, auth_settings: AuthSettings
) -> None:
    token = token_factory(roles=[Role.AUDITOR], regions=["6201"], subject="auditor-1")
    principal = await TokenVerifier(auth_settings).verify(token)
    assert (principal.subject, principal.roles, principal.regions) == (
        "auditor-1",
        frozenset({Role.AUDITOR}),
        ("6201",),
    )
    assert token_factory.bearer(roles=[Role.AUDITOR])["Authorization"].startswith("Bearer ey")
