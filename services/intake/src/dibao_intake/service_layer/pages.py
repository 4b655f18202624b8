"""Keyset-paginated lists (applications, households): the cursor, opaque to the client, is
the last row's id; a page is read one row long to know whether another follows; and the
whole page is recorded as one search."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_common.auth import Principal
from dibao_common.crypto import mask_name
from dibao_common.errors import InvalidCursor
from dibao_intake.service_layer.access import AccessTarget


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor from None


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
    """Which rows a request asks for: those after ``after``, at most ``limit``."""

    after: uuid.UUID | None
    limit: int

    @classmethod
    def of(cls, cursor: str | None, limit: int, maximum: int) -> Window:
        return cls(decode_cursor(cursor) if cursor else None, min(limit, maximum))

    @property
    def read(self) -> int:
        """How many rows to read: one more than shown tells whether a next page exists."""
        return self.limit + 1

    def page(self, rows: Sequence[R]) -> Page[R]:
        """The rows shown of those read, and the cursor of the next page."""
        items = list(rows[: self.limit])
        return Page(items, encode_cursor(items[-1].id) if len(rows) > self.limit else None)


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


def list_target(name: str, criteria: Any, principal: Principal) -> AccessTarget:
    """What a list's access record is of: ``<name>?<criteria given>`` (the page size left
    out), in the region asked for, or the caller's first, as a 12-digit code; and every
    region whose rows it could show (a caller of several regions searching without a
    filter searched them all: an audit query for any of them must find the search)."""
    scope = criteria.region_prefix or (principal.regions[0] if principal.regions else "")
    searched = searched_regions(criteria.region_prefix, principal.regions)
    return AccessTarget(
        None,
        _code(scope),
        access.RECORD_TYPE_LIST,
        f"{name}?"
        + "&".join(
            f"{k}={v}" for k, v in asdict(criteria).items() if v is not None and k != "limit"
        ),
        action=access.ACCESS_ACTION_SEARCH,
        regions=tuple(dict.fromkeys(_code(r) for r in searched)),
    )
