"""``Idempotency-Key`` handling for POSTs: a retried request answers what the first one did.

The first request with a key claims it in a short transaction of its own, so a
concurrent duplicate sees "in flight" (409) at once. The route's work then runs in the
request's transaction, and the response is stored in that same transaction: the effects
and the stored answer commit together or not at all. Later requests with the key get
the stored status, headers and body back (``Idempotent-Replayed: true``); with another
body (a different sha256 of method, path and body) they get 422. A failed request
releases its claim so the client may retry; a claim whose holder vanished (process
killed) may be taken over after ``lease``.

    @router.post("/bank/confirmations", status_code=201,
                 responses=problem_responses(400, 409, 422))
    async def confirm(body: ConfirmationIn, session: Session, idempotency: Idempotent) -> Response:
        async def handle() -> Response:
            out = await service.record_confirmation(session, body)
            return JSONResponse(out.model_dump(mode="json"), status_code=201)

        return await idempotency.respond(session, handle)
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from sqlalchemy import DateTime, LargeBinary, SmallInteger, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.responses import Response

from dibao_common.errors import BadRequest, Conflict, UnprocessableEntity

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Headers a replay gives back; the rest (dates, trace ids) belong to each answer.
STORED_HEADERS = ("content-type", "location", "etag", "link", "content-language")
DEFAULT_LEASE = timedelta(minutes=2)

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Now = Callable[[], datetime]
Handler = Callable[[], Awaitable[Response]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Hex sha256 of method, path and body: what must match for a key to be reused."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyConfig:
    """Per-application settings of the idempotency handling (``app.state.idempotency``)."""

    now: Now = _utc_now
    lease: timedelta = DEFAULT_LEASE


def install_idempotency(
    app: FastAPI, *, now: Now = _utc_now, lease: timedelta = DEFAULT_LEASE
) -> None:
    """Give ``app``'s idempotent routes a clock and a claim lease (defaults otherwise)."""
    app.state.idempotency = IdempotencyConfig(now=now, lease=lease)


@dataclass(frozen=True, slots=True)
class _Stored:
    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> Response:
        headers = dict(self.headers) | {REPLAYED_HEADER: "true"}
        return Response(self.body, status_code=self.status, headers=headers)


class IdempotentRequest:
    """One request carrying an ``Idempotency-Key``; ``respond`` runs it at most once."""

    def __init__(
        self,
        *,
        key: str,
        fingerprint: str,
        request: Request | None,
        engine: AsyncEngine,
        config: IdempotencyConfig,
        scope: str | None = None,
    ) -> None:
        self.key = key
        self.fingerprint = fingerprint
        self._request = request
        self._engine = engine
        self._config = config
        self._scope = scope

    @property
    def scope(self) -> str:
        """Whose key this is: the token subject, the bank, or an anonymous caller."""
        if self._scope is not None:
            return self._scope
        state = self._request.state if self._request is not None else None
        principal = getattr(state, "principal", None)
        if principal is not None:
            return f"sub:{principal.subject}"
        if getattr(state, "bank_webhook", None) is not None:
            return "bank"
        return "anonymous"

    async def respond(self, session: AsyncSession, handle: Handler) -> Response:
        """The stored response of an earlier run, or ``handle()``'s, stored in ``session``.

        Raises 409 while another request holds the key, 422 when the key came with
        another request. ``session`` is the request's transaction; it is not committed here.
        """
        scope = self.scope
        outcome = await self._claim(scope)
        if isinstance(outcome, _Stored):
            return outcome.response()
        token = outcome
        try:
            response = await handle()
            await self._complete(session, scope, token, response)
        except BaseException:
            await self._release(scope, token)
            raise
        return response

    async def _claim(self, scope: str) -> uuid.UUID | _Stored:
        now = self._config.now()
        token = uuid.uuid4()
        params: dict[str, Any] = {
            "scope": scope,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "token": token,
            "now": now,
        }
        # Two tries: a record released between our insert and our read is simply gone.
        for _ in range(2):
            async with self._engine.begin() as conn:
                inserted = await conn.execute(_INSERT_CLAIM, params)
                if inserted.first() is not None:
                    return token
                row = (await conn.execute(_LOCK_RECORD, params)).mappings().first()
                if row is None:
                    continue
                if row["fingerprint"] != self.fingerprint:
                    raise UnprocessableEntity(
                        f"This {IDEMPOTENCY_HEADER} was used with another request",
                        type_slug="idempotency-key-reused",
                        title="Idempotency key reused",
                    )
                if row["state"] == "completed":
                    return _Stored(
                        row["response_status"],
                        dict(row["response_headers"]),
                        bytes(row["response_body"]),
                    )
                if row["claimed_at"] > now - self._config.lease:
                    raise Conflict(
                        f"A request with this {IDEMPOTENCY_HEADER} is still being processed",
                        type_slug="idempotency-key-in-flight",
                        title="Request in flight",
                        headers={"Retry-After": "1"},
                    )
                await conn.execute(_TAKE_OVER, params)
                return token
        raise Conflict(
            f"A request with this {IDEMPOTENCY_HEADER} is still being processed",
            type_slug="idempotency-key-in-flight",
            title="Request in flight",
            headers={"Retry-After": "1"},
        )

    async def _complete(
        self, session: AsyncSession, scope: str, token: uuid.UUID, response: Response
    ) -> None:
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            raise TypeError("an idempotent route must answer with a complete Response")
        headers = {k: v for k, v in response.headers.items() if k.lower() in STORED_HEADERS}
        result = await session.execute(
            _COMPLETE,
            {
                "scope": scope,
                "key": self.key,
                "token": token,
                "now": self._config.now(),
                "status": response.status_code,
                "headers": json.dumps(headers),
                "body": body,
            },
        )
        if result.first() is None:
            # Our lease ran out and another request took the key: let that one win.
            raise Conflict(
                f"A request with this {IDEMPOTENCY_HEADER} is still being processed",
                type_slug="idempotency-key-in-flight",
                title="Request in flight",
                headers={"Retry-After": "1"},
            )

    async def _release(self, scope: str, token: uuid.UUID) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_RELEASE, {"scope": scope, "key": self.key, "token": token})


_INSERT_CLAIM = text(
    "INSERT INTO idempotency_record (scope, key, fingerprint, state, claim_token, claimed_at)"
    " VALUES (:scope, :key, :fingerprint, 'in_flight', :token, :now)"
    " ON CONFLICT (scope, key) DO NOTHING RETURNING key"
)
_LOCK_RECORD = text(
    "SELECT fingerprint, state, claimed_at, response_status, response_headers, response_body"
    " FROM idempotency_record WHERE scope = :scope AND key = :key FOR UPDATE"
).columns(
    fingerprint=Text,
    state=Text,
    claimed_at=DateTime(timezone=True),
    response_status=SmallInteger,
    response_headers=JSONB,
    response_body=LargeBinary,
)
_TAKE_OVER = text(
    "UPDATE idempotency_record SET claim_token = :token, claimed_at = :now"
    " WHERE scope = :scope AND key = :key AND state = 'in_flight'"
)
_COMPLETE = text(
    "UPDATE idempotency_record SET state = 'completed', completed_at = :now,"
    " response_status = :status, response_headers = CAST(:headers AS jsonb),"
    " response_body = :body"
    " WHERE scope = :scope AND key = :key AND claim_token = :token AND state = 'in_flight'"
    " RETURNING key"
)
_RELEASE = text(
    "DELETE FROM idempotency_record"
    " WHERE scope = :scope AND key = :key AND claim_token = :token AND state = 'in_flight'"
)


async def purge_idempotency_records(session: AsyncSession, *, completed_before: datetime) -> int:
    """Forget answers completed before ``completed_before``; returns how many."""
    result = await session.execute(
        text(
            "DELETE FROM idempotency_record WHERE state = 'completed'"
            " AND completed_at < :before RETURNING key"
        ),
        {"before": completed_before},
    )
    return len(result.all())


def _config_of(request: Request) -> IdempotencyConfig:
    config = getattr(request.app.state, "idempotency", None)
    return config if isinstance(config, IdempotencyConfig) else IdempotencyConfig()


def _engine_of(request: Request) -> AsyncEngine:
    engine = getattr(request.app.state, "engine", None)
    if not isinstance(engine, AsyncEngine):
        raise RuntimeError("idempotent routes need app.state.engine (set by build_app)")
    return engine


async def _idempotent_request(request: Request, key: str | None) -> IdempotentRequest | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise BadRequest(
            f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters",
            type_slug="idempotency-key-invalid",
        )
    body = await request.body()
    return IdempotentRequest(
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, body),
        request=request,
        engine=_engine_of(request),
        config=_config_of(request),
    )


_KEY_HEADER = Header(
    alias=IDEMPOTENCY_HEADER,
    description="A unique key per operation (a UUID); a retry sends the same key and body",
)


async def idempotent_request(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> IdempotentRequest:
    """Dependency for routes that require an ``Idempotency-Key`` (400 when it is missing)."""
    found = await _idempotent_request(request, key)
    if found is None:
        raise BadRequest(
            f"This request needs an {IDEMPOTENCY_HEADER} header",
            type_slug="idempotency-key-missing",
        )
    return found


async def optional_idempotent_request(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> IdempotentRequest | None:
    """Dependency for routes where the key is optional (``None`` without one)."""
    return await _idempotent_request(request, key)


Idempotent = Annotated[IdempotentRequest, Depends(idempotent_request)]
