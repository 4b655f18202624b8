"""Records and use-case results as response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from dibao_common.crypto import mask_name
from dibao_intake.adapters.records import (
    ApplicationSummary,
    BankAccountRecord,
    ChangeRecord,
    DocumentRecord,
    HouseholdAggregate,
    HouseholdSummary,
    MemberRecord,
    StaffRecord,
    TimelineRecord,
)
from dibao_intake.api import schemas as s
from dibao_intake.domain.codes import (
    ApplicationKind,
    ChangeKind,
    DecisionOutcome,
    DocumentType,
    MissingItemCode,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.service_layer.applications import ApplicationDetail
from dibao_intake.service_layer.timeline import AFTER_WITHDRAWAL, event_words
from dibao_intake.service_layer.views import View

T = TypeVar("T")


def _name(name: str, view: View) -> str:
    return name if view is View.CASE else mask_name(name)


def _case_only(value: T, view: View) -> T | None:
    """``value`` in the case view; None (withheld) in the limited view."""
    return value if view is View.CASE else None


def member_out(m: MemberRecord, view: View) -> s.MemberOut:
    return s.MemberOut(
        person_id=m.person_id,
        name=_name(m.name, view),
        id_number_masked=m.masked_id,
        birth_date=m.birth_date,
        sex=m.sex,
        relationship=m.relationship,
        disability_grade=_case_only(m.disability_grade, view),
        seriously_ill=_case_only(m.seriously_ill, view),
        employment_status=_case_only(m.employment_status, view),
        student=m.student,
        counted=m.counted,
        exclusion_reason=_case_only(m.exclusion_reason, view),
        exclusion_note=_case_only(m.exclusion_note, view),
        active=m.active,
        joined_on=m.joined_on,
        left_on=m.left_on,
        left_reason=m.left_reason,
        marriage_age_basis=_case_only(m.marriage_age_basis, view),
    )


def bank_account_out(a: BankAccountRecord | None, view: View) -> s.BankAccountOut | None:
    if a is None:
        return None
    return s.BankAccountOut(
        token_id=a.id,
        masked_number=a.masked_number,
        bank_code=a.bank_code,
        bank_name=a.bank_name,
        holder_name=_case_only(a.holder_name, view),
        holder_person_id=_case_only(a.holder_person_id, view),
        custody_agreement=_case_only(a.custody_agreement, view),
        custodian_subject=_case_only(a.custodian_subject, view),
        created_at=a.created_at,
    )


_CASE_ONLY_DETAILS = frozenset({"custody_agreement", "document_ids", "marriage_age_basis"})
"""A change's details the limited view leaves out: that staff hold a member's card tells
that the member cannot manage it, and so would the custody agreement's id among the
change's documents, which are the case roles' anyway (views.py); that a marriage was
lawful under an autonomous area's adapted ages hints at the couple's ethnicity (ADR 0016,
3 Dec 2026, helper hBB)."""


_LIMITED_DETAILS_OF_KIND = {ChangeKind.MEMBER_CHANGE: frozenset({"person_id"})}
"""The only details the limited view shows of a change of these kinds. A member change's
are whose details changed: which (disability, illness, employment, exclusion) and to what
are the case roles' (views.py), as the documents listed are (a disability certificate)."""


def _limited_details(kind: ChangeKind, details: dict[str, Any]) -> dict[str, Any]:
    shown = _LIMITED_DETAILS_OF_KIND.get(kind)
    if shown is not None:
        return {k: v for k, v in details.items() if k in shown}
    return {k: v for k, v in details.items() if k not in _CASE_ONLY_DETAILS}


def change_out(c: ChangeRecord, view: View) -> s.ChangeOut:
    kind = ChangeKind(c.kind)
    return s.ChangeOut(
        id=c.id,
        kind=kind,
        effective_on=c.effective_on,
        details=c.details if view is View.CASE else _limited_details(kind, c.details),
        note=_case_only(c.note, view),
        recorded_by=c.recorded_by,
        recorded_at=c.recorded_at,
    )


def change_read_out(c: ChangeRecord, view: View) -> s.ChangeReadOut:
    """One change as the household's read shows it among its changes, and its view."""
    return s.ChangeReadOut(**change_out(c, view).model_dump(), view=view)


def household_out(h: HouseholdAggregate, divisions: DivisionTable, view: View) -> s.HouseholdOut:
    r = h.household
    return s.HouseholdOut(
        view=view,
        id=r.id,
        region_code=r.region_code,
        region_name=divisions.full_name(r.region_code),
        area_type=r.area_type,
        address=_case_only(r.address, view),
        status=r.status,
        head_person_id=r.head_person_id,
        version=r.version,
        members=[member_out(m, view) for m in h.members],
        bank_account=bank_account_out(h.bank_account, view),
        changes=[change_out(c, view) for c in h.changes],
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def household_summary_out(h: HouseholdSummary) -> s.HouseholdSummaryOut:
    return s.HouseholdSummaryOut(
        id=h.id,
        region_code=h.region_code,
        area_type=h.area_type,
        status=h.status,
        head_person_id=h.head_person_id,
        head_masked_name=mask_name(h.head_name) if h.head_name else None,
        active_members=h.active_members,
        created_at=h.created_at,
        updated_at=h.updated_at,
    )


def document_out(d: DocumentRecord) -> s.DocumentOut:
    return s.DocumentOut(
        id=d.id,
        household_id=d.household_id,
        person_id=d.person_id,
        document_type=d.document_type,
        sha256=d.sha256,
        size_bytes=d.size_bytes,
        media_type=d.media_type,
        uploaded_by=d.uploaded_by,
        created_at=d.created_at,
    )


def _limited_summary(t: TimelineRecord) -> str:
    """The event in words, and that a decision came after the withdrawal (a finance
    officer reading "Benefit approved" on a withdrawn application would take it for one
    to pay)."""
    words = event_words(t.ce_type)
    return f"{words} (arrived after the withdrawal)" if t.details.get(AFTER_WITHDRAWAL) else words


def timeline_out(t: TimelineRecord, view: View) -> s.TimelineEntryOut:
    # The limited view tells what happened, when and by whom: no figures, no missing
    # items, no anomaly rule (a summary may name the last two).
    return s.TimelineEntryOut(
        ce_id=t.ce_id,
        type=t.ce_type,
        source=t.ce_source,
        occurred_at=t.occurred_at,
        actor=t.actor,
        summary=t.summary if view is View.CASE else _limited_summary(t),
        details=_case_only(t.details, view),
    )


def _kind(kind: ApplicationKind, view: View) -> ApplicationKind | None:
    """The kind, in the limited view only when it is dibao (views.py)."""
    return kind if view is View.CASE or kind is ApplicationKind.DIBAO else None


def application_out(d: ApplicationDetail, divisions: DivisionTable, view: View) -> s.ApplicationOut:
    r = d.record
    return s.ApplicationOut(
        view=view,
        id=r.id,
        household_id=r.household_id,
        region_code=r.region_code,
        region_name=divisions.full_name(r.region_code),
        kind=_kind(r.kind, view),
        channel=r.channel,
        status=r.status,
        applicant_person_id=r.applicant_person_id,
        applicant_name=_name(d.applicant_name, view),
        statement=_case_only(r.statement, view),
        reason=_case_only(r.reason, view),
        requested_amount_fen=_case_only(r.requested_amount_fen, view),
        individual_inclusion_person_id=_case_only(r.individual_inclusion_person_id, view),
        incomes=_case_only(
            [
                s.IncomeOut(
                    person_id=i.person_id,
                    wage_fen=i.wage_fen,
                    operating_fen=i.operating_fen,
                    property_fen=i.property_fen,
                    transfer_fen=i.transfer_fen,
                    other_fen=i.other_fen,
                    total_fen=i.total_fen,
                    period_months=i.period_months,
                    note=i.note,
                    not_counted=[
                        s.NotCountedOut(kind=r.kind, monthly_fen=r.monthly_fen)
                        for r in i.not_counted
                    ],
                    deductions=[
                        s.DeductionOut(kind=x.kind, monthly_fen=x.monthly_fen) for x in i.deductions
                    ],
                    in_kind=s.InKindOut(
                        wage_fen=i.in_kind.wage_fen,
                        operating_fen=i.in_kind.operating_fen,
                        property_fen=i.in_kind.property_fen,
                        transfer_fen=i.in_kind.transfer_fen,
                        other_fen=i.in_kind.other_fen,
                    ),
                )
                # A submission's answer lists them as its read does (in_order).
                for i in (income.in_order() for income in d.incomes)
            ],
            view,
        ),
        assets=_case_only(
            [
                s.AssetOut(
                    person_id=a.person_id,
                    kind=a.kind,
                    value_fen=a.value_fen,
                    quantity=a.quantity,
                    floor_area_m2=a.floor_area_m2,
                    description=a.description,
                )
                for a in d.assets
            ],
            view,
        ),
        documents=_case_only([document_out(doc) for doc in d.documents], view),
        notice=_case_only(document_out(d.notice), view) if d.notice is not None else None,
        bank_account=bank_account_out(d.bank_account, view),
        staff_related=r.staff_related,
        staff_relation_note=_case_only(r.staff_relation_note, view),
        assigned_caseworker=r.assigned_caseworker,
        unassigned_reason=r.unassigned_reason,
        missing_items=_case_only(
            [
                s.MissingItemOut(
                    description=str(m["description"]),
                    code=MissingItemCode(m["code"]) if m.get("code") else None,
                    document_type=(
                        DocumentType(m["document_type"]) if m.get("document_type") else None
                    ),
                    person_id=m.get("person_id"),
                    field=m.get("field"),
                )
                for m in r.missing_items
            ],
            view,
        ),
        submitted_at=r.submitted_at,
        submitted_by=r.submitted_by,
        accepted_on=r.accepted_on,
        withdrawn_at=r.withdrawn_at,
        withdrawal_reason=_case_only(r.withdrawal_reason, view),
        withdrawal_cause=r.withdrawal_cause,
        completes_application_id=r.completes_application_id,
        decision=decision_out(r.decision, r.decided_at, r.decided_amount_fen, view),
        timeline=[timeline_out(t, view) for t in d.timeline],
    )


def decision_out(
    outcome: DecisionOutcome | None, at: datetime | None, amount_fen: int | None, view: View
) -> s.DecisionOut | None:
    """The decision, once made; in the limited view a one-off grant's amount is withheld
    (the public list shows a dibao allowance's; ADR 0005, 0023)."""
    if outcome is None or at is None:
        return None
    shown = view is View.CASE or outcome is DecisionOutcome.APPROVED
    return s.DecisionOut(outcome=outcome, decided_at=at, amount_fen=amount_fen if shown else None)


def summary_out(a: ApplicationSummary, view: View) -> s.ApplicationSummaryOut:
    return s.ApplicationSummaryOut(
        id=a.id,
        household_id=a.household_id,
        region_code=a.region_code,
        kind=_kind(a.kind, view),
        status=a.status,
        applicant_masked_name=mask_name(a.applicant_name),
        staff_related=a.staff_related,
        assigned_caseworker=a.assigned_caseworker,
        submitted_at=a.submitted_at,
        decision=decision_out(a.decision, a.decided_at, a.decided_amount_fen, view),
    )


def staff_out(r: StaffRecord) -> s.StaffOut:
    return s.StaffOut(
        id=r.id,
        township_code=r.township_code,
        name=r.name,
        role=r.role,
        subject=r.subject,
        responsible_caseworker=r.responsible_caseworker,
        masked_id=r.masked_id,
        active=r.active,
        created_at=r.created_at,
        deactivated_at=r.deactivated_at,
        deactivated_by=r.deactivated_by,
        relatives=[
            s.RelativeOut(id=x.id, relation=x.relation, name=x.name, masked_id=x.masked_id)
            for x in r.relatives
        ],
    )
