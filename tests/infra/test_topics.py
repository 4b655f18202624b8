"""The topics deploy/kafka/topics.conf declares are on the broker as declared.

The stack's broker got its topics from ``kafka.sh topics``; this reads the same file with
its own parser and asks the broker, so a topic the script skipped, a partition count or a
config it did not pass (or passed wrong) fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dibao_common.testing.stack import TestStack
from dibao_common.testing.topics import (
    DYNAMIC_TOPIC_CONFIG,
    DeclaredTopic,
    read_topics_conf,
    topic_configs,
)


@pytest.fixture
async def admin(stack: TestStack) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.kafka
async def test_every_declared_topic_exists_with_its_partitions_and_configs(
    admin: AIOKafkaAdminClient,
) -> None:
    declared = read_topics_conf()
    assert declared, "topics.conf declares no topic"
    described = {t["topic"]: t for t in await admin.describe_topics([t.name for t in declared])}
    problems: list[str] = []
    present: list[DeclaredTopic] = []
    for topic in declared:
        found = described.get(topic.name)
        if found is None or found["error_code"] != 0:
            code = None if found is None else found["error_code"]
            problems.append(f"{topic.name}: not on the broker (error {code})")
            continue
        present.append(topic)
        if len(found["partitions"]) != topic.partitions:
            problems.append(
                f"{topic.name}: {len(found['partitions'])} partitions, declared {topic.partitions}"
            )
    keys = {key for topic in present for key in topic.configs}
    configs = await topic_configs(admin, [t.name for t in present], keys)
    for topic in present:
        for key, value in topic.configs.items():
            got = configs[topic.name].get(key)
            if got is None:
                problems.append(f"{topic.name}: {key} not reported by the broker")
            elif got.value != value:
                problems.append(f"{topic.name}: {key}={got.value}, declared {value}")
            elif got.source != DYNAMIC_TOPIC_CONFIG:
                # The right value, but a broker default: the declaration was not applied.
                problems.append(f"{topic.name}: {key} not set on the topic (source {got.source})")
    assert not problems, "\n".join(problems)


def test_topics_conf_is_read_as_kafka_sh_reads_it(tmp_path: Path) -> None:
    conf = tmp_path / "topics.conf"
    conf.write_text(
        "# comment\n"
        "\n"
        "   # indented comment\n"
        "a.v1\t 6  retention.ms=-1,,cleanup.policy=compact\n"
        "  b.dlq 3\n",
        encoding="utf-8",
    )
    assert read_topics_conf(conf) == [
        DeclaredTopic("a.v1", 6, {"retention.ms": "-1", "cleanup.policy": "compact"}),
        DeclaredTopic("b.dlq", 3, {}),
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("a 6 retention.ms=-1 extra", "too many fields"),
        ("a six", "bad partition count"),
        ("a", "bad partition count"),
        ("a 6 retention.ms", "not key=value"),
        ("a 6 retention.ms=1,retention.ms=2", "given twice"),
        ("a 6\na 3", "declared twice"),
    ],
)
def test_topics_conf_refuses_malformed_lines(tmp_path: Path, line: str, error: str) -> None:
    conf = tmp_path / "topics.conf"
    conf.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        read_topics_conf(conf)
