"""The development witness's configuration (``python -m dibao_audit.devwitness``), which
``make up`` writes beside the services' secrets: a seed of its own kept across runs, the
log's key pinned as the log signs, and audit's ``DIBAO_AUDIT_WITNESSES`` naming the
witness's real key."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dibao_audit import devwitness
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.settings import parse_witnesses

LOG_SEED = hashlib.sha256(b"dev log").digest()
NEXT_SEED = hashlib.sha256(b"dev log, next").digest()


def _secrets(tmp_path: Path, **extra: str) -> Path:
    path = tmp_path / "secrets.env"
    values = {"DIBAO_JWT_AUDIENCE": "dibao", "DIBAO_AUDIT_SIGNING_KEY": _b64(LOG_SEED)} | extra
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_the_witness_gets_a_key_of_its_own_kept_across_runs(tmp_path: Path) -> None:
    secrets = _secrets(tmp_path)
    env_file = tmp_path / "witness.env"
    first = devwitness.create(
        secrets, env_file, url="http://127.0.0.1:8015/", name="w.test/dev", environ={}
    )
    written = devwitness.read_env(env_file)
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert set(written) == {
        "DIBAO_WITNESS_SIGNING_KEY",
        "DIBAO_WITNESS_NAME",
        "DIBAO_WITNESS_LOG_VKEYS",
        "DIBAO_AUDIT_WITNESSES",
    }
    assert written["DIBAO_WITNESS_SIGNING_KEY"] != _b64(LOG_SEED)
    assert (
        written["DIBAO_WITNESS_LOG_VKEYS"]
        == CheckpointSigner(LOG_SEED, "dibao.audit/local").verifier.vkey()
    )
    [(url, key)] = parse_witnesses(first)
    assert (url, key.name) == ("http://127.0.0.1:8015", "w.test/dev")
    assert written["DIBAO_AUDIT_WITNESSES"] == first
    # The witness itself, given that file, has that key.
    printed = subprocess.run(
        [sys.executable, "-m", "dibao_audit.witness", "--print-vkey"],
        env=os.environ | written,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == key.vkey()
    # Again, on another port and with another name asked: the same witness (seed and
    # name kept), reached at the new URL.
    again = devwitness.create(
        secrets, env_file, url="http://127.0.0.1:9515", name="other", environ={}
    )
    assert again == f"http://127.0.0.1:9515 {key.vkey()}"
    assert (
        devwitness.read_env(env_file)["DIBAO_WITNESS_SIGNING_KEY"]
        == (written["DIBAO_WITNESS_SIGNING_KEY"])
    )


def test_it_pins_the_keys_the_log_signs_with(tmp_path: Path) -> None:
    """The origin and a hand-over's next key as the log's process gets them: from the
    environment it inherits, the secrets file's winning."""
    secrets = _secrets(tmp_path, DIBAO_AUDIT_NEXT_SIGNING_KEY=_b64(NEXT_SEED))
    env_file = tmp_path / "witness.env"
    environ = {"DIBAO_AUDIT_LOG_ORIGIN": "dibao.audit/620102", "DIBAO_WITNESS_NAME": "ignored"}
    devwitness.create(secrets, env_file, url="http://w", name="w.test/dev", environ=environ)
    assert devwitness.read_env(env_file)["DIBAO_WITNESS_LOG_VKEYS"].split(",") == [
        CheckpointSigner(seed, "dibao.audit/620102").verifier.vkey()
        for seed in (LOG_SEED, NEXT_SEED)
    ]


def test_one_file_for_both_keeps_the_log_secrets(tmp_path: Path) -> None:
    """docker compose's .env: the witness's lines are added, every other line kept."""
    secrets = _secrets(tmp_path)
    before = secrets.read_text()
    devwitness.create(secrets, secrets, url="http://witness:8015", name="w.test/c", environ={})
    after = secrets.read_text()
    assert after.startswith(before)
    assert devwitness.read_env(secrets)["DIBAO_AUDIT_SIGNING_KEY"] == _b64(LOG_SEED)
    devwitness.create(secrets, secrets, url="http://witness:8015", name="w.test/c", environ={})
    assert secrets.read_text() == after


@pytest.mark.parametrize(
    ("secrets_text", "url", "expected"),
    [
        ("DIBAO_JWT_AUDIENCE=dibao\n", "http://w", "DIBAO_AUDIT_SIGNING_KEY is missing"),
        ("DIBAO_AUDIT_SIGNING_KEY=c2hvcnQ=\n", "http://w", "32-byte Ed25519 seed"),
        (f"DIBAO_AUDIT_SIGNING_KEY={_b64(LOG_SEED)}\n", "w:8015", "http(s) URL"),
    ],
)
def test_what_it_cannot_use_is_refused_and_nothing_written(
    tmp_path: Path, secrets_text: str, url: str, expected: str
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(secrets_text)
    env_file = tmp_path / "witness.env"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dibao_audit.devwitness",
            str(secrets),
            str(env_file),
            *("--url", url),
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert expected in done.stderr
    assert _b64(LOG_SEED) not in done.stderr
    assert not env_file.exists()
