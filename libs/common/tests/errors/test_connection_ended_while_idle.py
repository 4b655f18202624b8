"""A pooled connection whose server ended it while it sat idle answers 503, not 500.

A PostgreSQL shutdown (``pg_ctl stop -m fast``, a restart, a failover) or
``pg_terminate_backend`` ends each idle backend with a FATAL ``ErrorResponse`` (57P01)
and then closes its socket. asyncpg reads that message outside any operation of its
own: it fails to process it and leaves the connection's protocol in its
error-consuming state; only when the socket's end is read in a later turn of the event
loop does ``is_closed()`` say so. A request (or a consumer's event) that checks the
connection out in between passes the pool's check (``refuse_closed_connections``) and
has its first statement refused by the driver itself: ``InternalClientError: cannot
switch to state 11; another operation (2) is in progress``. On a statement sent
straight to asyncpg that was a 500 ``internal-error`` with a traceback: a submission's,
in one of eight runs of ``tests/chaos/test_intake_event_path.py``'s PostgreSQL restart
(the machine loaded), where every refused request must be a 503
``database-unavailable`` (ADR 0022).

Everything is real: the suite's PostgreSQL, asyncpg, the kit's pool and app. Between
them runs a TCP relay of the test's own that passes every byte both ways and, once the
server has closed its side, keeps the client's side open until the test lets it go: the
server's last message has arrived, its end not yet, which is the window a loaded event
loop leaves open for a few turns, held open here so that the test is deterministic.
Once the ends are read, a pool of several connections all ended is refilled at checkout:
a burst of twice its size is served whole (no relay needed there).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from dibao_common.db import (
    DriverStatement,
    driver_connection,
    driver_session,
    is_database_outage,
    is_lost_connection,
    make_engine,
    make_sessionmaker,
)
from dibao_common.errors import PROBLEM_MEDIA_TYPE, RETRY_AFTER_OUTAGE_S, problem_responses
from dibao_common.messaging.consumer import is_infrastructure_error
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack, api_client

pytestmark = [pytest.mark.postgres]

SCHEMA = "kit_idle_end_test"  # written out in the statements (no SQL built from strings)
UNAVAILABLE = "https://dibao.gov.cn/problems/database-unavailable"

LogLines = Callable[[], list[dict[str, Any]]]

TERMINATE = b"X\x00\x00\x00\x04"
"""The protocol's Terminate message: a client closing its connection."""


class LingeringRelay:
    """A TCP relay to the server that passes every byte both ways and, when the server
    closes its side, keeps the client's side open until :meth:`let_go`."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._let_go = asyncio.Event()
        self.server_ended = asyncio.Event()
        """Set when a server's side has ended and all it sent was passed on."""
        self.ends = 0
        """How many servers' sides have ended so far (each one's last message passed on)."""
        self.sent_after_end: list[bytes] = []
        """What clients sent after their server's side ended, other than a Terminate
        (their side is then closed at once): a statement from a driver that had not read
        the server's last message first."""

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def let_go(self) -> None:
        self._let_go.set()

    async def close(self) -> None:
        """Let every connection go; each ends as its server's side ends (the test's
        engines are disposed of first, so each server's side has ended or is ending)."""
        self._let_go.set()
        if self._server is not None:
            self._server.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for task in self._tasks:
            task.cancel()  # a relay the test left open: cut (it returns, never raises)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return

        ended = asyncio.Event()
        cut = asyncio.Event()

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await client_r.read(65536):
                    if ended.is_set():
                        # Nobody would answer: the client's side goes too, no hang. A
                        # Terminate is the driver closing (as it aborts the connection).
                        if data != TERMINATE:
                            self.sent_after_end.append(data[:32])
                        cut.set()
                        return
                    server_w.write(data)
                    await server_w.drain()

        pumping = asyncio.create_task(upstream())
        try:
            while data := await server_r.read(65536):
                client_w.write(data)
                await client_w.drain()
            ended.set()
            self.ends += 1
            self.server_ended.set()
            waits = [asyncio.create_task(e.wait()) for e in (self._let_go, cut)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
        except (asyncio.CancelledError, ConnectionError):
            pass  # cut by close(), or by the client: the relay's end either way
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            self._tasks.discard(task)


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The real logging pipeline (DEBUG) into a buffer; a reader of its JSON lines."""
    previous = (observability._configured, observability._handler)
    stream = io.StringIO()
    observability.configure_logging(
        "DEBUG", service_name="idle-end-test", stream=stream, force=True
    )
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root = logging.getLogger()
    if observability._handler is not None:
        root.removeHandler(observability._handler)
    observability._configured, observability._handler = previous
    if previous[1] is not None:
        root.addHandler(previous[1])


@pytest.fixture
async def admin(stack: TestStack) -> AsyncIterator[AsyncEngine]:
    """The test's own engine on the intake database (straight to the server), with the
    table of the rows."""
    engine = make_engine(stack.database_url("intake"), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.execute(sa.text(f"CREATE TABLE {SCHEMA}.entry (key text NOT NULL)"))
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await engine.dispose()


@pytest.fixture
async def relay(stack: TestStack) -> AsyncIterator[tuple[LingeringRelay, sa.URL]]:
    """The relay to the suite's server, and the intake database's URL through it."""
    url = sa.make_url(stack.database_url("intake"))
    lingering = LingeringRelay(url.host or "127.0.0.1", url.port or 5432)
    port = await lingering.start()
    try:
        yield lingering, url.set(host="127.0.0.1", port=port)
    finally:
        await lingering.close()


_INSERT = DriverStatement("INSERT INTO kit_idle_end_test.entry (key) VALUES (:key)")


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with make_sessionmaker(request.app.state.engine)() as session, session.begin():
        yield session


router = APIRouter()


@router.post("/driver/{key}", status_code=201, responses=problem_responses(503))
async def insert_on_the_driver(
    key: str,
    session: AsyncSession = Depends(_session, scope="function"),  # noqa: B008
) -> Response:
    """A row written straight on asyncpg, as the services' hot statements are."""
    await _INSERT.execute(await driver_connection(session), {"key": key})
    return JSONResponse({"key": key}, status_code=201)


async def _driver_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with driver_session(request.app.state.engine) as session:
        yield session


@router.post("/one-statement/{key}", status_code=201, responses=problem_responses(503))
async def insert_outside_a_transaction(
    key: str,
    session: AsyncSession = Depends(_driver_session, scope="function"),  # noqa: B008
) -> Response:
    """A row written straight on asyncpg outside any transaction, as a submission's one
    statement is (``driver_session``, ADR 0013)."""
    await _INSERT.execute(await driver_connection(session), {"key": key})
    return JSONResponse({"key": key}, status_code=201)


@router.post("/sqlalchemy/{key}", status_code=201, responses=problem_responses(503))
async def insert_through_sqlalchemy(
    key: str,
    session: AsyncSession = Depends(_session, scope="function"),  # noqa: B008
) -> Response:
    """A row written through SQLAlchemy's own execution."""
    await session.execute(
        sa.text("INSERT INTO kit_idle_end_test.entry (key) VALUES (:key)"), {"key": key}
    )
    return JSONResponse({"key": key}, status_code=201)


def _app(stack: TestStack, engine: AsyncEngine) -> FastAPI:
    settings = CommonSettings(
        service_name="kit-idle-end",
        database_url=stack.database_url("intake"),
        kafka_bootstrap="127.0.0.1:1",  # never dialled
        **common_secret_values(),
    )
    return build_app(
        settings, title="idle end", description="test app", routers=[router], engine=engine
    )


async def _keys(admin: AsyncEngine) -> list[str]:
    async with admin.connect() as conn:
        rows = await conn.execute(sa.text("SELECT key FROM kit_idle_end_test.entry ORDER BY key"))
        return [row.key for row in rows]


async def _end_backends(admin: AsyncEngine, application_name: str) -> int:
    """What a shutdown does to each idle backend (57P01), for one application's."""
    async with admin.connect() as conn:
        ended = await conn.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :a"
            ),
            {"a": application_name},
        )
    return int(ended or 0)


async def _server_message_read(relay: LingeringRelay) -> None:
    """The server's last message passed on and read by the driver; its end held back."""
    await asyncio.wait_for(relay.server_ended.wait(), 10)
    # The bytes are in the client's socket (loopback delivers them as they are sent): the
    # driver reads them on the loop's next turn. (Had it not, its statement would reach
    # the relay after the server's end: kept in ``sent_after_end``, which fails the test,
    # never passes it.)
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["driver", "sqlalchemy"])
async def test_a_request_on_a_connection_the_server_ended_while_idle_answers_503(
    stack: TestStack,
    admin: AsyncEngine,
    relay: tuple[LingeringRelay, sa.URL],
    log_lines: LogLines,
    path: str,
) -> None:
    lingering, url = relay
    application_name = f"kit-idle-end-{uuid.uuid4().hex[:8]}"
    # As intake's pool: no ping on checkout (ADR 0009), closed connections refused there.
    engine = make_engine(
        url.render_as_string(hide_password=False),
        pool_size=1,
        pre_ping=False,
        application_name=application_name,
    )
    app = _app(stack, engine)
    try:
        async with api_client(app) as client:
            first = await client.post(f"/{path}/a-before")
            assert first.status_code == 201, first.text
            # The pool's one connection is idle: the server ends it.
            assert await _end_backends(admin, application_name) == 1
            await _server_message_read(lingering)

            response = await asyncio.wait_for(client.post(f"/{path}/b-during"), 10)
            lines = log_lines()
            # The driver refused the statement itself: nothing went out after the end.
            assert lingering.sent_after_end == []
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert response.headers["retry-after"] == str(RETRY_AFTER_OUTAGE_S)
            assert response.json()["type"] == UNAVAILABLE
            warnings = [line for line in lines if line["event"] == "database unavailable"]
            assert [w["path"] for w in warnings] == [f"/{path}/b-during"], lines
            assert "another operation" in warnings[0]["error"]
            assert [line for line in lines if line["event"] == "unhandled exception"] == []
            assert await _keys(admin) == ["a-before"]

            # The socket's end arrives: the next request gets a new connection, served.
            lingering.let_go()
            after = await asyncio.wait_for(client.post(f"/{path}/c-after"), 10)
            assert after.status_code == 201, after.text
            assert await _keys(admin) == ["a-before", "c-after"]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("path", ["driver", "sqlalchemy"])
async def test_a_burst_after_the_server_ended_every_idle_pooled_connection_is_served(
    stack: TestStack, admin: AsyncEngine, log_lines: LogLines, path: str
) -> None:
    """A restart ends every idle backend of the pool at once. Once their ends are read
    (``is_closed()``), each checkout finds its connection closed and SQLAlchemy's pool
    opens a new one in its place, on the same pool entry (a closed one is not handed to
    another request). So a burst of twice the pool's size is served whole, on both paths,
    with nothing logged above INFO: no 503, and no ``InvalidRequestError`` 500 (the pool
    gives up only when the replacement it has just opened is closed as well, which no end
    of the server can do before the checkout's check, in the same turn of the loop). An
    earlier review feared that a second closed connection would be met; by experiment
    (3 Dec 2026: thousands of backends ended mid-burst, PostgreSQL stopped and started
    under load, on asyncio's loop and uvloop, both paths) it never was."""
    application_name = f"kit-idle-end-{uuid.uuid4().hex[:8]}"
    pool_size = 4
    engine = make_engine(
        stack.database_url("intake"),
        pool_size=pool_size,
        pre_ping=False,  # as intake's pool: the checkout's check alone (ADR 0009)
        application_name=application_name,
    )
    app = _app(stack, engine)
    try:
        async with api_client(app) as client:
            # The pool's connections all opened and returned: idle.
            filled = await asyncio.gather(
                *(client.post(f"/{path}/a-fill-{n}") for n in range(pool_size))
            )
            assert [r.status_code for r in filled] == [201] * pool_size
            assert await _end_backends(admin, application_name) == pool_size
            # Each end read (a loaded loop may take longer: the test above holds that
            # window open); the pool still holds the closed connections.
            await asyncio.sleep(0.5)

            burst = await asyncio.wait_for(
                asyncio.gather(*(client.post(f"/{path}/b-{n}") for n in range(2 * pool_size))),
                30,
            )
            assert [r.status_code for r in burst] == [201] * (2 * pool_size), [
                r.text for r in burst if r.status_code != 201
            ]
            lines = log_lines()
            assert [line for line in lines if line["level"] not in ("debug", "info")] == []
            keys = await _keys(admin)
            assert keys == sorted(
                [f"a-fill-{n}" for n in range(pool_size)] + [f"b-{n}" for n in range(2 * pool_size)]
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("path", ["driver", "one-statement", "sqlalchemy"])
async def test_a_burst_before_the_ends_of_every_ended_pooled_connection_arrive_meets_one_503(
    stack: TestStack,
    admin: AsyncEngine,
    relay: tuple[LingeringRelay, sa.URL],
    log_lines: LogLines,
    path: str,
) -> None:
    """A restart as a loaded client sees it: the server ends every idle backend of the
    pool, each one's FATAL is read, the socket ends are not yet (the relay holds them
    back), and a burst of twice the pool's size arrives. The first request's statement is
    refused by the driver (503); that lost connection says the server went away, so the
    pool's other connections, all older than the failure, are recycled at their next
    checkout instead of each failing a request of its own: one 503 on every path, as
    SQLAlchemy's own disconnect handling gives (its pool's invalidation on a disconnect).
    Before 3 Dec 2026 a statement sent straight to asyncpg, in a transaction (``driver``)
    or outside one (``one-statement``, the submission's path), left the pool as it was:
    one 503 per pooled connection, 4 of the 8."""
    lingering, url = relay
    application_name = f"kit-idle-end-{uuid.uuid4().hex[:8]}"
    pool_size = 4
    engine = make_engine(
        url.render_as_string(hide_password=False),
        pool_size=pool_size,
        pre_ping=False,  # as intake's pool: the checkout's check alone (ADR 0009)
        application_name=application_name,
    )
    opened = _opened(engine)
    app = _app(stack, engine)
    try:
        async with api_client(app) as client:
            filled = await asyncio.gather(
                *(client.post(f"/{path}/a-fill-{n}") for n in range(pool_size))
            )
            assert [r.status_code for r in filled] == [201] * pool_size
            assert len(opened) == pool_size
            assert await _end_backends(admin, application_name) == pool_size
            for _ in range(200):
                if lingering.ends == pool_size:
                    break
                await asyncio.sleep(0.05)
            assert lingering.ends == pool_size
            await _server_message_read(lingering)

            # Every pooled connection has read its FATAL and still looks open.
            assert [c.is_closed() for c in opened] == [False] * pool_size

            burst = await asyncio.wait_for(
                asyncio.gather(*(client.post(f"/{path}/b-{n}") for n in range(2 * pool_size))),
                30,
            )
            statuses = [r.status_code for r in burst]
            lines = log_lines()
            assert lingering.sent_after_end == []
            assert statuses.count(503) == 1, statuses
            assert statuses.count(201) == 2 * pool_size - 1, [
                r.text for r in burst if r.status_code not in (201, 503)
            ]
            (refused,) = [r for r in burst if r.status_code == 503]
            assert refused.json()["type"] == UNAVAILABLE
            assert refused.headers["retry-after"] == str(RETRY_AFTER_OUTAGE_S)
            warnings = [line for line in lines if line["level"] not in ("debug", "info")]
            assert [w["event"] for w in warnings] == ["database unavailable"], warnings
            # Each ended connection replaced once: four new backends, no more.
            assert len(opened) == 2 * pool_size
            served = [f"b-{n}" for n, r in enumerate(burst) if r.status_code == 201]
            assert await _keys(admin) == sorted([f"a-fill-{n}" for n in range(pool_size)] + served)
    finally:
        lingering.let_go()  # a connection still held closes at once
        await engine.dispose()


def _opened(engine: AsyncEngine) -> list[asyncpg.Connection]:
    """The driver connections ``engine``'s pool opens from now on, in order."""
    opened: list[asyncpg.Connection] = []

    def connect(dbapi_connection: Any, _record: Any) -> None:
        opened.append(dbapi_connection.driver_connection)

    sa.event.listen(engine.sync_engine.pool, "connect", connect)
    return opened


async def test_the_drivers_refusal_on_a_connection_the_server_ended_is_an_outage(
    stack: TestStack, admin: AsyncEngine, relay: tuple[LingeringRelay, sa.URL]
) -> None:
    """The real error, for the HTTP layer and the consumer alike (a consumer's event
    meeting it is retried without limit, never counted against the event)."""
    lingering, url = relay
    application_name = f"kit-idle-end-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
        server_settings={"application_name": application_name},
    )
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await _end_backends(admin, application_name) == 1
        await _server_message_read(lingering)
        assert not conn.is_closed()  # the pool's checkout cannot tell
        with pytest.raises(asyncpg.InternalClientError) as raised:
            await conn.fetchval("SELECT 1")
        assert lingering.sent_after_end == []
    finally:
        lingering.let_go()
        await conn.close(timeout=5)
    error = raised.value
    assert "another operation (2) is in progress" in str(error)
    wrapped = RuntimeError("handler failed")
    wrapped.__cause__ = error
    for candidate in (error, wrapped):
        assert is_database_outage(candidate), repr(candidate)
        assert is_infrastructure_error(candidate), repr(candidate)
        assert is_lost_connection(candidate), repr(candidate)
    # Only state 2 is the server's FATAL read: a protocol an operation cancelled midway
    # left in another state (here 11, a Parse never answered) is not taken for an
    # outage by this rule. (The consumer retries every InternalClientError by a rule of
    # its own, a connection left midway, so that is not asked of it here.)
    midway = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (11) is in progress"
    )
    assert not is_database_outage(midway)
    assert not is_lost_connection(midway)


async def test_a_lost_connection_is_one_the_server_ended_not_a_connect_refused(
    stack: TestStack, admin: AsyncEngine
) -> None:
    """The pool is recycled after an outage of an established connection (its statement
    met the server's end), never after a connect that failed (nothing was pooled from
    that server since), nor after what SQLAlchemy met itself (it has invalidated its pool
    already). Each lost connection is an outage (503); the connect's outages are not lost
    connections. Real errors where the test can make them, the driver's by SQLSTATE
    otherwise."""
    dsn = sa.make_url(stack.database_url("intake")).set(drivername="postgresql")
    real: list[tuple[BaseException, bool]] = []
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        # Its own backend ended under its statement, as a shutdown ends each (57P01):
        # asyncpg reads the FATAL and the end together.
        await conn.fetchval("SELECT pg_terminate_backend(pg_backend_pid())")
    except asyncpg.ConnectionDoesNotExistError as error:
        real.append((error, True))
    finally:
        await conn.close(timeout=5)
    try:
        await conn.fetchval("SELECT 1")
    except asyncpg.InterfaceError as error:
        real.append((error, True))  # "connection is closed"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = int(probe.getsockname()[1])
    try:
        await asyncpg.connect(dsn.set(port=closed_port).render_as_string(hide_password=False))
    except OSError as error:
        real.append((error, False))  # refused: a connect's
    engine = create_async_engine(
        stack.database_url("intake"), pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    try:
        async with engine.connect():
            with pytest.raises(sa.exc.TimeoutError) as timed_out:
                async with engine.connect():
                    pass
        real.append((timed_out.value, False))  # the pool's timeout: no connection lost
    finally:
        await engine.dispose()
    assert [type(e).__name__ for e, _ in real] == [
        "ConnectionDoesNotExistError",
        "InterfaceError",
        "ConnectionRefusedError",
        "TimeoutError",
    ]
    invalidated = sa.exc.DBAPIError("SELECT 1", None, ConnectionResetError(), False, True)
    assert invalidated.connection_invalidated
    made: list[tuple[BaseException, bool]] = [
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.ConnectionFailureError("connection failure"), True),
        (asyncpg.CrashShutdownError("terminating connection"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (BrokenPipeError(32, "Broken pipe"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), False),
        (asyncpg.TooManyConnectionsError("too many clients"), False),
        (asyncpg.ClientCannotConnectError("cannot connect"), False),  # 08001
        (asyncpg.ProtocolViolationError("protocol violation"), False),  # 08P01
        (TimeoutError(), False),  # a connect's timeout (asyncpg's) or a statement's
        (socket.gaierror(-2, "Name or service not known"), False),
        (sa.exc.DisconnectionError("the server closed this connection"), False),
        (invalidated, False),  # SQLAlchemy's own: its pool is invalidated already
        (ExceptionGroup("tasks", [ConnectionResetError(), BrokenPipeError()]), True),
        (ExceptionGroup("tasks", [ConnectionResetError(), ConnectionRefusedError()]), False),
    ]
    for met, lost in [*real, *made]:
        wrapped = RuntimeError("handler failed")
        wrapped.__cause__ = met
        for candidate in (met, wrapped):
            assert is_lost_connection(candidate) is lost, repr(candidate)
            assert is_database_outage(candidate), repr(candidate)  # all of them
