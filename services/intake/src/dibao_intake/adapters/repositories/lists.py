"""What every keyset-paginated list of intake shares (applications, households)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import sqlalchemy as sa

from dibao_common.auth import Principal, region_filter

S = TypeVar("S", bound="sa.Select[Any]")


def newest_first(
    statement: S,
    table: sa.Table,
    principal: Principal,
    *,
    region_prefix: str | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> S:
    """``statement`` over ``table`` narrowed to the principal's regions (and to
    ``region_prefix``), newest first (ids are uuid7), ``limit`` rows after ``after_id``."""
    statement = (
        statement.where(region_filter(table.c.region_code, principal))
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    if region_prefix:
        statement = statement.where(table.c.region_code.startswith(region_prefix, autoescape=True))
    if after_id is not None:
        statement = statement.where(table.c.id < after_id)
    return statement
