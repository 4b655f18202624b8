"""The auditor API under generated requests (schemathesis, dibao_common.testing.fuzz): no
5xx, every answer as the OpenAPI declares it, every error problem+json, and the log as it
was (the API only reads).

The app runs on a real uvicorn over a fresh audit database holding 32 entries of two
households in two regions, with signed checkpoints; half the valid indexes, tree sizes and
household ids generated become ones the log holds (by their hash: the same half every
run), so that requests reach past the 404s. The token is an auditor's of both regions.
Derandomized and bounded: the same requests every run.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import schemathesis
import sqlalchemy as sa
from schemathesis.core.parameters import ParameterLocation

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.main import create_app
from dibao_audit.testing import AuditDb, api_settings, recorded_event
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.fuzz import AnyCase, Served, fuzz, served, timed

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXAMPLES = 20
"""Generated requests per operation and mode (positive, negative): about 330 in all."""

ENTRIES = 32
HOUSEHOLDS = {"hh-a": "620102001001", "hh-b": "110101001001"}


def _withdrawn(i: int) -> intake_pb2.ApplicationWithdrawn:
    household, region = list(HOUSEHOLDS.items())[i % 2]
    return intake_pb2.ApplicationWithdrawn(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        application_id=f"app-{household}-{i}",
    )


@dataclass
class Fuzzed:
    served: Served
    auditor: dict[str, str]
    sizes: list[int]
    """The tree sizes of the log's checkpoints."""


@pytest_asyncio.fixture(loop_scope="session")
async def fuzzed(audit_db: AuditDb, token_factory: TokenFactory) -> AsyncIterator[Fuzzed]:
    """The app on a real uvicorn over ``audit_db``, holding the entries and checkpoints."""
    settings = api_settings(audit_db, audit_checkpoint_every=8)
    auditor = token_factory.bearer(roles=["auditor"], regions=["62", "11"], subject="fuzz")
    events = [
        recorded_event(_withdrawn(i), offset=i, key=f"k{i % 2}", actor=f"clerk-{i % 3}")
        for i in range(ENTRIES)
    ]
    with served(lambda: create_app(settings, auth=make_auth_settings())) as app:
        for lo in range(0, ENTRIES, 8):
            app.run(app.app.state.audit.appender.append(events[lo : lo + 8]))
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            listed = await http.get("/audit/checkpoints", headers=auditor)
        sizes = sorted(c["tree_size"] for c in listed.json()["items"])
        assert sizes == [8, 16, 24, 32]
        yield Fuzzed(app, auditor, sizes)


async def test_generated_requests_get_declared_answers(fuzzed: Fuzzed, audit_db: AuditDb) -> None:
    sizes = fuzzed.sizes
    known: dict[str, Callable[[Any], Any]] = {
        "household_id": lambda v: list(HOUSEHOLDS)[zlib.crc32(str(v).encode()) % 4 // 2],
        "index": lambda v: int(v) % ENTRIES,
        "tree_size": lambda v: sizes[int(v) % len(sizes)],
    }

    def prepare(case: AnyCase) -> None:
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
            return
        for name, value in (case.path_parameters or {}).items():
            if name in known and zlib.crc32(str(value).encode()) % 2 == 0:
                case.path_parameters[name] = known[name](value)

    schema = schemathesis.openapi.from_dict(fuzzed.served.app.openapi())
    findings, seconds = timed(
        lambda: fuzz(
            schema,
            fuzzed.served.base_url,
            headers_for=lambda method, path: fuzzed.auditor,
            examples=EXAMPLES,
            prepare=prepare,
        )
    )
    print(f"audit: {findings.summary(seconds)}")  # noqa: T201
    assert not findings.failures, findings.report()
    assert any(400 <= s < 500 for s in findings.by_status)
    assert findings.by_status.get(200, 0) >= EXAMPLES
    async with audit_db.owner.connect() as conn:
        logged = (await conn.execute(sa.text("SELECT count(*) FROM log_entry"))).scalar_one()
    assert logged == ENTRIES


NOT_DATE_TIMES = ("-9.193137571511118e-45", "1796122168", "2026-11-01", "2026-11-01T00:00:00")


async def test_a_time_bound_is_a_date_time_with_its_offset(fuzzed: Fuzzed) -> None:
    """Found by the test above: time_from=-9.19e-45 listed the entries (pydantic read the
    number as Unix seconds), though the OpenAPI declares a date-time. A number, a date
    alone and a time without offset are 422 at the parameter; RFC 3339 is read."""
    async with httpx.AsyncClient(base_url=fuzzed.served.base_url) as http:
        for name, bound in itertools.product(("time_from", "time_to"), NOT_DATE_TIMES):
            refused = await http.get("/audit/entries", params={name: bound}, headers=fuzzed.auditor)
            assert refused.status_code == 422, (name, bound, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            [error] = refused.json()["errors"]
            assert error["pointer"] == f"/query/{name}"
        read = await http.get(
            "/audit/entries",
            params={"time_from": "2026-10-31T00:00:00Z", "time_to": "2026-11-02T08:00:00+08:00"},
            headers=fuzzed.auditor,
        )
    assert read.status_code == 200, read.text
    assert len(read.json()["items"]) == ENTRIES
