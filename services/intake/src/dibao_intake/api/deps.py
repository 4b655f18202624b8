"""Request plumbing: who calls, the runtime, and one transaction (or statement) per request.

No ``from __future__ import annotations`` here: FastAPI must see the real annotations of
the dependency closures, which refer to local names.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, Query, Request
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import Response

from dibao_common.auth import Principal, Role, authentication_unavailable, require_roles
from dibao_common.db import driver_session
from dibao_common.errors import ProblemError, explain_pattern, problem_responses
from dibao_common.idempotency import (
    REPLAYED_HEADER,
    IdempotentRequest,
    Replayed,
    optional_idempotent_request,
    respond_in_one_statement,
)
from dibao_common.observability import current_correlation_id, current_traceparent
from dibao_intake.api.replays import Replay
from dibao_intake.service_layer.access import AccessRefused
from dibao_intake.service_layer.applications import concurrent_change, roster_changed
from dibao_intake.service_layer.disclosure import IDENTITY_ROLES
from dibao_intake.service_layer.households import household_dissolved
from dibao_intake.service_layer.runtime import (
    Caller,
    ConstraintViolatedError,
    Runtime,
    regions_unknown,
    unknown_token_regions,
)
from dibao_intake.service_layer.views import CASE_ROLES_LISTED

_log = structlog.get_logger("dibao_intake.api")
REFUSALS_UNRECORDED = Counter(
    "dibao_access_refusals_unrecorded_total",
    "Refused reads whose DENIED access record could not be written (answered all the same;"
    " an operator should look: the audit trail misses them)",
)
TOKEN_REGIONS_UNKNOWN = Counter(
    "dibao_intake_token_regions_unknown_total",
    "Requests refused because their token names a region no division of the table has"
    " (403 token-region-unknown): a misissued token, or a division table behind the"
    " identity provider's",
)


async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def _operation(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.scope.get("path", "")
    return f"{request.method} {path}"


CALLER_DEPENDENCIES: set[Callable[..., Any]] = set()
"""Every dependency :func:`caller_with` made: the operations that answer 403
token-region-unknown (api.problem_examples)."""


def caller_with(*roles: Role) -> Callable[..., Any]:
    """A dependency giving the caller when they hold one of ``roles`` (403 otherwise), and
    every region of their token names a division of the table: a region unknown here is
    403 ``token-region-unknown`` (ADR 0004, 3 Dec 2026), not a caller who silently sees
    nothing there while the token is misissued."""

    async def dependency(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*roles))],
        runtime: Annotated[Runtime, Depends(get_runtime)],
    ) -> Caller:
        unknown = regions_unknown(runtime.divisions, principal)
        if unknown:
            TOKEN_REGIONS_UNKNOWN.inc()
            _log.warning(
                "token names unknown regions",
                regions=unknown,
                token_id=principal.token_id,
                operation=_operation(request),
            )
            raise unknown_token_regions(unknown)
        return Caller(
            principal=principal,
            correlation_id=current_correlation_id(),
            traceparent=current_traceparent(),
            operation=_operation(request),
        )

    CALLER_DEPENDENCIES.add(dependency)
    return dependency


READERS = tuple(Role)
"""Every role reads within its regions; what it may change is narrower."""

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Reader = Annotated[Caller, Depends(caller_with(*READERS))]
Clerk = Annotated[Caller, Depends(caller_with(Role.INTAKE_CLERK))]
PolicyAdmin = Annotated[Caller, Depends(caller_with(Role.POLICY_ADMIN))]
RosterReader = Annotated[
    Caller,
    Depends(
        caller_with(Role.POLICY_ADMIN, Role.COUNTY_APPROVER, Role.TOWNSHIP_REVIEWER, Role.AUDITOR)
    ),
]
IdentityReader = Annotated[Caller, Depends(caller_with(*IDENTITY_ROLES))]
AccountReader = Annotated[Caller, Depends(caller_with(Role.FINANCE_OFFICER, Role.AUDITOR))]
CaseReader = Annotated[Caller, Depends(caller_with(*CASE_ROLES_LISTED))]
"""The roles that work or audit cases (views.py)."""
Idempotency = Annotated[IdempotentRequest | None, Depends(optional_idempotent_request)]

# A list's query parameters (applications, households).
# A division level's prefix, as a token's regions are (dibao_common.auth): a prefix between
# levels (62012) would be recorded as a search of no division (620120000000).
REGION_LEVEL_PREFIX = explain_pattern(
    r"^(?:[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$",
    "must be a division code's prefix down to a level: 2 digits (province), 4 (city),"
    " 6 (county), 9 (township) or 12 (village)",
)
RegionPrefix = Annotated[
    str | None,
    Query(
        pattern=REGION_LEVEL_PREFIX,
        description="Division-code prefix of a level (2, 4, 6, 9 or 12 digits), e.g. 620123101",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=64,
        description="The next_cursor of the previous page, as it was given; leave it out for"
        " the first page. It continues only the query that gave it: the same list with the"
        " same filters (limit may change). A cursor of another list or of a search with other"
        " filters is 400 invalid-cursor: start that query again without cursor.",
    ),
]
PageSize = Annotated[int, Query(ge=1, le=200)]

Work = Callable[[AsyncSession], Awaitable[Response]]

HOUSEHOLD_ACTIVE = "application_household_active"
"""The database's check that an application is written for an active household only."""
HOUSEHOLD_CURRENT = "application_household_current"
"""The database's check that the household has not changed since the submission read it
(migration 0007)."""
ROSTER_CURRENT = "application_roster_current"
"""The database's check that the staff roster has not changed since the submission read
it (migration 0021, ADR 0009)."""
Race = Callable[[AsyncSession, str | None], Awaitable[ProblemError | None]]
"""What a unique violation of a one-statement write means, by the constraint's name: the
problem of a race lost to a request that wrote the same unique row since the read, or
None when the violation is no race."""


def _replayed_body(response: Response) -> bytes | None:
    """The body of a stored answer sent again, if ``response`` is one that shows something."""
    if response.headers.get(REPLAYED_HEADER) != "true" or not 200 <= response.status_code < 300:
        return None
    body = getattr(response, "body", b"")
    return body if isinstance(body, bytes) and body else None


async def in_transaction(
    request: Request, work: Work, idempotency: Idempotency = None, replay: Replay | None = None
) -> Response:
    """Run ``work`` in one transaction committed before the response leaves.

    With an ``Idempotency-Key``, a retry gets the stored response and nothing runs twice.
    A route whose answer shows personal data gives ``replay``: a stored answer sent again
    is a read, checked against the caller's regions as they now are and recorded
    (service_layer.replays), in the request's transaction, or in one of its own when the
    work ran (and rolled back) before the stored answer was found.
    """
    sessionmaker = request.app.state.sessionmaker
    assert isinstance(sessionmaker, async_sessionmaker)
    try:
        try:
            async with sessionmaker() as session, session.begin():
                if idempotency is None:
                    return await work(session)
                response = await idempotency.respond(session, lambda: work(session))
                body = _replayed_body(response) if replay is not None else None
                if replay is not None and body is not None:
                    await replay(session, body)
                return response
        except Replayed as replayed:
            if replay is None or _replayed_body(replayed.response()) is None:
                raise
            async with sessionmaker() as session, session.begin():
                await replay(session, replayed.stored_body)
            raise
    except AccessRefused as refusal:
        # The read's transaction has rolled back; the attempt is recorded all the same.
        await _record_refusal(request, sessionmaker, refusal)
        raise


async def _record_refusal(
    request: Request, sessionmaker: async_sessionmaker[AsyncSession], refusal: AccessRefused
) -> None:
    """Write ``refusal``'s access record (DENIED) in a short transaction of its own."""
    try:
        async with sessionmaker() as session, session.begin():
            await refusal.record(session)
    except Exception:
        # Nothing was shown, so the refusal stands: a 500 instead would tell that the
        # id names a record (a missing one answers the same 404 and writes nothing).
        REFUSALS_UNRECORDED.inc()
        _log.error(
            "refused read not recorded",
            operation=_operation(request),
            exc_info=True,
        )


async def in_one_statement(
    request: Request,
    work: Work,
    idempotency: Idempotency = None,
    replay: Replay | None = None,
    race: Race | None = None,
) -> Response:
    """Run ``work`` outside a transaction, its writes held and sent at the end as one
    statement, with the idempotent answer when there is a key (ADR 0013): two round
    trips for a keyed submission instead of six. ``work`` must write only through
    ``dibao_common.db.held.write`` and the outbox, and read nothing it wrote. A stored
    answer sent again is checked and recorded by ``replay`` (as in ``in_transaction``).

    A unique violation is the problem ``race`` gives for its constraint (read on the
    request's connection once the statement failed: the row it lost to is committed);
    one it does not explain, or any other constraint violated, is a 500
    (``ConstraintViolatedError``), not a 409 whose retry can never pass."""
    sessionmaker = request.app.state.sessionmaker
    assert isinstance(sessionmaker, async_sessionmaker)
    engine = sessionmaker.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    try:
        async with driver_session(engine) as session:
            try:
                response = await respond_in_one_statement(
                    session, lambda: work(session), idempotency
                )
            except asyncpg.CheckViolationError as error:
                if error.constraint_name == HOUSEHOLD_CURRENT:
                    # A change (a death, a birth, a new account...) committed after the read:
                    # the application would describe the household as it was (migration
                    # 0007's trigger). Nothing was written.
                    raise concurrent_change() from error
                if error.constraint_name == ROSTER_CURRENT:
                    # A roster change (the caseworker taken off or replaced, a relative of
                    # staff put on) committed after the read: the assignment and the flag
                    # would be the old roster's (migration 0021's trigger). Nothing written.
                    raise roster_changed() from error
                if error.constraint_name != HOUSEHOLD_ACTIVE:
                    raise ConstraintViolatedError(error) from error
                # A change that dissolved the household committed after the read found it
                # active (migration 0004's trigger). Nothing was written.
                raise household_dissolved() from error
            except asyncpg.UniqueViolationError as error:
                # What the read found is no longer so when another request wrote the same
                # unique row since (an open application of the kind, a household's first
                # account): the race's problem. Nothing was written.
                lost = None if race is None else await race(session, error.constraint_name)
                if lost is None:
                    raise ConstraintViolatedError(error) from error
                raise lost from error
            except asyncpg.IntegrityConstraintViolationError as error:
                raise ConstraintViolatedError(error) from error
    except AccessRefused as refusal:
        # Refused before anything was held (a probe of another region's household): the
        # request's statement is not sent, so the attempt is recorded in a short
        # transaction of its own, after the request's connection is back in the pool.
        await _record_refusal(request, sessionmaker, refusal)
        raise
    body = _replayed_body(response) if replay is not None else None
    if replay is None or body is None:
        return response

    # A stored answer sent again (nothing of the work was written): checked and recorded
    # in a transaction of its own, as the ORM reads it needs are.
    async def check(session: AsyncSession) -> Response:
        await replay(session, body)
        return response

    return await in_transaction(request, check)


def json_response(
    body: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body.model_dump_json().encode(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


_DESCRIPTIONS = {
    400: "Malformed JSON, a bad Idempotency-Key or a bad cursor (problem+json)",
    401: "No valid bearer token",
    403: "The token lacks the role, or the region is outside its regions, or the token names"
    " a region that is no division of the table (token-region-unknown)",
    404: "No such record, or not in the caller's regions (the same answer)",
    409: "A request with this Idempotency-Key is still in flight",
    413: "The request body is larger than the service accepts (content-too-large),"
    " answered before the token is checked",
    415: "The document's media type is not accepted",
    422: "Invalid fields or broken rules; errors[] lists each with a JSON pointer",
    500: "An unexpected error, logged with the correlation id; nothing was committed",
    503: "The database cannot be reached right now (database-unavailable); nothing was"
    " committed: send the request again after Retry-After seconds, with the same"
    " Idempotency-Key if it had one",
}
_ISSUER_KEYS_UNREACHABLE = (
    "the token issuer's keys cannot be fetched (authentication-unavailable): send the"
    " request again after Retry-After seconds"
)
PERSON_IN_HOUSEHOLD = (
    "A member is already active in another household; conflicts[] names it only by a masked"
    " reference (type person-in-household). Or the Idempotency-Key is in flight."
)


SEARCH_FORBIDDEN = (
    "The token lacks a role the search needs (missing-role), or the region searched lies"
    " outside every one of its regions, or it carries none (region-out-of-scope, recorded as"
    " a refused search), or the token names a region that is no division of the table"
    " (token-region-unknown)"
)


def location_header(where: str, example: str) -> dict[str, Any]:
    """A 201's Location, declared: the URL a GET reads what the request created at (its
    own, or the record's that shows it: ``where`` says which). A keyed request's replay
    answers the same Location (the kit stores it with the answer, ADR 0010)."""
    return {"Location": {"description": where, "schema": {"type": "string"}, "example": example}}


def created(description: str, where: str, example: str) -> dict[int | str, dict[str, Any]]:
    """A route's 201, described, with its Location (``location_header``)."""
    return {201: {"description": description, "headers": location_header(where, example)}}


def problems(
    *statuses: int,
    conflict: str | None = None,
    forbidden: str | None = None,
    too_large: str | None = None,
    not_found: str | None = None,
    database: bool = True,
) -> dict[int | str, dict[str, Any]]:
    """The problem+json responses of a route, each described. A route that takes a body
    declares 413: the kit's body limit answers it on every such route. A route that
    reaches the database (``database``, all but a few) declares the kit's 503, and so
    does one taking a token (it declares 401): 503 authentication-unavailable when the
    issuer's keys cannot be fetched."""
    token = 401 in statuses
    declared = problem_responses(
        *statuses,
        500,
        *([503] if database or token else []),
        # Not the database's: only the token's 503 (the kit's examples give both).
        examples=None if database else {503: authentication_unavailable()},
    )
    for status, response in declared.items():
        response["description"] = _DESCRIPTIONS.get(int(status), response["description"])
    if token and database:
        declared[503]["description"] = f"{_DESCRIPTIONS[503]}. Or {_ISSUER_KEYS_UNREACHABLE}"
    elif token:
        declared[503]["description"] = (
            _ISSUER_KEYS_UNREACHABLE[0].upper() + _ISSUER_KEYS_UNREACHABLE[1:]
        )
    if conflict is not None and 409 in declared:
        declared[409]["description"] = conflict
    if forbidden is not None and 403 in declared:
        declared[403]["description"] = forbidden
    if too_large is not None and 413 in declared:
        declared[413]["description"] = too_large
    if not_found is not None and 404 in declared:
        declared[404]["description"] = not_found
    return declared
