"""The SQL of the busiest request, a submission: one statement to read, one to write.

Everything a submission needs to know (the household, its members and current account,
the documents named, an open application of the same kind, roster entries matching a
member, the township's caseworker, the roster's version) comes back from one round trip,
and the application with its incomes, assets and documents goes in with one. The
benchmark in ``bench/intake_submit.py`` shows why: on a busy machine each round trip
costs more than all the Python around it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dibao_common.db import DriverStatement, driver_connection
from dibao_common.db.held import write
from dibao_intake.adapters.records import (
    ApplicationRecord,
    BankAccountRecord,
    DocumentRecord,
    HouseholdAggregate,
    HouseholdRecord,
    MemberRecord,
    TimelineRecord,
)
from dibao_intake.adapters.repositories.applications import own_timeline_write
from dibao_intake.domain.application import AssetDeclaration, IncomeDeclaration
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationStatus,
    AreaType,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    MarriageAgeBasis,
    Relationship,
    Sex,
    StaffRole,
)
from dibao_intake.domain.staff import RosterEntry


@dataclass(frozen=True, slots=True)
class SubmissionContext:
    household: HouseholdAggregate
    documents: dict[uuid.UUID, DocumentRecord]
    open_application_id: uuid.UUID | None
    roster: list[RosterEntry]
    caseworker: str | None
    """The token subject of the township's responsible caseworker, if it has one."""
    caseworker_staff_id: uuid.UUID | None = None
    """Their roster entry: whether the applicant's household is theirs (find_staff_relations)."""
    caseworker_identified: bool = False
    """Whether their entry holds their own ID number: without it their own household cannot
    be found (ADR 0009), and they are assigned nothing."""
    completes: CompletedApplication | None = None
    """The application the submission names as the returned one it completes, when it
    exists (of whatever household: the caller checks)."""
    roster_version: int | None = None
    """The staff roster's version, in the snapshot the roster entries and the caseworker
    were read in: the write is refused when the roster changed since (migration 0021)."""


@dataclass(frozen=True, slots=True)
class CompletedApplication:
    """What a submission checks of the returned application it completes (ADR 0009)."""

    household_id: uuid.UUID
    status: ApplicationStatus
    completed_by: uuid.UUID | None
    """Another application that completes it already."""
    kind: ApplicationKind
    """Its kind: only an application of the same kind completes it."""


_READ = DriverStatement(
    """
WITH h AS (
    SELECT id, region_code, area_type, address, status, head_person_id, version,
           created_at, updated_at
    FROM household WHERE id = :household_id
), m AS (
    SELECT coalesce(json_agg(json_build_object(
        'membership_id', hm.id, 'person_id', p.id, 'name', p.name, 'masked_id', p.masked_id,
        'id_hash', p.id_hash, 'birth_date', p.birth_date, 'sex', p.sex,
        'relationship', hm.relationship, 'disability_grade', hm.disability_grade,
        'seriously_ill', hm.seriously_ill, 'employment_status', hm.employment_status,
        'student', hm.student, 'counted', hm.counted, 'exclusion_reason', hm.exclusion_reason,
        'exclusion_note', hm.exclusion_note, 'active', hm.active, 'joined_on', hm.joined_on,
        'left_on', hm.left_on, 'left_reason', hm.left_reason,
        'marriage_age_basis', hm.marriage_age_basis
    ) ORDER BY hm.active DESC, hm.joined_on, hm.id), '[]') AS members
    FROM household_member hm JOIN person p ON p.id = hm.person_id
    WHERE hm.household_id = :household_id
), b AS (
    SELECT json_build_object(
        'id', id, 'household_id', household_id, 'number_hash', number_hash,
        'masked_number', masked_number, 'bank_code', bank_code, 'bank_name', bank_name,
        'holder_name', holder_name, 'holder_person_id', holder_person_id,
        'custody_agreement', custody_agreement, 'custody_document_id', custody_document_id,
        'custodian_subject', custodian_subject, 'created_at', created_at
    ) AS account
    FROM bank_account WHERE household_id = :household_id AND superseded_at IS NULL
), d AS (
    SELECT coalesce(json_agg(json_build_object(
        'id', id, 'household_id', household_id, 'person_id', person_id,
        'document_type', document_type, 'sha256', sha256, 'size_bytes', size_bytes,
        'media_type', media_type, 'uploaded_by', uploaded_by, 'created_at', created_at
    )), '[]') AS documents
    FROM document WHERE id = ANY(CAST(:document_ids AS uuid[]))
), hashes AS (
    SELECT p.id_hash FROM household_member hm JOIN person p ON p.id = hm.person_id
    WHERE hm.household_id = :household_id AND hm.active
), r AS (
    SELECT coalesce(json_agg(json_build_object(
        'id_hash', x.id_hash, 'staff_id', x.staff_id, 'name', x.name, 'role', x.role,
        'township_code', x.township_code, 'relation', x.relation
    )), '[]') AS roster
    FROM (
        SELECT sr.id_hash, s.id AS staff_id, s.name, s.role, s.township_code, sr.relation
        FROM staff_relative sr JOIN staff_member s ON s.id = sr.staff_id
        WHERE s.active AND sr.id_hash IN (SELECT id_hash FROM hashes)
        UNION ALL
        SELECT s.id_hash, s.id, s.name, s.role, s.township_code, 'self'
        FROM staff_member s WHERE s.active AND s.id_hash IN (SELECT id_hash FROM hashes)
    ) x
)
SELECT row_to_json(h) AS household, m.members, (SELECT account FROM b) AS account,
       d.documents, r.roster,
       (SELECT a.id FROM application a
        WHERE a.household_id = h.id AND a.kind = :kind AND a.status = 'submitted'
          AND a.decided_at IS NULL
        LIMIT 1) AS open_application_id,
       (SELECT json_build_object('subject', s.subject, 'staff_id', s.id,
                                 'identified', s.id_hash IS NOT NULL)
        FROM staff_member s
        WHERE s.township_code = substr(h.region_code, 1, 9) || '000'
          AND s.responsible_caseworker AND s.active) AS caseworker,
       (SELECT json_build_object(
            'household_id', c.household_id, 'status', c.status, 'kind', c.kind,
            'completed_by', (SELECT x.id FROM application x
                             WHERE x.completes_application_id = c.id LIMIT 1))
        FROM application c WHERE c.id = CAST(:completes AS uuid)) AS completes,
       (SELECT v.version FROM staff_roster_version v) AS roster_version
FROM h, m, d, r
"""
)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _member(m: dict[str, Any]) -> MemberRecord:
    return MemberRecord(
        membership_id=uuid.UUID(m["membership_id"]),
        person_id=uuid.UUID(m["person_id"]),
        name=m["name"],
        masked_id=m["masked_id"],
        id_hash=m["id_hash"],
        birth_date=date.fromisoformat(m["birth_date"]),
        sex=Sex(m["sex"]),
        relationship=Relationship(m["relationship"]),
        disability_grade=DisabilityGrade(m["disability_grade"]),
        seriously_ill=m["seriously_ill"],
        employment_status=EmploymentStatus(m["employment_status"]),
        student=m["student"],
        counted=m["counted"],
        exclusion_reason=ExclusionReason(m["exclusion_reason"]) if m["exclusion_reason"] else None,
        exclusion_note=m["exclusion_note"],
        active=m["active"],
        joined_on=date.fromisoformat(m["joined_on"]),
        left_on=_day(m["left_on"]),
        left_reason=LeaveReason(m["left_reason"]) if m["left_reason"] else None,
        marriage_age_basis=(
            MarriageAgeBasis(m["marriage_age_basis"]) if m["marriage_age_basis"] else None
        ),
    )


def _account(a: dict[str, Any] | None) -> BankAccountRecord | None:
    if a is None:
        return None
    return BankAccountRecord(
        id=uuid.UUID(a["id"]),
        household_id=uuid.UUID(a["household_id"]),
        number_hash=a["number_hash"],
        masked_number=a["masked_number"],
        bank_code=a["bank_code"],
        bank_name=a["bank_name"],
        holder_name=a["holder_name"],
        holder_person_id=_uuid(a["holder_person_id"]),
        custody_agreement=a["custody_agreement"],
        custody_document_id=_uuid(a["custody_document_id"]),
        custodian_subject=a["custodian_subject"],
        created_at=_instant(a["created_at"]),
    )


def _document(d: dict[str, Any]) -> DocumentRecord:
    return DocumentRecord(
        id=uuid.UUID(d["id"]),
        household_id=uuid.UUID(d["household_id"]),
        person_id=_uuid(d["person_id"]),
        document_type=DocumentType(d["document_type"]),
        sha256=d["sha256"],
        size_bytes=d["size_bytes"],
        media_type=d["media_type"],
        uploaded_by=d["uploaded_by"],
        created_at=_instant(d["created_at"]),
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def load_submission_context(
    session: AsyncSession,
    household_id: uuid.UUID,
    *,
    document_ids: Sequence[uuid.UUID],
    kind: ApplicationKind,
    township_name: Callable[[str], str],
    mask_name: Callable[[str], str],
    completes: uuid.UUID | None = None,
) -> SubmissionContext | None:
    """All a submission reads, in one round trip; None when the household does not exist."""
    row = await _READ.fetchrow(
        await driver_connection(session),
        {
            "household_id": household_id,
            "document_ids": list(document_ids),
            "kind": kind.value,
            "completes": completes,
        },
    )
    if row is None:
        return None
    h = _json(row["household"])
    household = HouseholdRecord(
        id=uuid.UUID(h["id"]),
        region_code=h["region_code"],
        area_type=AreaType(h["area_type"]),
        address=h["address"],
        status=HouseholdStatus(h["status"]),
        head_person_id=_uuid(h["head_person_id"]),
        version=h["version"],
        created_at=_instant(h["created_at"]),
        updated_at=_instant(h["updated_at"]),
    )
    members = tuple(_member(m) for m in _json(row["members"]))
    documents = {d.id: d for d in (_document(x) for x in _json(row["documents"]))}
    caseworker = _json(row["caseworker"])
    roster = [
        RosterEntry(
            id_hash=r["id_hash"],
            staff_id=uuid.UUID(r["staff_id"]),
            staff_masked_name=mask_name(r["name"]),
            staff_role=StaffRole(r["role"]),
            township_name=township_name(r["township_code"]),
            relation=r["relation"],
        )
        for r in _json(row["roster"])
    ]
    return SubmissionContext(
        household=HouseholdAggregate(household, members, _account(_json(row["account"]))),
        documents=documents,
        open_application_id=row["open_application_id"],
        roster=roster,
        caseworker=caseworker["subject"] if caseworker else None,
        caseworker_staff_id=uuid.UUID(caseworker["staff_id"]) if caseworker else None,
        caseworker_identified=bool(caseworker and caseworker["identified"]),
        completes=_completed(_json(row["completes"])),
        roster_version=row["roster_version"],
    )


def _completed(c: dict[str, Any] | None) -> CompletedApplication | None:
    if c is None:
        return None
    return CompletedApplication(
        household_id=uuid.UUID(c["household_id"]),
        status=ApplicationStatus(c["status"]),
        completed_by=_uuid(c["completed_by"]),
        kind=ApplicationKind(c["kind"]),
    )


COMPLETES_INDEX = "uq_application_completes"
"""The index that keeps one application completing a returned one (migration 0017)."""

ONE_OPEN_APPLICATION_INDEX = "uq_application_open_kind"
"""The index that keeps one open (submitted, undecided) application per household and kind
(migration 0003): the write of a submission whose twin committed first fails on it."""

_OPEN_APPLICATION = DriverStatement(
    "SELECT id FROM application WHERE household_id = :household_id AND kind = :kind"
    " AND status = 'submitted' AND decided_at IS NULL LIMIT 1"
)


async def open_application_id(
    session: AsyncSession, household_id: uuid.UUID, kind: ApplicationKind
) -> uuid.UUID | None:
    """The household's open application of ``kind``, as the submission's read finds it."""
    row = await _OPEN_APPLICATION.fetchrow(
        await driver_connection(session), {"household_id": household_id, "kind": kind.value}
    )
    return None if row is None else uuid.UUID(str(row["id"]))


# The application with its declarations, documents and timeline entries: five INSERTs
# sent as one statement (``dibao_common.db.held.write``), or held for the request's last.
_REGIONS = DriverStatement(
    "SELECT id, region_code FROM household WHERE id = ANY(CAST(:ids AS uuid[]))"
)


async def household_regions(
    session: AsyncSession, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The region of each of these households (a submission naming others' documents).

    A query of its own, not part of the submission's read: a parameter compared there
    made PostgreSQL plan that read again on every execution (about 1.5 ms each), for a
    case that is a clerk's mistake."""
    rows = await _REGIONS.fetch(await driver_connection(session), {"ids": list(household_ids)})
    return {row["id"]: row["region_code"] for row in rows}


_APPLICATION = DriverStatement(
    """
INSERT INTO application (
    id, household_id, region_code, kind, channel, status, applicant_person_id, statement,
    reason, requested_amount_fen, individual_inclusion_person_id, bank_account_id,
    staff_related, staff_relation_note, assigned_caseworker, missing_items, submitted_at,
    submitted_by, accepted_on, withdrawn_at, withdrawal_reason, household_version,
    unassigned_reason, completes_application_id, notice_document_id, roster_version
) VALUES (
    :id, :household_id, :region_code, :kind, :channel, :status, :applicant_person_id,
    :statement, :reason, :requested_amount_fen, :individual_inclusion_person_id,
    :bank_account_id, :staff_related, :staff_relation_note, :assigned_caseworker,
    CAST(:missing_items AS jsonb), :submitted_at, :submitted_by, :accepted_on, NULL, NULL,
    :household_version, :unassigned_reason, :completes_application_id, :notice_id,
    :roster_version
)
"""
)
_NOTICE = DriverStatement(
    """
INSERT INTO document (
    id, household_id, person_id, document_type, sha256, size_bytes, media_type, uploaded_by,
    created_at
) VALUES (
    :notice_id, :household_id, NULL, :notice_type, :notice_sha256, :notice_size,
    :notice_media_type, :submitted_by, :submitted_at
)
"""
)
_INCOMES = DriverStatement(
    """
INSERT INTO application_income (
    application_id, person_id, wage_fen, operating_fen, property_fen, transfer_fen,
    other_fen, period_months, note, wage_in_kind_fen, operating_in_kind_fen,
    property_in_kind_fen, transfer_in_kind_fen, other_in_kind_fen
)
SELECT :id, * FROM unnest(
    CAST(:income_person AS uuid[]), CAST(:income_wage AS bigint[]),
    CAST(:income_operating AS bigint[]), CAST(:income_property AS bigint[]),
    CAST(:income_transfer AS bigint[]), CAST(:income_other AS bigint[]),
    CAST(:income_period AS smallint[]), CAST(:income_note AS text[]),
    CAST(:in_kind_wage AS bigint[]), CAST(:in_kind_operating AS bigint[]),
    CAST(:in_kind_property AS bigint[]), CAST(:in_kind_transfer AS bigint[]),
    CAST(:in_kind_other AS bigint[])
)
"""
)
_NOT_COUNTED = DriverStatement(
    """
INSERT INTO application_income_not_counted (application_id, person_id, kind, monthly_fen)
SELECT :id, * FROM unnest(
    CAST(:not_counted_person AS uuid[]), CAST(:not_counted_kind AS text[]),
    CAST(:not_counted_fen AS bigint[])
)
"""
)
_DEDUCTIONS = DriverStatement(
    """
INSERT INTO application_income_deduction (application_id, person_id, kind, monthly_fen)
SELECT :id, * FROM unnest(
    CAST(:deduction_person AS uuid[]), CAST(:deduction_kind AS text[]),
    CAST(:deduction_fen AS bigint[])
)
"""
)
_ASSETS = DriverStatement(
    """
INSERT INTO application_asset (
    id, application_id, person_id, kind, value_fen, quantity, floor_area_m2, description
)
SELECT asset_id, :id, person_id, kind, value_fen, quantity, floor_area_m2, description
FROM unnest(
    CAST(:asset_id AS uuid[]), CAST(:asset_person AS uuid[]), CAST(:asset_kind AS text[]),
    CAST(:asset_value AS bigint[]), CAST(:asset_quantity AS integer[]),
    CAST(:asset_area AS integer[]), CAST(:asset_description AS text[])
) AS x(asset_id, person_id, kind, value_fen, quantity, floor_area_m2, description)
"""
)
_DOCUMENTS = DriverStatement(
    """
INSERT INTO application_document (application_id, document_id)
SELECT :id, unnest(CAST(:document_ids AS uuid[]))
"""
)


async def insert_submission(
    session: AsyncSession,
    record: ApplicationRecord,
    incomes: Sequence[IncomeDeclaration],
    assets: Sequence[tuple[uuid.UUID, AssetDeclaration]],
    document_ids: Sequence[uuid.UUID],
    timeline: Sequence[tuple[uuid.UUID, TimelineRecord]],
    *,
    recorded_at: datetime,
    household_version: int,
    roster_version: int | None = None,
    notice: DocumentRecord | None = None,
) -> None:
    """The application with its declarations, documents and the timeline entries of the
    events announcing it: one statement, or held for the request's last (ADR 0013).
    A returned application's ``notice`` (its content already in the store) goes in with
    it, named by the application (ADR 0009, 3 Dec 2026).

    ``household_version`` is the household's version the application was made from: the
    write fails (``application_household_current``) when a change committed since.
    ``roster_version`` is the staff roster's version its roster entries and caseworker were
    read at: the write waits for a roster change in progress and fails
    (``application_roster_current``) when one committed since (migration 0021)."""
    params = {
        "id": record.id,
        "household_version": household_version,
        "roster_version": roster_version,
        "household_id": record.household_id,
        "region_code": record.region_code,
        "kind": record.kind.value,
        "channel": record.channel.value,
        "status": record.status.value,
        "applicant_person_id": record.applicant_person_id,
        "statement": record.statement,
        "reason": record.reason,
        "requested_amount_fen": record.requested_amount_fen,
        "individual_inclusion_person_id": record.individual_inclusion_person_id,
        "bank_account_id": record.bank_account_id,
        "staff_related": record.staff_related,
        "staff_relation_note": record.staff_relation_note,
        "assigned_caseworker": record.assigned_caseworker,
        "unassigned_reason": (
            record.unassigned_reason.value if record.unassigned_reason is not None else None
        ),
        "missing_items": json.dumps(record.missing_items),
        "completes_application_id": record.completes_application_id,
        "notice_id": notice.id if notice is not None else None,
        "notice_type": notice.document_type.value if notice is not None else None,
        "notice_sha256": notice.sha256 if notice is not None else None,
        "notice_size": notice.size_bytes if notice is not None else None,
        "notice_media_type": notice.media_type if notice is not None else None,
        "submitted_at": record.submitted_at,
        "submitted_by": record.submitted_by,
        "accepted_on": record.accepted_on,
        "income_person": [i.person_id for i in incomes],
        "income_wage": [i.wage_fen for i in incomes],
        "income_operating": [i.operating_fen for i in incomes],
        "income_property": [i.property_fen for i in incomes],
        "income_transfer": [i.transfer_fen for i in incomes],
        "income_other": [i.other_fen for i in incomes],
        "income_period": [i.period_months for i in incomes],
        "income_note": [i.note for i in incomes],
        "in_kind_wage": [i.in_kind.wage_fen for i in incomes],
        "in_kind_operating": [i.in_kind.operating_fen for i in incomes],
        "in_kind_property": [i.in_kind.property_fen for i in incomes],
        "in_kind_transfer": [i.in_kind.transfer_fen for i in incomes],
        "in_kind_other": [i.in_kind.other_fen for i in incomes],
        "not_counted_person": [i.person_id for i in incomes for _ in i.not_counted],
        "not_counted_kind": [r.kind.value for i in incomes for r in i.not_counted],
        "not_counted_fen": [r.monthly_fen for i in incomes for r in i.not_counted],
        "deduction_person": [i.person_id for i in incomes for _ in i.deductions],
        "deduction_kind": [d.kind.value for i in incomes for d in i.deductions],
        "deduction_fen": [d.monthly_fen for i in incomes for d in i.deductions],
        "asset_id": [asset_id for asset_id, _ in assets],
        "asset_person": [a.person_id for _, a in assets],
        "asset_kind": [a.kind.value for _, a in assets],
        "asset_value": [a.value_fen for _, a in assets],
        "asset_quantity": [a.quantity for _, a in assets],
        "asset_area": [a.floor_area_m2 for _, a in assets],
        "asset_description": [a.description for _, a in assets],
        "document_ids": list(document_ids),
    }
    present = (
        (_NOTICE, notice is not None),
        (_APPLICATION, True),
        (_INCOMES, bool(incomes)),
        (_NOT_COUNTED, any(i.not_counted for i in incomes)),
        (_DEDUCTIONS, any(i.deductions for i in incomes)),
        (_ASSETS, bool(assets)),
        (_DOCUMENTS, bool(document_ids)),
    )
    await write(
        session,
        *((statement, params) for statement, given in present if given),
        *([own_timeline_write(timeline, at=recorded_at)] if timeline else []),
    )
