"""Async engine, session factory and the declarative base with stable constraint names."""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import Engine, MetaData, event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from dibao_common.db.outage import is_lost_connection

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """A fresh MetaData for one service's tables, with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 0,
    echo: bool = False,
    pre_ping: bool = True,
    pool_recycle: int = -1,
    application_name: str = "dibao",
    server_settings: Mapping[str, str] | None = None,
) -> AsyncEngine:
    """An asyncpg engine; timestamps are UTC on every connection.

    ``pre_ping`` checks each connection with a round trip as it is checked out (it also
    finds a connection a network partition left open); without it, connections the
    server closed are still refused at checkout (:func:`refuse_closed_connections`).
    The pool is fixed at ``pool_size`` connections: size it for the process's real
    concurrency. ``max_overflow`` allows that many more under a burst, but SQLAlchemy
    closes each of them as soon as it is returned, so a busy process keeps opening them:
    a backend forked, authenticated and introspected, and every statement prepared again
    on it, just when the machine has least time for it (ADR 0014). ``server_settings``
    add to the session settings every connection starts with.

    A failed statement's parameters stay out of its exception's text (``hide_parameters``),
    and of ``echo``'s lines: SQLAlchemy would write them there, and an unexpected error is
    logged with its exception, so names, addresses and free text in clear would reach the
    log store (ADR 0005; the log's mask catches ID numbers only).
    """
    engine = create_async_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=pool_recycle,
        echo=echo,
        connect_args={
            "server_settings": {
                "timezone": "UTC",
                "application_name": application_name,
                **(server_settings or {}),
            }
        },
    )
    refuse_closed_connections(engine)
    return engine


def refuse_closed_connections(engine: AsyncEngine) -> None:
    """Hand out no pooled connection the server has closed (a restart, a failover, a
    terminated backend): the driver notices the closed socket on its own, and checking
    that costs no round trip. The hot statements go straight to asyncpg
    (:func:`driver_connection`), past SQLAlchemy's disconnect handling, so without this a
    dead connection would go back to the pool and fail every request or event that drew
    it; refused at checkout, it is replaced (SQLAlchemy's pessimistic disconnect
    handling).

    And keep the pool's connections at hand for :func:`connection_lost`, which recycles
    them all when a statement on the direct path lost its connection.
    """

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if isinstance(driver, asyncpg.Connection) and driver.is_closed():
            raise exc.DisconnectionError("the server closed this connection")

    pooled = _POOLED.setdefault(engine.sync_engine, weakref.WeakSet())

    def connect(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        pooled.add(record)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "connect", connect)


_POOLED: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[ConnectionPoolEntry]] = (
    weakref.WeakKeyDictionary()
)
"""Each engine's pool entries (:func:`refuse_closed_connections`), for
:func:`connection_lost`: SQLAlchemy's pool does not list them."""


def connection_lost(
    engine: Engine, connection: PoolProxiedConnection, error: BaseException
) -> None:
    """``connection``, of ``engine``'s pool, was lost under a statement sent straight to
    the driver (:func:`is_lost_connection`): it is recycled at its next checkout, and so
    is every other connection of the pool opened before now, for the same restart,
    failover or shutdown most likely ended them too. One request meets the loss, not one
    per pooled connection.

    That is what SQLAlchemy does when a statement of its own meets a disconnect
    (``Connection._handle_dbapi_exception``: the pool's ``_invalidate`` dates the
    invalidation, and each connection opened before it is recycled at its checkout), done
    through its public interface: each entry of the pool invalidated softly
    (``ConnectionPoolEntry.invalidate(soft=True)``: recycled at its next checkout, the
    one in use when it is returned and drawn again). ``Pool._invalidate`` is private, and
    the public way to reach it, ``InvalidatePoolError`` from a checkout, dates it only at
    the next checkout, after closing that checkout's connection: an await, during which
    the burst's next requests are handed the other ended connections (2 of 8 refused
    instead of 1, ``test_connection_ended_while_idle.py``). Here nothing awaits: no other
    request is handed a connection in between (ADR 0022, 3 Dec 2026)."""
    if connection.is_valid:
        connection.invalidate(error, soft=True)
    for record in list(_POOLED.get(engine, ())):
        record.invalidate(error, soft=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_PINNED = "dibao.db.driver"


@asynccontextmanager
async def driver_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session of one pooled connection that never BEGINs: each statement sent with
    :func:`driver_connection` commits on its own. For requests whose writes go as one
    statement (``dibao_common.db.held``, ADR 0013).

    The session has no bind: its connection is the driver's, checked out of ``engine``'s
    pool (with the pool's checkout guards) and pinned in ``session.info``, without
    SQLAlchemy's connection and transaction objects (about a tenth of such a request's
    CPU). A statement sent through SQLAlchemy itself fails ("no bind"), so no write can
    slip past the held ones that way.
    """
    raw = await engine.raw_connection()
    try:
        yield AsyncSession(info={_PINNED: raw.driver_connection})
    except BaseException as error:
        if is_lost_connection(error):
            connection_lost(engine.sync_engine, raw, error)
        raise
    finally:
        # Back to the pool: its reset on return may await the driver, in a greenlet.
        await greenlet_spawn(raw.close)


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction: for
    the hot statements of the kit and the services, which skip SQLAlchemy's statement
    compilation and result wrapping (a tenth of a millisecond or more each). Use it
    between the session's own statements, never concurrently with them.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, at the first statement it executes
    itself: a statement sent straight to the driver before that would run on its own,
    outside the transaction. So the transaction is begun here when it has not been.
    """
    pinned = session.info.get(_PINNED)
    if pinned is not None:
        return cast(asyncpg.Connection, pinned)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    if not driver.is_in_transaction():
        adapter = raw.dbapi_connection
        start = getattr(adapter, "_start_transaction", None)
        if start is None:
            raise RuntimeError("SQLAlchemy's asyncpg adapter lacks _start_transaction")
        try:
            await start()
        except Exception as error:
            # The first statement a checked-out connection sends here (a restart ended it
            # while it sat in the pool): the pool's other connections are recycled too.
            if is_lost_connection(error):
                connection_lost(connection.sync_engine, raw, error)
            raise
        autocommit = getattr(adapter, "isolation_level", None) == "autocommit"
        if not driver.is_in_transaction() and not autocommit:
            raise RuntimeError("the session's transaction did not begin")
    return driver


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class DriverStatement:
    """SQL written with ``:name`` parameters, as in SQLAlchemy's ``text()``, run straight
    on asyncpg (``$1``, ``$2``, ...) with :func:`driver_connection`.

        READ = DriverStatement("SELECT * FROM household WHERE id = :id")
        row = await READ.fetchrow(await driver_connection(session), {"id": household_id})

    Values go to asyncpg as they are: the types must be asyncpg's own (``uuid.UUID``,
    ``datetime``, lists for arrays, ``str`` for json and jsonb).
    """

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.sql = _NAMED.sub(number, sql)
        self.names = tuple(names)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]

    async def execute(self, driver: asyncpg.Connection, params: Mapping[str, Any]) -> str:
        return await driver.execute(self.sql, *self.args(params))

    async def fetchrow(
        self, driver: asyncpg.Connection, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        return await driver.fetchrow(self.sql, *self.args(params))

    async def fetch(
        self, driver: asyncpg.Connection, params: Mapping[str, Any]
    ) -> list[asyncpg.Record]:
        return await driver.fetch(self.sql, *self.args(params))
