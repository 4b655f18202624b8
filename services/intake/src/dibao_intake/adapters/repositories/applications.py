"""SQL for applications, their declarations and documents, and their timelines."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.auth import Principal
from dibao_common.db import DriverStatement, driver_connection
from dibao_common.db.held import write
from dibao_intake.adapters.records import (
    ApplicationRecord,
    ApplicationSummary,
    TimelineRecord,
)
from dibao_intake.adapters.repositories.lists import newest_first
from dibao_intake.domain.application import (
    AssetDeclaration,
    Deduction,
    IncomeDeclaration,
    InKind,
    NotCountedReceipt,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationState,
    ApplicationStatus,
    AssetKind,
    DecisionOutcome,
    DeductionKind,
    NotCountedKind,
    SubmissionChannel,
    UnassignedReason,
    WithdrawalCause,
)
from dibao_intake.domain.decisions import Decision
from dibao_intake.models import (
    Application,
    ApplicationAsset,
    ApplicationDocument,
    ApplicationIncome,
    ApplicationIncomeDeduction,
    ApplicationIncomeNotCounted,
    Person,
    TimelineEntry,
    table_of,
)

application_t = table_of(Application)
income_t = table_of(ApplicationIncome)
not_counted_t = table_of(ApplicationIncomeNotCounted)
deduction_t = table_of(ApplicationIncomeDeduction)
asset_t = table_of(ApplicationAsset)
app_document_t = table_of(ApplicationDocument)
timeline_t = table_of(TimelineEntry)
person_t = table_of(Person)

_COLUMNS = (
    application_t.c.id,
    application_t.c.household_id,
    application_t.c.region_code,
    application_t.c.kind,
    application_t.c.channel,
    application_t.c.status,
    application_t.c.applicant_person_id,
    application_t.c.statement,
    application_t.c.reason,
    application_t.c.requested_amount_fen,
    application_t.c.individual_inclusion_person_id,
    application_t.c.bank_account_id,
    application_t.c.staff_related,
    application_t.c.staff_relation_note,
    application_t.c.assigned_caseworker,
    application_t.c.missing_items,
    application_t.c.submitted_at,
    application_t.c.submitted_by,
    application_t.c.accepted_on,
    application_t.c.withdrawn_at,
    application_t.c.withdrawal_reason,
    application_t.c.withdrawal_cause,
    application_t.c.unassigned_reason,
    application_t.c.completes_application_id,
    application_t.c.decided_at,
    application_t.c.decision,
    application_t.c.decided_amount_fen,
    application_t.c.notice_document_id,
)


def _record(row: Sequence[Any]) -> ApplicationRecord:
    values = list(row)
    values[3] = ApplicationKind(values[3])
    values[4] = SubmissionChannel(values[4])
    values[5] = ApplicationStatus(values[5])
    values[21] = WithdrawalCause(values[21]) if values[21] is not None else None
    values[22] = UnassignedReason(values[22]) if values[22] is not None else None
    values[25] = DecisionOutcome(values[25]) if values[25] is not None else None
    return ApplicationRecord(*values)


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> ApplicationRecord | None:
    statement = sa.select(*_COLUMNS).where(application_t.c.id == application_id)
    if for_update:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).first()
    return _record(row) if row is not None else None


async def application_region(session: AsyncSession, application_id: uuid.UUID) -> str | None:
    return (
        await session.execute(
            sa.select(application_t.c.region_code).where(application_t.c.id == application_id)
        )
    ).scalar_one_or_none()


async def load_incomes(session: AsyncSession, application_id: uuid.UUID) -> list[IncomeDeclaration]:
    rows = await session.execute(
        sa.select(
            income_t.c.person_id,
            income_t.c.wage_fen,
            income_t.c.operating_fen,
            income_t.c.property_fen,
            income_t.c.transfer_fen,
            income_t.c.other_fen,
            income_t.c.period_months,
            income_t.c.note,
            income_t.c.wage_in_kind_fen,
            income_t.c.operating_in_kind_fen,
            income_t.c.property_in_kind_fen,
            income_t.c.transfer_in_kind_fen,
            income_t.c.other_in_kind_fen,
        )
        .where(income_t.c.application_id == application_id)
        .order_by(income_t.c.person_id)
    )
    # The part of each category received in kind (migration 0019) beside the amounts.
    declared = [IncomeDeclaration(*r[:8], in_kind=InKind(*r[8:])) for r in rows]
    if not declared:
        return declared
    # Receipts not counted and deductions (migration 0015), in their vocabularies' order.
    receipts: dict[uuid.UUID, list[NotCountedReceipt]] = {}
    for person_id, kind, fen in await session.execute(
        sa.select(
            not_counted_t.c.person_id, not_counted_t.c.kind, not_counted_t.c.monthly_fen
        ).where(not_counted_t.c.application_id == application_id)
    ):
        receipts.setdefault(person_id, []).append(NotCountedReceipt(NotCountedKind(kind), fen))
    deductions: dict[uuid.UUID, list[Deduction]] = {}
    for person_id, kind, fen in await session.execute(
        sa.select(deduction_t.c.person_id, deduction_t.c.kind, deduction_t.c.monthly_fen).where(
            deduction_t.c.application_id == application_id
        )
    ):
        deductions.setdefault(person_id, []).append(Deduction(DeductionKind(kind), fen))
    return [
        replace(
            d,
            not_counted=tuple(receipts.get(d.person_id, ())),
            deductions=tuple(deductions.get(d.person_id, ())),
        ).in_order()
        for d in declared
    ]


async def load_assets(session: AsyncSession, application_id: uuid.UUID) -> list[AssetDeclaration]:
    rows = await session.execute(
        sa.select(
            asset_t.c.person_id,
            asset_t.c.kind,
            asset_t.c.value_fen,
            asset_t.c.quantity,
            asset_t.c.floor_area_m2,
            asset_t.c.description,
        )
        .where(asset_t.c.application_id == application_id)
        .order_by(asset_t.c.id)
    )
    return [AssetDeclaration(r[0], AssetKind(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


async def load_document_ids(session: AsyncSession, application_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.execute(
        sa.select(app_document_t.c.document_id)
        .where(app_document_t.c.application_id == application_id)
        .order_by(app_document_t.c.document_id)
    )
    return list(rows.scalars())


async def open_application_ids(session: AsyncSession, household_id: uuid.UUID) -> list[uuid.UUID]:
    """The household's applications not yet decided (submitted, neither withdrawn nor
    decided by assessment), oldest first, locked FOR SHARE to the end of the transaction:
    a withdrawal (FOR UPDATE) or a decision (its UPDATE) in progress is waited for, and
    the row read again once it commits (no longer open, it is not returned); one that
    starts after waits for this transaction, whose entries then precede it."""
    return [application_id for application_id, _ in await open_applicants(session, household_id)]


async def open_applicants(
    session: AsyncSession, household_id: uuid.UUID
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The household's applications not yet decided, found and locked as
    ``open_application_ids`` says, each with its applicant: whom a death or a move out may
    leave without one (ADR 0016, 3 Dec 2026)."""
    rows = await session.execute(
        sa.select(application_t.c.id, application_t.c.applicant_person_id)
        .where(
            application_t.c.household_id == household_id,
            application_t.c.status == ApplicationStatus.SUBMITTED.value,
            application_t.c.decided_at.is_(None),
        )
        .order_by(application_t.c.id)
        .with_for_update(read=True)
    )
    return [(row[0], row[1]) for row in rows]


async def set_applicant(
    session: AsyncSession, application_ids: Sequence[uuid.UUID], applicant_person_id: uuid.UUID
) -> None:
    """The member who applies for open applications from now on (their applicant left)."""
    await session.execute(
        sa.update(application_t)
        .where(application_t.c.id.in_(application_ids))
        .values(applicant_person_id=applicant_person_id)
    )


async def mark_withdrawn(
    session: AsyncSession,
    application_id: uuid.UUID,
    *,
    at: datetime,
    cause: WithdrawalCause,
    reason: str | None,
) -> tuple[WithdrawalCause, str | None]:
    """Close the application as withdrawn; the cause and reason as stored, which its
    ApplicationWithdrawn is built from."""
    row = (
        await session.execute(
            sa.update(application_t)
            .where(application_t.c.id == application_id)
            .values(
                status=ApplicationStatus.WITHDRAWN.value,
                withdrawn_at=at,
                withdrawal_reason=reason,
                withdrawal_cause=cause.value,
            )
            .returning(application_t.c.withdrawal_cause, application_t.c.withdrawal_reason)
        )
    ).one()
    return WithdrawalCause(row[0]), row[1]


async def withdrawn_before_decision(
    session: AsyncSession, application_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Of the applications decisions name, those already withdrawn; each locked (FOR NO
    KEY UPDATE, in id order) to the end of the transaction, as the decision's UPDATE
    would: a withdrawal in progress (FOR UPDATE, or a dissolution's FOR SHARE then
    UPDATE) is waited for and its outcome read, and one that starts after waits for this
    transaction and finds the decision in the timeline (409 application-decided), or, for
    a dissolution, the application no longer open."""
    rows = await session.execute(
        sa.select(application_t.c.id, application_t.c.status)
        .where(application_t.c.id.in_(sorted(set(application_ids))))
        .order_by(application_t.c.id)
        .with_for_update(key_share=True)
    )
    return {i for i, status in rows if status == ApplicationStatus.WITHDRAWN.value}


async def existing_applications(
    session: AsyncSession, application_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Of ``application_ids``, those this database has."""
    if not application_ids:
        return set()
    rows = await session.execute(
        sa.select(application_t.c.id).where(application_t.c.id.in_(sorted(set(application_ids))))
    )
    return {row.id for row in rows}


async def mark_decided(
    session: AsyncSession, decisions: Sequence[tuple[uuid.UUID, datetime, Decision]]
) -> None:
    """Note when and how assessment decided these applications (the first decision
    counts): a decided application is no longer open, and its household may apply again;
    a read and a search show its outcome (ADR 0023)."""
    for application_id, at, decision in decisions:
        await session.execute(
            sa.update(application_t)
            .where(application_t.c.id == application_id, application_t.c.decided_at.is_(None))
            .values(
                decided_at=at,
                decision=decision.outcome.value,
                decided_amount_fen=decision.amount_fen,
            )
        )


@dataclass(frozen=True, slots=True)
class ApplicationFilter:
    region_prefix: str | None = None
    status: ApplicationStatus | None = None
    kind: ApplicationKind | None = None
    household_id: uuid.UUID | None = None
    submitted_from: datetime | None = None
    submitted_before: datetime | None = None
    state: ApplicationState | None = None


async def search_applications(
    session: AsyncSession,
    principal: Principal,
    criteria: ApplicationFilter,
    *,
    after_id: uuid.UUID | None,
    limit: int,
) -> list[ApplicationSummary]:
    """Newest first, within the principal's regions; ``limit`` rows after ``after_id``."""
    statement = sa.select(
        application_t.c.id,
        application_t.c.household_id,
        application_t.c.region_code,
        application_t.c.kind,
        application_t.c.status,
        application_t.c.applicant_person_id,
        person_t.c.name,
        application_t.c.staff_related,
        application_t.c.assigned_caseworker,
        application_t.c.submitted_at,
        person_t.c.id_hash,
        person_t.c.masked_id,
        application_t.c.decided_at,
        application_t.c.decision,
        application_t.c.decided_amount_fen,
    ).join(person_t, person_t.c.id == application_t.c.applicant_person_id)
    statement = newest_first(
        statement,
        application_t,
        principal,
        region_prefix=criteria.region_prefix,
        after_id=after_id,
        limit=limit,
    )
    if criteria.status is not None:
        statement = statement.where(application_t.c.status == criteria.status.value)
    if criteria.kind is not None:
        statement = statement.where(application_t.c.kind == criteria.kind.value)
    if criteria.household_id is not None:
        statement = statement.where(application_t.c.household_id == criteria.household_id)
    if criteria.submitted_from is not None:
        statement = statement.where(application_t.c.submitted_at >= criteria.submitted_from)
    if criteria.submitted_before is not None:
        statement = statement.where(application_t.c.submitted_at < criteria.submitted_before)
    if criteria.state is ApplicationState.OPEN:
        # The open-application index's own predicate (uq_application_open_kind).
        statement = statement.where(
            application_t.c.status == ApplicationStatus.SUBMITTED.value,
            application_t.c.decided_at.is_(None),
        )
    elif criteria.state is ApplicationState.DECIDED:
        statement = statement.where(application_t.c.decided_at.is_not(None))
    rows = await session.execute(statement)
    return [
        ApplicationSummary(
            id=r[0],
            household_id=r[1],
            region_code=r[2],
            kind=ApplicationKind(r[3]),
            status=ApplicationStatus(r[4]),
            applicant_person_id=r[5],
            applicant_name=r[6],
            staff_related=r[7],
            assigned_caseworker=r[8],
            submitted_at=r[9],
            applicant_id_hash=r[10],
            applicant_masked_id=r[11],
            decided_at=r[12],
            decision=DecisionOutcome(r[13]) if r[13] is not None else None,
            decided_amount_fen=r[14],
        )
        for r in rows
    ]


# Timeline entries given as the column arrays of ``timeline_columns``, in their order.
_TIMELINE_INSERT = """
INSERT INTO timeline_entry (ce_id, application_id, ce_type, ce_source, occurred_at, actor,
    summary, details, recorded_at)
SELECT e.ce_id, e.application_id, e.ce_type, e.ce_source, e.occurred_at, e.actor, e.summary,
    CAST(e.details AS jsonb), :recorded_at
FROM unnest(
    CAST(:ce_ids AS uuid[]), CAST(:application_ids AS uuid[]), CAST(:ce_types AS text[]),
    CAST(:ce_sources AS text[]), CAST(:occurred_ats AS timestamptz[]), CAST(:actors AS text[]),
    CAST(:summaries AS text[]), CAST(:details AS text[])
) WITH ORDINALITY AS e(ce_id, application_id, ce_type, ce_source, occurred_at, actor, summary,
    details, position)
"""

_ADD_KNOWN = DriverStatement(
    _TIMELINE_INSERT  # noqa: S608 - constant fragments, values are parameters
    + """
WHERE EXISTS (SELECT 1 FROM application a WHERE a.id = e.application_id)
ORDER BY e.position
ON CONFLICT (ce_id, application_id) DO NOTHING
"""
)


_ADD_OWN = DriverStatement(_TIMELINE_INSERT + "ORDER BY e.position\n")


async def add_own_timeline_entries(
    session: AsyncSession, entries: Sequence[tuple[uuid.UUID, TimelineRecord]], *, at: datetime
) -> None:
    """The entries of intake's own events, about applications written in the same
    transaction or statement: held with the request's writes when they are
    (``dibao_common.db.held``), one statement now otherwise."""
    if entries:
        await write(session, own_timeline_write(entries, at=at))


def own_timeline_write(
    entries: Sequence[tuple[uuid.UUID, TimelineRecord]], *, at: datetime
) -> tuple[DriverStatement, dict[str, Any]]:
    """The statement and parameters of :func:`add_own_timeline_entries`, for a caller that
    sends it with writes of its own."""
    return _ADD_OWN, timeline_columns(entries, at=at)


async def add_timeline_entries_if_known(
    session: AsyncSession,
    entries: Sequence[tuple[uuid.UUID, TimelineRecord]],
    *,
    at: datetime,
) -> int:
    """Record events about applications once each, in one statement, those about an
    application that exists here (events of other applications are skipped); how many
    rows were written."""
    if not entries:
        return 0
    status = await _ADD_KNOWN.execute(
        await driver_connection(session), timeline_columns(entries, at=at)
    )
    return int(status.rsplit(" ", 1)[1])


def timeline_columns(
    entries: Sequence[tuple[uuid.UUID, TimelineRecord]], *, at: datetime
) -> dict[str, Any]:
    """Entries as the column arrays (and ``recorded_at``) the timeline INSERTs take."""
    return {
        "ce_ids": [e.ce_id for _, e in entries],
        "application_ids": [application_id for application_id, _ in entries],
        "ce_types": [e.ce_type for _, e in entries],
        "ce_sources": [e.ce_source for _, e in entries],
        "occurred_ats": [e.occurred_at for _, e in entries],
        "actors": [e.actor for _, e in entries],
        "summaries": [e.summary for _, e in entries],
        "details": [json.dumps(e.details) for _, e in entries],
        "recorded_at": at,
    }


async def add_timeline_entry_if_known(
    session: AsyncSession, application_id: uuid.UUID, entry: TimelineRecord, *, at: datetime
) -> bool:
    """Record an event about an application once, if the application exists here (events
    of other applications are skipped); whether a row was written."""
    return await add_timeline_entries_if_known(session, [(application_id, entry)], at=at) == 1


async def load_timeline(session: AsyncSession, application_id: uuid.UUID) -> list[TimelineRecord]:
    rows = await session.execute(
        sa.select(
            timeline_t.c.ce_id,
            timeline_t.c.ce_type,
            timeline_t.c.ce_source,
            timeline_t.c.occurred_at,
            timeline_t.c.actor,
            timeline_t.c.summary,
            timeline_t.c.details,
        )
        .where(timeline_t.c.application_id == application_id)
        .order_by(timeline_t.c.occurred_at, timeline_t.c.ce_id)
    )
    return [TimelineRecord(*r) for r in rows]
