"""A request the database cannot serve answers 503 ``database-unavailable``, not 500.

Everything is real: the suite's PostgreSQL, a kit-built app, the kit's idempotency.
The database goes away in four ways: the request's backend is terminated in the middle
of its transaction (as a restart or failover does: SQLSTATE 57P01), the engine points at
a port nothing listens on (refused), the pool has no connection free in its timeout, and
the server behind a Unix socket (``?host=/var/run/postgresql``) is stopped: a cluster of
the test's own (``deploy/pg.sh``), its socket file gone. Each answer is a 503 problem
with ``Retry-After``, logged as one warning line without a traceback, and nothing of the
request is written: its Idempotency-Key is free for the retry. An error of the statement
itself stays a 500 with its traceback. The consumer, by the same classifier, retries an
event the stopped server could not take without counting it an attempt.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.responses import Response

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common import loop, observability
from dibao_common.app import build_app
from dibao_common.db import is_database_outage, make_engine, make_sessionmaker
from dibao_common.errors import PROBLEM_MEDIA_TYPE, RETRY_AFTER_OUTAGE_S, problem_responses
from dibao_common.http_schema import idempotency_record
from dibao_common.idempotency import Idempotent
from dibao_common.messaging.consumer import ConsumerRunner, is_infrastructure_error
from dibao_common.messaging.envelope import Envelope, EventRegistry
from dibao_common.messaging.outbox import build_envelope
from dibao_common.messaging.schema import inbox_message
from dibao_common.settings import CommonSettings
from dibao_common.testing.kafka_fixtures import TopicFactory, eventually, read_records
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import REPO_ROOT, TestStack, api_client

pytestmark = [pytest.mark.postgres]

SCHEMA = "kit_outage_test"  # written out in the statements (no SQL built from strings)
APPLICATION_NAME = "kit-outage-test"
UNAVAILABLE = "https://dibao.gov.cn/problems/database-unavailable"

LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The real logging pipeline (DEBUG) into a buffer; a reader of its JSON lines."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging("DEBUG", service_name="outage-test", stream=stream, force=True)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root = logging.getLogger()
    if observability._handler is not None:
        root.removeHandler(observability._handler)
    observability._configured, observability._handler = previous
    if previous[1] is not None:
        root.addHandler(previous[1])


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with make_sessionmaker(request.app.state.engine)() as session, session.begin():
        yield session


router = APIRouter()


@router.post("/entries", status_code=201, responses=problem_responses(400, 409, 422, 503))
async def create_entries(
    request: Request,
    idempotency: Idempotent,
    session: AsyncSession = Depends(_session, scope="function"),  # noqa: B008
) -> Response:
    """Two rows in the request's transaction, a pause between them (``app.state.gate``)."""

    async def handle() -> Response:
        insert = sa.text("INSERT INTO kit_outage_test.entry (key, part) VALUES (:k, :p)")
        await session.execute(insert, {"k": idempotency.key, "p": 1})
        request.app.state.between.set()
        gate: asyncio.Event | None = request.app.state.gate
        if gate is not None:
            await gate.wait()
        await session.execute(insert, {"k": idempotency.key, "p": 2})
        return JSONResponse({"key": idempotency.key}, status_code=201)

    return await idempotency.respond(session, handle)


@router.post("/broken", status_code=201)
async def broken(session: AsyncSession = Depends(_session, scope="function")) -> None:  # noqa: B008
    """A statement the server refuses (NOT NULL): a bug, not an outage."""
    await session.execute(
        sa.text("INSERT INTO kit_outage_test.entry (key, part) VALUES ('b', NULL)")
    )


def _app(stack: TestStack, engine: AsyncEngine) -> FastAPI:
    settings = CommonSettings(
        service_name="kit-outage",
        database_url=stack.database_url("intake"),
        kafka_bootstrap="127.0.0.1:1",  # never dialled
        **common_secret_values(),
    )
    app = build_app(
        settings, title="outage", description="test app", routers=[router], engine=engine
    )
    app.state.gate = None
    app.state.between = asyncio.Event()
    return app


@pytest.fixture
async def admin(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    """The test's own engine on the intake database, with the table of the entries."""
    engine = make_engine(stack.database_url("intake"), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.execute(
            sa.text(f"CREATE TABLE {SCHEMA}.entry (key text NOT NULL, part int NOT NULL)")
        )
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            await conn.execute(sa.text("DELETE FROM idempotency_record WHERE key LIKE 'outage-%'"))
        await engine.dispose()


async def _written(admin: AsyncEngine, key: str) -> tuple[int, int]:
    """The entries of ``key``, and the idempotency records of it (stored answers)."""
    async with admin.connect() as conn:
        entries = await conn.scalar(
            sa.text("SELECT count(*) FROM kit_outage_test.entry WHERE key = :k"), {"k": key}
        )
        records = await conn.scalar(
            sa.text("SELECT count(*) FROM idempotency_record WHERE key = :k"), {"k": key}
        )
    return int(entries or 0), int(records or 0)


def _assert_unavailable(response: Any, lines: list[dict[str, Any]]) -> None:
    """503 ``database-unavailable`` with Retry-After; one warning line, no traceback."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["retry-after"] == str(RETRY_AFTER_OUTAGE_S)
    body = response.json()
    assert body["type"] == UNAVAILABLE
    assert body["status"] == 503
    assert body["instance"] == "/entries"
    warnings = [line for line in lines if line["event"] == "database unavailable"]
    assert len(warnings) == 1, lines
    [warning] = warnings
    assert warning["level"] == "warning"
    assert warning["path"] == "/entries"
    assert "exception" not in warning
    assert warning["error"]  # what failed, for the operator
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert "Traceback" not in json.dumps(lines)


async def test_a_request_whose_backend_is_terminated_mid_transaction_answers_503_and_frees_its_key(
    stack: TestStack, admin: AsyncEngine, log_lines: LogLines
) -> None:
    engine = make_engine(
        stack.database_url("intake"), pool_size=2, application_name=APPLICATION_NAME
    )
    app = _app(stack, engine)
    key = f"outage-{uuid.uuid4()}"
    headers = {"Idempotency-Key": key}
    try:
        async with api_client(app) as client:
            app.state.gate = asyncio.Event()
            first = asyncio.create_task(client.post("/entries", headers=headers, json={}))
            await asyncio.wait_for(app.state.between.wait(), 10)
            # The first row and the key's claim are in the open transaction: the server
            # goes away under it (what a restart does to every backend, SQLSTATE 57P01).
            async with admin.connect() as conn:
                terminated = await conn.scalar(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = :a AND state = 'idle in transaction'"
                    ),
                    {"a": APPLICATION_NAME},
                )
            assert terminated == 1
            app.state.gate.set()
            response = await asyncio.wait_for(first, 10)
            _assert_unavailable(response, log_lines())
            # Nothing half-written: neither the first row nor the claim of the key.
            assert await _written(admin, key) == (0, 0)

            # The retry with the same key is served, once; the next one is its replay.
            app.state.gate = None
            retried = await client.post("/entries", headers=headers, json={})
            assert retried.status_code == 201, retried.text
            assert await _written(admin, key) == (2, 1)
            replayed = await client.post("/entries", headers=headers, json={})
            assert replayed.status_code == 201
            assert replayed.headers["idempotent-replayed"] == "true"
            assert await _written(admin, key) == (2, 1)
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_request_to_a_database_that_refuses_connections_answers_503(
    stack: TestStack, admin: AsyncEngine, log_lines: LogLines
) -> None:
    url = sa.make_url(stack.database_url("intake")).set(host="127.0.0.1", port=_closed_port())
    engine = make_engine(url.render_as_string(hide_password=False), pool_size=1)
    app = _app(stack, engine)
    key = f"outage-{uuid.uuid4()}"
    try:
        async with api_client(app) as client:
            response = await client.post("/entries", headers={"Idempotency-Key": key}, json={})
        _assert_unavailable(response, log_lines())
        assert await _written(admin, key) == (0, 0)
    finally:
        await engine.dispose()


async def test_a_request_finding_no_pooled_connection_in_time_answers_503(
    stack: TestStack, admin: AsyncEngine, log_lines: LogLines
) -> None:
    """A fixed pool (ADR 0014) whose connections are all held, as connections hung on an
    unreachable server hold them: the pool's timeout is an outage too."""
    engine = create_async_engine(
        stack.database_url("intake"), pool_size=1, max_overflow=0, pool_timeout=0.5
    )
    app = _app(stack, engine)
    held_key, key = f"outage-{uuid.uuid4()}", f"outage-{uuid.uuid4()}"
    try:
        async with api_client(app) as client:
            app.state.gate = asyncio.Event()
            holder = asyncio.create_task(
                client.post("/entries", headers={"Idempotency-Key": held_key}, json={})
            )
            await asyncio.wait_for(app.state.between.wait(), 10)
            response = await client.post("/entries", headers={"Idempotency-Key": key}, json={})
            app.state.gate.set()
            assert (await asyncio.wait_for(holder, 10)).status_code == 201
        _assert_unavailable(response, log_lines())
        assert await _written(admin, key) == (0, 0)
        assert await _written(admin, held_key) == (2, 1)
    finally:
        await engine.dispose()


async def test_a_statement_the_server_refuses_stays_a_500_with_its_traceback(
    stack: TestStack, admin: AsyncEngine, log_lines: LogLines
) -> None:
    engine = make_engine(stack.database_url("intake"), pool_size=1)
    app = _app(stack, engine)
    try:
        async with api_client(app) as client:
            response = await client.post("/broken")
    finally:
        await engine.dispose()
    assert response.status_code == 500, response.text
    assert response.json()["type"].endswith("/internal-error")
    assert "retry-after" not in response.headers
    lines = log_lines()
    assert [line for line in lines if line["event"] == "database unavailable"] == []
    [logged] = [line for line in lines if line["event"] == "unhandled exception"]
    assert "NotNullViolationError" in logged["exception"]


async def test_the_consumer_and_the_http_layer_classify_real_errors_alike(
    stack: TestStack,
) -> None:
    """The one classifier, on errors the real server and driver raise (and a few the
    driver raises by SQLSTATE that a test cannot make the server send at will)."""
    dsn = stack.pg_admin_dsn
    refused_port = _closed_port()
    real: list[tuple[BaseException, bool]] = []
    try:
        await asyncpg.connect(dsn.replace(f":{sa.make_url(dsn).port}/", f":{refused_port}/"))
    except OSError as exc:
        real.append((exc, True))  # refused
    conn = await asyncpg.connect(dsn)
    try:
        for sql in ("SELECT 1/0", "SELECT pg_sleep(1)", "SELECT * FROM no_such_table"):
            try:
                if "sleep" in sql:
                    await conn.execute("SET statement_timeout = 10")
                await conn.execute(sql)
            except asyncpg.PostgresError as exc:
                real.append((exc, False))  # the statement's own fault, a timeout too
            await conn.execute("RESET statement_timeout")
    finally:
        await conn.close()
    try:
        await conn.execute("SELECT 1")
    except asyncpg.InterfaceError as exc:
        real.append((exc, True))  # "connection is closed"
    made: list[tuple[BaseException, bool]] = [
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.CrashShutdownError("terminating connection"), True),
        (asyncpg.ConnectionFailureError("connection failure"), True),
        (asyncpg.TooManyConnectionsError("too many clients"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.InterfaceError("another operation is in progress"), False),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (PermissionError(13, "Permission denied"), False),  # a file, not the database
        (FileNotFoundError(2, "No such file"), False),
        (ExceptionGroup("tasks", [ConnectionResetError(), ConnectionRefusedError()]), True),
        (ExceptionGroup("tasks", [ConnectionResetError(), ValueError("bug")]), False),
        (RuntimeError("bug"), False),
    ]
    assert len(real) == 5
    for error, outage in [*real, *made]:
        wrapped = RuntimeError("handler failed")
        wrapped.__cause__ = error
        for candidate in (error, wrapped):
            assert is_database_outage(candidate) is outage, repr(candidate)
            assert is_infrastructure_error(candidate) is outage, repr(candidate)


# -- a server on a Unix socket, stopped ------------------------------------------------------

PG_SH = REPO_ROOT / "deploy" / "pg.sh"
SOCKET_DB = "dibao_socket_outage"
# Above the suite's port: instances' ports differ by less than 100, and the chaos test's
# own cluster takes +1,000.
SOCKET_PORT_OFFSET = 1_100
_SOCKET_TABLES = (
    "CREATE SCHEMA kit_outage_test",
    "CREATE TABLE kit_outage_test.entry (key text NOT NULL, part int NOT NULL)",
    "CREATE TABLE socket_applied (consumer text NOT NULL, ce_id uuid NOT NULL)",
)


@dataclass(frozen=True)
class SocketPostgres:
    """A PostgreSQL cluster of the test's own (``deploy/pg.sh``), reached by its Unix
    socket, as a bureau's server often is (``host=/var/run/postgresql``)."""

    env: dict[str, str]
    port: int
    socket_dir: Path
    admin_url: str
    """Over TCP, for the test's own checks: it must not depend on the socket's handling."""

    def pg_sh(self, command: str) -> str:
        done = subprocess.run(
            ["bash", str(PG_SH), command],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return done.stdout.strip()

    async def stop(self) -> None:
        """The server stopped (``pg_ctl stop -m fast``): it removes its socket file."""
        await asyncio.to_thread(self.pg_sh, "stop")

    async def start(self) -> None:
        await asyncio.to_thread(self.pg_sh, "start")

    @property
    def socket_url(self) -> str:
        """The service's URL: no host, the socket's directory as libpq's ``host``."""
        url = sa.URL.create(
            "postgresql+asyncpg",
            username="dibao",
            database=SOCKET_DB,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )
        return url.render_as_string(hide_password=False)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def socket_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SocketPostgres]:
    """A cluster of the test's own with a database of the entries' and inbox's tables;
    running at the end of each test (a test that stops it starts it again)."""
    state = tmp_path_factory.mktemp("pg-socket")
    suite = urlsplit(os.environ["DIBAO_TEST_PG_DSN"]).port or 15430
    port = suite + SOCKET_PORT_OFFSET
    # An instance of its own (state, lock, port): never an operator's server nor the suite's.
    dropped = ("DIBAO_PG_URL", "DIBAO_PGDATA_ROOT", "DIBAO_LOCKED_STATE", "DIBAO_STATE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in dropped} | {
        "DIBAO_INSTANCE": f"{os.environ.get('DIBAO_INSTANCE', 'test')}-socket-pg",
        "DIBAO_STATE_DIR": str(state),
        "DIBAO_PG_PORT": str(port),
        "DIBAO_KAFKA_PORT": "0",  # pg.sh needs them set for an instance of another name
        "DIBAO_SVC_PORT_BASE": "0",
    }
    starter = SocketPostgres(env, port, Path(), "")
    try:
        await starter.start()
        dsn = await asyncio.to_thread(starter.pg_sh, "dsn")
        # pg.sh links the cluster's root, its unix_socket_directories, from the state.
        socket_dir = (state / "pg-root").resolve()
        assert (socket_dir / f".s.PGSQL.{port}").is_socket()
        admin_url = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        await _create_socket_db(dsn)
        yield SocketPostgres(env, port, socket_dir, f"{admin_url}/{SOCKET_DB}")
    finally:
        await asyncio.to_thread(starter.pg_sh, "remove")


def _create_kit_tables(connection: sa.Connection) -> None:
    idempotency_record.create(connection)
    inbox_message.create(connection)


async def _create_socket_db(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{SOCKET_DB}"')
    finally:
        await conn.close()
    url = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = make_engine(f"{url}/{SOCKET_DB}", pool_size=1)
    try:
        async with engine.begin() as db:
            await db.run_sync(_create_kit_tables)
            for statement in _SOCKET_TABLES:
                await db.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def socket_admin(socket_postgres: SocketPostgres) -> AsyncIterator[AsyncEngine]:
    """The test's own engine on the socket database, over TCP."""
    engine = make_engine(socket_postgres.admin_url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_request_to_a_stopped_server_on_a_unix_socket_answers_503_and_writes_nothing(
    stack: TestStack,
    socket_postgres: SocketPostgres,
    socket_admin: AsyncEngine,
    log_lines: LogLines,
) -> None:
    """The socket file is gone with the server: the driver's connect raises
    FileNotFoundError (ENOENT), no ``ConnectionRefusedError``. It is an outage as a
    refused TCP port is: 503 with Retry-After, then served once the server is back."""
    engine = make_engine(socket_postgres.socket_url, pool_size=1)
    app = _app(stack, engine)
    served, key = f"outage-{uuid.uuid4()}", f"outage-{uuid.uuid4()}"
    try:
        async with api_client(app) as client:
            # The URL is right: the server answers on its socket while it runs.
            first = await client.post("/entries", headers={"Idempotency-Key": served}, json={})
            assert first.status_code == 201, first.text
            await socket_postgres.stop()
            try:
                response = await client.post("/entries", headers={"Idempotency-Key": key}, json={})
                lines = log_lines()
            finally:
                await socket_postgres.start()
            _assert_unavailable(response, lines)
            assert await _written(socket_admin, key) == (0, 0)
            # The retry with the same key is served once the server is back.
            retried = await client.post("/entries", headers={"Idempotency-Key": key}, json={})
            assert retried.status_code == 201, retried.text
            assert await _written(socket_admin, key) == (2, 1)
    finally:
        await engine.dispose()


async def test_the_classifier_tells_a_stopped_servers_socket_from_a_missing_file(
    socket_postgres: SocketPostgres, tmp_path: Path
) -> None:
    """ENOENT from a connect to the server's socket is an outage; ENOENT from a file a
    service reads stays a bug (500; for the consumer, an attempt against the event)."""

    async def connect() -> OSError | None:
        try:
            conn = await asyncpg.connect(
                host=str(socket_postgres.socket_dir),
                port=socket_postgres.port,
                user="dibao",
                database=SOCKET_DB,
            )
        except OSError as exc:
            return exc
        await conn.close()
        return None

    await socket_postgres.stop()
    try:
        # On this loop (asyncio's) and on the services' (uvloop, as uvicorn runs them).
        socket_gone = [await connect(), await asyncio.to_thread(loop.run, connect())]
    finally:
        await socket_postgres.start()
    file_gone: OSError | None = None
    try:
        (tmp_path / "no-such-file").read_bytes()
    except OSError as exc:
        file_gone = exc
    assert [type(e) for e in [*socket_gone, file_gone]] == [FileNotFoundError] * 3
    cases = [(error, True) for error in socket_gone] + [(file_gone, False)]
    for error, outage in cases:
        assert error is not None
        wrapped = RuntimeError("handler failed")
        wrapped.__cause__ = error
        for candidate in (error, wrapped):
            assert is_database_outage(candidate) is outage, repr(candidate)
            assert is_infrastructure_error(candidate) is outage, repr(candidate)


@pytest.mark.kafka
async def test_a_consumer_retries_an_event_while_its_server_on_a_unix_socket_is_stopped(
    stack: TestStack,
    socket_postgres: SocketPostgres,
    socket_admin: AsyncEngine,
    kafka_topics: TopicFactory,
    log_lines: LogLines,
) -> None:
    """The consumer's handling of the same outage: retried without counting an attempt,
    never dead-lettered, applied once when the server is back."""
    topic = await kafka_topics(partitions=1)
    dlq = await kafka_topics(partitions=1)
    name = f"socket-outage-{uuid.uuid4().hex[:8]}"

    async def handle(session: AsyncSession, envelope: Envelope, _message: Message) -> None:
        await session.execute(
            sa.text("INSERT INTO socket_applied (consumer, ce_id) VALUES (:c, :id)"),
            {"c": name, "id": envelope.ce_id},
        )

    async def applied() -> list[uuid.UUID]:
        async with socket_admin.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT ce_id FROM socket_applied WHERE consumer = :c"), {"c": name}
            )
            return [row.ce_id for row in rows]

    def outage_retries() -> int:
        return sum(line["event"] == "database unavailable, event retried" for line in log_lines())

    engine = make_engine(socket_postgres.socket_url, pool_size=2)
    runner = ConsumerRunner(
        name,
        [topic],
        handle,
        make_sessionmaker(engine),
        stack.kafka_bootstrap,
        registry=EventRegistry([ApplicationAccepted]),
        dlq_topic=dlq,
        max_attempts=2,  # an error counted against the event dead-letters it at once
        backoff_s=0.02,
        backoff_max_s=0.2,
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    events = [
        build_envelope(
            ApplicationAccepted(household_id="h", application_id=str(n)), key="h", source="test"
        )
        for n in range(2)
    ]
    stopped = False
    await producer.start()
    await runner.start()
    try:

        async def send(envelope: Envelope) -> None:
            await producer.send_and_wait(
                topic, envelope.payload, key=b"h", headers=envelope.to_headers()
            )

        async def applied_are(expected: list[uuid.UUID]) -> bool:
            return await applied() == expected

        # The URL is right: the first event is applied over the socket.
        await send(events[0])
        await eventually(lambda: applied_are([events[0].ce_id]), what="the first event")
        await socket_postgres.stop()
        stopped = True
        await send(events[1])

        async def retried_or_dead_lettered() -> bool:
            return outage_retries() >= 3 or bool(await read_records(stack, dlq))

        await eventually(retried_or_dead_lettered, what="the event to be retried")
        dead_lettered = len(await read_records(stack, dlq))
        await socket_postgres.start()
        stopped = False
        assert dead_lettered == 0, "the outage was counted against the event"
        await eventually(
            lambda: applied_are([e.ce_id for e in events]), what="the event after the restart"
        )
    finally:
        if stopped:
            await socket_postgres.start()
        await runner.stop()
        await producer.stop()
        await engine.dispose()
    assert (dead_lettered, len(await read_records(stack, dlq))) == (0, 0)
