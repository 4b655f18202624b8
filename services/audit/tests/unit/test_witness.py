"""The witness (``dibao_audit.witness``, C2SP tlog-witness add-checkpoint; docs/adr/0024).

Through its ASGI app over httpx, and once as the real process (``python -m
dibao_audit.witness``) on a port of its own: it cosigns a checkpoint signed by the pinned
log key and consistent with the one it holds, answers 409 with the size it holds to a
wrong old size, refuses a rollback, a fork (recorded as evidence) and a forged signature,
and its state survives a restart (another process reading the same file).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.cosignature import Cosigner, WitnessKey, with_cosignatures
from dibao_audit.merkle import consistency_ranges, leaf_hash, root_of
from dibao_audit.witness import Witness, WitnessState, create_app
from dibao_common.testing.local_stack import wait_healthy

ORIGIN = "dibao.audit/test"
AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
NOW = 1_796_300_000
LOG = CheckpointSigner(hashlib.sha256(b"log").digest(), ORIGIN)
THIEF = CheckpointSigner(hashlib.sha256(b"thief").digest(), ORIGIN)
WITNESS_SEED = hashlib.sha256(b"witness").digest()
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(40)]
OTHER = [*LEAVES[:10], *(leaf_hash(b"rewritten %d" % i) for i in range(10, 40))]


def note(size: int, leaves: list[bytes] = LEAVES, signer: CheckpointSigner = LOG) -> str:
    return signer.sign(size, root_of(leaves[:size]), AT)


def request(old: int, new: int, leaves: list[bytes] = LEAVES, **kw: CheckpointSigner) -> bytes:
    proof = [root_of(leaves[lo:hi]) for lo, hi in consistency_ranges(old, new)]
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
    return f"old {old}\n{lines}\n{note(new, leaves, **kw)}".encode()


@contextlib.asynccontextmanager
async def witness_client(path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Witness]]:
    witness = Witness(
        Cosigner(WITNESS_SEED, "witness.test/w1"),
        [LOG.verifier],
        WitnessState(path / "state.json"),
        clock=lambda: NOW,
    )
    transport = httpx.ASGITransport(app=create_app(witness))
    async with httpx.AsyncClient(transport=transport, base_url="http://witness") as client:
        yield client, witness


async def test_it_cosigns_a_consistent_checkpoint_and_holds_it(tmp_path: Path) -> None:
    async with witness_client(tmp_path) as (client, witness):
        first = await client.post("/add-checkpoint", content=request(0, 5))
        assert first.status_code == 200, first.text
        found = witness.cosigner.key.verify(with_cosignatures(note(5), [first.text]))
        assert found.timestamp == NOW
        second = await client.post("/add-checkpoint", content=request(5, 13))
        assert second.status_code == 200, second.text
        witness.cosigner.key.verify(with_cosignatures(note(13), [second.text]))
        held = WitnessState(tmp_path / "state.json").read()[ORIGIN]
        assert (held.size, held.root, held.note) == (13, root_of(LEAVES[:13]), note(13))
        # the same checkpoint again: cosigned again, nothing moves
        again = await client.post("/add-checkpoint", content=request(13, 13))
        assert again.status_code == 200, again.text


async def test_a_wrong_old_size_learns_the_size_it_holds(tmp_path: Path) -> None:
    async with witness_client(tmp_path) as (client, _):
        assert (await client.post("/add-checkpoint", content=request(0, 8))).status_code == 200
        answer = await client.post("/add-checkpoint", content=request(0, 20))
        assert answer.status_code == 409
        assert answer.headers["content-type"].startswith("text/x.tlog.size")
        assert answer.text == "8\n"
        # a rollback: older than what it holds, whatever old size is claimed
        for old in (0, 5):
            back = await client.post("/add-checkpoint", content=request(old, 5))
            assert back.status_code == 409
            assert back.text == "8\n"
        # old size above the checkpoint's: 400
        bad = await client.post(
            "/add-checkpoint", content=request(8, 8).replace(b"old 8", b"old 9")
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        assert WitnessState(tmp_path / "state.json").read()[ORIGIN].size == 8


async def test_a_fork_is_refused_and_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log's tail rewritten after size 10 (a superuser's edit, or a thief's fork): the
    witness holding 20 cosigns neither the other root at 20 nor a later tree of the other
    history, keeps both notes as evidence, and logs each (one JSON line, where its
    operator's alerts look)."""
    async with witness_client(tmp_path) as (client, _):
        assert (await client.post("/add-checkpoint", content=request(0, 20))).status_code == 200
        same_size = await client.post("/add-checkpoint", content=request(20, 20, OTHER))
        assert same_size.status_code == 409
        assert same_size.headers["content-type"] == "application/problem+json"
        later = await client.post("/add-checkpoint", content=request(20, 30, OTHER))
        assert later.status_code == 422
        evidence = WitnessState(tmp_path / "state.json").evidence()
        assert [e["kind"] for e in evidence] == ["another root for a size cosigned", "inconsistent"]
        assert all(e["cosigned"] == note(20) for e in evidence)
        assert [e["submitted"] for e in evidence] == [note(20, OTHER), note(30, OTHER)]
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(e["event"], e["level"], e["kind"]) for e in logged] == [
            ("witness_evidence_recorded", "error", "another root for a size cosigned"),
            ("witness_evidence_recorded", "error", "inconsistent"),
        ]
        assert [(e["cosigned_size"], e["submitted_size"]) for e in logged] == [(20, 20), (20, 30)]
        assert {e["evidence_file"] for e in logged} == {str(tmp_path / "state.json.evidence.jsonl")}
        held = WitnessState(tmp_path / "state.json").read()[ORIGIN]
        assert held.root == root_of(LEAVES[:20])
        # the true history still goes on
        assert (await client.post("/add-checkpoint", content=request(20, 30))).status_code == 200


async def test_signatures_origins_and_malformed_bodies(tmp_path: Path) -> None:
    async with witness_client(tmp_path) as (client, _):
        forged = await client.post("/add-checkpoint", content=request(0, 5, signer=THIEF))
        assert forged.status_code == 403
        other = CheckpointSigner(hashlib.sha256(b"log").digest(), "dibao.audit/elsewhere")
        unknown = await client.post("/add-checkpoint", content=request(0, 5, signer=other))
        assert unknown.status_code == 404
        for body in (
            b"old 0\n",  # no checkpoint
            b"old x\n\n" + note(5).encode(),
            b"old 00\n\n" + note(5).encode(),
            b"old 0\nnot base64\n\n" + note(5).encode(),
            b"old 0\n"
            + b"".join([base64.b64encode(b"\0" * 32) + b"\n"] * 64)
            + b"\n"
            + note(5).encode(),
            b"\xff\n\n",
        ):
            answer = await client.post("/add-checkpoint", content=body)
            assert answer.status_code == 400, body
            assert answer.headers["content-type"] == "application/problem+json"
        wrong_proof = request(0, 20).replace(
            b"old 0\n", b"old 0\n" + base64.b64encode(b"\1" * 32) + b"\n"
        )
        assert (await client.post("/add-checkpoint", content=wrong_proof)).status_code == 422
        assert not (tmp_path / "state.json").exists()  # nothing cosigned, nothing written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_process_keeps_its_state_across_a_restart(tmp_path: Path) -> None:
    env = os.environ | {
        "DIBAO_WITNESS_SIGNING_KEY": base64.b64encode(WITNESS_SEED).decode(),
        "DIBAO_WITNESS_NAME": "witness.test/w1",
        "DIBAO_WITNESS_LOG_VKEYS": LOG.verifier.vkey(),
        "DIBAO_WITNESS_STATE": str(tmp_path / "state.json"),
    }
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dibao_audit.witness", "--print-vkey"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = WitnessKey.parse(printed.stdout)
    for step, (old, new, expected) in enumerate([(0, 7, 200), (0, 9, 409), (7, 9, 200)]):
        port = _free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dibao_audit.witness", "--port", str(port), env=env
        )
        try:
            await wait_healthy(port, timeout_s=30)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answer = await client.post("/add-checkpoint", content=request(old, new))
            assert answer.status_code == expected, (step, answer.text)
            if expected == 200:
                assert key.verify(with_cosignatures(note(new), [answer.text])).timestamp > 0
            else:
                assert answer.text == "7\n"  # held from the first process
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


def test_it_refuses_to_start_without_its_configuration(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_WITNESS_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dibao_audit.witness",
            "--name",
            "w",
            "--state",
            str(tmp_path / "s"),
        ],
        env=base | {"DIBAO_WITNESS_SIGNING_KEY": "short"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "DIBAO_WITNESS_SIGNING_KEY" in done.stderr


@pytest.mark.parametrize("damaged", ['{"format": "other"}', "not json"])
def test_a_damaged_state_file_stops_it(tmp_path: Path, damaged: str) -> None:
    (tmp_path / "state.json").write_text(damaged)
    env = os.environ | {
        "DIBAO_WITNESS_SIGNING_KEY": base64.b64encode(WITNESS_SEED).decode(),
        "DIBAO_WITNESS_NAME": "witness.test/w1",
        "DIBAO_WITNESS_LOG_VKEYS": LOG.verifier.vkey(),
        "DIBAO_WITNESS_STATE": str(tmp_path / "state.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "dibao_audit.witness"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot start" in done.stderr
