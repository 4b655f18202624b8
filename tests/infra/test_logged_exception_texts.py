"""No log call of the kit or a service writes a caught exception's own text.

``repr(exc)``, ``str(exc)`` and ``f"{exc}"`` keep what a database error quotes: the
kit's net cuts a DETAIL line out of a string field, but a data exception's message
(SQLSTATE class 22: ``invalid input syntax for type integer: "<the value>"``) is the
text itself. A log call passes ``describe_exception(exc)``, or the exception itself
(a field's value, ``exc_info``), which the kit renders without them (ADR 0005, 3 Dec
2026). This reads the sources, so a new call site is caught before it runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/common/src/**/*.py")],
)

LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log", "msg"}
)
"""The methods of stdlib and structlog loggers that write a line."""


_LOGGER_NAME = re.compile(r"_*(?:\w+_)?(?:log|logger)")
"""How the sources name a logger: ``log``, ``_log``, ``logger``, ``self.log``, ``audit_log``."""
_LOGGER_FACTORIES = frozenset({"getLogger", "get_logger"})


def _is_logger(node: ast.expr) -> bool:
    """A logger by its name, or one made in place (``logging.getLogger(__name__)``)."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in _LOGGER_FACTORIES
    if isinstance(node, ast.Attribute):
        return _LOGGER_NAME.fullmatch(node.attr) is not None
    return isinstance(node, ast.Name) and _LOGGER_NAME.fullmatch(node.id) is not None


def _is_caught(node: ast.AST, names: frozenset[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def _makes_text(node: ast.AST, names: frozenset[str]) -> bool:
    """``repr(x)``, ``str(x)``, ``f"{x}"``, ``"%s" % x`` or ``"{}".format(x)`` of a caught
    exception ``x`` (one of ``names``)."""
    if isinstance(node, ast.FormattedValue):
        return _is_caught(node.value, names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant) and any(
            _is_caught(n, names) for n in ast.walk(node.right)
        )
    if not isinstance(node, ast.Call):
        return False
    if isinstance(node.func, ast.Name) and node.func.id in {"repr", "str"}:
        return len(node.args) == 1 and _is_caught(node.args[0], names)
    return (
        isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and any(_is_caught(a, names) for a in node.args)
    )


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.caught: list[str] = []
        self.found: list[int] = []

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name is None:
            self.generic_visit(node)
            return
        self.caught.append(node.name)
        self.generic_visit(node)
        self.caught.pop()

    def visit_Call(self, node: ast.Call) -> None:
        if (
            self.caught
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and _is_logger(node.func.value)
        ):
            names = frozenset(self.caught)
            for value in [*node.args, *(k.value for k in node.keywords)]:
                if any(_makes_text(sub, names) for sub in ast.walk(value)):
                    self.found.append(node.lineno)
                    break
        self.generic_visit(node)


def logged_exception_texts(source: str) -> list[int]:
    """The lines of the log calls in ``source`` that write a caught exception's text."""
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.found


@pytest.mark.parametrize(
    "call",
    [
        'log.error("x", error=repr(exc))',
        'log.warning("x", error=str(exc), retry_in_s=1)',
        'self._log.info("x", reason=f"stopped: {exc}")',
        'logger.error("x: %s" % exc)',
        'logging.getLogger(__name__).error("x {}".format(exc))',
        'get_logger(__name__).info("x", error=repr(exc))',
        'log.error("x", error=f"{exc!r}")',
    ],
)
def test_a_log_call_writing_an_exceptions_text_is_found(call: str) -> None:
    source = f"try:\n    pass\nexcept Exception as exc:\n    {call}\n"
    assert logged_exception_texts(source) == [4]


@pytest.mark.parametrize(
    "call",
    [
        'log.error("x", error=describe_exception(exc))',
        'log.error("x", error=exc)',
        'log.error("x", exc_info=exc)',
        'log.error("x", error=type(exc).__name__)',
        "errors.append(str(exc))",  # not a log call: a message the code builds on
        'report.fail(f"checkpoint: {exc}")',
        'err.write(f"stopped: {exc}\\n")',
        'log.error("x", error=str(other))',  # not the caught exception
        "catalog.error(str(exc))",  # not a logger
    ],
)
def test_a_safe_use_is_not_flagged(call: str) -> None:
    source = f"try:\n    pass\nexcept Exception as exc:\n    {call}\n"
    assert logged_exception_texts(source) == []


def test_no_log_call_writes_a_caught_exceptions_text() -> None:
    assert len(SOURCES) > 50  # the kit's and every service's sources were found
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in SOURCES
        for line in logged_exception_texts(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "log describe_exception(exc) or the exception itself: " + ", ".join(found)
