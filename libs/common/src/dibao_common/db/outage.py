"""Whether an error means the database is out of reach, not that the work was wrong.

One classifier for every place that must tell them apart: the HTTP layer answers an
outage 503 ``database-unavailable`` with ``Retry-After`` (``dibao_common.errors``), the
consumer retries it without limit instead of dead-lettering the event
(``dibao_common.messaging.consumer``). A bug, a broken constraint, a statement timeout or
any other error the server answers about the statement itself is not an outage.

An outage is, anywhere in the error's chain (``__cause__``, ``__context__`` unless
suppressed, SQLAlchemy's ``orig``; every error of an exception group):

- a socket that could not connect or was cut: ``ConnectionError`` (refused, reset,
  aborted, broken pipe), ``TimeoutError`` (asyncpg's connect timeout), a name that does
  not resolve, an ``OSError`` of a network errno, or asyncio's "Multiple exceptions"
  of a connect that every address of the host refused; and a Unix socket that is not
  there (``host=/var/run/postgresql``: a stopped server removes its socket file), the
  ``FileNotFoundError`` a connect to it raises, told by the loop's
  ``create_unix_connection`` it came from. Not any ``OSError``: a file the service reads
  is no database;
- asyncpg's connection errors: ``PostgresConnectionError`` (SQLSTATE class 08,
  ``ConnectionDoesNotExistError`` and ``ConnectionFailureError`` among them), and the
  driver refusing a connection it knows is closed (its ``InterfaceError`` "connection
  is closed"; other ``InterfaceError``\\s are misuse);
- asyncpg refusing a statement on a connection the server ended while it sat idle
  (``InternalClientError`` "cannot switch to state N; another operation (2) is in
  progress"). A shutdown, a restart or ``pg_terminate_backend`` ends an idle backend
  with a FATAL message (57P01) and then closes its socket; asyncpg cannot process a
  message outside an operation of its own and leaves the protocol in its
  error-consuming state (2), and only when it reads the socket's end, a turn or more of
  the event loop later, does ``is_closed()`` say so. A statement begun in between (the
  connection passed the pool's checkout check) is refused so, and asyncpg aborts the
  connection. Two tasks using one connection at once is refused earlier, by an
  ``InterfaceError`` "another operation is in progress", and stays a bug;
- the server going away or not yet back: SQLSTATE 57P01 admin shutdown, 57P02 crash
  shutdown, 57P03 cannot connect now (starting up, shutting down, in recovery), and 53300
  too many connections;
- SQLAlchemy saying so: a ``DBAPIError`` whose connection was invalidated (its
  disconnect detection), a ``DisconnectionError``, and its pool's ``TimeoutError``: no
  connection became free in the pool's timeout, which under a fixed pool (ADR 0014) is
  what connections hung on an unreachable server cause. A client retrying later is
  right then too.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc

OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
"""SQLSTATEs outside class 08 that mean the server is going, starting or full."""

_ENDED_WHILE_IDLE = "another operation (2) is in progress"
"""asyncpg's refusal of an operation while its protocol is in state 2 (error-consuming)
with no operation of its own: the state an unsolicited server message leaves it in."""

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
    }
)


def _network_error(exc: OSError) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | socket.herror):
        return True
    if exc.errno in _NETWORK_ERRNOS:
        return True
    # asyncio's connect when every address of the host failed (their errnos in the text).
    return exc.errno is None and str(exc).startswith("Multiple exceptions: ")


def _unix_socket_missing(exc: OSError) -> bool:
    """ENOENT raised by a connect to a Unix socket: the server's socket file is gone (the
    server stopped, or not yet started; a wrong directory looks the same, as a wrong port
    does over TCP). A socket file left by a crashed server refuses instead
    (``ConnectionRefusedError``). The error carries no file name, so where it was raised
    tells it from a file the service reads: the event loop's ``create_unix_connection``
    (asyncio's and uvloop's alike name their frame so) is on its traceback."""
    if exc.errno != errno.ENOENT:
        return False
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "create_unix_connection":
            return True
        frame = frame.tb_next
    return False


def _is_outage_itself(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, OSError):
        return _network_error(exc) or _unix_socket_missing(exc)
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError,
    ):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
        return sqlstate.startswith("08") or sqlstate in OUTAGE_SQLSTATES
    # The driver refusing a connection it knows is closed (asyncpg raises its generic
    # InterfaceError for that, and for misuse, which is not an outage).
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    # The driver refusing a statement on a connection the server ended while it was idle:
    # the server's FATAL read, its close not yet (see the module's docstring).
    return isinstance(exc, asyncpg.InternalClientError) and _ENDED_WHILE_IDLE in str(exc)


LOST_SQLSTATES = frozenset({"08000", "08003", "08006", "08007", "57P01", "57P02"})
"""SQLSTATEs of an established connection ended by the server or the network: a
connection exception, connection does not exist, connection failure, transaction
resolution unknown (lost during its COMMIT), admin shutdown, crash shutdown. Not the
refusals of a connect (08001, 08004, 57P03 cannot connect now, 53300 too many
connections), nor 08P01 (a protocol violation: this connection's fault, not the
server's going)."""


def _is_lost_itself(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return True  # a socket cut while in use (refused, timed out: a connect's)
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOTCONN, errno.ENETRESET)
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError | asyncpg.ConnectionFailureError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
        return sqlstate in LOST_SQLSTATES
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    return isinstance(exc, asyncpg.InternalClientError) and _ENDED_WHILE_IDLE in str(exc)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``orig``, ``__cause__``, unsuppressed ``__context__``."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            pending.append(orig)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            pending.append(current.__context__)


def is_lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says that an established connection was ended
    under its statement by the server or the network: a restart, a failover, a
    terminated backend, a cut socket. Then the pool's other connections, opened before,
    are likely ended too (``dibao_common.db.engine``: the direct path recycles them, as
    SQLAlchemy's disconnect handling does). Each such error is an outage
    (:func:`is_database_outage`); the outages of a connect are not lost connections: a
    refused or timed-out connect, a name or Unix socket not found, 57P03 cannot connect
    now, 53300 too many connections, the pool's timeout, a connection the pool's checkout
    refused (``DisconnectionError``). Nor is an error SQLAlchemy itself has met as a
    disconnect (a ``DBAPIError`` whose connection it invalidated): its pool is
    invalidated already. An exception group is one when each of its errors is."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_lost_connection(e) for e in exc.exceptions)
    found = False
    for current in _chain(exc):
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return False
        if isinstance(current, BaseExceptionGroup):
            return all(is_lost_connection(e) for e in current.exceptions)
        found = found or _is_lost_itself(current)
    return found


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) means the database cannot be reached now."""
    for current in _chain(exc):
        if isinstance(current, BaseExceptionGroup):
            # A task group's: an outage only if every one of its errors is.
            return all(is_database_outage(e) for e in current.exceptions)
        if _is_outage_itself(current):
            return True
    return False
