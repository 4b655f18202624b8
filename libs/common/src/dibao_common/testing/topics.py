"""The topics ``deploy/kafka/topics.conf`` declares, and what a broker reports about them.

:func:`read_topics_conf` reads the file the way ``kafka.sh topics`` does (fields separated
by blanks, ``#`` lines and blank lines skipped, configs comma-separated ``key=value``) with
a parser of its own: the tests that use it share nothing with the script but the file, so
a fault in the script's reading shows up as a topic the broker lacks.
:func:`topic_configs` and :func:`broker_configs` are ``DescribeConfigs`` answers with the
source of each value, so a test can tell a topic's own setting from a broker default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dibao_common.testing.stack import REPO_ROOT

TOPICS_CONF = REPO_ROOT / "deploy" / "kafka" / "topics.conf"

DYNAMIC_TOPIC_CONFIG = 1
"""``config_source`` of a value set on the topic itself (``--config`` at creation)."""

_BLANKS = re.compile(r"[ \t]+")  # bash's default IFS, which `read` splits on


@dataclass(frozen=True, slots=True)
class DeclaredTopic:
    name: str
    partitions: int
    configs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """One config as the broker reports it: its value and where the value comes from."""

    value: str | None
    source: int


def read_topics_conf(path: Path = TOPICS_CONF) -> list[DeclaredTopic]:
    """Every topic ``path`` declares, in file order; a malformed line is a ``ValueError``."""
    topics: list[DeclaredTopic] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        fields = _BLANKS.split(stripped)
        where = f"{path}:{number}"
        if len(fields) > 3:
            raise ValueError(f"{where}: too many fields for topic {fields[0]}")
        if len(fields) < 2 or not re.fullmatch(r"[0-9]+", fields[1]):
            raise ValueError(f"{where}: bad partition count for topic {fields[0]}")
        configs: dict[str, str] = {}
        for item in fields[2].split(",") if len(fields) == 3 else []:
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"{where}: config {item!r} is not key=value")
            if key in configs:
                raise ValueError(f"{where}: config {key} given twice")
            configs[key] = value
        topics.append(DeclaredTopic(fields[0], int(fields[1]), configs))
    names = [t.name for t in topics]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{path}: topics declared twice: {twice}")
    return topics


def _entries(responses: Iterable[Any]) -> dict[str, dict[str, ConfigValue]]:
    found: dict[str, dict[str, ConfigValue]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise RuntimeError(
                    f"describe_configs {resource['resource_name']}: error"
                    f" {resource['error_code']} {resource['error_message']}"
                )
            found[resource["resource_name"]] = {
                entry["config_names"]: ConfigValue(entry["config_value"], entry["config_source"])
                for entry in resource["config_entries"]
            }
    return found


async def topic_configs(
    admin: AIOKafkaAdminClient, topics: Iterable[str], keys: Iterable[str]
) -> dict[str, dict[str, ConfigValue]]:
    """Per topic, the configs ``keys`` that exist (a name the broker does not know is absent)."""
    wanted = dict.fromkeys(keys)
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, dict(wanted)) for name in topics]
    if not resources or not wanted:
        return {r.name: {} for r in resources}
    return _entries(await admin.describe_configs(resources))


async def broker_configs(
    admin: AIOKafkaAdminClient, keys: Iterable[str]
) -> dict[int, dict[str, ConfigValue]]:
    """Per broker of the cluster, the configs ``keys`` (each broker asked itself)."""
    wanted = dict.fromkeys(keys)
    if not wanted:
        raise ValueError("no config asked for (an empty list would describe them all)")
    brokers = [b["node_id"] for b in (await admin.describe_cluster())["brokers"]]
    resources = [
        ConfigResource(ConfigResourceType.BROKER, str(node), dict(wanted)) for node in brokers
    ]
    found = _entries(await admin.describe_configs(resources))
    return {int(name): configs for name, configs in found.items()}
