"""Keyset-paginated lists (applications, households): the cursor, opaque to the client, is
the last row's id bound to the query that gave it (the list and its criteria); a page is
read one row long to know whether another follows; and the whole page is recorded as one
search. A search whose region lies outside every one of the caller's regions is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_common.auth import Principal
from dibao_common.crypto import mask_name
from dibao_common.errors import BadRequest, Forbidden, InvalidCursor
from dibao_intake.service_layer.access import AccessTarget, refused
from dibao_intake.service_layer.runtime import Caller, Runtime

NOT_CRITERIA = frozenset({"cursor", "limit"})
"""What a query may change between its pages: the rest of it is the query a cursor continues."""

_DIGEST_SIZE = 8
_PERSON = b"dibao-list-cursr"  # blake2b's personalization (16 bytes): these digests only
_CURSOR = re.compile(r"[A-Za-z0-9_-]{32}")  # 16 + 8 bytes in URL-safe base64, unpadded


class ForeignCursor(InvalidCursor):
    """400 ``invalid-cursor``, for a cursor of this service's form that another list or
    another search gave (or one altered): it continues only the query that gave it."""

    def __init__(self) -> None:
        BadRequest.__init__(
            self,
            "The cursor does not continue this list: it belongs to another list or search"
            " (another endpoint, or other filters than those of the page that gave it), or"
            " was altered. A cursor continues only the query that gave it, with the same"
            " filters (limit may change); start again without cursor for this one's first"
            " page.",
        )


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def query_of(name: str, criteria: Any) -> bytes:
    """The query a cursor continues: the list's name and every criterion given but the
    cursor and the page size, in one canonical form (a criterion not given is left out,
    as the request leaves it out)."""
    given = {
        k: _text(v) for k, v in asdict(criteria).items() if v is not None and k not in NOT_CRITERIA
    }
    return json.dumps([name, given], sort_keys=True, separators=(",", ":")).encode()


def _digest(last_id: uuid.UUID, query: bytes) -> bytes:
    # Not a secret: a client that forges one gains nothing (every page is read within the
    # caller's regions); it tells a cursor sent to another query, or altered, apart.
    return hashlib.blake2b(last_id.bytes + query, digest_size=_DIGEST_SIZE, person=_PERSON).digest()


def encode_cursor(last_id: uuid.UUID, query: bytes) -> str:
    """The last row's id and a digest of it with ``query``: URL-safe, 32 characters."""
    raw = last_id.bytes + _digest(last_id, query)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query: bytes) -> uuid.UUID:
    """The id a cursor continues after; ``InvalidCursor`` when it is not of the form this
    service gives, ``ForeignCursor`` when another query gave it (or it was altered)."""
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursor
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    last_id = uuid.UUID(bytes=raw[:16])
    if not hmac.compare_digest(raw[16:], _digest(last_id, query)):
        raise ForeignCursor
    return last_id


class _Row(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


R = TypeVar("R", bound=_Row)


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """The rows shown, and the cursor of the next page (None at the end)."""

    items: list[R]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows a request asks for: those after ``after``, at most ``limit``, of
    ``query`` (what its next page's cursor continues)."""

    after: uuid.UUID | None
    limit: int
    query: bytes

    @classmethod
    def of(cls, name: str, criteria: Any, maximum: int) -> Window:
        """The window of list ``name`` that ``criteria`` (with its ``cursor`` and
        ``limit``) asks for; 400 invalid-cursor for a cursor another query gave."""
        query = query_of(name, criteria)
        cursor: str | None = criteria.cursor
        after = decode_cursor(cursor, query) if cursor else None
        return cls(after, min(criteria.limit, maximum), query)

    @property
    def read(self) -> int:
        """How many rows to read: one more than shown tells whether a next page exists."""
        return self.limit + 1

    def page(self, rows: Sequence[R]) -> Page[R]:
        """The rows shown of those read, and the cursor of the next page."""
        items = list(rows[: self.limit])
        more = len(rows) > self.limit
        return Page(items, encode_cursor(items[-1].id, self.query) if more else None)


def listed_person(
    person_id: uuid.UUID, keyed_hash: str, hash_key_id: str, masked_id: str, name: str
) -> common.PersonRef:
    """A person a list names (a household's head, an applicant), as its access record
    names them: as a read of the household would, keyed hash included."""
    return common.PersonRef(
        person_id=str(person_id),
        keyed_hash=keyed_hash,
        hash_key_id=hash_key_id,
        masked_id=masked_id,
        masked_name=mask_name(name),
    )


def searched_regions(region_prefix: str | None, regions: Sequence[str]) -> list[str]:
    """The region prefixes whose rows a search could show: without a filter, each of the
    caller's regions; with one, the filter within each region it overlaps (the filter
    itself when it lies inside a region, the region when the filter holds it)."""
    if not region_prefix:
        return list(dict.fromkeys(regions))
    found: list[str] = []
    for region in regions:
        if region.startswith(region_prefix):
            found.append(region)
        elif region_prefix.startswith(region):
            found.append(region_prefix)
    return list(dict.fromkeys(found)) or [region_prefix]


def _code(prefix: str) -> str:
    return prefix.ljust(12, "0")[:12] if prefix else "0" * 12


def _continues(cursor: str, query: bytes) -> bool:
    try:
        decode_cursor(cursor, query)
    except InvalidCursor:
        return False
    return True


def list_target(name: str, criteria: Any, principal: Principal) -> AccessTarget:
    """What a list's access record is of: ``<name>?<criteria given>`` (the page size left
    out, the cursor too unless this query gave it), in the region asked for, or the
    caller's first, as a 12-digit code; and every region whose rows it could show (a
    caller of several regions searching without a filter searched them all: an audit
    query for any of them must find the search)."""
    scope = criteria.region_prefix or (principal.regions[0] if principal.regions else "")
    searched = searched_regions(criteria.region_prefix, principal.regions)
    given = {k: v for k, v in asdict(criteria).items() if v is not None and k != "limit"}
    if "cursor" in given and not _continues(given["cursor"], query_of(name, criteria)):
        # A refusal (a region, a role) is recorded before the cursor is checked: what came
        # in its place (an ID number, a NUL the audit log's JSON cannot hold) stays out.
        del given["cursor"]
    return AccessTarget(
        None,
        _code(scope),
        access.RECORD_TYPE_LIST,
        f"{name}?" + "&".join(f"{k}={v}" for k, v in given.items()),
        action=access.ACCESS_ACTION_SEARCH,
        regions=tuple(dict.fromkeys(_code(r) for r in searched)),
    )


def ensure_searchable(
    runtime: Runtime, caller: Caller, criteria: Any, target: AccessTarget
) -> None:
    """403 ``region-out-of-scope`` for a search whose region lies outside every one of the
    caller's regions (it could show nothing), recorded as refused (outcome DENIED) as a
    read of another region's record is; one that overlaps a region is searched there. A
    caller whose token carries no regions is refused any search alike, with a region or
    without: it could show nothing, and an empty page would read as "none there"."""
    prefix: str | None = criteria.region_prefix
    regions = caller.principal.regions
    if not regions:
        problem = Forbidden(
            "Your token carries no regions: a search shows only records within the caller's"
            " regions, so it could show nothing. Ask your administrator for a token naming"
            " the regions you work in.",
            type_slug="region-out-of-scope",
        )
        raise refused(problem, runtime, caller, target)
    if not prefix or any(r.startswith(prefix) or prefix.startswith(r) for r in regions):
        return
    problem = Forbidden(
        f"Region {prefix} is outside your regions ({', '.join(regions)}): a search"
        " shows only records within them. Search within one of them, or without region for"
        " all of them.",
        type_slug="region-out-of-scope",
    )
    raise refused(problem, runtime, caller, target)
