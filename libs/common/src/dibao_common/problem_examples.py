"""The kit's examples of its problem responses, for the OpenAPI documents.

A problem response a route declares without examples of its own
(``problem_responses(examples=)``) is shown with the problems the kit itself sends with
that status for that operation, made by the code that sends them, not typed here: a
400 ``malformed-body`` of a JSON body (FastAPI's parse error as the kit renders it),
``idempotency-key-invalid`` / ``-missing`` of a keyed operation, ``invalid-cursor`` of
a paged one; a 401 ``missing-token`` and ``invalid-token``; a 403 ``missing-role`` naming
the roles the route's ``require_roles`` asks for; a 409 ``idempotency-key-in-flight``; a
413 with the app's body limit; a 422 ``validation-failed`` whose ``errors`` are what
pydantic says of a wrong value of the operation's own body or parameter (through the
kit's ``errors[]`` rendering) and ``idempotency-key-reused``; the 500; a 503
``database-unavailable`` (an operation declares 503 when it reaches the database) and,
when it takes a token, ``authentication-unavailable``. Any other status
is shown as the kit renders it bare. Each example's ``instance`` is the operation's path
with example values of its parameters (:func:`example_path`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext

from dibao_common import auth, idempotency
from dibao_common.errors import (
    INTERNAL_ERROR,
    PROBLEM_MEDIA_TYPE,
    BodyLimitMiddleware,
    InvalidCursor,
    ProblemError,
    _BodyTooLarge,
    _is_tag_missing,
    _malformed_body,
    _slug_of,
    _tag_missing_in,
    _title_of,
    _validation_failed,
    database_unavailable,
)

Route = RouteContext | None
_PATH_PARAMETER = re.compile(r"\{([^}/]+)\}")
_SAMPLE_BODY = '{"region_code": "620102001001" "members": []}'  # a comma short
"""What the 400 example's parser reads: JSON with a comma missing."""


def example_path(path: str, operation: dict[str, Any]) -> str:
    """``path`` with each ``{parameter}`` given an example: the parameter's own, else a
    UUID (v7-shaped, fixed per name) for a ``uuid``, its minimum (or 1) for an integer."""
    parameters = {
        p.get("name"): p for p in operation.get("parameters", []) if p.get("in") == "path"
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        parameter = parameters.get(name, {})
        schema = parameter.get("schema", {})
        for given in (parameter.get("example"), *schema.get("examples", ()), schema.get("example")):
            if given is not None:
                return str(given)
        if schema.get("format") == "uuid":
            digest = hashlib.sha256(name.encode()).hexdigest()
            return str(uuid.UUID(f"0193a5b2-7c41-7{digest[:3]}-8{digest[3:6]}-{digest[6:18]}"))
        if schema.get("type") == "integer":
            return str(max(int(schema.get("minimum", 1)), 1))
        return name

    return _PATH_PARAMETER.sub(value, path)


def defaults_for(
    status: int, operation: dict[str, Any], route: Route, app: FastAPI
) -> list[ProblemError]:
    """The problems the kit sends with ``status`` for ``operation`` (none known: the
    document shows the status's bare problem, as the kit renders a framework's exception
    without a detail)."""
    made = _DEFAULTS.get(status)
    return [] if made is None else made(operation, route, app)


def _parameters(operation: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == where}


def _json_body(operation: dict[str, Any]) -> bool:
    return "application/json" in operation.get("requestBody", {}).get("content", {})


def _keyed(operation: dict[str, Any]) -> dict[str, Any] | None:
    return _parameters(operation, "header").get(idempotency.IDEMPOTENCY_HEADER)


def _bad_request(operation: dict[str, Any], _r: Route, _a: FastAPI) -> list[ProblemError]:
    found: list[ProblemError] = []
    if _json_body(operation):
        try:
            json.loads(_SAMPLE_BODY)
        except json.JSONDecodeError as error:
            # FastAPI's own error for a body json.loads refuses.
            found.append(
                _malformed_body(
                    {
                        "type": "json_invalid",
                        "loc": ("body", error.pos),
                        "ctx": {"error": error.msg},
                    }
                )
            )
    key = _keyed(operation)
    if key is not None:
        found.append(idempotency.key_invalid())
        if key.get("required"):
            found.append(idempotency.key_missing())
    if "cursor" in _parameters(operation, "query"):
        found.append(InvalidCursor())
    return found


def _unauthorized(_o: dict[str, Any], _r: Route, _a: FastAPI) -> list[ProblemError]:
    return [auth.missing_token(), auth._invalid("expired")]


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def _forbidden(_o: dict[str, Any], route: Route, _a: FastAPI) -> list[ProblemError]:
    if route is None:
        return []
    for dependency in _dependencies(route.dependant):
        roles = auth.roles_required_by(dependency.call) if dependency.call else None
        if roles:
            return [auth.missing_role(roles)]
    return []


def _conflict(operation: dict[str, Any], _r: Route, _a: FastAPI) -> list[ProblemError]:
    return [idempotency.in_flight()] if _keyed(operation) is not None else []


def _too_large(_o: dict[str, Any], _r: Route, app: FastAPI) -> list[ProblemError]:
    for middleware in app.user_middleware:
        cls: object = middleware.cls
        if cls is BodyLimitMiddleware:
            limit = int(str(middleware.kwargs["max_body_size"]))
            # What BodyLimitMiddleware answers (its HTTPException, rendered by the kit).
            detail = str(_BodyTooLarge(limit).detail)
            return [ProblemError(413, _slug_of(413), _title_of(413), detail)]
    return []


_WRONG_VALUES: tuple[Any, ...] = ("x\x00", -1, "", [], {})
"""Tried in turn until the operation's body or a parameter refuses one."""


def _invalid(operation: dict[str, Any], route: Route, _a: FastAPI) -> list[ProblemError]:
    found: list[ProblemError] = []
    refused = _first_refusal(route) if route is not None else None
    if refused is not None:
        errors, body = refused
        errors = [_tag_missing_in(operation, e) if _is_tag_missing(e) else e for e in errors]
        found.append(_validation_failed(errors, body, "application/json"))
    if _keyed(operation) is not None:
        found.append(idempotency.key_reused())
    return found


def _first_refusal(route: RouteContext) -> tuple[list[dict[str, Any]], Any] | None:
    """pydantic's errors for a wrong body (``{}``: its required members missing, else a
    wrong value) or, without a body, a wrong value of the first parameter that refuses one."""
    dependant = route.dependant
    if route.body_field is not None:
        for sent in ({}, *_WRONG_VALUES):
            _, errors = route.body_field.validate(sent, {}, loc=("body",))
            if errors:
                return list(errors), sent
    fields = [
        (where, field)
        for where, fields in (
            ("path", dependant.path_params),
            ("query", dependant.query_params),
            ("header", dependant.header_params),
        )
        for field in fields
    ]
    for where, field in fields:
        for sent in _WRONG_VALUES:
            _, errors = field.validate(sent, {}, loc=(where, field.alias))
            if errors:
                return list(errors), None
    return None


def _internal(_o: dict[str, Any], _r: Route, _a: FastAPI) -> list[ProblemError]:
    return [INTERNAL_ERROR]


def _unavailable(operation: dict[str, Any], _r: Route, _a: FastAPI) -> list[ProblemError]:
    """An operation declares 503 when it reaches the database (ADR 0022), unless it gives
    its 503's examples itself (one that reaches no database: its own are the 503s it
    sends); one that takes a token (it declares 401) also answers 503 when the issuer's
    keys cannot be fetched (ADR 0004)."""
    responses = operation.get("responses", {})
    own = responses.get("503", {}).get("content", {}).get(PROBLEM_MEDIA_TYPE, {})
    found: list[ProblemError] = [] if own.get("examples") else [database_unavailable()]
    if "401" in responses:
        found.append(auth.authentication_unavailable())
    return found


_DEFAULTS: dict[
    int, Callable[[dict[str, Any], RouteContext | None, FastAPI], list[ProblemError]]
] = {
    HTTPStatus.BAD_REQUEST: _bad_request,
    HTTPStatus.UNAUTHORIZED: _unauthorized,
    HTTPStatus.FORBIDDEN: _forbidden,
    HTTPStatus.CONFLICT: _conflict,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: _too_large,
    HTTPStatus.UNPROCESSABLE_ENTITY: _invalid,
    HTTPStatus.INTERNAL_SERVER_ERROR: _internal,
    HTTPStatus.SERVICE_UNAVAILABLE: _unavailable,
}
