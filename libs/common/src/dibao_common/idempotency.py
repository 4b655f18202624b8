"""``Idempotency-Key`` handling for POSTs: a retried request answers what the first one did.

Everything happens in the request's own transaction (ADR 0010). It begins by taking a
transaction-scoped advisory lock on the key and reading the stored answer, in one
statement: a concurrent duplicate finds the lock taken and gets "in flight" (409) at
once. The route's work then runs, and the answer is stored with an INSERT in the same
transaction: the effects and the stored answer commit together or not at all. A request
that fails, or whose process dies, rolls back and leaves nothing behind, so the client
may retry at once; no lease, no release. Later requests with the key get the stored
status, headers and body back (``Idempotent-Replayed: true``, raised as :class:`Replayed`
when the work had already run); with another request (another method, path, query
string or body) they get 422. The kit checks nothing else on a replay: a route whose
answer shows personal data checks the caller again and records the replay itself
(intake's ``in_transaction``).

The fingerprint that tells requests apart is the sha256 of method, path, query string and
body (length-prefixed); the record keeps only its HMAC-SHA256 under a server-held key
(``DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS``, the first of the list), written ``hmac1:<hex>``.
A body may hold resident ID numbers, too few to hide behind an unkeyed digest (ADR 0005).
A record under a later key of the list (one being rotated out) still matches, and so does
an unprefixed plain sha256, which releases before 1 Dec 2026 stored: a retry spanning the
deploy is answered. No plain digest is written any more (ADR 0010).

A route whose writes can all go as one statement uses ``respond_in_one_statement``
instead (ADR 0013): no transaction and no lock; the writes, the events and the answer go
in together, and a simultaneous duplicate that loses answers the winner's answer.

A form body (``multipart/form-data``, ``application/x-www-form-urlencoded``) is
fingerprinted by what it holds rather than by its bytes: its fields in order, and each
file's field name, file name, media type and sha256. FastAPI parses a form before it
solves dependencies and keeps none of its bytes, and a client's retry of a multipart
request picks a new boundary, so its bytes differ anyway. A route takes a form with
``Form``/``File``/``UploadFile`` parameters (limits in the route's ``form_limits``); a
route that calls ``request.form()`` itself gets the form this dependency parsed, with
Starlette's default limits.

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
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from dibao_common.db import driver_connection
from dibao_common.db.held import HeldWrite, held_writes, one_statement, send
from dibao_common.errors import BadRequest, Conflict, ProblemError, UnprocessableEntity
from dibao_common.messaging.outbox import (
    OutboxRow,
    columns,
    held_insert,
    held_rows,
    insert_sql,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Headers a replay gives back; the rest (dates, trace ids) belong to each answer.
# Content-Location too (3 Dec 2026): a 200 naming the record it answers (intake's document
# on file) was replayed without it.
STORED_HEADERS = (
    "content-type",
    "location",
    "content-location",
    "etag",
    "link",
    "content-language",
)

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
FORM_MEDIA_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
_FORM_MARK = b"dibao-form-v1\0"
_FILE_CHUNK = 256 * 1024
FINGERPRINT_VERSION = "hmac1:"
FINGERPRINT_KEY_MIN_BYTES = 32

Now = Callable[[], datetime]
Handler = Callable[[], Awaitable[Response]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def request_digest(method: str, path: str, body: bytes, query: str = "") -> bytes:
    """The sha256 of method, path (with its query string, when there is one) and body,
    length-prefixed: what must match for a key to be reused. It stays in memory; what is
    stored is its HMAC (:class:`Fingerprint`). (A path holds no ``?``, so a request
    without a query has the digest it had before queries were covered.)"""
    target = f"{path}?{query}" if query else path
    return hashlib.sha256(_framed(method.upper().encode(), target.encode(), body)).digest()


class FingerprintKeys:
    """The HMAC keys of the fingerprints, each prepared once: the first keys new records;
    the others (keys being rotated out) still match the records made under them."""

    __slots__ = ("_macs",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one fingerprint key is required")
        if any(len(key) < FINGERPRINT_KEY_MIN_BYTES for key in keys):
            raise ValueError(
                f"a fingerprint key must be at least {FINGERPRINT_KEY_MIN_BYTES} bytes"
            )
        # Copying a prepared HMAC saves redoing the key schedule for each request.
        self._macs = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in keys)

    def __len__(self) -> int:
        return len(self._macs)

    def keyed(self, digest: bytes, index: int = 0) -> str:
        """What ``idempotency_record.fingerprint`` holds for a request's digest under the
        ``index``th key: ``hmac1:`` and the hex HMAC-SHA256 of the digest."""
        mac = self._macs[index].copy()
        mac.update(digest)
        return FINGERPRINT_VERSION + mac.hexdigest()


def request_fingerprint(method: str, path: str, body: bytes, query: str = "", *, key: bytes) -> str:
    """The stored fingerprint of a request under ``key`` (tests insert records with it)."""
    return FingerprintKeys((key,)).keyed(request_digest(method, path, body, query))


class Fingerprint:
    """A request's fingerprint: the value to store, and whether a stored one is this
    request's.

    Stored values are keyed (``hmac1:``, under the first of the keys); one under a later
    key of the list (a key being rotated out) matches too, and so does an unprefixed
    value, the plain sha256 hex that releases before 1 Dec 2026 stored, so a retry that
    spans the deploy is still answered. None is ever written plain again.
    """

    __slots__ = ("_digest", "_keys", "stored")

    def __init__(self, digest: bytes, keys: FingerprintKeys) -> None:
        self._digest = digest
        self._keys = keys
        self.stored = keys.keyed(digest)

    def matches(self, stored: str) -> bool:
        """Whether ``stored`` (a record's fingerprint) was made from this request."""
        if not stored.startswith(FINGERPRINT_VERSION):
            return _same(stored, self._digest.hex())
        if _same(stored, self.stored):
            return True
        return any(
            _same(stored, self._keys.keyed(self._digest, i)) for i in range(1, len(self._keys))
        )


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _framed(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


async def form_fingerprint_body(form: FormData) -> bytes:
    """What stands for a form's body in its fingerprint: a digest of its content.

    Fields in the order sent; a file by field name, file name, media type and the sha256
    of its content (read, then rewound for the route). The boundary of a multipart body
    and the encoding of a form are left out: a retry may choose them afresh.
    """
    digest = hashlib.sha256()
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = hashlib.sha256()
            await value.seek(0)
            while chunk := await value.read(_FILE_CHUNK):
                content.update(chunk)
            await value.seek(0)
            filename = (value.filename or "").encode()
            media_type = (value.content_type or "").encode()
            digest.update(_framed(b"file", name.encode(), filename, media_type, content.digest()))
        else:
            digest.update(_framed(b"field", name.encode(), value.encode()))
    return _FORM_MARK + digest.digest()


async def _fingerprint_body(request: Request) -> bytes:
    """The body as the fingerprint sees it: its bytes, or for a form its content.

    FastAPI has already parsed the form of a route with form parameters (``form()``
    returns it); reading the body then would fail, its stream consumed.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type in FORM_MEDIA_TYPES:
        return await form_fingerprint_body(await request.form())
    return await request.body()


def lock_id(scope: str, key: str) -> int:
    """The advisory lock of a key: a signed 64-bit digest of scope and key.

    Two keys sharing a lock (odds 2**-64) would only make one wait for the other: a 409.
    """
    digest = hashlib.blake2b(f"{scope}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class IdempotencyConfig:
    """Per-application settings of the idempotency handling (``app.state.idempotency``):
    the keys of the fingerprints and the clock."""

    fingerprint_keys: FingerprintKeys
    now: Now = _utc_now

    def fingerprint(self, method: str, path: str, body: bytes, query: str = "") -> Fingerprint:
        return Fingerprint(request_digest(method, path, body, query), self.fingerprint_keys)


def install_idempotency(
    app: FastAPI, *, fingerprint_keys: Sequence[bytes], now: Now = _utc_now
) -> None:
    """Give ``app``'s idempotent routes their fingerprint keys and a clock (the system
    clock otherwise). ``build_app`` does, with ``CommonSettings.fingerprint_keys()``."""
    app.state.idempotency = IdempotencyConfig(FingerprintKeys(fingerprint_keys), now=now)


@dataclass(frozen=True, slots=True)
class _Stored:
    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> Response:
        headers = dict(self.headers) | {REPLAYED_HEADER: "true"}
        return Response(self.body, status_code=self.status, headers=headers)


class Replayed(ProblemError):  # noqa: N818 - not an error to the client: its answer
    """The key's stored answer, raised rather than returned so that the request's own
    transaction rolls back what its work wrote before the answer was found. A caller that
    must act on a replay (record that it showed personal data again) catches it: the
    transaction has rolled back by then, so it acts in one of its own."""

    def __init__(self, stored: _Stored) -> None:
        super().__init__(stored.status, "replayed", "Replayed answer")
        self.stored = stored

    @property
    def stored_body(self) -> bytes:
        """The stored answer's body, as it is sent again."""
        return self.stored.body

    def response(self, instance: str | None = None) -> Response:
        return self.stored.response()


def _in_flight() -> Conflict:
    return Conflict(
        f"A request with this {IDEMPOTENCY_HEADER} is still being processed",
        type_slug="idempotency-key-in-flight",
        title="Request in flight",
        headers={"Retry-After": "1"},
    )


def in_flight() -> Conflict:
    """409 ``idempotency-key-in-flight``: the key's first request is still being worked."""
    return _in_flight()


def key_reused() -> UnprocessableEntity:
    """422 ``idempotency-key-reused``: the key was used with another request."""
    detail = f"This {IDEMPOTENCY_HEADER} was used with another request"
    # A 422 is a ValidationProblem (OpenAPI): errors[] points at the header.
    return UnprocessableEntity(
        detail,
        type_slug="idempotency-key-reused",
        title="Idempotency key reused",
        errors=[
            {
                "pointer": f"/header/{IDEMPOTENCY_HEADER}",
                "detail": detail,
                "code": "idempotency_key_reused",
            }
        ],
    )


def key_invalid() -> BadRequest:
    """400 ``idempotency-key-invalid``: the header is no key."""
    return BadRequest(
        f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters",
        type_slug="idempotency-key-invalid",
    )


def key_missing() -> BadRequest:
    """400 ``idempotency-key-missing``: a route that needs a key got none."""
    return BadRequest(
        f"This request needs an {IDEMPOTENCY_HEADER} header",
        type_slug="idempotency-key-missing",
    )


class IdempotentRequest:
    """One request carrying an ``Idempotency-Key``; ``respond`` runs it at most once."""

    def __init__(
        self,
        *,
        key: str,
        fingerprint: Fingerprint,
        request: Request | None,
        config: IdempotencyConfig,
        scope: str | None = None,
    ) -> None:
        self.key = key
        self.fingerprint = fingerprint
        self._request = request
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
        another request. ``session`` is the request's transaction; it is not committed
        here, and the caller's rollback on any error undoes the claim with the rest.
        """
        scope = self.scope
        claimed_at = self._config.now()
        driver = await driver_connection(session)
        stored = await self._claim(driver, scope)
        if stored is not None:
            return stored.response()
        # Events the work enqueues ride along with the answer: one statement for both.
        with held_rows(session) as events:
            try:
                response = await handle()
            except ProblemError:
                # A duplicate whose twin committed between the claim's read and its lock
                # may break a rule the twin's writes set up (say, one open application):
                # the twin's answer is the one for this key, not the problem.
                stored = await self._answer_after_problem(driver, scope)
                if stored is not None:
                    raise Replayed(stored) from None
                raise
        await self._complete(driver, scope, claimed_at, response, events)
        return response

    async def _answer_after_problem(self, driver: asyncpg.Connection, scope: str) -> _Stored | None:
        """The key's stored answer, when the transaction can still read (a problem
        raised after a failed statement leaves it aborted: then the problem stands)."""
        try:
            return await self._lookup(driver, scope)
        except asyncpg.InFailedSQLTransactionError:
            return None

    async def respond_in_one_statement(self, session: AsyncSession, handle: Handler) -> Response:
        """Like :meth:`respond`, for a ``session`` outside any transaction (autocommit)
        whose work holds its writes (``dibao_common.db.held``, ADR 0013): the work runs
        (reads as they come, writes and events held), then its writes, its events and the
        answer go in as one statement, atomically.

        The key is checked when the answer is stored, not before: the answer is a plain
        INSERT, and when the key already has one (a retry, or a duplicate that finished
        first) the statement fails on it, nothing of this run is written, and the stored
        answer is returned (422 if it was another request's). A retry so runs the work
        again before it is answered, which costs it a few milliseconds; every first
        request saves the round trip of a lookup.
        """
        scope = self.scope
        claimed_at = self._config.now()
        driver = await driver_connection(session)
        if driver.is_in_transaction():
            raise RuntimeError("respond_in_one_statement needs a session in autocommit")
        try:
            response, writes = await _held_work(session, handle)
        except ProblemError:
            # A retry, or a duplicate whose twin committed while it ran, may break a rule
            # the first run's writes set up (say, one open application): the stored
            # answer is the one for this key, not the problem.
            stored = await self._lookup(driver, scope)
            if stored is not None:
                return stored.response()
            raise
        answer = HeldWrite(_INSERT_ANSWER, self._answer(scope, claimed_at, response))
        sql, args = one_statement(writes, answer)
        try:
            await driver.execute(sql, *args)
        except asyncpg.UniqueViolationError as error:
            # On the key: it has an answer. On another constraint: perhaps the held rows
            # of a twin that has committed its answer by now. Either way that answer
            # stands if there is one (PostgreSQL runs the body, the answer, before the
            # CTEs today, but does not promise the order).
            stored = await self._lookup(driver, scope)
            if stored is not None:
                return stored.response()
            if error.table_name == "idempotency_record":
                raise _in_flight() from None
            raise
        return response

    def _answer(self, scope: str, claimed_at: datetime, response: Response) -> tuple[Any, ...]:
        """The values of a completed record (``_COMPLETE``'s and ``_INSERT_ANSWER``'s)."""
        body = getattr(response, "body", None)
        if not isinstance(body, bytes):
            raise TypeError("an idempotent route must answer with a complete Response")
        headers = {k: v for k, v in response.headers.items() if k.lower() in STORED_HEADERS}
        return (
            scope,
            self.key,
            self.fingerprint.stored,
            uuid.uuid4(),
            claimed_at,
            self._config.now(),
            response.status_code,
            json.dumps(headers),
            body,
        )

    async def _lookup(self, driver: asyncpg.Connection, scope: str) -> _Stored | None:
        """The key's stored answer, if any, without a lock (the one-statement path)."""
        row = await driver.fetchrow(_LOOKUP, scope, self.key)
        if row is None:
            return None
        stored = self._stored(row)
        if stored is None:
            # A claim row of a release before ADR 0010 (or one a transaction holds).
            raise _in_flight()
        return stored

    def _stored(self, row: asyncpg.Record) -> _Stored | None:
        """The answer of a record of this key; 422 when it was another request's."""
        if not self.fingerprint.matches(row["fingerprint"]):
            raise key_reused()
        if row["state"] != "completed":
            return None
        return _Stored(
            row["response_status"], json.loads(row["response_headers"]), bytes(row["response_body"])
        )

    async def _claim(self, driver: asyncpg.Connection, scope: str) -> _Stored | None:
        """Lock the key for this transaction and read its stored answer, if any."""
        row = await driver.fetchrow(_CLAIM, scope, self.key, lock_id(scope, self.key))
        assert row is not None  # one row, joined or not
        if row["fingerprint"] is not None:
            stored = self._stored(row)
            if stored is not None:
                return stored
        # No answer yet (or the claim row of a release before ADR 0010, whose holder is
        # gone once the lock is free): ours to run, unless another transaction holds it.
        if not row["free"]:
            raise _in_flight()
        return None

    async def _complete(
        self,
        driver: asyncpg.Connection,
        scope: str,
        claimed_at: datetime,
        response: Response,
        events: list[OutboxRow],
    ) -> None:
        stored = await driver.fetchval(
            _COMPLETE_WITH_EVENTS if events else _COMPLETE,
            *self._answer(scope, claimed_at, response),
            *(columns(events) if events else []),
        )
        if stored is None:
            # Another request with the key committed its answer between our read and our
            # lock: its answer stands, ours rolls back, and a retry gets that answer.
            raise _in_flight()


async def _held_work(session: AsyncSession, handle: Handler) -> tuple[Response, list[HeldWrite]]:
    """``handle()``'s response, and the writes and outbox rows it held, as writes to send."""
    with held_rows(session) as events, held_writes(session) as writes:
        response = await handle()
    if events:
        writes.append(held_insert(events))
    return response, writes


async def respond_in_one_statement(
    session: AsyncSession, handle: Handler, idempotency: IdempotentRequest | None
) -> Response:
    """Run ``handle`` on a ``session`` outside any transaction (``driver_session``) with
    its writes and events held, and send them as one statement (ADR 0013): with the
    idempotent answer when the request has a key, on their own otherwise."""
    if idempotency is not None:
        return await idempotency.respond_in_one_statement(session, handle)
    response, writes = await _held_work(session, handle)
    await send(session, writes)
    return response


# The lock is taken in the select list of the one row the outer join always yields.
_CLAIM = """
SELECT pg_try_advisory_xact_lock($3::bigint) AS free, r.fingerprint, r.state,
    r.response_status, r.response_headers::text AS response_headers, r.response_body
FROM (SELECT) AS one
LEFT JOIN idempotency_record r ON r.scope = $1 AND r.key = $2
"""
_LOOKUP = """
SELECT r.fingerprint, r.state, r.response_status, r.response_headers::text AS response_headers,
    r.response_body
FROM idempotency_record r WHERE r.scope = $1 AND r.key = $2
"""
_INSERT_ANSWER = """
INSERT INTO idempotency_record AS r (scope, key, fingerprint, state, claim_token, claimed_at,
    completed_at, response_status, response_headers, response_body)
VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7, $8::jsonb, $9)"""
_COMPLETE = (
    _INSERT_ANSWER
    + """
ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
    state = excluded.state, claim_token = excluded.claim_token,
    claimed_at = excluded.claimed_at, completed_at = excluded.completed_at,
    response_status = excluded.response_status, response_headers = excluded.response_headers,
    response_body = excluded.response_body
WHERE r.state = 'in_flight'
RETURNING true
"""
)
# The answer and the events the work enqueued (parameters 10-18), in one statement: the
# outbox insert runs as a data-modifying CTE whether or not the answer is stored (when it
# is not, the request fails and its transaction rolls back with both).
_COMPLETE_WITH_EVENTS = f"WITH events AS ({insert_sql(10)})" + _COMPLETE


def _config_of(request: Request) -> IdempotencyConfig:
    config = getattr(request.app.state, "idempotency", None)
    if not isinstance(config, IdempotencyConfig):
        # No default key: a fingerprint under a key anyone can read is a plain digest.
        raise RuntimeError("idempotent routes need install_idempotency(app, ...) (build_app's)")
    return config


async def _idempotent_request(request: Request, key: str | None) -> IdempotentRequest | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise key_invalid()
    config = _config_of(request)
    body = await _fingerprint_body(request)
    return IdempotentRequest(
        key=key,
        fingerprint=config.fingerprint(request.method, request.url.path, body, request.url.query),
        request=request,
        config=config,
    )


_KEY_HEADER = Header(
    alias=IDEMPOTENCY_HEADER,
    description="A unique key per operation (a UUID); a retry sends the same key and body."
    " 1 to 255 visible ASCII characters, else 400 idempotency-key-invalid",
    # Declared for clients, checked by ``_KEY`` (a 400 of its own, not FastAPI's 422).
    json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": _KEY.pattern},
)


async def idempotent_request(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> IdempotentRequest:
    """Dependency for routes that require an ``Idempotency-Key`` (400 when it is missing)."""
    found = await _idempotent_request(request, key)
    if found is None:
        raise key_missing()
    return found


async def optional_idempotent_request(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> IdempotentRequest | None:
    """Dependency for routes where the key is optional (``None`` without one)."""
    return await _idempotent_request(request, key)


Idempotent = Annotated[IdempotentRequest, Depends(idempotent_request)]
