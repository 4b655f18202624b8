"""The witnessed part of the log and its unwitnessed tail (docs/adr/0024, 3 Dec 2026):
``check_witnessed`` takes the newest checkpoint whose cosignatures meet the quorum, up to
the one verified against, and accepts the tail after it only within the bound (entries,
and seconds of the two checkpoints' signed times). A trusted witness's line that does not
verify, on any checkpoint examined, still fails the verification.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dibao_audit import verify_cli
from dibao_audit.checkpoint import Checkpoint, CheckpointSigner, KeyTrust
from dibao_audit.cosignature import Cosigner, with_cosignatures
from dibao_audit.verifier import Report, WitnessBound, check_witnessed

ORIGIN = "dibao.audit/test"
AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LOG = CheckpointSigner(hashlib.sha256(b"log").digest(), ORIGIN)
W1 = Cosigner(hashlib.sha256(b"w1").digest(), "witness.test/w1")
W2 = Cosigner(hashlib.sha256(b"w2").digest(), "witness.test/w2")


def _note(size: int, after_s: float = 0.0, signer: CheckpointSigner = LOG) -> str:
    root = hashlib.sha256(f"root {size}".encode()).digest()
    return signer.sign(size, root, AT + timedelta(seconds=after_s))


def _cosigned(note: str, *witnesses: Cosigner) -> str:
    return with_cosignatures(note, [w.cosign(note, 1_796_300_000) for w in witnesses])


def _head(note: str) -> Checkpoint:
    return LOG.verifier.verify(note)


def _report() -> Report:
    return Report(trust=KeyTrust.of(LOG.verifier))


def _forged(note: str, as_witness: Cosigner) -> str:
    """A line named and numbered as ``as_witness``'s, signed by another key."""
    mallory = Cosigner(hashlib.sha256(b"mallory").digest(), as_witness.key.name)
    raw = bytearray(base64.b64decode(mallory.cosign(note, 1_796_300_000).split()[-1]))
    raw[:4] = as_witness.key.key_hash
    return f"\u2014 {as_witness.key.name} {base64.b64encode(bytes(raw)).decode()}"


def test_the_checkpoint_verified_against_cosigned_is_witnessed_at_its_full_size() -> None:
    latest = _note(40, 600)
    report = _report()
    out = check_witnessed(report, _head(latest), [_cosigned(latest, W1)], [W1.key], None)
    assert report.ok, report.problems
    assert out["met"] is True
    assert (out["witnessed_size"], out["tree_size"], out["unwitnessed_entries"]) == (40, 40, 0)
    assert out["tail"] == "witnessed at its full size 40"


def test_an_unwitnessed_tail_within_the_bound_passes_and_says_how_far_it_reaches() -> None:
    """A witness down for a while: the newest cosigned checkpoint is 12, the log is at 37
    (20 minutes of the log's times later), within the default hour."""
    old, mid, latest = _note(12, 0), _note(25, 600), _note(37, 1200)
    candidates = [latest, mid, _cosigned(old, W1)]
    report = _report()
    out = check_witnessed(report, _head(latest), candidates, [W1.key], 1)
    assert report.ok, report.problems
    assert out["met"] is True
    assert out["witnessed_size"] == 12
    assert (out["unwitnessed_entries"], out["unwitnessed_s"]) == (25, 1200.0)
    assert out["cosigned_by"] == [W1.key.vkey()]
    assert out["tail"] == (
        "witnessed up to size 12 of 37; the 12..37 tail (25 entries, 1200 s of the log's "
        "times) is signed by the log's key alone"
    )
    assert (out["max_lag_entries"], out["max_lag_s"]) == (None, 3600.0)


def test_an_unwitnessed_tail_beyond_the_bound_fails() -> None:
    old, latest = _note(12, 0), _note(37, 7200)
    candidates = [latest, _cosigned(old, W1)]
    by_time = _report()
    out = check_witnessed(by_time, _head(latest), candidates, [W1.key], 1)
    assert out["met"] is False
    assert out["witnessed_size"] == 12  # how far it reaches, said even when too short
    assert by_time.problems == [
        "witnessed up to size 12 of 37; the 12..37 tail (25 entries, 7200 s of the log's "
        "times) is signed by the log's key alone: the unwitnessed tail is 7200 s, more than "
        "the 3600 s allowed"
    ]
    # A bound given explicitly: more seconds pass, fewer entries fail.
    longer = _report()
    bound = WitnessBound(max_entries=None, max_s=10_000)
    assert check_witnessed(longer, _head(latest), candidates, [W1.key], 1, bound)["met"]
    assert longer.ok
    by_entries = _report()
    bound = WitnessBound(max_entries=20, max_s=None)
    assert not check_witnessed(by_entries, _head(latest), candidates, [W1.key], 1, bound)["met"]
    assert by_entries.problems[0].endswith(
        "the unwitnessed tail is 25 entries, more than the 20 allowed"
    )


def test_a_bound_of_zero_requires_the_checkpoint_itself_cosigned() -> None:
    old, latest = _note(12, 0), _note(13, 1)
    report = _report()
    strict = WitnessBound(max_entries=0, max_s=0)
    out = check_witnessed(report, _head(latest), [latest, _cosigned(old, W1)], [W1.key], 1, strict)
    assert out["met"] is False
    assert not report.ok


def test_nothing_cosigned_names_the_latest_checkpoints_missing_witnesses() -> None:
    old, latest = _note(12, 0), _note(37, 10)
    report = _report()
    candidates = [_cosigned(latest, W1), _cosigned(old, W1)]
    out = check_witnessed(report, _head(latest), candidates, [W1.key, W2.key], None)
    assert out["met"] is False
    assert out["witnessed_size"] is None
    assert out["missing"] == [W2.key.vkey()]
    assert report.problems == [
        "checkpoint 37 is cosigned by 1 of the witnesses given, fewer than the 2 required "
        "(missing: witness.test/w2), and no earlier checkpoint of the log verified is"
    ]


def test_a_forged_cosignature_fails_whatever_an_older_checkpoint_shows() -> None:
    """A superuser adds a line in w1's name to the tail's checkpoint: it does not verify,
    which fails the verification although checkpoint 12 is cosigned within the bound."""
    old, latest = _note(12, 0), _note(37, 60)
    forged_latest = with_cosignatures(latest, [_forged(latest, W1)])
    report = _report()
    out = check_witnessed(report, _head(latest), [forged_latest, _cosigned(old, W1)], [W1.key], 1)
    assert out["witnessed_size"] == 12
    assert report.problems == [
        f"checkpoint 37: the cosignature by witness.test/w1+{W1.key.key_id} does not verify"
    ]
    # A forged line on the only checkpoint that would meet the quorum: nothing is witnessed.
    alone = _report()
    forged_old = with_cosignatures(old, [_forged(old, W1)])
    out = check_witnessed(alone, _head(latest), [latest, forged_old], [W1.key], 1)
    assert out["witnessed_size"] is None
    assert f"checkpoint 12: the cosignature by witness.test/w1+{W1.key.key_id} does not verify" in (
        alone.problems
    )


def test_only_the_logs_checkpoints_up_to_the_one_verified_count() -> None:
    """A cosigned note another key signed, or one past the checkpoint verified against,
    witnesses nothing of this log."""
    other_log = CheckpointSigner(hashlib.sha256(b"another log").digest(), ORIGIN)
    latest = _note(37, 60)
    foreign = _cosigned(_note(30, 30, other_log), W1)
    later = _cosigned(_note(50, 90), W1)
    report = _report()
    out = check_witnessed(report, _head(latest), [latest, foreign, later], [W1.key], 1)
    assert out["witnessed_size"] is None
    assert not report.ok


def test_the_same_checkpoint_given_twice_counts_the_lines_of_both() -> None:
    """The log's copy of a checkpoint with w1's line, the auditor's kept copy with w2's:
    together they meet a quorum of two."""
    latest = _note(37, 60)
    report = _report()
    out = check_witnessed(
        report, _head(latest), [_cosigned(latest, W1), _cosigned(latest, W2)], [W1.key, W2.key], 2
    )
    assert report.ok, report.problems
    assert out["met"] is True
    assert out["witnessed_size"] == 37


def test_verify_cli_refuses_a_negative_or_nan_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before anything is read (exit 2, nothing verified)."""
    common = ["--export", str(tmp_path / "never-read.jsonl"), "--vkey", LOG.verifier.vkey()]
    common += ["--witness-vkey", W1.key.vkey()]
    for bad, said in (
        (["--witness-max-lag", "-1"], "--witness-max-lag is a number of entries, 0 or more"),
        (["--witness-max-lag-s", "nan"], "--witness-max-lag-s is a number of seconds, 0 or more"),
        (["--witness-max-lag-s", "-5"], "--witness-max-lag-s is a number of seconds, 0 or more"),
    ):
        assert verify_cli.main([*common, *bad]) == 2
        captured = capsys.readouterr()
        assert said in captured.err, captured.err
        assert captured.out == ""
