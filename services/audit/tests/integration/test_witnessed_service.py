"""The audit service with a witness configured, end to end (docs/adr/0024): the app that
``uvicorn --factory dibao_audit.main:create_app`` runs, with its lifespan (the consumer on
the real broker, the checkpoint ticker and the witness submitter it starts), given
``DIBAO_AUDIT_WITNESSES`` naming a real witness process (``python -m dibao_audit.witness``
on a port of its own, with its own seed and state file). Events put on Kafka are logged,
the ticker signs a checkpoint, the submitter gets it cosigned with nothing else driving
it, ``GET /audit/checkpoints/latest`` serves the cosignature (``cosigned_note``), and
``verify_cli`` holds the checkpoint to a quorum of witnesses: met with the witness's key
and a quorum of 1, failed with a quorum of 2 of two keys or a key of another witness.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.cosignature import Cosigner, WitnessKey
from dibao_audit.main import create_app
from dibao_audit.testing import (
    TEST_ORIGIN,
    TEST_SEED,
    AuditDb,
    api_settings,
    recorded_event,
    serving,
)
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually
from dibao_common.testing.local_stack import wait_healthy
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

LOG_VKEY = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
WITNESS_SEED = hashlib.sha256(b"the county audit bureau's witness").digest()
OTHER = Cosigner(hashlib.sha256(b"another witness").digest(), "witness.test/other")


@pytest_asyncio.fixture(loop_scope="session")
async def topic(audit_db: AuditDb) -> AsyncIterator[str]:
    name = f"dibao.witnessed{uuid.uuid4().hex[:8]}.v1"
    await create_topic(audit_db.stack.kafka_bootstrap, name, partitions=1)
    try:
        yield name
    finally:
        await delete_topics(audit_db.stack.kafka_bootstrap, [name])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture(loop_scope="session")
async def witness(tmp_path: Path) -> AsyncIterator[tuple[str, WitnessKey, Path]]:
    """A real witness process pinning the test log's key: its URL, its key, its state file."""
    state = tmp_path / "witness" / "state.json"
    state.parent.mkdir()
    env = os.environ | {
        "DIBAO_WITNESS_SIGNING_KEY": base64.b64encode(WITNESS_SEED).decode(),
        "DIBAO_WITNESS_NAME": "witness.test/county-audit-bureau",
        "DIBAO_WITNESS_LOG_VKEYS": LOG_VKEY,
        "DIBAO_WITNESS_STATE": str(state),
    }
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dibao_audit.witness", "--print-vkey"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = WitnessKey.parse(printed.stdout.strip())
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dibao_audit.witness", "--port", str(port), env=env
    )
    try:
        await wait_healthy(port, timeout_s=30)
        yield f"http://127.0.0.1:{port}", key, state
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def _verify(*args: str) -> tuple[int, dict[str, Any], str]:
    """``python -m dibao_audit.verify_cli`` as an auditor runs it: its exit status, its
    JSON report (empty when it could not run) and what it wrote on stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dibao_audit.verify_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, (json.loads(out) if out.strip() else {}), err.decode()


async def test_the_running_service_gets_its_checkpoints_cosigned_by_its_witness(
    audit_db: AuditDb,
    topic: str,
    witness: tuple[str, WitnessKey, Path],
    token_factory: TokenFactory,
) -> None:
    url, key, state = witness
    pattern = topic.replace(".", "[.]")
    settings = api_settings(
        audit_db,
        audit_consume=True,
        audit_relay=True,
        audit_consumer_group=f"audit-{topic}",
        audit_topic_pattern=rf"^{pattern}$",  # only the test's topic: the log stops growing
        audit_checkpoint_interval_s=0.5,
        audit_witnesses=f"{url} {key.vkey()}",
        # No retry round within the test: only the ticker's wake-up after a checkpoint
        # gets one submitted (the first round runs at start, before any checkpoint).
        audit_witness_retry_s=600,
    )
    household = f"hh-{uuid.uuid4().hex[:8]}"
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
        for i in range(15)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=audit_db.stack.kafka_bootstrap)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(topic, e.payload, key=e.key, headers=list(e.headers))
    finally:
        await producer.stop()

    token = token_factory(roles=["auditor"], regions=["6201"])
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"

        async def cosigned() -> bool:
            latest = await client.get("/audit/checkpoints/latest")
            if latest.status_code != 200:
                return False
            body = latest.json()
            return body["tree_size"] == 15 and bool(body["cosignatures"])

        # The ticker signs within half a second and wakes the submitter.
        await eventually(cosigned, timeout_s=60, what="the checkpoint of 15 cosigned")
        latest = (await client.get("/audit/checkpoints/latest")).json()
        assert [c["witness"] for c in latest["cosignatures"]] == [key.vkey()]
        assert latest["cosigned_note"].startswith(latest["signed_note"])
        found = key.verify(latest["cosigned_note"])
        assert found.line == latest["cosignatures"][0]["signature_line"]
        assert found.line in latest["cosigned_note"].splitlines()

        async with serving(app) as served:
            common = ("--vkey", LOG_VKEY, "--witness-vkey", key.vkey())
            over_http = await _verify("--url", served, "--token", token, *common)
            quorum_1 = await _verify(
                "--url", served, "--token", token, *common, "--witness-quorum", "1"
            )
            other = ("--witness-vkey", OTHER.key.vkey())
            one_of_two = await _verify(
                "--url", served, "--token", token, *common, *other, "--witness-quorum", "1"
            )
            two_of_two = await _verify(
                "--url", served, "--token", token, *common, *other, "--witness-quorum", "2"
            )
            wrong_key = await _verify("--url", served, "--token", token, "--vkey", LOG_VKEY, *other)
        in_database = await _verify(
            "--database-url", audit_db.url, *common, "--witness-quorum", "1"
        )
        one_key_quorum_2 = await _verify(
            "--database-url", audit_db.url, *common, "--witness-quorum", "2"
        )

    for name, (code, report, err) in {
        "url": over_http,
        "url, quorum 1": quorum_1,
        "url, 1 of 2": one_of_two,
        "database, quorum 1": in_database,
    }.items():
        assert code == 0, (name, report, err)
        assert report["witnesses"]["met"] is True, name
        assert report["witnesses"]["cosigned_by"] == [key.vkey()], name
    code, report, err = two_of_two
    assert code == 1, (report, err)
    assert report["witnesses"]["met"] is False
    assert report["witnesses"]["missing"] == [OTHER.key.vkey()]
    code, report, err = wrong_key
    assert code == 1, (report, err)
    assert report["witnesses"]["met"] is False
    assert report["witnesses"]["cosigned_by"] == []
    # The witness holds what it cosigned, in its own state file; nothing contradicted it.
    held = json.loads(state.read_text())["logs"][TEST_ORIGIN]
    assert held["size"] == 15
    assert held["checkpoint"] == latest["signed_note"]
    assert not state.with_name(state.name + ".evidence.jsonl").exists()
    # A quorum of 2 of the one witness given is no check at all: refused, nothing verified.
    code, report, err = one_key_quorum_2
    assert (code, report) == (2, {}), err
    assert "--witness-quorum is 1 to the number of --witness-vkey given (1)" in err


async def test_a_checkpoint_the_entry_count_signs_is_cosigned_at_once(
    audit_db: AuditDb,
    topic: str,
    witness: tuple[str, WitnessKey, Path],
    token_factory: TokenFactory,
) -> None:
    """A checkpoint signed because of the entry count (``audit_checkpoint_every``), not by
    the ticker, wakes the submitter too: with the ticker's interval and the submitter's
    retry both ten minutes, only that wake-up gets it cosigned within the test. (Before,
    the appender told nobody, and it waited for the next retry round.)"""
    url, key, state = witness
    pattern = topic.replace(".", "[.]")
    settings = api_settings(
        audit_db,
        audit_consume=True,
        audit_relay=True,
        audit_consumer_group=f"audit-{topic}",
        audit_topic_pattern=rf"^{pattern}$",
        audit_checkpoint_every=10,
        audit_checkpoint_interval_s=600,  # the ticker signs nothing within the test
        audit_witnesses=f"{url} {key.vkey()}",
        audit_witness_retry_s=600,  # no retry round within the test either
    )
    household = f"hh-{uuid.uuid4().hex[:8]}"
    token = token_factory(roles=["auditor"], regions=["6201"])
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        # Started first: the submitter's first round (at start) finds no checkpoint.
        producer = AIOKafkaProducer(bootstrap_servers=audit_db.stack.kafka_bootstrap)
        await producer.start()
        try:
            for i in range(12):
                e = recorded_event(
                    intake_pb2.ApplicationWithdrawn(
                        household_id=household,
                        region=types_pb2.RegionCode(code="620102001001"),
                        application_id=f"app-{i}",
                    ),
                    offset=i,
                    key=household,
                )
                await producer.send_and_wait(topic, e.payload, key=e.key, headers=list(e.headers))
        finally:
            await producer.stop()

        async def cosigned() -> bool:
            latest = await client.get("/audit/checkpoints/latest")
            return latest.status_code == 200 and bool(latest.json()["cosignatures"])

        await eventually(cosigned, timeout_s=60, what="the count's checkpoint cosigned")
        latest = (await client.get("/audit/checkpoints/latest")).json()
    assert latest["tree_size"] >= 10
    assert [c["witness"] for c in latest["cosignatures"]] == [key.vkey()]
    assert key.verify(latest["cosigned_note"]).line == latest["cosignatures"][0]["signature_line"]
    assert json.loads(state.read_text())["logs"][TEST_ORIGIN]["size"] == latest["tree_size"]
