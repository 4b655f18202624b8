"""Mints a development bearer token for a local instance (``make token``).

Claims: ``sub``, ``roles``, ``regions`` (division-code prefixes), ``iss``, ``aud``,
``iat``, ``exp``, ``jti``, with the header's ``typ`` ``at+jwt`` (RFC 9068), for at most
the services' longest lifetime. Signed with the instance's Ed25519 development key (EdDSA).
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import jwt

from dibao_common.auth import (
    ACCESS_TOKEN_TYPE,
    SUBJECT_MAX_LENGTH,
    AuthSettings,
    Role,
    is_region_prefix,
    is_subject,
)

MAX_LIFETIME_S: int = AuthSettings.model_fields["jwt_max_lifetime_s"].default
"""The services' default longest token lifetime (``DIBAO_JWT_MAX_LIFETIME_S``)."""


def mint(
    signing_key_pem: bytes,
    *,
    subject: str,
    roles: list[str],
    regions: list[str],
    issuer: str,
    audience: str,
    ttl_s: int = 8 * 3600,
    now: float | None = None,
) -> str:
    """A token the services take: an access token (``typ`` ``at+jwt``) living ``ttl_s``
    seconds, at most :data:`MAX_LIFETIME_S` (a longer one they would refuse)."""
    if not 0 < ttl_s <= MAX_LIFETIME_S:
        raise ValueError(f"a token lives 1 to {MAX_LIFETIME_S} seconds, not {ttl_s}")
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": subject,
        "roles": roles,
        "regions": regions,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(
        claims, signing_key_pem, algorithm="EdDSA", headers={"typ": ACCESS_TOKEN_TYPE}
    )


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--env", type=Path, required=True)
    parser.add_argument("--role", action="append", required=True)
    parser.add_argument("--region", action="append", required=True)
    parser.add_argument("--subject", default="dev-user")
    args = parser.parse_args()
    roles = [r for role in args.role for r in role.split(",")]
    regions = [r for region in args.region for r in region.split(",")]
    # A token the services would refuse (401) or that grants nothing (403) is refused here,
    # saying why, rather than printed.
    known = [r.value for r in Role]
    for role in roles:
        if role not in known:
            parser.error(f"unknown role {role!r}: one of {', '.join(known)}")
    for region in regions:
        if not is_region_prefix(region):
            parser.error(
                f"region {region!r} is no division code down to a level: 2 (province),"
                " 4 (city), 6 (county), 9 (township) or 12 (village) digits, e.g. 620123,"
                " no level's part all zeros (a township is 620123101, not 620123101000)"
            )
    if not args.subject.strip():
        parser.error("the subject is empty")
    if not is_subject(args.subject):
        parser.error(
            f"the subject has more than {SUBJECT_MAX_LENGTH} characters, a control character"
            " or a direction embedding, override or isolate"
        )
    env = _read_env(args.env)
    token = mint(
        args.key.read_bytes(),
        subject=args.subject,
        roles=roles,
        regions=regions,
        issuer=env["DIBAO_JWT_ISSUER"],
        audience=env["DIBAO_JWT_AUDIENCE"],
    )
    print(token)  # noqa: T201 - the token is the command's output


if __name__ == "__main__":
    main()
