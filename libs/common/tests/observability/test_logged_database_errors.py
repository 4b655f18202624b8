"""No log line carries the row a database error quotes (ADR 0005, 3 Dec 2026).

PostgreSQL's DETAIL (``Key (name)=(...) already exists``, ``Failing row contains (...)``)
and a data exception's message quote a row's values; asyncpg writes the DETAIL into its
exception's text, its argument errors quote the argument, and a logged traceback prints
every exception of the chain. Each case here makes the real server (or asyncpg) refuse a
fake resident's name and note, through a route of a kit-built app that nothing handles
(``UnexpectedErrorMiddleware`` logs it), through an exception group, as a field's value,
and as an uncaught exception: the log names the error (type, SQLSTATE, constraint, table)
and holds neither value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dibao_common.app import build_app
from dibao_common.db import DriverStatement, driver_connection, make_engine
from dibao_common.logged_errors import WITHHELD, describe_exception
from dibao_common.observability import get_logger
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack, api_client

from .conftest import LogLines

pytestmark = [pytest.mark.postgres]

NAME = "欧阳测试"
"""The resident already registered: a second one of this name breaks the unique key."""
OTHER_NAME = "慕容假名"
SECRET = "假病史"
NOTE = f"{SECRET}\nDETAIL:  forged line\nHINT:  forged hint\n[SQL: forged]"
"""Too long for the CHECK, and made to look like the lines after a DETAIL: a pattern that
stopped at the next line would let the rest of the row through."""
VALUES = (NAME, OTHER_NAME, SECRET, "forged")

_TABLE = """
CREATE TABLE resident (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT resident_name_key UNIQUE,
    note text NOT NULL CONSTRAINT resident_note_short CHECK (length(note) < 8)
)
"""

# What each refused write sends, and what the log must still name.
_WRITES: dict[str, tuple[str, dict[str, str]]] = {
    # Key (name)=(<NAME>) already exists.
    "unique": (
        "INSERT INTO resident (name, note) VALUES (:name, :note)",
        {"name": NAME, "note": "ok"},
    ),
    # Failing row contains (2, <OTHER_NAME>, <NOTE over four lines>).
    "check": (
        "INSERT INTO resident (name, note) VALUES (:name, :note)",
        {"name": OTHER_NAME, "note": NOTE},
    ),
    # The server's data exception: invalid input syntax for type integer: "<NAME>".
    "data": ("SELECT CAST(CAST(:name AS text) AS integer)", {"name": NAME}),
    # asyncpg's own: invalid input for query argument $1: '<NAME>' (...), from the codec's
    # error, which quotes it too.
    "argument": ("SELECT CAST(:name AS integer)", {"name": NAME}),
}
_NAMED: dict[str, tuple[str, ...]] = {
    "unique": ("UniqueViolationError", "SQLSTATE 23505", "constraint resident_name_key"),
    "check": (
        "CheckViolationError",
        "SQLSTATE 23514",
        "table public.resident",
        "constraint resident_note_short",
    ),
    "data": ("InvalidTextRepresentationError", "SQLSTATE 22P02", "invalid input syntax"),
    "argument": ("DataError", "invalid input for query argument $1"),
}


@pytest_asyncio.fixture(scope="module")
async def residents_url(stack: TestStack) -> AsyncIterator[str]:
    """SQLAlchemy URL of a scratch database holding one resident, ``NAME``."""
    name = f"{stack.db_prefix}_logged_errors"
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = stack.database_url("intake").rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text(_TABLE))
        await conn.execute(
            text("INSERT INTO resident (name, note) VALUES (:name, 'ok')"), {"name": NAME}
        )
    await engine.dispose()
    yield url
    admin = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _write(engine: AsyncEngine, what: str, how: str) -> None:
    """The refused write: through SQLAlchemy, or straight on asyncpg as the hot paths do."""
    sql, params = _WRITES[what]
    if how == "sqlalchemy":
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
        return
    async with AsyncSession(engine) as session, session.begin():
        await DriverStatement(sql).execute(await driver_connection(session), params)


router = APIRouter()


@router.post("/residents/{what}/{how}")
async def register(request: Request, what: str, how: str) -> None:
    engine: AsyncEngine = request.app.state.engine
    if how == "taskgroup":  # an exception group around SQLAlchemy's error
        async with asyncio.TaskGroup() as group:
            group.create_task(_write(engine, what, "sqlalchemy"))
        return
    await _write(engine, what, how)


def _app(url: str) -> FastAPI:
    settings = CommonSettings(
        service_name="kit-logged-errors",
        database_url=url,
        kafka_bootstrap="127.0.0.1:1",  # never dialled
        **common_secret_values(),
    )
    return build_app(settings, title="logged errors", description="test app", routers=[router])


def _unseen(lines: list[dict[str, Any]]) -> list[str]:
    """The refused values found anywhere in the lines (decoded: JSON escapes them)."""
    logged = json.dumps(lines, ensure_ascii=False)
    return [value for value in VALUES if value in logged]


async def _count(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM resident"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("what", "how"),
    [
        ("unique", "sqlalchemy"),
        ("unique", "driver"),
        ("unique", "taskgroup"),
        ("check", "sqlalchemy"),
        ("check", "driver"),
        ("data", "sqlalchemy"),
        ("data", "driver"),
        ("argument", "sqlalchemy"),
        ("argument", "driver"),
    ],
)
async def test_an_unexpected_database_error_is_logged_without_the_values_it_quotes(
    residents_url: str, log_lines: LogLines, what: str, how: str
) -> None:
    async with api_client(_app(residents_url)) as client:
        response = await client.post(f"/residents/{what}/{how}")
    assert response.status_code == 500, response.text
    assert response.json()["type"].endswith("/internal-error")
    assert NAME not in response.text
    assert await _count(residents_url) == 1  # nothing written
    lines = log_lines()
    [logged] = [line for line in lines if line["event"] == "unhandled exception"]
    exception = logged["exception"]
    assert _unseen(lines) == [], exception
    # What an operator needs: the traceback's frames, the error's type and its names.
    assert "Traceback (most recent call last):" in exception
    assert "in _write" in exception
    for named in _NAMED[what]:
        assert named in exception, (named, exception)
    if how == "taskgroup":
        assert "ExceptionGroup" in exception


async def test_an_error_given_as_a_value_or_its_text_is_logged_without_its_detail(
    residents_url: str, log_lines: LogLines
) -> None:
    """A worker loop's ``error=exc`` or ``error=str(exc)`` (the audit consumer's) holds
    the DETAIL too: the exception is written as a traceback shows it, a text loses
    everything from its DETAIL line on. Another library's logger (uvicorn's, asyncio's)
    logging one with ``exc_info`` goes through the same renderer."""
    engine = make_engine(residents_url, pool_size=1)
    caught: list[BaseException] = []
    try:
        for what, how in (("check", "driver"), ("unique", "sqlalchemy")):
            try:
                await _write(engine, what, how)
            except (asyncpg.PostgresError, IntegrityError) as exc:
                caught.append(exc)
    finally:
        await engine.dispose()
    driver_error, wrapped = caught
    assert isinstance(driver_error, asyncpg.CheckViolationError)
    assert OTHER_NAME in str(driver_error)  # what asyncpg's text holds
    log = get_logger("dibao.test.worker")
    log.warning("handler failed", error=driver_error, cause=wrapped)
    log.warning("handler failed", error=str(driver_error), errors=[repr(str(driver_error))])
    # As uvicorn logs an exception the app let through: a foreign record with exc_info.
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=wrapped)
    # Only this test's lines: a consumer an earlier test left running in the session may
    # log too (aiokafka's DEBUG lines).
    lines = log_lines()
    assert _unseen(lines) == []
    as_value, as_text = [line for line in lines if line.get("logger") == "dibao.test.worker"]
    [foreign] = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert foreign["logger"] == "uvicorn.error"
    assert "sqlalchemy.exc.IntegrityError: " in foreign["exception"]
    assert "asyncpg.exceptions.UniqueViolationError: " in foreign["exception"]
    assert "SQLSTATE 23505, table public.resident" in foreign["exception"]
    assert as_value["error"].startswith(
        'CheckViolationError: new row for relation "resident" violates check constraint'
    )
    assert "constraint resident_note_short" in as_value["error"]
    assert "resident_name_key" in as_value["cause"]
    assert as_text["error"].startswith('new row for relation "resident" violates check')
    assert "DETAIL" in as_text["errors"][0]  # cut there, named as withheld


def test_an_uncaught_database_error_is_printed_without_its_detail(
    residents_url: str,
) -> None:
    """A process's own last resort: Python prints an uncaught exception to stderr, which
    is the service's log; once logging is configured, as a logged one is written."""
    dsn = residents_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    script = textwrap.dedent(
        """
        import asyncio, sys
        import asyncpg
        from dibao_common.observability import configure_logging

        async def main(dsn, name):
            conn = await asyncpg.connect(dsn)
            await conn.execute("INSERT INTO resident (name, note) VALUES ($1, 'ok')", name)

        configure_logging()
        asyncio.run(main(sys.argv[1], sys.argv[2]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, dsn, NAME],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert NAME not in done.stderr, done.stderr
    assert "asyncpg.exceptions.UniqueViolationError: duplicate key value" in done.stderr
    assert "constraint resident_name_key" in done.stderr


@pytest.mark.parametrize(
    ("what", "described"),
    [
        (
            "unique",
            "IntegrityError: (asyncpg.exceptions.UniqueViolationError) duplicate key value"
            ' violates unique constraint "resident_name_key"\n'
            "DETAIL {withheld}\n"
            "SQLSTATE 23505, table public.resident, constraint resident_name_key\n"
            "[SQL: INSERT INTO resident (name, note) VALUES ($1, $2)]\n",
        ),
        (
            "check",
            "IntegrityError: (asyncpg.exceptions.CheckViolationError) new row for relation"
            ' "resident" violates check constraint "resident_note_short"\n'
            "DETAIL {withheld}\n"
            "SQLSTATE 23514, table public.resident, constraint resident_note_short\n"
            "[SQL: INSERT INTO resident (name, note) VALUES ($1, $2)]\n",
        ),
        (
            "data",
            "DBAPIError: (asyncpg.exceptions.InvalidTextRepresentationError) invalid input"
            " syntax for type integer: {withheld}\n"
            "SQLSTATE 22P02\n"
            "[SQL: SELECT CAST(CAST($1 AS text) AS integer)]\n",
        ),
    ],
)
async def test_a_wrapped_database_error_is_described_by_the_drivers_class_and_sqlstate(
    residents_url: str, what: str, described: str
) -> None:
    """SQLAlchemy names its asyncpg adapter's class ('(sqlalchemy.dialects.postgresql.
    asyncpg.UniqueViolationError)', '(...asyncpg.Error)' for any data exception) and its
    adapter's text is the message alone: the description named neither the driver's
    error nor the SQLSTATE of a unique or CHECK violation. Now the driver's class, and the
    SQLSTATE, table and constraint as the driver's own error is described; DETAIL still
    withheld."""
    engine = make_engine(residents_url, pool_size=1)
    try:
        with pytest.raises(DBAPIError) as caught:
            await _write(engine, what, "sqlalchemy")
    finally:
        await engine.dispose()
    text = describe_exception(caught.value)
    assert text.startswith(described.format(withheld=WITHHELD)), text
    assert [value for value in VALUES if value in text] == []
