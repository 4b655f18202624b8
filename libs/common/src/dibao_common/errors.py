"""RFC 9457 problem details for every error a dibao service returns.

Routes raise typed ``ProblemError`` subclasses; ``install_problem_handlers`` renders them,
and also renders what the framework raises (unknown route, wrong method, invalid request,
malformed JSON) and unexpected exceptions, always as ``application/problem+json`` with a
stable ``type`` URI. No stack trace and no request input ever reaches the client.

    raise NotFound("no household with this id")
    raise Conflict("the person is already in an active household", type_slug="person-in-household")

``problem_responses(404, 409)`` declares those errors in a route's OpenAPI ``responses=``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dibao_common.db.outage import is_database_outage
from dibao_common.logged_errors import describe_exception
from dibao_common.observability import mask_card_and_id_numbers_in

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://dibao.gov.cn/problems/"

_log = structlog.get_logger("dibao_common.errors")


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem slug."""
    return PROBLEM_TYPE_BASE + slug


def _slug_of(status: int) -> str:
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return "internal-error"
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return "content-too-large"  # RFC 9110's name; Python's before 3.13 is older
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http-{status}"
    return phrase.lower().replace(" ", "-").replace("'", "")


def _title_of(status: int) -> str:
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return "Content Too Large"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class ProblemError(Exception):
    """An error rendered as an RFC 9457 problem; extension members go in ``extensions``."""

    def __init__(
        self,
        status: int,
        type_slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type_slug = type_slug
        self.title = title
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem object: ``type``, ``title``, ``status``, ``detail``, ``instance``, extras."""
        return _problem_body(
            self.status, self.type_slug, self.title, self.detail, instance, self.extensions
        )

    def response(self, instance: str | None = None) -> Response:
        return problem_response(
            self.status,
            self.type_slug,
            self.title,
            self.detail,
            instance=instance,
            headers=self.headers,
            **self.extensions,
        )


class _StatusProblem(ProblemError):  # noqa: N818 - the plan's names: NotFound, Conflict...
    """A problem with a fixed status; slug and title default to the status's own."""

    status_code: int = 500
    default_slug: str | None = None
    default_title: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        type_slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        status = self.status_code
        super().__init__(
            status,
            type_slug or self.default_slug or _slug_of(status),
            title or self.default_title or _title_of(status),
            detail,
            headers=headers,
            **extensions,
        )


class BadRequest(_StatusProblem):
    status_code = 400


class InvalidCursor(BadRequest):
    """400 ``invalid-cursor``: a page cursor the service did not give. Cursors are opaque;
    every service that pages answers a foreign one with this same problem type."""

    default_slug = "invalid-cursor"

    def __init__(self) -> None:
        super().__init__(
            "The cursor is not one this service gave: send the next_cursor of the previous"
            " page as it was given, or leave cursor out for the first page"
        )


class Unauthorized(_StatusProblem):
    """401; carries ``WWW-Authenticate`` (RFC 9110 requires it on every 401)."""

    status_code = 401
    default_title = "Authentication required"

    def __init__(
        self,
        detail: str | None = None,
        *,
        type_slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        merged = {"WWW-Authenticate": "Bearer"} | dict(headers or {})
        super().__init__(detail, type_slug=type_slug, title=title, headers=merged, **extensions)


class Forbidden(_StatusProblem):
    status_code = 403


class NotFound(_StatusProblem):
    status_code = 404


class Conflict(_StatusProblem):
    status_code = 409


class UnprocessableEntity(_StatusProblem):
    """422: reserved for payload validation (request validation renders its own)."""

    status_code = 422


class ServiceUnavailable(_StatusProblem):
    status_code = 503


# --- documentation models (OpenAPI only; responses are built from dicts) ---------------


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="URI of the problem type, https://dibao.gov.cn/problems/<slug>")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="The HTTP status code")
    detail: str | None = Field(default=None, description="What went wrong this time")
    instance: str | None = Field(default=None, description="The request path")


class FieldError(BaseModel):
    """One invalid part of the request."""

    pointer: str = Field(description="JSON pointer to the part, e.g. /body/members/0/id_number")
    detail: str
    code: str = Field(description="Machine-readable reason, e.g. missing, string_too_short")


class ValidationProblem(Problem):
    """A 422: the request is well-formed but some fields are invalid."""

    model_config = ConfigDict(extra="allow", title="ValidationProblem")

    errors: list[FieldError]


RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
"""The OpenAPI ``headers`` of a 503: when the client may try again."""


def problem_responses(
    *statuses: int,
    models: Mapping[int, type[Problem]] | None = None,
    headers: Mapping[int, Mapping[str, Any]] | None = None,
    examples: Mapping[int, ProblemError | Sequence[ProblemError]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each status as ``application/problem+json``.
    ``models`` gives a status a problem of its own shape (a subclass of ``Problem`` naming
    its extension members, e.g. a 409's ``tree_size``), ``headers`` the response headers
    a status carries (e.g. ``Retry-After``), ``examples`` the problems the route raises
    with that status (rendered by their own ``body``; the document gives each the
    operation's path as ``instance``). A status without examples gets the kit's
    (``dibao_common.problem_examples``). A 503 carries ``Retry-After`` unless ``headers``
    say otherwise: every 503 the kit sends does (:func:`database_unavailable`)."""
    out: dict[int | str, dict[str, Any]] = {}
    chosen = dict(models or {})
    given = dict(examples or {})
    for status in dict.fromkeys([*statuses, *chosen, *given]):
        model = chosen.get(status) or (ValidationProblem if status == 422 else Problem)
        if model not in (Problem, ValidationProblem):
            _PROBLEM_REFS.add(_REF + model.__name__)
        out[status] = {"model": model, "description": _title_of(status)}
        if headers is not None and status in headers:
            out[status]["headers"] = dict(headers[status])
        elif status == HTTPStatus.SERVICE_UNAVAILABLE:
            out[status]["headers"] = dict(RETRY_AFTER_HEADER)
        if status in given:
            problems = given[status]
            listed = [problems] if isinstance(problems, ProblemError) else list(problems)
            out[status]["content"] = {PROBLEM_MEDIA_TYPE: {"examples": problem_examples(listed)}}
    return out


def problem_examples(problems: Iterable[ProblemError]) -> dict[str, dict[str, Any]]:
    """An OpenAPI ``examples`` map of ``problems``, each named by its type slug (``-2``...
    after the first of a slug), summarised by its detail (or title), its value the body
    the service sends, without ``instance``."""
    named: dict[str, dict[str, Any]] = {}
    for problem in problems:
        name = problem.type_slug
        for n in range(2, 100):
            if name not in named:
                break
            name = f"{problem.type_slug}-{n}"
        summary = problem.detail or problem.title
        if len(summary) > 100:
            summary = summary[:99].rstrip() + "…"
        named[name] = {"summary": summary, "value": jsonable_encoder(problem.body())}
    return named


# --- rendering --------------------------------------------------------------------------


def _unechoed(text: str) -> str:
    # What the client sent may be named (the path, a member name of a mapping keyed by ID
    # number, a validator's message naming the value it refuses), an ID number or a bank
    # card number never (masked as the logs mask them, before what hides inside it is
    # escaped), a control character or a direction override never as itself (escaped,
    # text.echoable, 3 Dec 2026). Imported here: text builds on this module.
    from dibao_common.text import echoable

    return echoable(mask_card_and_id_numbers_in(text))


def _problem_body(
    status: int,
    type_slug: str,
    title: str,
    detail: str | None,
    instance: str | None,
    extensions: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(type_slug),
        "title": title,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = _unechoed(instance)
    for name, value in extensions.items():
        body.setdefault(name, value)
    return body


def problem_response(
    status: int,
    type_slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A ready ``application/problem+json`` response."""
    # jsonable_encoder: extensions may hold UUIDs, dates, enums or pydantic models.
    body = jsonable_encoder(_problem_body(status, type_slug, title, detail, instance, extensions))
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def json_pointer(location: Iterable[int | str]) -> str:
    """RFC 6901 pointer of an error location: ``("body", "members", 0)`` -> ``/body/members/0``."""
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in location)
    return "".join("/" + p for p in parts)


def _location_in(body: Any, loc: Sequence[int | str]) -> list[int | str]:
    """``loc`` without the tags of discriminated unions, so that it points into the body
    as sent: pydantic locates ``note`` of a ``{"kind": "birth", ...}`` variant at
    ``("body", "birth", "note")``, where the document has ``/body/note``. A part is taken
    as a tag when the object at that point has no such member but holds it as a value,
    and more parts follow (the last part may be a missing member, whatever the values)."""
    if not loc or loc[0] != "body":
        return list(loc)
    kept: list[int | str] = [loc[0]]
    node: Any = body
    last = len(loc) - 1
    for index, part in enumerate(loc[1:], start=1):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif isinstance(part, str) and index < last and part in node.values():
                continue
            else:
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        kept.append(part)
    return kept


_PATTERN_MEANINGS: dict[str, str] = {}


def explain_pattern(pattern: str, meaning: str) -> str:
    """Say what a string ``pattern`` of a request's schema asks, in words: a value that
    does not match it is told ``meaning`` (e.g. "must not be blank") where pydantic would
    print the regular expression, which tells a clerk nothing. Returns ``pattern``."""
    _PATTERN_MEANINGS[pattern] = meaning
    return pattern


_OBJECT_EXPECTED = frozenset({"model_attributes_type", "model_type", "dict_type"})
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)


def _media_type_of(content_type: str | None) -> str:
    """A Content-Type's media type, without its parameters."""
    return (content_type or "").split(";", 1)[0].strip()


def _json_media_type(content_type: str | None) -> bool:
    media_type = _media_type_of(content_type).lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _message(error: Any, content_type: str | None = None) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type")
    if kind == "union_tag_invalid" and "expected_tags" in ctx:
        # pydantic's own message quotes the tag sent.
        return (
            f"Input tag found using {ctx.get('discriminator', 'the discriminator')} does"
            f" not match any of the expected tags: {ctx['expected_tags']}"
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_MEANINGS:
        return _PATTERN_MEANINGS[ctx["pattern"]]
    if (
        kind in _OBJECT_EXPECTED
        and tuple(error.get("loc", ())) == ("body",)
        and not _json_media_type(content_type)
    ):
        # A JSON body sent without its media type (curl -d sends a form's) is read as
        # bytes, and pydantic says only that it is no object.
        media_type = _media_type_of(content_type)
        sent = f" (it came as {media_type})" if _MEDIA_TYPE.fullmatch(media_type) else ""
        return f"The body is read as JSON only with Content-Type: application/json{sent}"
    return str(error.get("msg", "invalid"))


def _validation_errors(
    errors: Sequence[Any], body: Any = None, content_type: str | None = None
) -> list[dict[str, str]]:
    # Only the location, message and kind: the offending input may be personal data.
    return [
        {
            "pointer": _unechoed(json_pointer(_location_in(body, e.get("loc", ())))),
            "detail": _unechoed(_message(e, content_type)),
            "code": str(e.get("type", "invalid")),
        }
        for e in errors
    ]


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.response(instance=request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's answer to a JSON body in another encoding (a portal sending GBK) is
        # "There was an error parsing the body", typed bad-request: it is a malformed body.
        return problem_response(
            400,
            "malformed-body",
            "Malformed request body",
            "The request body is not valid JSON: JSON is sent in UTF-8 (RFC 8259 section"
            f" 8.1), and byte {exc.__cause__.start} is not UTF-8",
            instance=request.url.path,
        )
    if status == 400 and isinstance(exc.__cause__, RecursionError):
        # JSON nested deeper than Python's parser recurses (an attack or a broken client):
        # FastAPI's generic bad-request, where any other invalid JSON is a malformed body.
        return problem_response(
            400,
            "malformed-body",
            "Malformed request body",
            "The request body is not valid JSON this service reads: its arrays and objects"
            " are nested too deeply",
            instance=request.url.path,
        )
    detail: str | None = str(exc.detail) if exc.detail else None
    if detail == _title_of(status):
        detail = None
    if status == 404 and detail is None:
        detail = f"Nothing is found at {_unechoed(request.url.path)}"
    headers = exc.headers
    if status == 405:
        if detail is None:
            detail = f"{request.method} is not allowed here"
        headers = {**(headers or {}), "Allow": _allowed_methods(request, headers)}
    return problem_response(
        status,
        _slug_of(status),
        _title_of(status),
        detail,
        instance=request.url.path,
        headers=headers,
    )


_PATH_METHODS = "dibao_path_methods"  # on app.state: (path regex, methods) per path


def _allowed_methods(request: Request, headers: Mapping[str, str] | None) -> str:
    """Every method the request's path answers, for a 405's ``Allow`` (RFC 9110 15.5.6).

    The router names only the first route whose path matches (POST for a path that also
    answers GET); the OpenAPI document has them all, and the routes it leaves out (health,
    metrics) keep what the router said."""
    given = Headers(headers or {}).get("allow", "")
    methods = {m.strip() for m in given.split(",") if m.strip()}
    app = request.app
    table = getattr(app.state, _PATH_METHODS, None)
    if table is None:
        table = []
        openapi = getattr(app, "openapi", None)
        paths = openapi().get("paths", {}) if callable(openapi) else {}
        for template, operations in paths.items():
            declared = {m.upper() for m in operations if m.upper() in _HTTP_METHODS}
            if "GET" in declared:
                declared.add("HEAD")  # Starlette answers HEAD wherever it answers GET
            table.append((compile_path(template)[0], frozenset(declared)))
        setattr(app.state, _PATH_METHODS, table)
    path = request.scope.get("path", request.url.path)
    for regex, declared in table:
        if regex.match(path):
            methods |= declared
    return ", ".join(sorted(methods))


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        return _malformed_body(malformed).response(instance=request.url.path)
    errors = [_tag_missing(request, e) if _is_tag_missing(e) else e for e in errors]
    return _validation_failed(errors, exc.body, request.headers.get("content-type")).response(
        instance=request.url.path
    )


def _malformed_body(error: Mapping[str, Any]) -> ProblemError:
    """400 ``malformed-body`` of a ``json_invalid`` error (FastAPI's for a body that is
    no JSON): the parser's reason and position, never the bytes."""
    reason = (error.get("ctx") or {}).get("error")
    loc = error.get("loc", ())
    position = loc[-1] if len(loc) > 1 else None
    detail = "The request body is not valid JSON"
    if reason:
        detail += f": {reason}" + (f" at position {position}" if position is not None else "")
    return ProblemError(400, "malformed-body", "Malformed request body", detail)


def _validation_failed(
    errors: Sequence[Any], body: Any = None, content_type: str | None = None
) -> ProblemError:
    """422 ``validation-failed``: ``errors[]`` points at each invalid part."""
    return ProblemError(
        422,
        "validation-failed",
        "The request is not valid",
        f"{len(errors)} invalid part(s) of the request",
        errors=_validation_errors(errors, body, content_type),
    )


def _is_tag_missing(error: Any) -> bool:
    return error.get("type") == "union_tag_not_found" and tuple(error.get("loc", ())) == ("body",)


def _tag_missing(request: Request, error: Any) -> dict[str, Any]:
    """A body of several forms (a change's ``kind``) sent without the member that names
    its form: pydantic says "Unable to extract tag using discriminator 'kind'" at the
    body. It is that member that is missing, and the operation's schema lists its values."""
    route = request.scope.get("route")
    openapi = getattr(request.app, "openapi", None)
    path = getattr(route, "path_format", None)
    operation: Mapping[str, Any] = {}
    if callable(openapi) and isinstance(path, str):
        operation = openapi().get("paths", {}).get(path, {}).get(request.method.lower(), {})
    return _tag_missing_in(operation, error)


def _tag_missing_in(operation: Mapping[str, Any], error: Any) -> dict[str, Any]:
    """:func:`_tag_missing` of the OpenAPI ``operation`` the request is."""
    name = str((error.get("ctx") or {}).get("discriminator", "")).strip("'\"")
    if not name:
        return dict(error)
    tags: list[str] = []
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    discriminator = schema.get("discriminator") or {}
    if discriminator.get("propertyName") == name:
        tags = list(discriminator.get("mapping") or {})
    choices = f": one of {', '.join(repr(t) for t in tags)}" if tags else ""
    return {
        **error,
        "loc": ("body", name),
        "msg": f"Field required{choices} (it names which form of the body this is)",
    }


INTERNAL_ERROR = ProblemError(
    500,
    "internal-error",
    "Internal error",
    "The server could not complete the request; it has been logged.",
)


RETRY_AFTER_OUTAGE_S = 5
"""``Retry-After`` of a 503 ``database-unavailable``: a PostgreSQL restart keeps the
server away a second or two, a failover a few; a retry sooner would mostly meet the
same outage, one much later keeps a clerk at the counter waiting for nothing."""


def database_unavailable() -> ServiceUnavailable:
    """503 ``database-unavailable``: the database could not be reached (refused, cut,
    shutting down, starting up, no pooled connection free in time:
    :func:`dibao_common.db.is_database_outage`). The request's transaction never
    committed, so the client may send it again, with the same ``Idempotency-Key``."""
    return ServiceUnavailable(
        "The database cannot be reached right now; nothing was changed. Send the request"
        " again after Retry-After seconds (with the same Idempotency-Key, if it had one)",
        type_slug="database-unavailable",
        title="Database unavailable",
        headers={"Retry-After": str(RETRY_AFTER_OUTAGE_S)},
    )


def _internal_error(path: str | None) -> Response:
    return INTERNAL_ERROR.response(instance=path)


def _unexpected_error(method: str | None, path: str | None, exc: Exception) -> Response:
    """The answer to an exception no handler took, logged: an outage of the database as
    a 503 with one warning line (what failed, no traceback: the outage is the server's,
    not the code's, and hundreds of tracebacks a second would hide it), anything else as
    a 500 with its traceback."""
    if is_database_outage(exc):
        _log.warning(
            "database unavailable", method=method, path=path, error=describe_exception(exc)
        )
        return database_unavailable().response(instance=path)
    _log.error(
        "unhandled exception",
        method=method,
        path=path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return _internal_error(path)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Reached only for errors outside the inner guard (e.g. in an outer middleware).
    return _unexpected_error(request.method, request.url.path, exc)


class _TrackingSend:
    """An ASGI ``send`` that remembers whether the response has started: once it has, an
    error can no longer be answered with a problem."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class UnexpectedErrorMiddleware:
    """Turns an exception that no handler took into a 500 problem, logged, not re-raised;
    an outage of the database into a 503 ``database-unavailable`` with ``Retry-After``,
    logged as one warning line (:func:`database_unavailable`).

    Starlette's own last-resort handler re-raises after answering, which makes the ASGI
    server print a second traceback and in-process test clients raise instead of seeing
    the response the real client gets.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking_send = _TrackingSend(send)
        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if tracking_send.started:
                _log.error(
                    "unhandled exception",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                raise
            response = _unexpected_error(scope.get("method"), scope.get("path"), exc)
            await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException, so that FastAPI, reading the body, lets it through to the handler.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the {limit} bytes accepted")


class BodyLimitMiddleware:
    """A request body past ``max_body_size`` bytes is a 413 problem: when the app first
    reads it, from its ``Content-Length``, else as soon as the bytes received pass the
    limit. (A route that checks the length itself first gives its own answer.)

    FastAPI reads (and parses) a body before any dependency, the bearer token's included,
    runs: without a limit anyone could make a service hold and parse gigabytes.
    (FastAPI's own ``max_body_size`` was tried: past the limit it answers text/plain,
    not a problem, and logs the request as failed.)
    """

    def __init__(self, app: ASGIApp, *, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        declared = Headers(scope=scope).get("content-length", "")
        announced_too_large = declared.isascii() and declared.isdigit() and int(declared) > limit
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if announced_too_large:
                raise _BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        tracking_send = _TrackingSend(send)
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            # Read outside a route (whose handler renders it): answered here.
            if tracking_send.started:
                raise
            response = await _on_http_exception(Request(scope), exc)
            await response(scope, receive, send)


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json and document them so in its OpenAPI."""
    handlers: dict[type[Exception], ExceptionHandler] = {
        ProblemError: _on_problem,
        StarletteHTTPException: _on_http_exception,
        RequestValidationError: _on_validation_error,
        Exception: _on_unexpected,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(UnexpectedErrorMiddleware)
    _document_problems(app)


# --- OpenAPI ------------------------------------------------------------------------------

_REF = "#/components/schemas/"
_PROBLEM_REFS = {_REF + "Problem", _REF + "ValidationProblem"}


def _document_problems(app: FastAPI) -> None:
    """Problem responses are ``application/problem+json``, default 422s use our shape, and
    every problem response has examples: the route's own (``problem_responses(examples=)``),
    else its model's, else the kit's for the status (``dibao_common.problem_examples``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        # Imported here: it builds on auth and idempotency, which import this module.
        from dibao_common import problem_examples as kit_examples

        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        added = dict(getattr(app.state, _ADDED_EXAMPLES, {}))
        routes = {
            (method.lower(), route.path_format): route
            for route in iter_route_contexts(app.routes)  # an included router's too
            if isinstance(route.original_route, APIRoute)
            for method in route.methods or ()
        }
        for path, path_item in schema.get("paths", {}).items():
            for method, operation in path_item.items():
                if not isinstance(operation, dict):
                    continue
                responses = operation.get("responses", {})
                _fix_responses(responses, components)
                route = routes.get((method, path))
                for status, response in responses.items():
                    content = response.get("content", {}).get(PROBLEM_MEDIA_TYPE)
                    if content is None:
                        continue
                    _examples_of(int(status), content, route, components)
                    if "example" not in content:
                        problems = [
                            *added.pop((method.upper(), path, int(status)), ()),
                            *kit_examples.defaults_for(int(status), operation, route, app),
                        ]
                        _add_examples(content, problems, int(status))
                    _give_instance(content, kit_examples.example_path(path, operation))
        if added:
            # A service's example of an operation or a status it does not declare.
            raise ValueError(f"problem examples of no declared response: {sorted(added)}")
        for unused in ("HTTPValidationError", "ValidationError"):
            if unused in components and not _referenced(schema, _REF + unused):
                del components[unused]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_ADDED_EXAMPLES = "dibao_problem_examples"  # on app.state: add_problem_examples's


def add_problem_examples(
    app: FastAPI, examples: Mapping[tuple[str, str, int], Sequence[ProblemError]]
) -> None:
    """Examples of the problems a service's operations send, keyed by (method, path as
    the document writes it, status): shown before the kit's own examples of that status
    (``dibao_common.problem_examples``), which stay for the other problem types. For a
    service whose routes declare their statuses alone (their problems made in its service
    layer); a key no operation declares fails the document."""
    table: dict[tuple[str, str, int], list[ProblemError]] = getattr(app.state, _ADDED_EXAMPLES, {})
    for (method, path, status), problems in examples.items():
        table.setdefault((method.upper(), path, status), []).extend(problems)
    setattr(app.state, _ADDED_EXAMPLES, table)
    app.openapi_schema = None


def _add_examples(content: dict[str, Any], problems: Sequence[ProblemError], status: int) -> None:
    """``problems`` after the examples already there, but none of a type these show; the
    status's bare problem when there is none at all."""
    named: dict[str, Any] = content.setdefault("examples", {})
    shown = {e.get("value", {}).get("type") for e in named.values() if isinstance(e, dict)}
    fresh = [p for p in problems if problem_type(p.type_slug) not in shown]
    if not named and not fresh:
        fresh = [ProblemError(status, _slug_of(status), _title_of(status))]
    for name, example in problem_examples(fresh).items():
        while name in named:
            name += "-"
        named[name] = example


def _examples_of(
    status: int, content: dict[str, Any], route: RouteContext | None, components: dict[str, Any]
) -> None:
    """The route's examples of ``status`` as given (FastAPI writes the document without
    null members, examples included), else its model's (``json_schema_extra``)."""
    declared = route.responses.get(status, {}) if route is not None else {}
    given = declared.get("content", {}).get(PROBLEM_MEDIA_TYPE, {})
    for key in ("example", "examples"):
        if key in given:
            content[key] = copy.deepcopy(given[key])
    if {"example", "examples"} & set(content):
        return
    ref = content.get("schema", {}).get("$ref", "")
    model_examples = components.get(ref.removeprefix(_REF), {}).get("examples")
    if ref not in (_REF + "Problem", _REF + "ValidationProblem") and model_examples:
        # The model's example may show another operation's path: that one is left out
        # (the document gives the operation's).
        template = route.path_format if route is not None else None
        path = compile_path(template)[0] if template else None
        content["examples"] = {
            f"{ref.removeprefix(_REF)}-{n}" if n else ref.removeprefix(_REF): {
                "value": {
                    k: v
                    for k, v in example.items()
                    if k != "instance" or (path is not None and path.fullmatch(str(v)))
                }
            }
            for n, example in enumerate(model_examples)
        }


def _give_instance(content: dict[str, Any], path: str) -> None:
    """Each example's ``instance``: the operation's path (with example parameters) where
    the example names none, in the order the kit writes a problem's members."""
    values = [content["example"]] if "example" in content else []
    named = content.get("examples", {})
    values += [e["value"] for e in named.values() if isinstance(e, dict) and "value" in e]
    for value in values:
        if not isinstance(value, dict) or "instance" in value:
            continue
        ordered = {k: value.pop(k) for k in ("type", "title", "status", "detail") if k in value}
        ordered["instance"] = _unechoed(path)
        ordered |= value
        value.clear()
        value.update(ordered)


def _fix_responses(responses: dict[str, Any], components: dict[str, Any]) -> None:
    for status, response in responses.items():
        content = response.get("content")
        if not isinstance(content, dict):
            continue
        ref = content.get("application/json", {}).get("schema", {}).get("$ref")
        if ref == _REF + "HTTPValidationError":
            ref = _REF + "ValidationProblem"
            response["description"] = _title_of(int(status))
        if ref in _PROBLEM_REFS:
            # An example given with the response moves with it.
            moved = content.pop("application/json")
            target = content.setdefault(PROBLEM_MEDIA_TYPE, {})
            target["schema"] = {"$ref": ref}
            for key in ("example", "examples"):
                if key in moved:
                    target.setdefault(key, moved[key])
            _ensure_components(components)


def _ensure_components(components: dict[str, Any]) -> None:
    if "ValidationProblem" in components and "FieldError" in components:
        return
    for model in (Problem, FieldError, ValidationProblem):
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, schema)


def _referenced(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_referenced(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_referenced(v, ref) for v in node)
    return False
