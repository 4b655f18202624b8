"""A request the database cannot serve answers 503 ``database-unavailable``, not 500.

Everything is real: the suite's PostgreSQL, a kit-built app, the kit's idempotency.
The database goes away in three ways: the request's backend is terminated in the middle
of its transaction (as a restart or failover does: SQLSTATE 57P01), the engine points at
a port nothing listens on (refused), and the pool has no connection free in its timeout.
Each answer is a 503 problem with ``Retry-After``, logged as one warning line without a
traceback, and nothing of the request is written: its Idempotency-Key is free for the
retry. An error of the statement itself stays a 500 with its traceback.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.responses import Response

from dibao_common import observability
from dibao_common.app import build_app
from dibao_common.db import is_database_outage, make_engine, make_sessionmaker
from dibao_common.errors import PROBLEM_MEDIA_TYPE, RETRY_AFTER_OUTAGE_S, problem_responses
from dibao_common.idempotency import Idempotent
from dibao_common.messaging.consumer import is_infrastructure_error
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack, api_client

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
