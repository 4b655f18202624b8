"""A development witness's configuration, once: ``python -m dibao_audit.devwitness``.

``python -m dibao_audit.devwitness LOG_SECRETS WITNESS_ENV --url URL [--name NAME]``

Reads the audit log's development secrets (``LOG_SECRETS``, the env file
``dibao_common.devsecrets`` writes: ``DIBAO_AUDIT_SIGNING_KEY``, and
``DIBAO_AUDIT_NEXT_SIGNING_KEY`` / ``DIBAO_AUDIT_LOG_ORIGIN`` when set there) and writes the
witness's env file (``WITNESS_ENV``, mode 0600), keeping every other line of it:

- ``DIBAO_WITNESS_SIGNING_KEY``, the witness's own Ed25519 seed: made once, then kept (a
  new seed is a new witness, whose cosignatures auditors' pinned keys would refuse);
- ``DIBAO_WITNESS_NAME``: ``--name``, kept once written;
- ``DIBAO_WITNESS_LOG_VKEYS``: the log key(s) it pins, derived from the log's seeds;
- ``DIBAO_AUDIT_WITNESSES``: what the log is configured with, ``<url> <witness vkey>``.

The last two are written again each run, from the log's secrets as they are then. The two
files may be one (docker compose's ``.env``: each container is given only the variables
docker-compose.yml names for it). ``make up`` (deploy/stack.sh) keeps the witness's file
apart from the services' secrets (which every service is given): a witness whose seed
sits beside the log's proves nothing. Development only: a real witness is run by another
authority, which makes and keeps its own seed (docs/operations.md).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.cosignature import Cosigner
from dibao_audit.settings import AuditSettings

DEFAULT_ORIGIN = str(AuditSettings.model_fields["audit_log_origin"].default)
_LOG_VARS = ("DIBAO_AUDIT_SIGNING_KEY", "DIBAO_AUDIT_NEXT_SIGNING_KEY", "DIBAO_AUDIT_LOG_ORIGIN")


def read_env(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (the last of a key wins); blank and ``#`` lines are skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value
    return values


def _seed(values: dict[str, str], name: str, *, required: bool) -> bytes | None:
    value = values.get(name, "")
    if not value:
        if required:
            raise ValueError(f"{name} is missing")
        return None
    try:
        seed = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{name} is not base64") from exc
    if len(seed) != 32:
        raise ValueError(f"{name} must decode to a 32-byte Ed25519 seed")
    return seed


def log_vkeys(log_secrets: dict[str, str]) -> list[str]:
    """The vkeys of the log's signing key and, during a hand-over, its next key."""
    origin = log_secrets.get("DIBAO_AUDIT_LOG_ORIGIN") or DEFAULT_ORIGIN
    seeds = [
        _seed(log_secrets, "DIBAO_AUDIT_SIGNING_KEY", required=True),
        _seed(log_secrets, "DIBAO_AUDIT_NEXT_SIGNING_KEY", required=False),
    ]
    return [CheckpointSigner(s, origin).verifier.vkey() for s in seeds if s is not None]


def create(
    log_secrets: Path,
    witness_env: Path,
    *,
    url: str,
    name: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Write ``witness_env`` as the module says; the value of ``DIBAO_AUDIT_WITNESSES``.

    The log's settings are those its process gets: ``environ``'s ``DIBAO_AUDIT_*`` (the
    environment ``make up`` runs in, which the services inherit), overridden by the
    secrets file's (which the stack gives them after)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("--url is the witness's http(s) URL")
    inherited = {
        k: v for k, v in (os.environ if environ is None else environ).items() if k in _LOG_VARS
    }
    pinned = log_vkeys(inherited | read_env(log_secrets))
    lines = witness_env.read_text(encoding="utf-8").splitlines() if witness_env.exists() else []
    current = read_env(witness_env) if witness_env.exists() else {}
    seed = _seed(current, "DIBAO_WITNESS_SIGNING_KEY", required=False)
    if seed is None:
        seed = secrets.token_bytes(32)
    witness_name = current.get("DIBAO_WITNESS_NAME") or name
    witness = Cosigner(seed, witness_name)  # refuses a name no vkey may carry
    audit_witnesses = f"{url.rstrip('/')} {witness.key.vkey()}"
    wanted = {
        "DIBAO_WITNESS_SIGNING_KEY": base64.b64encode(seed).decode(),
        "DIBAO_WITNESS_NAME": witness_name,
        "DIBAO_WITNESS_LOG_VKEYS": ",".join(pinned),
        "DIBAO_AUDIT_WITNESSES": audit_witnesses,
    }
    kept = [line for line in lines if line.partition("=")[0].strip() not in wanted]
    text = "".join(f"{line}\n" for line in [*kept, *(f"{k}={v}" for k, v in wanted.items())])
    witness_env.parent.mkdir(parents=True, exist_ok=True)
    tmp = witness_env.with_name(witness_env.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    tmp.chmod(0o600)
    tmp.replace(witness_env)
    return audit_witnesses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_audit.devwitness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("log_secrets", type=Path, help="the log's env file (devsecrets)")
    parser.add_argument("witness_env", type=Path, help="the witness's env file, written")
    parser.add_argument("--url", required=True, help="the URL the log reaches the witness at")
    parser.add_argument("--name", default="witness.dibao.local/dev", help="the witness's name")
    args = parser.parse_args(argv)
    try:
        create(args.log_secrets, args.witness_env, url=args.url, name=args.name)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"the development witness was not configured: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
