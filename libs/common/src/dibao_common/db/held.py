"""Writes held back and sent as one statement: a request in a single round trip of writes.

A request that reads, decides and then writes usually pays for BEGIN, each write and
COMMIT as round trips of their own. When its writes need no answer from the database
(ids are made in Python, UUIDv7), they can instead be held while it runs and sent at the
end as the data-modifying CTEs of one statement: PostgreSQL runs a single statement
atomically, all of it or none of it, so no transaction block is needed around it
(ADR 0013). The reads before it run on their own, in autocommit, as they would under
READ COMMITTED inside a transaction.

    with held_writes(session) as writes:
        ...                                   # reads, rules, then:
        await write(session, (INSERT_A, params), (INSERT_B, params))
    sql, args = one_statement(writes)
    await driver.execute(sql, *args)

Each held statement is one INSERT, UPDATE or DELETE without a WITH of its own (PostgreSQL
allows data-modifying CTEs at the top level only). All of them see the database as it was
before the statement: none sees another's rows, so two must not touch the same row;
foreign keys are checked at the end, so a child may reference a parent written beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.db.engine import DriverStatement, driver_connection

_HELD = "dibao.db.held_writes"
# A parameter ``$n``, or something to copy as it is: a string literal, a quoted
# identifier, a dollar-quoted string or a comment, whose ``$n`` is text, not a parameter.
_PARAMETER = re.compile(
    r"""'(?:[^']|'')*'"""  # 'string', with '' inside
    r'|"(?:[^"]|"")*"'  # "identifier"
    r"|(\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$).*?\1"  # $$body$$, $tag$body$tag$
    r"|--[^\n]*"  # -- comment
    r"|/\*.*?\*/"  # /* comment */
    r"|\$(\d+)",  # the parameter
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class HeldWrite:
    """One data-modifying statement (parameters ``$1`` on, no WITH) and its values."""

    sql: str
    args: tuple[Any, ...]


def renumber(sql: str, offset: int) -> str:
    """``sql`` with its parameters ``$n`` numbered from ``offset + 1``; a ``$n`` inside a
    string literal, a quoted identifier, a dollar-quoted string or a comment is left as
    it is. (Nested block comments and ``E'...'`` strings with ``\\'`` are not
    recognised: the statements held here are the code's own constants.)"""
    if offset == 0:
        return sql

    def renumbered(match: re.Match[str]) -> str:
        number = match[2]
        return match[0] if number is None else f"${int(number) + offset}"

    return _PARAMETER.sub(renumbered, sql)


@contextmanager
def holding_in(session: AsyncSession, name: str) -> Iterator[list[Any]]:
    """A list kept in ``session.info[name]`` for the block, for code that holds things
    back instead of sending them (this module's writes, the outbox's rows); a block
    inside another holds its own, then the outer one holds again."""
    held: list[Any] = []
    outer = session.info.get(name)
    session.info[name] = held
    try:
        yield held
    finally:
        if outer is None:
            session.info.pop(name, None)
        else:
            session.info[name] = outer


@contextmanager
def held_writes(session: AsyncSession) -> Iterator[list[HeldWrite]]:
    """Statements passed to :func:`write` inside the block are held in the yielded list
    instead of sent; the caller sends them with :func:`one_statement`."""
    with holding_in(session, _HELD) as held:
        yield held


def holding(session: AsyncSession) -> bool:
    """Whether ``session``'s writes are being held."""
    return session.info.get(_HELD) is not None


async def write(
    session: AsyncSession, *statements: tuple[DriverStatement, Mapping[str, Any]]
) -> None:
    """Write ``statements``: held when the session holds its writes, otherwise sent now as
    one statement (one round trip however many) in the session's transaction."""
    writes = [HeldWrite(s.sql, tuple(s.args(params))) for s, params in statements]
    held = session.info.get(_HELD)
    if held is not None:
        held.extend(writes)
        return
    await send(session, writes)


async def send(session: AsyncSession, writes: Sequence[HeldWrite]) -> None:
    """Send ``writes`` (if any) now as one statement, in the session's transaction."""
    if writes:
        sql, args = one_statement(writes)
        await (await driver_connection(session)).execute(sql, *args)


def one_statement(
    writes: Sequence[HeldWrite], last: HeldWrite | None = None
) -> tuple[str, list[Any]]:
    """``writes`` as the CTEs of one statement whose own body is ``last`` (by default the
    last of ``writes``), with its parameters numbered through: the SQL and its values."""
    if last is None:
        if not writes:
            raise ValueError("nothing to write")
        *writes, last = writes
    held = (*writes, last)
    sql = _combined(tuple((w.sql, len(w.args)) for w in held))
    return sql, [value for w in held for value in w.args]


@lru_cache(maxsize=512)
def _combined(parts: tuple[tuple[str, int], ...]) -> str:
    """The statement of ``parts`` (each SQL with how many parameters it takes): a request
    sends the same few shapes again and again, so each is put together once."""
    *ctes, (body, _) = parts
    texts: list[str] = []
    offset = 0
    for index, (sql, count) in enumerate(ctes):
        texts.append(f"w{index} AS (\n{renumber(sql, offset)}\n)")
        offset += count
    if not texts:
        return body
    return "WITH " + ",\n".join(texts) + "\n" + renumber(body, offset)
