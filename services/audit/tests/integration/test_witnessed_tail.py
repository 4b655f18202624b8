"""A witness down for a while, then back (docs/adr/0024, 3 Dec 2026): the log goes on
signing checkpoints nobody cosigns, and ``verify_cli --witness-quorum`` takes the newest
checkpoint the quorum cosigned as the witnessed one, proves it consistent with the one
verified against, and passes while the tail after it is within ``--witness-max-lag`` /
``--witness-max-lag-s``, in every mode (the database, the service, an export with the
cosigned checkpoint the auditor kept); beyond the bound it fails, naming how far the
witnessed part reaches. Once the witness is back the latest is cosigned again. A forged
cosignature on the tail still fails the verification.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import verify_cli
from dibao_audit.appender import LogAppender
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.cosignature import Cosigner
from dibao_audit.entry import RecordedEvent
from dibao_audit.main import create_app
from dibao_audit.settings import parse_witnesses
from dibao_audit.testing import (
    TEST_ORIGIN,
    TEST_SEED,
    AuditDb,
    api_settings,
    as_superuser,
    recorded_event,
    serving,
)
from dibao_audit.witness import Witness, WitnessState
from dibao_audit.witness import create_app as witness_app
from dibao_audit.witnessing import WitnessSubmitter
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]

VILLAGE = "620102001001"
LOG_VKEY = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
W1 = Cosigner(hashlib.sha256(b"witness one").digest(), "witness.test/w1")
DOWN = f"http://127.0.0.1:9 {W1.key.vkey()}"  # nothing listens on port 9 (discard)


class _Clock:
    """The log's clock, moved on by the test (the checkpoints' signed times)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def _withdrawn(n: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-t", region=types_pb2.RegionCode(code=VILLAGE), application_id=f"app-{n}"
    )
    return recorded_event(message, offset=n, key="hh-t")


async def _verify(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(list(args)), out)
    return code, json.loads(out.getvalue())


def _appender(db: AuditDb, clock: _Clock) -> LogAppender:
    return LogAppender(
        db.sessions, CheckpointSigner(TEST_SEED, TEST_ORIGIN), checkpoint_every=10, now=clock.now
    )


async def _cosign_latest(db: AuditDb, w1: Witness) -> int:
    async with serving(witness_app(w1)) as url, httpx.AsyncClient() as http:
        submitter = WitnessSubmitter(db.sessions, parse_witnesses(f"{url} {W1.key.vkey()}"))
        return await submitter.submit_latest(http)


@contextlib.asynccontextmanager
async def _service(db: AuditDb, token: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The audit API (its lifespan run) and its URL on a loopback port, for verify_cli."""
    app = create_app(api_settings(db), auth=make_auth_settings())
    async with api_client(app) as client, serving(app) as url:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, url


async def _witness_down(db: AuditDb) -> int:
    async with httpx.AsyncClient(timeout=2) as http:
        return await WitnessSubmitter(db.sessions, parse_witnesses(DOWN)).submit_latest(http)


async def test_a_witness_down_for_a_while_then_back(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path
) -> None:
    clock = _Clock()
    appender = _appender(audit_db, clock)
    w1 = Witness(
        W1, [CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier], WitnessState(tmp_path / "w1.json")
    )
    await appender.append([_withdrawn(i) for i in range(12)])
    assert await _cosign_latest(audit_db, w1) == 1  # checkpoint 12 cosigned
    # The witness goes down: checkpoint 25 (the entry count signs it) is not cosigned.
    await appender.append([_withdrawn(i) for i in range(12, 25)])
    assert await _witness_down(audit_db) == 0

    token = token_factory(roles=["auditor"], regions=["6201"])
    common = ("--vkey", LOG_VKEY, "--witness-vkey", W1.key.vkey(), "--witness-quorum", "1")
    kept = tmp_path / "kept-12.json"
    export = tmp_path / "export-25.jsonl"
    async with _service(audit_db, token) as (client, url):
        kept.write_text((await client.get("/audit/checkpoints/12")).text)
        online = ("--url", url, "--token", token)
        within = {
            "database": await _verify("--database-url", audit_db.url, *common),
            "url": await _verify(*online, *common, "--save", str(export)),
        }
        within["export, 12 kept"] = await _verify(
            "--export", str(export), *common, "--checkpoint", str(kept)
        )
        export_alone = await _verify("--export", str(export), *common)
        by_entries = {
            "database": await _verify(
                "--database-url", audit_db.url, *common, "--witness-max-lag", "10"
            ),
            "url": await _verify(*online, *common, "--witness-max-lag", "10"),
        }
        strict = await _verify(
            *online, *common, "--witness-max-lag", "0", "--witness-max-lag-s", "0"
        )
    for mode, (code, report) in within.items():
        assert code == 0, (mode, report)
        witnessed = report["witnesses"]
        assert witnessed["met"] is True, mode
        assert (witnessed["witnessed_size"], witnessed["tree_size"]) == (12, 25), mode
        assert witnessed["unwitnessed_entries"] == 13, mode
        assert witnessed["tail"].startswith(
            "witnessed up to size 12 of 25; the 12..25 tail (13 entries"
        ), mode
        assert witnessed["cosigned_by"] == [W1.key.vkey()], mode
    # The export carries its own checkpoint's cosignatures only: without the cosigned one
    # the auditor kept, nothing of it is witnessed.
    code, report = export_alone
    assert code == 1, report
    assert report["witnesses"]["witnessed_size"] is None
    for mode, (code, report) in {**by_entries, "url, bound 0": strict}.items():
        assert code == 1, (mode, report)
        assert report["witnesses"]["met"] is False, mode
        assert report["witnesses"]["witnessed_size"] == 12, mode
        assert any("the unwitnessed tail is 13 entries" in p for p in report["problems"]), mode

    # Two hours on, still down: checkpoint 37's time is beyond the default hour.
    clock.offset = timedelta(hours=2)
    await appender.append([_withdrawn(i) for i in range(25, 37)])
    assert await _witness_down(audit_db) == 0
    skew = ("--clock-skew", str(3 * 3600))  # the entries' appended_at is the real time
    async with _service(audit_db, token) as (_, url):
        online = ("--url", url, "--token", token)
        beyond = {
            "database": await _verify("--database-url", audit_db.url, *common, *skew),
            "url": await _verify(*online, *common, *skew),
        }
        longer = await _verify(*online, *common, *skew, "--witness-max-lag-s", "10000")
    for mode, (code, report) in beyond.items():
        assert code == 1, (mode, report)
        assert report["witnesses"]["witnessed_size"] == 12, mode
        assert report["witnesses"]["unwitnessed_entries"] == 25, mode
        assert any(
            p.startswith("witnessed up to size 12 of 37;")
            and p.endswith("more than the 3600 s allowed")
            for p in report["problems"]
        ), (mode, report["problems"])
    assert longer[0] == 0, longer[1]

    # The witness is back: the latest is cosigned (from 12, with the proof to 37).
    assert await _cosign_latest(audit_db, w1) == 1
    async with _service(audit_db, token) as (_, url):
        back = {
            "database": await _verify("--database-url", audit_db.url, *common, *skew),
            "url": await _verify("--url", url, "--token", token, *common, *skew),
        }
    for mode, (code, report) in back.items():
        assert code == 0, (mode, report)
        assert report["witnesses"]["witnessed_size"] == 37, mode
        assert report["witnesses"]["tail"] == "witnessed at its full size 37", mode


async def test_a_forged_cosignature_on_the_tail_still_fails(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path
) -> None:
    """Checkpoint 12 is cosigned and 25 is within the bound after it; a superuser who adds
    a line in w1's name to checkpoint 25, to have the tail pass for witnessed, fails the
    verification instead (the line does not verify), in both modes that read the rows."""
    appender = _appender(audit_db, _Clock())
    w1 = Witness(
        W1, [CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier], WitnessState(tmp_path / "w1.json")
    )
    await appender.append([_withdrawn(i) for i in range(12)])
    assert await _cosign_latest(audit_db, w1) == 1
    await appender.append([_withdrawn(i) for i in range(12, 25)])
    async with audit_db.owner.connect() as conn:
        note = str(
            (
                await conn.exec_driver_sql(
                    "SELECT signed_note FROM checkpoint WHERE tree_size = 25"
                )
            ).scalar_one()
        )
    mallory = Cosigner(hashlib.sha256(b"mallory").digest(), "witness.test/w1")
    raw = bytearray(base64.b64decode(mallory.cosign(note, 1_796_300_000).split()[-1]))
    raw[:4] = W1.key.key_hash  # named and numbered as w1, signed by another key
    forged = f"\u2014 witness.test/w1 {base64.b64encode(bytes(raw)).decode()}"
    await as_superuser(
        audit_db,
        "INSERT INTO checkpoint_cosignature (tree_size, witness, signature_line, cosigned_at) "  # noqa: S608
        f"VALUES (25, '{W1.key.vkey()}', '{forged}', now())",
    )
    token = token_factory(roles=["auditor"], regions=["6201"])
    common = ("--vkey", LOG_VKEY, "--witness-vkey", W1.key.vkey(), "--witness-quorum", "1")
    async with _service(audit_db, token) as (_, url):
        runs = {
            "database": await _verify("--database-url", audit_db.url, *common),
            "url": await _verify("--url", url, "--token", token, *common),
        }
    for mode, (code, report) in runs.items():
        assert code == 1, (mode, report)
        assert (
            f"checkpoint 25: the cosignature by witness.test/w1+{W1.key.key_id} does not verify"
            in report["problems"]
        ), mode
        assert report["witnesses"]["witnessed_size"] == 12, mode
