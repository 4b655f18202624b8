"""Test support of the audit service: a fresh, migrated audit database per test.

Used by ``services/audit/tests`` and ``bench/audit_*.py``; never by the running service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
import uvicorn
from google.protobuf.message import Message
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao_audit.appender import LogAppender
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.db import make_runtime_engine, runtime_role
from dibao_audit.entry import RecordedEvent
from dibao_audit.settings import AuditSettings
from dibao_common.db import make_engine, make_sessionmaker
from dibao_common.messaging.envelope import Envelope, ce_type_of, topic_of
from dibao_common.observability import route_uvicorn_logs
from dibao_common.testing.kafka_fixtures import eventually
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack

TEST_SEED = hashlib.sha256(b"dibao audit test signing key").digest()
TEST_ORIGIN = "dibao.audit/test"
KEY_ID_TWINS = tuple(hashlib.sha256(b"key id collision %d" % n).digest() for n in (21410, 122703))
"""Two Ed25519 seeds whose keys, named ``TEST_ORIGIN``, have one C2SP key id (981f6a57):
found by a birthday search of 122,704 seeds (7 s). The key id is 4 bytes of a hash, so a
key of the same id as a given one takes about 2^32 tries: anyone can make one."""
_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class AuditDb:
    """One private audit database: the owner's engine and the runtime role's engine.

    ``runtime_url`` logs in as the runtime role itself (as the running service does,
    ``DIBAO_AUDIT_RUNTIME_DATABASE_URL``); ``url`` and ``dsn`` log in as the owner.
    """

    stack: TestStack
    url: str
    dsn: str
    owner: AsyncEngine
    runtime: AsyncEngine
    role: str
    runtime_url: str

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return make_sessionmaker(self.runtime)

    @contextmanager
    def statements_sent(self) -> Iterator[list[tuple[str, Any]]]:
        """Each statement the runtime engine sends while the block runs, with its
        parameters, as the driver gets them: to run one again under EXPLAIN."""
        sent: list[tuple[str, Any]] = []

        def capture(*args: Any) -> None:
            sent.append((args[2], args[3]))

        engine = self.runtime.sync_engine
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            yield sent
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)

    def appender(self, *, checkpoint_every: int = 1000) -> LogAppender:
        return LogAppender(
            self.sessions,
            CheckpointSigner(TEST_SEED, TEST_ORIGIN),
            checkpoint_every=checkpoint_every,
        )


async def make_audit_db(stack: TestStack, name: str, revision: str = "head") -> AuditDb:
    """A fresh audit database migrated to ``revision``."""
    private = TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_{name}")
    await private.recreate_database("audit")
    await private.migrate("audit", revision)
    url = private.database_url("audit")
    role = runtime_role(url)
    runtime_url = make_url(url).set(username=role, password=None).render_as_string()
    return AuditDb(
        stack=private,
        url=url,
        dsn=private.dsn("audit"),
        owner=make_engine(url, pool_size=4),
        runtime=make_runtime_engine(runtime_url, role, pool_size=8),
        role=role,
        runtime_url=runtime_url,
    )


async def published_anomalies(
    db: AuditDb,
) -> list[tuple[str, str | None, audit_pb2.AnomalyDetected]]:
    """The anomalies the log has put in its outbox, oldest first: (Kafka key, CloudEvents
    subject, message)."""
    async with db.owner.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT key, ce_subject, payload FROM outbox_message "
                "WHERE ce_type = 'dibao.audit.AnomalyDetected.v1' ORDER BY id"
            )
        )
        return [(r[0], r[1], audit_pb2.AnomalyDetected.FromString(bytes(r[2]))) for r in rows]


def api_settings(db: AuditDb, **overrides: Any) -> AuditSettings:
    """The service's settings over ``db`` for API tests: the test key and origin, no
    consumer, and no relay (the outbox keeps the access events for the test to read),
    unless ``overrides`` say otherwise."""
    return AuditSettings(
        database_url=db.url,
        audit_runtime_database_url=db.runtime_url,
        kafka_bootstrap=db.stack.kafka_bootstrap,
        **common_secret_values(),
        audit_signing_key=base64.b64encode(TEST_SEED).decode(),
        audit_log_origin=TEST_ORIGIN,
        **({"audit_consume": False, "audit_relay": False} | overrides),
    )


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a real loopback port (its lifespan left to the caller), for clients of
    their own such as ``verify_cli --url``: its base URL.

    Logging is left as ``uvicorn --factory`` leaves it: uvicorn's config installs its own
    plain-text handlers, then the app's factory configures the kit's, which take uvicorn's
    loggers over. Here the app is built first, so the config's handlers are taken over
    after it (``route_uvicorn_logs``): else an error uvicorn logs (an exception out of the
    app) is printed as plain text, the values a database error quotes in it, and so is
    every such line of the tests that run after in the same process."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    route_uvicorn_logs()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, timeout_s=10, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


def stack_from_env() -> TestStack:
    """The test stack `make test` started (only the audit database is needed here)."""
    dsn = os.environ.get("DIBAO_TEST_PG_DSN")
    bootstrap = os.environ.get("DIBAO_TEST_KAFKA_BOOTSTRAP")
    if not dsn or not bootstrap:
        pytest.fail("no test stack: run with `make test` / deploy/test.sh (DIBAO_TEST_PG_DSN)")
    return TestStack(dsn, bootstrap, os.environ.get("DIBAO_TEST_DB_PREFIX", "dibao_test"))


@pytest.fixture(scope="session")
def audit_stack() -> TestStack:
    return stack_from_env()


@pytest_asyncio.fixture(loop_scope="session")
async def audit_db(audit_stack: TestStack) -> AsyncIterator[AuditDb]:
    """A freshly migrated audit database of its own (the log starts empty)."""
    db = await make_audit_db(audit_stack, f"a{next(_numbers)}")
    try:
        yield db
    finally:
        await db.owner.dispose()
        await db.runtime.dispose()


def recorded_event(
    message: Message,
    *,
    offset: int,
    key: str,
    partition: int = 0,
    actor: str | None = None,
    at: datetime | None = None,
) -> RecordedEvent:
    """A record as a service's relay would have put ``message`` on its topic."""
    envelope = Envelope(
        ce_id=uuid.uuid4(),
        ce_type=ce_type_of(message),
        ce_source="dibao/test",
        ce_time=at or datetime(2026, 11, 1, tzinfo=UTC),
        ce_subject=None,
        key=key,
        payload=message.SerializeToString(),
        actor=actor,
    )
    return RecordedEvent(
        topic=topic_of(message),
        partition=partition,
        offset=offset,
        key=key.encode(),
        headers=tuple(envelope.to_headers()),
        payload=envelope.payload,
    )


async def as_superuser(db: AuditDb, *statements: str) -> None:
    """Edits only a superuser gets past the log's triggers with (replica mode): the DBA an
    attack test plays."""
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
