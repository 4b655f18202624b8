"""The 3-node mode of the local broker: replication factor 3, min.insync.replicas=2.

Losing one broker must not lose an acknowledged event nor stop producers that wait for
all in-sync replicas (what the outbox relay does in production). The dibao topics, created
there by ``kafka.sh topics`` as on any stack, get 3 replicas and require 2 in sync.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from dibao_common.testing.kafka_fixtures import kafka_sh, own_broker
from dibao_common.testing.stack import TestStack
from dibao_common.testing.topics import (
    DYNAMIC_TOPIC_CONFIG,
    broker_configs,
    read_topics_conf,
    topic_configs,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("kafka3")
    with own_broker(directory, port_offset=10_000, nodes=3) as bootstrap:
        yield directory, bootstrap


@pytest.fixture
async def replicated_topic(cluster: tuple[Path, str]) -> AsyncIterator[str]:
    name = f"test.chaos.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster[1])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=3)])
        yield name
    finally:
        await admin.close()


async def test_acknowledged_events_survive_the_loss_of_a_broker(
    stack: TestStack, cluster: tuple[Path, str], replicated_topic: str
) -> None:
    directory, bootstrap = cluster
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=30_000
    )
    await producer.start()
    sent: list[bytes] = []
    try:
        for i in range(200):
            value = f"before-{i}".encode()
            await producer.send_and_wait(replicated_topic, value, key=f"hh-{i % 7}".encode())
            sent.append(value)
        await asyncio.to_thread(kafka_sh, "kill-node", "--dir", str(directory), "--node", "2")
        for i in range(200):
            value = f"after-{i}".encode()
            await producer.send_and_wait(replicated_topic, value, key=f"hh-{i % 7}".encode())
            sent.append(value)
    finally:
        await producer.stop()
        await asyncio.to_thread(kafka_sh, "start-node", "--dir", str(directory), "--node", "2")

    consumer = AIOKafkaConsumer(
        replicated_topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            received.extend(r.value for rs in batch.values() for r in rs if r.value is not None)
            if len(received) >= len(sent):
                break
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(sent)
    # Per key, the order of sends is the order on the log.
    for key in range(7):
        mine = [v for v in sent if int(v.split(b"-")[1]) % 7 == key]
        assert [v for v in received if v in set(mine)] == mine


async def test_dibao_topics_have_three_replicas_and_two_must_be_in_sync(
    cluster: tuple[Path, str],
) -> None:
    _, bootstrap = cluster
    # As stack.sh creates them: no --replication-factor, so the broker's default applies.
    await asyncio.to_thread(kafka_sh, "topics", "--bootstrap", bootstrap)
    declared = read_topics_conf()
    assert declared
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        nodes = {b["node_id"] for b in (await admin.describe_cluster())["brokers"]}
        # The controller has the topics once created; a broker (node 2 above all, just
        # restarted) may learn of them a moment later and answer "unknown topic" until then.
        names = [t.name for t in declared]
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            described = {t["topic"]: t for t in await admin.describe_topics(names)}
            try:
                topics = await topic_configs(admin, names, ["min.insync.replicas"])
            except RuntimeError:
                topics = {}
            known = topics and all(t["error_code"] == 0 for t in described.values())
            if known or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        brokers = await broker_configs(admin, ["min.insync.replicas"])
    finally:
        await admin.close()
    assert len(nodes) == 3
    assert topics, "describe_configs of the dibao topics kept failing"
    assert set(brokers) == nodes
    problems: list[str] = []
    for topic in declared:
        found = described[topic.name]
        if found["error_code"] != 0 or len(found["partitions"]) != topic.partitions:
            problems.append(f"{topic.name}: error {found['error_code']}, {found['partitions']}")
            continue
        for partition in found["partitions"]:
            if len(partition["replicas"]) != 3 or set(partition["replicas"]) != nodes:
                problems.append(f"{topic.name}/{partition['partition']}: {partition['replicas']}")
        own = topics[topic.name]["min.insync.replicas"]
        if own.source == DYNAMIC_TOPIC_CONFIG:
            effective = {own.value}
        else:  # no override on the topic: each partition leader's broker setting applies
            effective = {configs["min.insync.replicas"].value for configs in brokers.values()}
        if effective != {"2"}:
            problems.append(f"{topic.name}: min.insync.replicas {sorted(map(str, effective))}")
    assert not problems, "\n".join(problems)
