"""Intake's records as protobuf contract messages (``dibao.intake.v1``, ``dibao.common.v1``).

Only masked names and ID numbers, keyed hashes and tokens leave intake; see ADR 0007.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from dibao.common.v1 import enums_pb2 as enums
from dibao.common.v1 import types_pb2 as common
from dibao.intake.v1 import events_pb2 as ev
from dibao.intake.v1 import types_pb2 as intake
from dibao_common.auth import Principal
from dibao_common.crypto import mask_name
from dibao_intake.adapters.records import (
    BankAccountRecord,
    DocumentRecord,
    HouseholdRecord,
    MemberRecord,
    StaffRecord,
    StaffRelativeRecord,
)
from dibao_intake.domain.application import AssetDeclaration, IncomeDeclaration, MissingItem
from dibao_intake.domain.codes import (
    ApplicationKind,
    AreaType,
    AssetKind,
    DeductionKind,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    ExclusionReason,
    HouseholdStatus,
    IncomeCategory,
    MarriageAgeBasis,
    MissingItemCode,
    NotCountedKind,
    Relationship,
    Sex,
    StaffRole,
    SubmissionChannel,
    UnassignedReason,
    WithdrawalCause,
)

AREA_TYPES: dict[AreaType, enums.AreaType.ValueType] = {
    c: enums.AreaType.Value(f"AREA_TYPE_{c.value.upper()}") for c in AreaType
}
SEXES: dict[Sex, enums.Sex.ValueType] = {c: enums.Sex.Value(f"SEX_{c.value.upper()}") for c in Sex}
RELATIONSHIPS: dict[Relationship, enums.Relationship.ValueType] = {
    c: enums.Relationship.Value(f"RELATIONSHIP_{c.value.upper()}") for c in Relationship
}
DISABILITY_GRADES: dict[DisabilityGrade, enums.DisabilityGrade.ValueType] = {
    c: enums.DisabilityGrade.Value(f"DISABILITY_GRADE_{c.value.upper()}") for c in DisabilityGrade
}
EMPLOYMENT_STATUSES: dict[EmploymentStatus, enums.EmploymentStatus.ValueType] = {
    c: enums.EmploymentStatus.Value(f"EMPLOYMENT_STATUS_{c.value.upper()}")
    for c in EmploymentStatus
}
EXCLUSION_REASONS: dict[ExclusionReason, enums.ExclusionReason.ValueType] = {
    c: enums.ExclusionReason.Value(f"EXCLUSION_REASON_{c.value.upper()}") for c in ExclusionReason
}
INCOME_CATEGORIES: dict[IncomeCategory, enums.IncomeCategory.ValueType] = {
    c: enums.IncomeCategory.Value(f"INCOME_CATEGORY_{c.value.upper()}") for c in IncomeCategory
}
NOT_COUNTED_KINDS: dict[NotCountedKind, enums.NotCountedKind.ValueType] = {
    c: enums.NotCountedKind.Value(f"NOT_COUNTED_KIND_{c.value.upper()}") for c in NotCountedKind
}
DEDUCTION_KINDS: dict[DeductionKind, enums.DeductionKind.ValueType] = {
    c: enums.DeductionKind.Value(f"DEDUCTION_KIND_{c.value.upper()}") for c in DeductionKind
}
ASSET_KINDS: dict[AssetKind, enums.AssetKind.ValueType] = {
    c: enums.AssetKind.Value(f"ASSET_KIND_{c.value.upper()}") for c in AssetKind
}
APPLICATION_KINDS: dict[ApplicationKind, enums.ApplicationKind.ValueType] = {
    c: enums.ApplicationKind.Value(f"APPLICATION_KIND_{c.value.upper()}") for c in ApplicationKind
}
CHANNELS: dict[SubmissionChannel, enums.SubmissionChannel.ValueType] = {
    c: enums.SubmissionChannel.Value(f"SUBMISSION_CHANNEL_{c.value.upper()}")
    for c in SubmissionChannel
}
DOCUMENT_TYPES: dict[DocumentType, enums.DocumentType.ValueType] = {
    c: enums.DocumentType.Value(f"DOCUMENT_TYPE_{c.value.upper()}") for c in DocumentType
}
MISSING_ITEM_CODES: dict[MissingItemCode, intake.MissingItemCode.ValueType] = {
    c: intake.MissingItemCode.Value(f"MISSING_ITEM_CODE_{c.value.upper()}") for c in MissingItemCode
}
MARRIAGE_AGE_BASES: dict[MarriageAgeBasis, intake.MarriageAgeBasis.ValueType] = {
    c: intake.MarriageAgeBasis.Value(f"MARRIAGE_AGE_BASIS_{c.value.upper()}")
    for c in MarriageAgeBasis
}


STAFF_ROLES: dict[StaffRole, ev.StaffRole.ValueType] = {
    c: ev.StaffRole.Value(f"STAFF_ROLE_{c.value.upper()}") for c in StaffRole
}
UNASSIGNED_REASONS: dict[UnassignedReason, ev.UnassignedReason.ValueType] = {
    c: ev.UnassignedReason.Value(f"UNASSIGNED_REASON_{c.value.upper()}") for c in UnassignedReason
}
WITHDRAWAL_CAUSES: dict[WithdrawalCause, ev.WithdrawalCause.ValueType] = {
    # UNSPECIFIED is the applicant's withdrawal (events.proto): every one published before
    # the field was, and a consumer reading an older event takes it so.
    WithdrawalCause.APPLICANT_REQUEST: ev.WITHDRAWAL_CAUSE_UNSPECIFIED,
    WithdrawalCause.HOUSEHOLD_DISSOLVED: ev.WITHDRAWAL_CAUSE_HOUSEHOLD_DISSOLVED,
    WithdrawalCause.APPLICANT_LEFT: ev.WITHDRAWAL_CAUSE_APPLICANT_LEFT,
}
"""A withdrawal's cause as stored, in ApplicationWithdrawn: the event is built from the
row (``application_repo.mark_withdrawn`` returns it), so the two agree."""


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def local_date(day: date) -> common.LocalDate:
    return common.LocalDate(year=day.year, month=day.month, day=day.day)


def region(code: str) -> common.RegionCode:
    return common.RegionCode(code=code)


def money(fen: int) -> common.Money:
    return common.Money(fen=fen)


def actor(principal: Principal) -> common.Actor:
    return common.Actor(
        subject=principal.subject,
        roles=sorted(r.value for r in principal.roles),
        region_prefixes=list(principal.regions),
        kind=enums.ACTOR_KIND_STAFF,
    )


def system_actor(service: str) -> common.Actor:
    return common.Actor(subject=service, kind=enums.ACTOR_KIND_SYSTEM)


def person_ref(member: MemberRecord, hash_key_id: str) -> common.PersonRef:
    return common.PersonRef(
        person_id=str(member.person_id),
        keyed_hash=member.id_hash,
        hash_key_id=hash_key_id,
        masked_id=member.masked_id,
        masked_name=mask_name(member.name),
    )


def member(record: MemberRecord, hash_key_id: str) -> intake.Member:
    out = intake.Member(
        person=person_ref(record, hash_key_id),
        birth_date=local_date(record.birth_date),
        sex=SEXES[record.sex],
        relationship=RELATIONSHIPS[record.relationship],
        disability_grade=DISABILITY_GRADES[record.disability_grade],
        seriously_ill=record.seriously_ill,
        employment_status=EMPLOYMENT_STATUSES[record.employment_status],
        student=record.student,
        counted=record.counted,
    )
    if record.exclusion_reason is not None:
        out.exclusion_reason = EXCLUSION_REASONS[record.exclusion_reason]
    if record.exclusion_note:
        out.exclusion_note = record.exclusion_note
    if record.marriage_age_basis is not None:
        out.marriage_age_basis = MARRIAGE_AGE_BASES[record.marriage_age_basis]
    return out


def household_snapshot(
    household: HouseholdRecord,
    members: Iterable[MemberRecord],
    hash_key_id: str,
    *,
    declarations: Iterable[IncomeDeclaration] = (),
) -> intake.HouseholdSnapshot:
    """The household as it is now: its active members only. With ``declarations`` (an
    application's, for ApplicationSubmitted), each member who declared carries what they
    declared besides the counted amounts (``income_declaration``)."""
    snapshot = _household_snapshot(household, members, hash_key_id)
    declared = {str(d.person_id): d for d in declarations}
    for sent in snapshot.members:
        found = declared.get(sent.person.person_id)
        if found is not None:
            sent.income_declaration.CopyFrom(income_declaration(found))
    return snapshot


def income_declaration(declared: IncomeDeclaration) -> intake.IncomeDeclaration:
    """A member's declaration besides the counted amounts: the period, the note once, the
    receipts not counted and the deductions."""
    return intake.IncomeDeclaration(
        period_months=declared.period_months,
        note=declared.note or "",
        not_counted=[
            intake.NotCountedReceipt(
                kind=NOT_COUNTED_KINDS[r.kind], monthly_amount=money(r.monthly_fen)
            )
            for r in declared.not_counted
        ],
        deductions=[
            intake.IncomeDeduction(
                kind=DEDUCTION_KINDS[d.kind], monthly_amount=money(d.monthly_fen)
            )
            for d in declared.deductions
        ],
    )


def _household_snapshot(
    household: HouseholdRecord, members: Iterable[MemberRecord], hash_key_id: str
) -> intake.HouseholdSnapshot:
    return intake.HouseholdSnapshot(
        household_id=str(household.id),
        region=region(household.region_code),
        area_type=AREA_TYPES[household.area_type],
        head_person_id=str(household.head_person_id) if household.head_person_id else "",
        members=[member(m, hash_key_id) for m in members if m.active],
        version=household.version,
        dissolved=household.status is HouseholdStatus.DISSOLVED,
    )


def bank_account_ref(account: BankAccountRecord | None) -> common.BankAccountRef | None:
    if account is None:
        return None
    return common.BankAccountRef(
        token_id=str(account.id),
        masked_number=account.masked_number,
        bank_code=account.bank_code,
        bank_name=account.bank_name,
        holder_masked_name=mask_name(account.holder_name),
        holder_person_id=str(account.holder_person_id) if account.holder_person_id else "",
    )


def document_ref(document: DocumentRecord) -> common.DocumentRef:
    return common.DocumentRef(
        document_id=str(document.id),
        sha256=document.sha256,
        document_type=DOCUMENT_TYPES[document.document_type],
        size_bytes=document.size_bytes,
        media_type=document.media_type,
        person_id=str(document.person_id) if document.person_id else "",
    )


def declared_incomes(declarations: Iterable[IncomeDeclaration]) -> list[intake.DeclaredIncome]:
    """Every category of every declaring member, zeros included: a declared zero is a fact.
    No description: the member's note goes once, in their ``income_declaration`` of the
    snapshot (3 Dec 2026; before, it was copied into each of the five entries).

    A category with a part received in kind (3 Dec 2026) is two entries: its cash (the
    amount less that part, zero when all of it is in kind) and, after it, the part in kind
    (``in_kind`` true). The entries of a category still add up to its declared amount; the
    cash ones are what verification compares with the bank and tax registries (ADR 0007)."""
    out: list[intake.DeclaredIncome] = []
    for d in declarations:
        for category in IncomeCategory:
            amount, in_kind = d.amount(category), d.in_kind.of(category)
            out.append(
                intake.DeclaredIncome(
                    person_id=str(d.person_id),
                    category=INCOME_CATEGORIES[category],
                    monthly_amount=money(amount - in_kind),
                    period_months=d.period_months,
                )
            )
            if in_kind:
                out.append(
                    intake.DeclaredIncome(
                        person_id=str(d.person_id),
                        category=INCOME_CATEGORIES[category],
                        monthly_amount=money(in_kind),
                        period_months=d.period_months,
                        in_kind=True,
                    )
                )
    return out


def declared_assets(declarations: Iterable[AssetDeclaration]) -> list[intake.DeclaredAsset]:
    return [
        intake.DeclaredAsset(
            person_id=str(a.person_id) if a.person_id else "",
            kind=ASSET_KINDS[a.kind],
            value=money(a.value_fen),
            quantity=a.quantity,
            floor_area_m2=a.floor_area_m2 or 0,
            description=a.description or "",
        )
        for a in declarations
    ]


def missing_item(item: MissingItem) -> intake.MissingItem:
    out = intake.MissingItem(description=item.description, code=MISSING_ITEM_CODES[item.code])
    if item.document_type is not None:
        out.document_type = DOCUMENT_TYPES[item.document_type]
    if item.person_id is not None:
        out.person_id = str(item.person_id)
    if item.field is not None:
        out.field = item.field
    return out


def masked_names(members: Mapping[uuid.UUID, MemberRecord]) -> dict[uuid.UUID, str]:
    return {person_id: mask_name(m.name) for person_id, m in members.items()}


def staff_ref(staff: StaffRecord, hash_key_id: str) -> common.PersonRef:
    """A staff member as events and access records name them: by keyed hash when their own
    number is on the roster (it is optional but for the responsible caseworker), masked."""
    return common.PersonRef(
        keyed_hash=staff.id_hash or "",
        hash_key_id=hash_key_id if staff.id_hash else "",
        masked_id=staff.masked_id or "",
        masked_name=mask_name(staff.name),
    )


def relative_ref(relative: StaffRelativeRecord, hash_key_id: str) -> common.PersonRef:
    """A staff member's relative, by keyed hash, masked."""
    return common.PersonRef(
        keyed_hash=relative.id_hash,
        hash_key_id=hash_key_id,
        masked_id=relative.masked_id,
        masked_name=mask_name(relative.name),
    )


def roster_refs(roster: Sequence[StaffRecord], hash_key_id: str) -> list[common.PersonRef]:
    """Everyone a roster answer shows: each staff member, then their relatives."""
    return [
        ref
        for staff in roster
        for ref in (
            staff_ref(staff, hash_key_id),
            *(relative_ref(r, hash_key_id) for r in staff.relatives),
        )
    ]


def staff_roster_changed(
    staff: StaffRecord,
    change: ev.StaffRosterChange.ValueType,
    *,
    principal: Principal,
    at: datetime,
    hash_key_id: str,
    responsible_caseworker: bool,
    replaced_caseworker: uuid.UUID | None = None,
) -> ev.StaffRosterChanged:
    """A roster change as published: the staff member and (when added) their relatives by
    keyed hash, masked number and masked name, never a number (ADR 0005)."""
    message = ev.StaffRosterChanged(
        region=region(staff.township_code),
        occurred_at=timestamp(at),
        actor=actor(principal),
        staff_id=str(staff.id),
        change=change,
        role=STAFF_ROLES[staff.role],
        staff=staff_ref(staff, hash_key_id),
        staff_subject=staff.subject or "",
        responsible_caseworker=responsible_caseworker,
        replaced_caseworker_staff_id=str(replaced_caseworker) if replaced_caseworker else "",
    )
    if change == ev.STAFF_ROSTER_CHANGE_ADDED:
        message.relatives.extend(
            ev.StaffRosterChanged.Relative(
                person=relative_ref(r, hash_key_id),
                relation=r.relation,
            )
            for r in staff.relatives
        )
    return message
