"""Intake's API under generated requests (schemathesis): no 5xx, every answer as declared
in the OpenAPI, every error problem+json, and a refused request writes nothing.

The app runs on a real uvicorn (dibao_common.testing.fuzz) over a database of its own,
where a household, its documents, an application and a staff member exist, so that
generated requests about them reach the handlers (half the generated ids are replaced by
theirs). Each operation gets a token of a role it serves: the clerk for intake's writes,
the policy administrator for the roster's, the auditor (who reads everything, within the
regions) for the reads. Derandomized and bounded: the same requests every run.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
import schemathesis
from schemathesis.core.parameters import ParameterLocation

from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.fuzz import AnyCase, Sent, Served, fuzz, served, timed
from dibao_intake.main import create_app
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import (
    ISSUED_ID_NUMBERS,
    RURAL_TOWNSHIP,
    TEST_NOW,
    IntakeClient,
    intake_database_of_its_own,
    intake_settings_for,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

EXAMPLES = 15
"""Generated requests per operation and mode (positive, negative): about 600 in all."""


@dataclass
class Fuzzed:
    served: Served
    database_url: str
    tokens: TokenFactory
    ids: dict[str, str]
    """A path parameter's name -> the id of a record of that kind that exists."""


@pytest_asyncio.fixture(loop_scope="session")
async def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fuzzed]:
    stack = await intake_database_of_its_own("fuzz")
    clock = FrozenClock(TEST_NOW)
    settings = intake_settings_for(stack, tmp_path_factory.mktemp("fuzz-documents"))
    tokens = TokenFactory().with_clock(clock.now)
    with served(lambda: create_app(settings, clock=clock)) as app:
        async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
            synthesizer = Synthesizer("fuzz", clock.today(), used=ISSUED_ID_NUMBERS)
            client = IntakeClient(http, tokens, synthesizer)
            household = await client.register()
            body = await client.complete_application_body(household)
            application = await client.submit(body, idempotency_key=str(uuid.uuid4()))
            assert application.status_code == 201, application.text
            staff = await http.post(
                f"/townships/{RURAL_TOWNSHIP}/staff",
                json={"name": "王建国", "role": "caseworker"},
                headers=client.headers(Role.POLICY_ADMIN, idempotency_key=str(uuid.uuid4())),
            )
            assert staff.status_code == 201, staff.text
            change = await client.change(household, {"kind": "birth", "member": client.newborn()})
            ids = {
                "household_id": household.id,
                "application_id": application.json()["id"],
                "document_id": body["document_ids"][0],
                "person_id": household.person_ids[0],
                "token_id": household.body["bank_account"]["token_id"],
                "staff_id": staff.json()["id"],
                "change_id": change["change_id"],
                "township_code": RURAL_TOWNSHIP,
                "code": RURAL_TOWNSHIP,
            }
        yield Fuzzed(app, settings.database_url, tokens, ids)


@pytest.fixture
def intake_schema(fuzzed: Fuzzed) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(fuzzed.served.app.openapi())


def _role(method: str, path: str) -> Role:
    if method == "get" or path == "/households/lookup":
        return Role.AUDITOR
    if "staff" in path:
        return Role.POLICY_ADMIN
    return Role.INTAKE_CLERK


def test_generated_requests_get_declared_answers(
    fuzzed: Fuzzed, intake_schema: schemathesis.BaseSchema
) -> None:
    engine = make_engine(fuzzed.database_url, pool_size=2)
    counts: dict[str, dict[str, int]] = {}

    def headers_for(method: str, path: str) -> Mapping[str, str]:
        return fuzzed.tokens.bearer(
            roles=[_role(method, path)], regions=["62"], subject="fuzz", expires_in=3600 * 12
        )

    def prepare(case: AnyCase) -> None:
        valid_path = case.meta is None or not case.meta.is_negative_at(ParameterLocation.PATH)
        for name, value in (case.path_parameters or {}).items():
            # Half the valid ids generated (by their hash: the same half every run) become
            # the id of a record that exists, so that the request reaches past the 404.
            if valid_path and name in fuzzed.ids and zlib.crc32(str(value).encode()) % 2 == 0:
                case.path_parameters[name] = fuzzed.ids[name]
        if case.method.upper() == "POST":
            counts["before"] = fuzzed.served.run(row_counts(engine))

    def after(sent: Sent) -> str | None:
        if sent.case.method.upper() != "POST" or sent.response.status_code < 400:
            return None
        now = fuzzed.served.run(row_counts(engine))
        written = {
            table: now[table] - n
            for table, n in counts["before"].items()
            if table != "outbox_message_ids_issued" and now[table] != n
        }
        return f"a refused request wrote rows: {written}" if written else None

    try:
        findings, seconds = timed(
            lambda: fuzz(
                intake_schema,
                fuzzed.served.base_url,
                headers_for=headers_for,
                examples=EXAMPLES,
                prepare=prepare,
                after=after,
            )
        )
    finally:
        fuzzed.served.run(engine.dispose())
    print(f"intake: {findings.summary(seconds)}")  # noqa: T201
    assert not findings.failures, findings.report()
    assert findings.examples >= 20 * 2 * EXAMPLES // 2
    assert any(400 <= s < 500 for s in findings.by_status)
    assert any(200 <= s < 300 for s in findings.by_status)
