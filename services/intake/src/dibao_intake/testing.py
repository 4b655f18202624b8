"""Test support of the intake service: settings for the test stack, the app, a typed client.

Used by ``services/intake/tests`` and ``bench/intake_*.py``; never by the running service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as intake_events
from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.crypto import PiiSettings
from dibao_common.db import make_engine
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.outbox import build_envelope
from dibao_common.testing.auth_fixtures import TokenFactory, auth_settings_values
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake.domain.codes import AreaType, Sex
from dibao_intake.main import create_app
from dibao_intake.service_layer.timeline import entries_of
from dibao_intake.settings import IntakeSettings
from dibao_intake.synthetic import (
    PlannedHousehold,
    Synthesizer,
    application_payload,
    pdf_bytes,
    required_documents,
)

TEST_NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
"""The intake tests' frozen time: Monday 2 March 2026, 09:30 in China."""

URBAN_VILLAGE = "620102001001"  # 城关区酒泉路街道畅家巷社区
RURAL_VILLAGE = "620123101203"  # 榆中县夏官营镇夏官营村
RURAL_TOWNSHIP = "620123101000"
ISSUED_ID_NUMBERS: set[str] = set()
"""Every ID number the tests' synthesizers handed out in this process: one test's people
never clash with another's in the session's database."""


CLOUDEVENTS_HEADERS = frozenset(
    {
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "ce_subject",
        "content-type",
        "ce_actor",
        "ce_correlationid",
    }
)
"""The Kafka headers every event intake publishes carries (the CloudEvents binary mode)."""


def _b64_key(label: str) -> str:
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


def pii_settings_for_tests() -> PiiSettings:
    """Fixed, public personal-data keys that only tests use."""
    return PiiSettings(
        keys=f"k1:{_b64_key('dibao intake test pii key')}",
        active_key_id="k1",
        hash_key=_b64_key("dibao intake test hash key"),
    )


def intake_settings_for(stack: TestStack, document_dir: Path, **overrides: Any) -> IntakeSettings:
    """Intake's settings over ``stack``'s intake database. The timeline consumer's group is
    that database's (``timeline_group_for``): apps on one database share it, as one
    deployment's processes do; an app on a database of its own is another deployment on
    the same broker, which needs a group of its own (``intake_timeline_group``)."""
    values: dict[str, Any] = {
        "database_url": stack.database_url("intake"),
        "kafka_bootstrap": stack.kafka_bootstrap,
        "intake_timeline_group": timeline_group_for(stack),
        "environment": "test",
        "log_level": "WARNING",
        "pii": pii_settings_for_tests(),
        "intake_document_dir": document_dir,
        **auth_settings_values(),
        **common_secret_values(),
    }
    return IntakeSettings(**(values | overrides))


def timeline_group_for(stack: TestStack) -> str:
    """The timeline consumer group of the apps on ``stack``'s intake database.

    In ``intake.timeline``, the group of the package's app (``intake_app``), an app on a
    database of its own (the demo's, the fuzz run's) joined that app's group: the group
    rebalanced as it joined and left (in ``test_timeline_groups``, 3 Dec 2026, the joining
    app's consumer had no partition after 60 s), and the other app then held a share of the
    partitions: an event about an application of the shared database on its share was
    skipped there as unknown, its offset committed, and never reached the shared
    database's timeline (``test_timeline_groups``)."""
    return f"intake.timeline.{stack.database_name('intake')}"


@dataclass
class RegisteredHousehold:
    id: str
    plan: PlannedHousehold
    person_ids: list[str]
    body: dict[str, Any]


class IntakeClient:
    """The API as a clerk or another role uses it, with tokens minted for the test key."""

    def __init__(
        self, http: httpx.AsyncClient, tokens: TokenFactory, synthesizer: Synthesizer
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.synthesizer = synthesizer

    def headers(
        self,
        role: Role = Role.INTAKE_CLERK,
        regions: Sequence[str] = ("62",),
        *,
        subject: str = "test-clerk",
        idempotency_key: str | None = None,
    ) -> dict[str, str]:
        headers = self.tokens.bearer(roles=[role], regions=list(regions), subject=subject)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def plan(self, region_code: str = RURAL_VILLAGE, shape: str | None = None) -> PlannedHousehold:
        area = AreaType.RURAL if int(region_code[9:]) >= 200 else AreaType.URBAN
        return self.synthesizer.household(region_code, area, "测试地址1号", shape)

    async def register(
        self, plan: PlannedHousehold | None = None, *, with_account: bool = True
    ) -> RegisteredHousehold:
        plan = plan if plan is not None else self.plan()
        payload = plan.payload()
        if not with_account:
            del payload["bank_account"]
        response = await self.http.post(
            "/households", json=payload, headers=self.headers(regions=[plan.region_code])
        )
        assert response.status_code == 201, response.text
        body = response.json()
        by_masked = {
            m["id_number_masked"][-4:] + m["name"]: m["person_id"] for m in body["members"]
        }
        person_ids = [by_masked[m.id_number[-4:] + m.name] for m in plan.members]
        return RegisteredHousehold(body["id"], plan, person_ids, body)

    async def upload(
        self,
        household_id: str,
        document_type: str,
        person_id: str | None = None,
        *,
        content: bytes | None = None,
        media_type: str = "application/pdf",
        regions: Sequence[str] = ("62",),
        idempotency_key: str | None = None,
        subject: str = "test-clerk",
    ) -> httpx.Response:
        data = {"household_id": household_id, "document_type": document_type}
        if person_id is not None:
            data["person_id"] = person_id
        body = content if content is not None else pdf_bytes(f"{document_type} {uuid.uuid4()}")
        return await self.http.post(
            "/documents",
            data=data,
            files={"file": (f"{document_type}.pdf", body, media_type)},
            headers=self.headers(regions=regions, subject=subject, idempotency_key=idempotency_key),
        )

    async def documents_for(self, household: RegisteredHousehold) -> list[str]:
        """Upload every document a complete dibao application of the household needs."""
        ids = []
        for kind, index in required_documents(household.plan, self.synthesizer.today):
            person = household.person_ids[index] if index is not None else None
            response = await self.upload(household.id, kind, person)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids

    async def complete_application_body(self, household: RegisteredHousehold) -> dict[str, Any]:
        documents = await self.documents_for(household)
        return application_payload(household.id, household.person_ids, household.plan, documents)

    def newborn(self) -> dict[str, Any]:
        """A girl born 15 Jan 2026, the head's child, as a birth's ``member`` names her (her
        ID number drawn anew at each call)."""
        return {
            "name": "马小宝",
            "id_number": self.synthesizer.id_number(date(2026, 1, 15), Sex.FEMALE),
            "relationship": "child",
            "employment_status": "not_of_working_age",
        }

    async def change(self, household: RegisteredHousehold, body: dict[str, Any]) -> dict[str, Any]:
        """Record a change of ``household`` as its region's clerk; it must be accepted (201)."""
        response = await self.http.post(
            f"/households/{household.id}/changes", json=body, headers=self.headers()
        )
        assert response.status_code == 201, response.text
        out: dict[str, Any] = response.json()
        return out

    async def submit(
        self, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> httpx.Response:
        return await self.http.post(
            "/applications",
            json=body,
            headers=self.headers(idempotency_key=idempotency_key),
        )

    async def open_application(self, household: RegisteredHousehold, applicant: str) -> str:
        """Submit ``household``'s complete application with ``applicant`` applying; it must
        be accepted (201, status submitted). Its id."""
        body = await self.complete_application_body(household)
        response = await self.submit(body | {"applicant_person_id": applicant})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "submitted", response.json()["missing_items"]
        return str(response.json()["id"])

    async def read_application(self, application_id: str) -> dict[str, Any]:
        """GET /applications/{id} as the region's clerk; it must answer 200."""
        response = await self.http.get(f"/applications/{application_id}", headers=self.headers())
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def stack_from_env() -> TestStack:
    """The test stack `make test` started (DIBAO_TEST_PG_DSN, DIBAO_TEST_KAFKA_BOOTSTRAP)."""
    dsn = os.environ.get("DIBAO_TEST_PG_DSN")
    bootstrap = os.environ.get("DIBAO_TEST_KAFKA_BOOTSTRAP")
    if not dsn or not bootstrap:
        pytest.fail("no test stack: run with `make test` / deploy/test.sh (DIBAO_TEST_PG_DSN)")
    return TestStack(dsn, bootstrap, os.environ.get("DIBAO_TEST_DB_PREFIX", "dibao_test"))


async def intake_database_of_its_own(name: str, revision: str = "head") -> TestStack:
    """The test stack with an intake database for one module alone (``<prefix>_<name>``),
    recreated and migrated (to ``revision``): for tests that rewrite or scan a whole
    database (a key rotation, a check of the document store) or migrate it, which the
    session's shared one must not see."""
    shared = stack_from_env()
    stack = TestStack(shared.pg_admin_dsn, shared.kafka_bootstrap, f"{shared.db_prefix}_{name}")
    await stack.recreate_database("intake")
    await stack.migrate("intake", revision)
    return stack


# Rows written straight into a database at an older revision (the migration tests): the
# columns every revision since 0002 has, the others given by the caller.

MIGRATION_AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


async def insert_household(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """An active household of one person, its head: (household id, person id)."""
    household, person = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,
               birth_date, sex, created_at)
           VALUES ($1, $2, 'h1', '\\x00', 'm', '马建国', '1950-01-01', 'male', $3)""",
        person,
        f"hash-{person}",
        MIGRATION_AT,
    )
    await conn.execute(
        """INSERT INTO household (id, region_code, area_type, address, status, head_person_id,
               version, created_at, created_by, updated_at)
           VALUES ($1, $2, 'rural', 'a', 'active', $3, 1, $4, 'clerk-1', $4)""",
        household,
        RURAL_VILLAGE,
        person,
        MIGRATION_AT,
    )
    return household, person


async def insert_application(
    conn: asyncpg.Connection,
    household: tuple[uuid.UUID, uuid.UUID],
    kind: str,
    status: str,
    **columns: Any,
) -> uuid.UUID:
    """An application of ``household`` (its head the applicant), not flagged, with no
    missing items, submitted at MIGRATION_AT; ``columns`` sets any other column."""
    application = uuid.uuid4()
    values: dict[str, Any] = {
        "id": application,
        "household_id": household[0],
        "region_code": RURAL_VILLAGE,
        "kind": kind,
        "channel": "counter",
        "status": status,
        "applicant_person_id": household[1],
        "staff_related": False,
        "missing_items": "[]",
        "submitted_at": MIGRATION_AT,
        "submitted_by": "clerk-1",
    } | columns
    names = ", ".join(values)
    places = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(
        f"INSERT INTO application ({names}) VALUES ({places})",  # noqa: S608 - our names
        *values.values(),
    )
    return application


async def insert_own_entry(conn: asyncpg.Connection, message: Message) -> dict[str, Any]:
    """The timeline entry intake writes with one of its own events about an application,
    built as the service builds it (``timeline.entries_of``); its details."""
    envelope = build_envelope(message, key="h", source="dibao-intake", time=MIGRATION_AT)
    [(application, entry)] = entries_of([(envelope, message)])
    await conn.execute(
        """INSERT INTO timeline_entry (ce_id, application_id, ce_type, ce_source, occurred_at,
               actor, summary, details, recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $5)""",
        entry.ce_id,
        application,
        entry.ce_type,
        entry.ce_source,
        entry.occurred_at,
        entry.actor,
        entry.summary,
        json.dumps(entry.details),
    )
    return entry.details


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def intake_stack() -> TestStack:
    """The test stack with the intake database (only it) recreated and migrated to head.

    Only intake's: the tests of one service do not wait on every service's migrations.
    """
    found = stack_from_env()
    await found.recreate_database("intake")
    await found.migrate("intake")
    return found


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def intake_engine(intake_stack: TestStack) -> AsyncIterator[AsyncEngine]:
    """An engine on the intake test database, for checking what was (not) written;
    disposed when intake's tests end (``intake_app``)."""
    engine = make_engine(intake_stack.database_url("intake"), pool_size=4)
    yield engine
    await engine.dispose()


COUNTED_TABLES = (
    "person",
    "household",
    "household_member",
    "bank_account",
    "household_change",
    "document",
    "application",
    "application_income",
    "application_income_not_counted",
    "application_income_deduction",
    "application_asset",
    "application_document",
    "staff_member",
)


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per intake table, and how many outbox rows were ever written: equal before
    and after a refused request. (The relay deletes outbox rows once published, so the
    outbox is measured by its identity sequence, which only moves forward.)"""
    async with engine.connect() as conn:
        counts = {
            table: int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608 - fixed names
            for table in COUNTED_TABLES
        }
        sequence = await conn.execute(
            text(
                "SELECT coalesce(last_value, 0) FROM pg_sequences"
                " WHERE sequencename = 'outbox_message_id_seq'"
            )
        )
        counts["outbox_message_ids_issued"] = int(sequence.scalar_one() or 0)
        return counts


async def waiting_on_a_lock(engine: AsyncEngine) -> bool:
    """Whether a session of the test database waits on a lock (a row held by the test)."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting or 0) > 0


async def moves_in(
    intake: IntakeClient,
    household: RegisteredHousehold,
    member: dict[str, Any],
    moved_on: str = "2026-01-05",
) -> str:
    """The person id of ``member``, who moves in on ``moved_on``."""
    response = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    known = {m["person_id"] for m in response.json()["members"]}
    joined = await intake.change(
        household, {"kind": "move_in", "moved_on": moved_on, "member": member}
    )
    [person_id] = [
        m["person_id"] for m in joined["household"]["members"] if m["person_id"] not in known
    ]
    return str(person_id)


async def refused_change(
    intake: IntakeClient,
    engine: AsyncEngine,
    household: RegisteredHousehold,
    body: dict[str, Any],
    status: int = 422,
) -> dict[str, Any]:
    """The change ``body`` is refused (``status``) as problem+json and writes nothing:
    the problem."""
    before = await row_counts(engine)
    response = await intake.http.post(
        f"/households/{household.id}/changes", json=body, headers=intake.headers()
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await row_counts(engine) == before
    problem: dict[str, Any] = response.json()
    return problem


async def events(
    stack: TestStack, topic: str, *, subject: str | None = None, key: str | None = None
) -> list[Envelope]:
    """The envelopes on ``topic`` (optionally of one subject or key), in offset order."""
    found = []
    for record in await read_topic(stack.kafka_bootstrap, topic):
        envelope = Envelope.from_record(record)
        if subject is not None and envelope.ce_subject != subject:
            continue
        if key is not None and envelope.key != key:
            continue
        found.append(envelope)
    return found


async def wait_for_events(
    stack: TestStack,
    topic: str,
    count: int,
    *,
    subject: str | None = None,
    key: str | None = None,
    timeout_s: float = 20.0,
) -> list[Envelope]:
    """At least ``count`` matching envelopes (the relay publishes within a poll interval)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = await events(stack, topic, subject=subject, key=key)
        if len(found) >= count or loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def household_updated(
    stack: TestStack, change: dict[str, Any]
) -> intake_events.HouseholdUpdated:
    """The one HouseholdUpdated a change (its 201 body) published, decoded from the broker."""
    subject = change["change_id"]
    [published] = await wait_for_events(stack, "dibao.intake.v1", 1, subject=subject)
    message = EventRegistry.default().decode(published)
    assert isinstance(message, intake_events.HouseholdUpdated)
    return message


async def assert_closed_as_applicant_left(
    intake: IntakeClient, stack: TestStack, application_id: str, applicant: str, change: str
) -> None:
    """The application was closed by ``change`` (its timeline summary) because nobody who
    stays may apply: withdrawn, withdrawal_cause applicant_left, ``applicant`` still named,
    the change's entry then the withdrawal's in its timeline, ApplicationWithdrawn of cause
    APPLICANT_LEFT last on the broker (ADR 0016)."""
    closed = await intake.read_application(application_id)
    assert (closed["status"], closed["withdrawal_cause"], closed["applicant_person_id"]) == (
        "withdrawn",
        "applicant_left",
        applicant,
    )
    assert [e["summary"] for e in closed["timeline"][-2:]] == [change, "Application withdrawn"]
    assert closed["timeline"][-1]["details"] == {"cause": "applicant_left"}
    published = await wait_for_events(stack, "dibao.intake.v1", 3, subject=application_id)
    message = EventRegistry.default().decode(published[-1])
    assert isinstance(message, intake_events.ApplicationWithdrawn)
    assert message.cause == intake_events.WITHDRAWAL_CAUSE_APPLICANT_LEFT


async def assert_probe_refused_as_read(
    intake: IntakeClient,
    stack: TestStack,
    engine: AsyncEngine,
    before: dict[str, int],
    response: httpx.Response,
    *,
    household_id: str,
    prober: str,
    operation: str,
) -> None:
    """``response`` (another region's caller posting about ``household_id``) is refused
    as the household's GET is: the same 404 and detail, recorded DENIED for the
    household with no persons or fields, and nothing else written since ``before``."""
    assert response.status_code == 404, response.text
    after = await row_counts(engine)
    # The access record's outbox row, and nothing else.
    assert after == before | {"outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1}
    [refusal] = await access_records(stack, household_id, prober)
    assert (refusal.outcome, refusal.record_type, refusal.record_id) == (
        access.ACCESS_OUTCOME_DENIED,
        access.RECORD_TYPE_HOUSEHOLD,
        household_id,
    )
    assert refusal.operation == operation
    assert list(refusal.persons) == list(refusal.fields) == []
    read = await intake.http.get(
        f"/households/{household_id}", headers=intake.headers(regions=["620102"])
    )
    assert read.status_code == 404
    assert response.json()["detail"] == read.json()["detail"]


async def access_records(
    stack: TestStack, subject: str, reader: str, *, count: int = 1, timeout_s: float = 10.0
) -> list[access.PersonalDataAccessed]:
    """``reader``'s access records of ``subject`` (a record id, or a list's query), once
    there are ``count`` (the relay publishes them a poll apart), or the time is up: then
    fewer, none for tests that a read left none."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        decoded = [
            EventRegistry.default().decode(e)
            for e in await events(stack, "dibao.access.v1", subject=subject)
        ]
        mine = [
            r
            for r in decoded
            if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == reader
        ]
        if len(mine) >= count or asyncio.get_running_loop().time() > deadline:
            return mine
        await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def intake_clock() -> FrozenClock:
    return FrozenClock(TEST_NOW)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def intake_app(
    intake_stack: TestStack, intake_clock: FrozenClock, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    """One intake app for intake's tests: real database, relay and timeline consumer on
    Kafka.

    Package-scoped (``services/intake/tests`` is a package for this): it stops, relay and
    consumer awaited, when the last of intake's tests ends. Session-scoped, it ran on
    through the rest of the session: its relay retried 'database ... does not exist'
    while ``tests/infra`` dropped, recreated and downgraded intake's database (the kit's
    ``stack`` fixture, test_migrations), and its consumer stayed in group
    ``intake.timeline`` beside the services of ``tests/flows``. The kit's plugin fails a
    test that finds a relay or consumer of a fixture it cannot see
    (``dibao_common.testing.background_check``)."""
    settings = intake_settings_for(intake_stack, tmp_path_factory.mktemp("intake-documents"))
    app = create_app(settings, clock=intake_clock)
    yield app


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def intake_http(intake_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan (relay and timeline consumer) runs while this client is open."""
    async with api_client(intake_app) as http:
        yield http


@pytest.fixture
def intake(
    intake_http: httpx.AsyncClient, intake_clock: FrozenClock, request: pytest.FixtureRequest
) -> IntakeClient:
    """A client with tokens valid at the frozen time and a synthesizer seeded per test (a
    new seed each run): its households have their shape's members and no more (no baby of
    a young mother's, which only some draws would give), as tests unpack them by position,
    and declare no income in kind (which some draws would split into a second entry)."""
    tokens = TokenFactory().with_clock(intake_clock.now)
    synthesizer = Synthesizer(
        f"{request.node.nodeid}-{uuid.uuid4()}",
        intake_clock.today(),
        used=ISSUED_ID_NUMBERS,
        babies=False,
        in_kind=False,
    )
    return IntakeClient(intake_http, tokens, synthesizer)
