"""What a logged exception may show: its type, the frames of its traceback, and its text
without the values a database error quotes.

PostgreSQL's error fields carry a row's values: the DETAIL of a constraint violation
(``Failing row contains (...)``, ``Key (id_hash)=(...) already exists``) holds names,
masked numbers, statements and notes; a data exception's message quotes the value it could
not take (``invalid input syntax for type integer: "..."``). asyncpg writes the DETAIL into
its exception's text (``PostgresError.__str__``: the message, ``DETAIL:`` and ``HINT:``
lines), its argument errors quote the argument (``invalid input for query argument $1:
'...' (...)``, chained to the codec's error, which may quote it too), and SQLAlchemy's
wrappers repeat the driver's message. A traceback prints every exception of the chain
(``__cause__``, ``__context__``, an exception group's members) with its text.

Here each exception's text is rebuilt from what it is, not cut out of its rendering by a
pattern: an asyncpg server error from its fields (the message line, the DETAIL replaced by
:data:`WITHHELD`, the HINT, which is the server's own text, kept; then SQLSTATE, table,
constraint, column), an argument error as far as the argument's position, and any other
exception's text with the texts of the exceptions it wraps (SQLAlchemy's ``orig``, its
``__cause__`` and ``__context__``) replaced by theirs. SQLAlchemy's ``[parameters: ...]``
line, where an engine does not hide it, goes too. As a last net, any text (a log line's
field, a string made from an exception with ``str()``) loses everything from a line
starting ``DETAIL:`` to its end (:func:`withhold_database_detail`).

``observability.configure_logging`` renders every logged exception (``exc_info``, an
exception as a field's value) with these, so no service has to.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.exc import StatementError

WITHHELD = "[withheld from the log: it may quote row values]"
"""What a database's DETAIL, or a quoted value, is replaced with."""

_DETAIL_LINE = re.compile(r"(?:^|\n|\\n|\r)[ \t|]*DETAIL:")
"""Where a text holds PostgreSQL's DETAIL field as libpq and asyncpg write it: a line
starting ``DETAIL:`` (escaped as ``\\n`` in a ``repr``, indented in an exception group)."""

_ARGUMENT = "query argument $"
"""asyncpg's argument errors: ``invalid input for query argument $1: <value> (<why>)``,
``query argument $1 in element #2 of executemany() sequence: <codec's message>``."""

_DATA_EXCEPTION_CLASS = "22"


def withhold_database_detail(text: str) -> str:
    """``text`` without anything from its first line starting ``DETAIL:`` on (a HINT and
    whatever else follows go too: a DETAIL's values may hold line breaks and forge any
    line after it). A text without one is returned as it is."""
    if "DETAIL:" not in text:  # every string of every log line comes here
        return text
    match = _DETAIL_LINE.search(text)
    if match is None:
        return text
    return f"{text[: match.start()]} (DETAIL and what follows {WITHHELD})"


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not break the log line
        return f"<{type(exc).__name__}: str() failed>"


def _message_of(exc: BaseException) -> str:
    args = exc.args
    return str(args[0]) if args else ""


def _safe_message(exc: asyncpg.PostgresError | asyncpg.InterfaceError) -> str:
    """The message line of an asyncpg error without a value it quotes."""
    message = _message_of(exc)
    at = message.find(_ARGUMENT)
    if at >= 0:
        # The position ("$1", "$2 in element #3 of executemany() sequence"), then the
        # value's repr and the codec's reason, which may quote it.
        end = message.find(": ", at)
        kept = message if end < 0 else message[:end]
        return f"{kept}: {WITHHELD}"
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_DATA_EXCEPTION_CLASS):
        # A data exception quotes the value it refused, in double quotes that the value
        # may hold too: the message is kept up to its first quote.
        quote = message.find('"')
        if quote >= 0:
            return f"{message[:quote]}{WITHHELD}"
    return withhold_database_detail(message)


def _asyncpg_text(exc: asyncpg.PostgresError | asyncpg.InterfaceError) -> str:
    """asyncpg's ``__str__`` (message, DETAIL, HINT) rebuilt from the error's fields, the
    DETAIL withheld, then what names the error for an operator."""
    lines = [_safe_message(exc)]
    if getattr(exc, "detail", None):
        # Not "DETAIL:" (withhold_database_detail would take it for the field itself).
        lines.append(f"DETAIL {WITHHELD}")
    hint = getattr(exc, "hint", None)
    if hint:
        lines.append(f"HINT:  {hint}")
    named = _names_of(exc)
    if named:
        lines.append(named)
    return "\n".join(lines)


def _names_of(exc: BaseException) -> str:
    """``SQLSTATE 23505, table public.staff, constraint uq_staff_x``: the fields of a
    server error that name it (identifiers, never values)."""
    parts = []
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
        parts.append(f"SQLSTATE {sqlstate}")
    schema, table = getattr(exc, "schema_name", None), getattr(exc, "table_name", None)
    if table:
        parts.append(f"table {schema}.{table}" if schema else f"table {table}")
    for field, label in (
        ("constraint_name", "constraint"),
        ("column_name", "column"),
        ("data_type_name", "type"),
    ):
        value = getattr(exc, field, None)
        if value:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def _related(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions whose text ``exc``'s text may repeat: SQLAlchemy's (and its asyncpg
    adapter's) ``orig``, the cause and the context."""
    seen: set[int] = set()
    for candidate in (getattr(exc, "orig", None), exc.__cause__, exc.__context__):
        if isinstance(candidate, BaseException) and id(candidate) not in seen:
            seen.add(id(candidate))
            yield candidate


def _without_parameters(exc: StatementError, text: str) -> str:
    """SQLAlchemy's ``[parameters: ...]`` line (an engine without ``hide_parameters``)
    replaced: the statement's values."""
    if not exc.params or exc.hide_parameters or not exc.statement:
        return text
    opening = f"[SQL: {exc.statement}]\n[parameters: "
    start = text.find(opening)
    if start < 0:
        return text
    start += len(opening) - len("[parameters: ")
    background = text.rfind("\n(Background on this error at: ")
    end = background if background > start else len(text)
    return f"{text[:start]}[SQL parameters {WITHHELD}]{text[end:]}"


def _text(exc: BaseException, seen: frozenset[int]) -> str:
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return _asyncpg_text(exc)
    text = _str(exc)
    seen = seen | {id(exc)}
    for related in _related(exc):
        if id(related) in seen:
            continue
        raw = _str(related)
        if raw and raw in text:
            text = text.replace(raw, _text(related, seen))
        elif isinstance(related, asyncpg.PostgresError | asyncpg.InterfaceError):
            # A wrapper made of the driver's message alone (SQLAlchemy's asyncpg adapter):
            # the message as the driver's own text is rebuilt, DETAIL withheld and the
            # error named (SQLSTATE, table, constraint), as the wrapped text would be.
            message = _message_of(related)
            if message and message in text:
                text = text.replace(message, _asyncpg_text(related), 1)
    if isinstance(exc, StatementError):
        text = _driver_named(exc, text)
        text = _without_parameters(exc, text)
    return withhold_database_detail(text)


def _driver_error(exc: StatementError) -> asyncpg.PostgresError | asyncpg.InterfaceError | None:
    """The asyncpg error a SQLAlchemy error wraps: its ``orig``, or what the asyncpg
    adapter's ``orig`` was raised from."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        if isinstance(candidate, asyncpg.PostgresError | asyncpg.InterfaceError):
            return candidate
    return None


def _driver_named(exc: StatementError, text: str) -> str:
    """SQLAlchemy's ``(sqlalchemy.dialects.postgresql.asyncpg.Error) `` before the
    message, its adapter's class (``Error`` for a data exception, whatever the server
    said), replaced by the driver's exception class, the one to look up:
    ``(asyncpg.exceptions.UniqueViolationError) ``."""
    orig = getattr(exc, "orig", None)
    driver = _driver_error(exc)
    if orig is None or driver is None or orig is driver:
        return text
    adapter = f"({type(orig).__module__}.{type(orig).__name__}) "
    named = f"({type(driver).__module__}.{type(driver).__name__}) "
    return text.replace(adapter, named, 1)


def exception_text(exc: BaseException) -> str:
    """``str(exc)`` as a log may show it: a database error's DETAIL and quoted values
    withheld (also where ``exc`` wraps one), its SQLSTATE, table and constraint named."""
    return _text(exc, frozenset())


def describe_exception(exc: BaseException) -> str:
    """``Type: text`` of ``exc`` (:func:`exception_text`): for a log field or a header
    that says what failed."""
    text = exception_text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _withholds_its_cause(exc: BaseException) -> bool:
    """An asyncpg argument error: the codec's error it was raised from may quote the
    argument (``invalid UUID '...'``)."""
    return isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError) and (
        _ARGUMENT in _message_of(exc)
    )


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def format_exception(exc_info: ExcInfo | tuple[None, None, None]) -> str:
    """The traceback of ``exc_info`` as Python prints it (frames, chain, groups, notes),
    each exception's text given by :func:`exception_text`; for structlog's
    ``ExceptionRenderer``."""
    exc_type, exc, tb = exc_info
    if exc_type is None or exc is None:
        return "NoneType: None"
    formatted = traceback.TracebackException(exc_type, exc, tb)
    if not hasattr(formatted, "_str"):  # pragma: no cover - a Python whose internals moved
        return _format_plainly(exc)
    # Each TracebackException beside the exception it was made from (they are built from
    # the same __cause__, __context__ and group members), its printed text replaced.
    pending: list[tuple[Any, BaseException, bool]] = [(formatted, exc, False)]
    done: set[int] = set()
    while pending:
        node, value, withheld = pending.pop()
        if id(node) in done:
            continue
        done.add(id(node))
        node._str = WITHHELD if withheld else exception_text(value)
        notes = node.__notes__
        if isinstance(notes, list | tuple):
            node.__notes__ = [withhold_database_detail(str(note)) for note in notes]
        if node.__cause__ is not None and value.__cause__ is not None:
            pending.append((node.__cause__, value.__cause__, _withholds_its_cause(value)))
        if node.__context__ is not None and value.__context__ is not None:
            pending.append((node.__context__, value.__context__, _withholds_its_cause(value)))
        members = getattr(value, "exceptions", None)
        if node.exceptions and isinstance(members, tuple):
            pending.extend((n, v, False) for n, v in zip(node.exceptions, members, strict=False))
    # Not the whole text through withhold_database_detail: a source line of a frame may
    # quote "DETAIL:" (a test's), and would cut the traceback there.
    return "".join(formatted.format()).rstrip("\n")


def _format_plainly(exc: BaseException) -> str:  # pragma: no cover - see format_exception
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(
            f"Traceback (most recent call last):\n{frames}"
            f"{type(current).__qualname__}: {exception_text(current)}\n"
        )
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n".join(reversed(parts)).rstrip("\n")


def print_exception_safely(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """A ``sys.excepthook``: an uncaught exception printed to stderr as
    :func:`format_exception` renders it."""
    sys.stderr.write(format_exception((exc_type, exc, tb)) + "\n")
