"""Creates a local instance's development secrets once: ``python -m dibao_common.devsecrets FILE``.

Writes an env file the local stack gives every service: the JWT verification key (the
signing key stays in a file beside it, for ``make token``), the personal-data
encryption and hashing keys, the bank webhook secret, the audit signing key and the
Idempotency-Key fingerprint key. A file written by an earlier release gets the secrets it
lacks appended; those it has are kept. Never used in production, where these come from
the deployment's secret store.
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _added_since() -> dict[str, str]:
    """Secrets added after the first release of this file, as a new file gets them."""
    return {"DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": _b64(secrets.token_bytes(32))}


def create(env_file: Path) -> None:
    if env_file.exists():
        _complete(env_file)
        return
    env_file.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    signing_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_file = env_file.parent / "dev-jwt-signing-key.pem"
    signing_file.write_bytes(signing_pem)
    signing_file.chmod(0o600)
    lines = {
        "DIBAO_JWT_PUBLIC_KEY": _b64(public_pem),
        "DIBAO_JWT_ISSUER": "https://dev.dibao.local",
        "DIBAO_JWT_AUDIENCE": "dibao",
        "DIBAO_PII_KEYS": f"k1:{_b64(secrets.token_bytes(32))}",
        "DIBAO_PII_ACTIVE_KEY_ID": "k1",
        "DIBAO_PII_HASH_KEY": _b64(secrets.token_bytes(32)),
        "DIBAO_BANK_WEBHOOK_SECRET": "whsec_" + _b64(secrets.token_bytes(32)),
        "DIBAO_AUDIT_SIGNING_KEY": _b64(secrets.token_bytes(32)),
    } | _added_since()
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    env_file.chmod(0o600)


def _complete(env_file: Path) -> None:
    """Append the secrets an existing file lacks (written before they were added)."""
    text = env_file.read_text()
    present = {line.partition("=")[0] for line in text.splitlines()}
    missing = {k: v for k, v in _added_since().items() if k not in present}
    if missing:
        separator = "" if not text or text.endswith("\n") else "\n"
        with env_file.open("a") as out:
            out.write(separator + "".join(f"{k}={v}\n" for k, v in missing.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m dibao_common.devsecrets ENV_FILE\n")
        return 2
    create(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
