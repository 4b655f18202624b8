"""`make token` prints a token that a service of the same local instance accepts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dibao_common.auth import AuthSettings, Role, TokenVerifier
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
