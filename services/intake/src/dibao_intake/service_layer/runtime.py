"""What every use case needs: the process-wide runtime and the acting caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from dibao_common.auth import Principal
from dibao_common.clock import Clock
from dibao_common.errors import Forbidden, NotFound
from dibao_intake.adapters.document_store import DocumentStore
from dibao_intake.adapters.pii import PersonalData
from dibao_intake.domain.application import CompletenessPolicy
from dibao_intake.domain.divisions import DivisionTable

SOURCE = "dibao/intake"
SERVICE = "intake"


@dataclass(frozen=True, slots=True)
class Runtime:
    """Built once per process at the wiring point; shared by every request."""

    divisions: DivisionTable
    pii: PersonalData
    clock: Clock
    policy: CompletenessPolicy
    store: DocumentStore
    document_max_bytes: int
    media_types: frozenset[str]
    page_size_max: int = 200


@dataclass(frozen=True, slots=True)
class Caller:
    """Who acts in this request, and the ids that tie its events to it."""

    principal: Principal
    correlation_id: str | None = None
    traceparent: str | None = None
    operation: str = field(default="")


NOT_FOUND = "No such record, or not in your regions"


def ensure_readable(caller: Caller, region_code: str) -> None:
    """404 for another region's record: the same answer as for a missing one."""
    if not caller.principal.can_see(region_code):
        raise NotFound(NOT_FOUND)


def region_out_of_scope(region_code: str) -> Forbidden:
    return Forbidden(
        f"Region {region_code} is outside your regions", type_slug="region-out-of-scope"
    )


def unknown_token_regions(regions: Sequence[str]) -> Forbidden:
    """403 ``token-region-unknown``: the token names a region no division of the table
    has (ADR 0004, 3 Dec 2026). A division code is no personal data: it is named, so that
    the portal's operator can correct what the identity provider issued."""
    return Forbidden(
        "Your token names regions that are no division known here: "
        + ", ".join(regions)
        + ". The identity provider must issue the token again with known division codes",
        type_slug="token-region-unknown",
        unknown_regions=list(regions),
    )


def regions_unknown(divisions: DivisionTable, principal: Principal) -> list[str]:
    """The principal's region prefixes that name no division of ``divisions``: a prefix
    is a level's code (62, 6201, 620102, 620102001, 620102001001), the division's code
    its 12 digits padded with zeros."""
    return [r for r in principal.regions if r.ljust(12, "0") not in divisions]


def ensure_writable_region(caller: Caller, region_code: str) -> None:
    """A clerk registers households only within their own regions."""
    if not caller.principal.can_see(region_code):
        raise region_out_of_scope(region_code)


def _driver_error(exc: BaseException) -> BaseException | None:
    """asyncpg's error under SQLAlchemy's (the driver's exception's cause), or ``exc``."""
    if isinstance(exc, IntegrityError):
        return exc.orig.__cause__ if exc.orig is not None else None
    return exc


def constraint_of(exc: IntegrityError) -> str | None:
    """The name of the constraint or index the database says was violated (asyncpg's
    error, the driver's exception's cause), if it names one: not a substring of the
    message, whose DETAIL quotes the row's values."""
    name = getattr(_driver_error(exc), "constraint_name", None)
    return name if isinstance(name, str) else None


class ConstraintViolatedError(RuntimeError):
    """A write broke a constraint that no race explains (a bug, or a constraint added
    since): a 500, not a 409 whose retry can never pass. Its text names the table and
    constraint only. It is raised from the driver's error, whose DETAIL quotes the row's
    values (a relative's name, a note, an applicant's statement): the 500's log shows that
    error's type, SQLSTATE, constraint and frames for the operator, and the kit's logging
    (``dibao_common.logged_errors``) withholds its DETAIL and any value it quotes (ADR 0005,
    3 Dec 2026). Raised ``from None`` before the kit cleaned chained errors."""

    def __init__(self, error: BaseException) -> None:
        driver = _driver_error(error)
        super().__init__(
            f"{type(driver).__name__} on table {getattr(driver, 'table_name', None)},"
            f" constraint {getattr(driver, 'constraint_name', None)}"
        )
