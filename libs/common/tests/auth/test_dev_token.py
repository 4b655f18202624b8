"""`make token` prints a token that a service of the same local instance accepts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dibao_common.auth import AuthSettings, Role, TokenVerifier
from dibao_common.devtoken import mint
from dibao_common.testing.auth_fixtures import (
    TEST_JWT_AUDIENCE,
    TEST_JWT_ISSUER,
    TEST_SIGNING_KEY,
    make_auth_settings,
)
from dibao_common.testing.stack import REPO_ROOT, TestStack, api_client

from .conftest import auth_app


def _instance_state() -> Path:
    state = os.environ.get("DIBAO_TEST_STATE")
    if not state:
        pytest.fail("DIBAO_TEST_STATE is not set: run this through deploy/test.sh (make test)")
    return Path(state)


# The stack fixture: its `make test` run is what created the instance's secrets.
async def test_make_token_is_accepted_by_the_instance_settings(stack: TestStack) -> None:
    env_file = _instance_state() / "secrets.env"
    assert env_file.is_file(), "the stack did not create its development secrets"
    process = await asyncio.create_subprocess_exec(
        *("make", "--no-print-directory", "token"),
        *("ROLE=intake_clerk,investigator", "REGION=620102"),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    token = stdout.decode().strip().splitlines()[-1]

    # The same variables a service of this instance gets from stack.sh.
    settings = AuthSettings(_env_file=env_file)
    principal = await TokenVerifier(settings).verify(token)
    assert principal.subject == "dev-user"
    assert principal.roles == {Role.INTAKE_CLERK, Role.INVESTIGATOR}
    assert principal.regions == ("620102",)
    assert principal.token_id is not None

    async with api_client(auth_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/households/h-lanzhou", headers=headers)).status_code == 200
        assert (await client.get("/households/h-tianshui", headers=headers)).status_code == 404


async def _make_token(*variables: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *("make", "--no-print-directory", "token", *variables),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_make_token_names_the_subject_it_is_given(stack: TestStack) -> None:
    """Every token was dev-user's: a clerk and the caseworker the roster names (its
    subject) could not be told apart in the timeline and the audit log."""
    settings = AuthSettings(_env_file=_instance_state() / "secrets.env")
    code, stdout, stderr = await _make_token(
        "ROLE=investigator", "REGION=620123101", "SUBJECT=cw-620123101000"
    )
    assert code == 0, stderr
    principal = await TokenVerifier(settings).verify(stdout.strip().splitlines()[-1])
    assert (principal.subject, principal.regions) == ("cw-620123101000", ("620123101",))


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        (("ROLE=clerk", "REGION=620123"), "unknown role 'clerk': one of intake_clerk,"),
        (
            ("ROLE=intake_clerk", "REGION=62012"),
            "region '62012' is no division code down to a level",
        ),
        (("ROLE=intake_clerk", "REGION=620123,6201231"), "region '6201231'"),
        (("ROLE=intake_clerk", "REGION=620123101000"), "no level's part all zeros"),
        # 401 since 3 Dec 2026 (a subject shown reversed after the override in every record).
        (
            ("ROLE=intake_clerk", "REGION=620123", "SUBJECT=clerk\u202e7"),
            "a direction embedding, override or isolate",
        ),
    ],
)
async def test_make_token_refuses_a_token_the_services_would(
    stack: TestStack, variables: tuple[str, ...], said: str
) -> None:
    """A token with an unknown role (403 on every call: it grants nothing) or a region
    between levels (401 'regions must be a list of division-code prefixes') was printed
    as any other; the first call with it failed without saying what to change."""
    assert (_instance_state() / "secrets.env").is_file()
    code, stdout, stderr = await _make_token(*variables)
    assert code != 0
    assert said in stderr, stderr
    assert "eyJ" not in stdout


def _mint(ttl_s: int) -> str:
    pem = TEST_SIGNING_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return mint(
        pem,
        subject="dev-user",
        roles=["auditor"],
        regions=["62"],
        issuer=TEST_JWT_ISSUER,
        audience=TEST_JWT_AUDIENCE,
        ttl_s=ttl_s,
    )


async def test_a_minted_token_is_an_access_token_of_a_lifetime_the_services_take() -> None:
    """Since 3 Dec 2026 the services require typ at+jwt and at most 12 hours between iat
    and exp: what make token, the demo and the flow tests mint says so (it said typ JWT)."""
    token = _mint(12 * 3600)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    principal = await TokenVerifier(make_auth_settings()).verify(token)
    assert principal.roles == {Role.AUDITOR}
    for ttl_s in (12 * 3600 + 1, 0):
        with pytest.raises(ValueError, match="a token lives 1 to 43200 seconds"):
            _mint(ttl_s)
