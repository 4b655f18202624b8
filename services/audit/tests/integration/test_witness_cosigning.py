"""Witness cosigning end to end (docs/adr/0024): the log submits its checkpoints to real
witness servers, keeps their cosignatures, serves them with the checkpoints and in the
export's header, and ``verify_cli`` holds a checkpoint to k of n witnesses in every mode:
a missing or forged cosignature fails it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import verify_cli
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.cosignature import Cosigner, WitnessKey, with_cosignatures
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
W2 = Cosigner(hashlib.sha256(b"witness two").digest(), "witness.test/w2")


def _withdrawn(n: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-w", region=types_pb2.RegionCode(code=VILLAGE), application_id=f"app-{n}"
    )
    return recorded_event(message, offset=n, key="hh-w")


async def _verify(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(list(args)), out)
    return code, json.loads(out.getvalue())


async def _cosigned_sizes(db: AuditDb) -> list[tuple[int, str]]:
    async with db.owner.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT tree_size, witness FROM checkpoint_cosignature ORDER BY tree_size")
        )
        return [(int(r[0]), str(r[1])) for r in rows]


def _witness(cosigner: Cosigner, path: Path) -> Witness:
    return Witness(
        cosigner, [CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier], WitnessState(path)
    )


async def test_checkpoints_are_cosigned_served_and_held_to_a_quorum(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path
) -> None:
    w1 = _witness(W1, tmp_path / "w1.json")
    appender = audit_db.appender(checkpoint_every=10)
    async with serving(witness_app(w1)) as w1_url, httpx.AsyncClient() as http:
        witnesses = parse_witnesses(f"{w1_url} {W1.key.vkey()}")
        submitter = WitnessSubmitter(audit_db.sessions, witnesses)
        await appender.append([_withdrawn(i) for i in range(12)])
        assert await submitter.submit_latest(http) == 1
        await appender.append([_withdrawn(i) for i in range(12, 25)])
        assert await submitter.submit_latest(http) == 1  # from 12, with the proof to 25
        assert await submitter.submit_latest(http) == 0  # nothing new
        # a restarted log (nothing known of the witness) learns its size from a 409
        await appender.append([_withdrawn(i) for i in range(25, 37)])
        restarted = WitnessSubmitter(audit_db.sessions, witnesses)
        assert await restarted.submit_latest(http) == 1
    assert await _cosigned_sizes(audit_db) == [(n, W1.key.vkey()) for n in (12, 25, 37)]
    assert w1.state.read()[TEST_ORIGIN].size == 37

    token = token_factory(roles=["auditor"], regions=["6201"])
    app = create_app(api_settings(audit_db), auth=make_auth_settings())
    async with api_client(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        latest = (await client.get("/audit/checkpoints/latest")).json()
        assert latest["tree_size"] == 37
        assert [c["witness"] for c in latest["cosignatures"]] == [W1.key.vkey()]
        assert (
            W1.key.verify(latest["cosigned_note"]).line
            == latest["cosignatures"][0]["signature_line"]
        )
        assert latest["cosigned_note"].startswith(latest["signed_note"])
        listed = (await client.get("/audit/checkpoints")).json()["items"]
        assert [len(c["cosignatures"]) for c in listed] == [1, 1, 1]
        async with serving(app) as url:
            export = tmp_path / "export.jsonl"
            common = ("--vkey", LOG_VKEY, "--witness-vkey", W1.key.vkey())
            runs = {
                "url": await _verify(
                    "--url", url, "--token", token, *common, "--save", str(export)
                ),
                "database": await _verify("--database-url", audit_db.url, *common),
            }
            runs["export"] = await _verify("--export", str(export), *common)
            two = ("--witness-vkey", W2.key.vkey())
            short = {
                "url": await _verify("--url", url, "--token", token, *common, *two),
                "database": await _verify("--database-url", audit_db.url, *common, *two),
                "export": await _verify("--export", str(export), *common, *two),
            }
            one_of_two = await _verify(
                "--export", str(export), *common, *two, "--witness-quorum", "1"
            )
    for mode, (code, report) in runs.items():
        assert code == 0, (mode, report)
        assert report["witnesses"]["cosigned_by"] == [W1.key.vkey()], mode
    for mode, (code, report) in short.items():
        assert code == 1, (mode, report)
        assert report["witnesses"]["met"] is False
        assert any(
            "fewer than the 2 required (missing: witness.test/w2)" in p for p in report["problems"]
        ), mode
    assert one_of_two[0] == 0, one_of_two[1]
    header = json.loads(export.read_text().splitlines()[0])
    assert len(header["cosignatures"]) == 1


async def test_a_forged_or_deleted_cosignature_fails_the_quorum(
    audit_db: AuditDb, tmp_path: Path
) -> None:
    """A superuser who rewrites the checkpoint table cannot make up a witness's word: a
    row naming w2 with a line w2 never signed does not verify, and deleting w1's leaves
    the checkpoint short."""
    w1 = _witness(W1, tmp_path / "w1.json")
    appender = audit_db.appender(checkpoint_every=10)
    async with serving(witness_app(w1)) as w1_url, httpx.AsyncClient() as http:
        submitter = WitnessSubmitter(
            audit_db.sessions, parse_witnesses(f"{w1_url} {W1.key.vkey()}")
        )
        await appender.append([_withdrawn(i) for i in range(12)])
        assert await submitter.submit_latest(http) == 1
    async with audit_db.owner.connect() as conn:
        note = str((await conn.execute(sa.text("SELECT signed_note FROM checkpoint"))).scalar_one())
    mallory = Cosigner(hashlib.sha256(b"mallory").digest(), "witness.test/w2")
    raw = bytearray(base64.b64decode(mallory.cosign(note, 1_796_300_000).split()[-1]))
    raw[:4] = W2.key.key_hash  # named and numbered as w2, signed by another key
    forged = f"\u2014 witness.test/w2 {base64.b64encode(bytes(raw)).decode()}"
    assert with_cosignatures(note, [forged])  # a well-formed line
    insert = (
        "INSERT INTO checkpoint_cosignature (tree_size, witness, signature_line, cosigned_at) "  # noqa: S608
        f"VALUES (12, '{W2.key.vkey()}', '{forged}', now())"
    )
    await as_superuser(audit_db, insert)
    both = ("--witness-vkey", W1.key.vkey(), "--witness-vkey", W2.key.vkey())
    code, report = await _verify("--database-url", audit_db.url, "--vkey", LOG_VKEY, *both)
    assert code == 1, report
    assert (
        f"checkpoint 12: the cosignature by witness.test/w2+{W2.key.key_id} does not verify"
        in report["problems"]
    )
    await as_superuser(audit_db, "DELETE FROM checkpoint_cosignature WHERE tree_size = 12")
    code, report = await _verify(
        "--database-url", audit_db.url, "--vkey", LOG_VKEY, "--witness-vkey", W1.key.vkey()
    )
    assert code == 1, report
    assert report["witnesses"]["missing"] == [W1.key.vkey()]


async def test_the_runtime_role_may_not_change_a_cosignature(audit_db: AuditDb) -> None:
    appender = audit_db.appender(checkpoint_every=10)
    await appender.append([_withdrawn(i) for i in range(12)])
    async with audit_db.sessions() as session, session.begin():
        await session.execute(
            sa.text(
                "INSERT INTO checkpoint_cosignature (tree_size, witness, signature_line, "
                "cosigned_at) VALUES (12, 'w', 'line', now())"
            )
        )
    for statement in (
        "UPDATE checkpoint_cosignature SET signature_line = 'x'",
        "DELETE FROM checkpoint_cosignature",
    ):
        async with audit_db.sessions() as session:
            with pytest.raises(sa.exc.DBAPIError):
                await session.execute(sa.text(statement))


async def test_a_witness_down_holds_nothing_up(audit_db: AuditDb) -> None:
    appender = audit_db.appender(checkpoint_every=10)
    await appender.append([_withdrawn(i) for i in range(12)])
    down = parse_witnesses(f"http://127.0.0.1:9 {W1.key.vkey()}")
    async with httpx.AsyncClient(timeout=2) as http:
        assert await WitnessSubmitter(audit_db.sessions, down).submit_latest(http) == 0
    assert await _cosigned_sizes(audit_db) == []


def test_the_witnesses_setting_is_checked() -> None:
    assert parse_witnesses("") == []
    with pytest.raises(ValueError, match="witness 1 is not"):
        parse_witnesses("ftp://x " + W1.key.vkey())
    with pytest.raises(ValueError, match="type 0x04"):
        parse_witnesses(f"http://x {LOG_VKEY}")
    with pytest.raises(ValueError, match="twice"):
        parse_witnesses(f"http://x {W1.key.vkey()},http://y {W1.key.vkey()}")
    assert parse_witnesses(f"http://x/ {W1.key.vkey()}") == [
        ("http://x", WitnessKey.parse(W1.key.vkey()))
    ]
