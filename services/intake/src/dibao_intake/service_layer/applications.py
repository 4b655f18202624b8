"""Submitting, reading, searching and withdrawing applications."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.clock import CHINA_TZ, has_utc_instant
from dibao_common.crypto import mask_name
from dibao_common.errors import Conflict, NotFound
from dibao_common.messaging.outbox import OutgoingEvent
from dibao_common.observability import get_logger
from dibao_intake.adapters import contracts
from dibao_intake.adapters.records import (
    ApplicationRecord,
    ApplicationSummary,
    BankAccountRecord,
    DocumentRecord,
    HouseholdAggregate,
    MemberRecord,
    TimelineRecord,
)
from dibao_intake.adapters.repositories import applications as repo
from dibao_intake.adapters.repositories import documents as document_repo
from dibao_intake.adapters.repositories import households as household_repo
from dibao_intake.adapters.repositories import submission as submission_repo
from dibao_intake.domain.application import (
    ApplicationDraft,
    AssetDeclaration,
    DocumentOnFile,
    IncomeDeclaration,
    MissingItem,
    check_application,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationState,
    ApplicationStatus,
    DocumentType,
    ExclusionReason,
    HouseholdStatus,
    LeaveReason,
    SubmissionChannel,
    UnassignedReason,
    WithdrawalCause,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.errors import RulesViolatedError, Violation
from dibao_intake.domain.return_notice import (
    NOTICE_MEDIA_TYPE,
    NoticeItem,
    ReturnNotice,
    issuer_name,
    render,
)
from dibao_intake.domain.staff import (
    PersonOnFile,
    StaffRelation,
    find_staff_relations,
    relation_note,
)
from dibao_intake.service_layer.access import AccessTarget, access_event, record_access, refused
from dibao_intake.service_layer.events import publish, publish_many
from dibao_intake.service_layer.households import (
    ACCOUNT_FIELDS,
    BankAccountInput,
    account_holder,
    household_dissolved,
    is_recorded_account,
    living_apart_holder,
    new_bank_account,
    rules_failed,
)
from dibao_intake.service_layer.pages import (
    Page,
    Window,
    ensure_searchable,
    list_target,
    listed_person,
)
from dibao_intake.service_layer.runtime import NOT_FOUND, Caller, Runtime
from dibao_intake.service_layer.timeline import DECIDED_TYPES
from dibao_intake.service_layer.views import (
    CASE_ROLES_LISTED,
    KIND_IF_DIBAO,
    View,
    missing_role,
    shown,
    view_of,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SubmitApplication:
    household_id: uuid.UUID
    kind: ApplicationKind
    channel: SubmissionChannel
    applicant_person_id: uuid.UUID
    incomes: Sequence[IncomeDeclaration]
    assets: Sequence[AssetDeclaration]
    document_ids: Sequence[uuid.UUID]
    bank_account: BankAccountInput | None
    statement: str | None
    reason: str | None
    requested_amount_fen: int | None
    individual_inclusion_person_id: uuid.UUID | None
    completes_application_id: uuid.UUID | None = None
    """The household's returned application this one completes (ADR 0009, 3 Dec 2026)."""


@dataclass(frozen=True, slots=True)
class ApplicationDetail:
    record: ApplicationRecord
    members: dict[uuid.UUID, MemberRecord]
    incomes: list[IncomeDeclaration]
    assets: list[AssetDeclaration]
    documents: list[DocumentRecord]
    bank_account: BankAccountRecord | None
    timeline: list[TimelineRecord]
    notice: DocumentRecord | None = None
    """The notice given to the applicant of a returned application (ADR 0009, 3 Dec 2026)."""

    @property
    def applicant_name(self) -> str:
        applicant = self.members.get(self.record.applicant_person_id)
        return applicant.name if applicant is not None else ""


def missing_json(item: MissingItem) -> dict[str, str | None]:
    """The item as the application's ``missing_items`` stores it; ``code`` since 3 Dec
    2026 (ADR 0009): a row stored before has none, and answers null."""
    return {
        "description": item.description,
        "code": item.code.value,
        "document_type": item.document_type.value if item.document_type else None,
        "person_id": str(item.person_id) if item.person_id else None,
        "field": item.field,
    }


def _document_problems(
    ids: Sequence[uuid.UUID], found: dict[uuid.UUID, DocumentRecord]
) -> list[Violation]:
    problems = [
        Violation(f"/document_ids/{i}", "no such document")
        for i, d in enumerate(ids)
        if d not in found
    ]
    if len(set(ids)) != len(ids):
        problems.append(Violation("/document_ids", "a document is listed twice"))
    return problems


def _repoint(violation: Violation, on_file: list[int]) -> Violation:
    prefix = "/document_ids/"
    if not violation.pointer.startswith(prefix):
        return violation
    index = int(violation.pointer[len(prefix) :])
    return Violation(f"{prefix}{on_file[index]}", violation.detail)


def _holder_still_a_member(
    household: HouseholdAggregate,
    account: BankAccountRecord,
    living_apart: frozenset[ExclusionReason],
) -> None:
    """Refuse the recorded account when its holder, recorded as a member, has since died
    or moved out: the allowance would go into a dead person's account (which the bank
    freezes), or one the record says a member holds when none does. Naming that account in
    the application is refused alike (its holder is no active member); a
    bank_account_change records who holds the card now (a member, or someone outside the
    household by name). A holder recorded by name only (a custodian) is not a member.
    So too a holder who is a member living apart (not counted for a reason of
    ``living_apart``: imprisoned, missing, ...): nobody at home can use the card (ADR 0016,
    3 Dec 2026)."""
    if account.holder_person_id is None:
        return
    memberships = [m for m in household.members if m.person_id == account.holder_person_id]
    active = next((m for m in memberships if m.active), None)
    if active is not None and active.exclusion_reason in living_apart:
        raise RulesViolatedError(
            [
                Violation(
                    "/bank_account",
                    f"the household's account is {living_apart_holder(active.exclusion_reason)}:"
                    " record a bank_account_change first",
                )
            ]
        )
    if not memberships or active is not None:
        return
    left = max(memberships, key=lambda m: m.left_on or date.min)
    how = "died" if left.left_reason is LeaveReason.DEATH else "moved out"
    raise RulesViolatedError(
        [
            Violation(
                "/bank_account",
                f"the household's account is held by a member who {how} on {left.left_on}:"
                " record a bank_account_change first, naming who holds the card now",
            )
        ]
    )


async def _account_for(
    session: AsyncSession,
    runtime: Runtime,
    household: HouseholdAggregate,
    given: BankAccountInput | None,
) -> BankAccountRecord | None:
    """The account payments would go to: the one given (stored when new) or the current one."""
    current = household.bank_account
    if given is None:
        if current is not None:
            _holder_still_a_member(household, current, runtime.policy.living_apart)
        return current
    holder = account_holder(household, given, "/bank_account", runtime.policy.living_apart)
    if current is not None:
        if is_recorded_account(runtime, current, given, holder):
            return current
        if current.number_hash == runtime.pii.hash_id_number(given.account_number):
            # Paid as recorded, not as given: the clerk would believe the bank or the
            # holder corrected when they are not.
            raise RulesViolatedError(
                [
                    Violation(
                        "/bank_account",
                        "is the household's account with another bank or holder than"
                        " recorded; record a bank_account_change first",
                    )
                ]
            )
        raise RulesViolatedError(
            [
                Violation(
                    "/bank_account",
                    "the household has another account; record a bank_account_change first",
                )
            ]
        )
    account, cipher = new_bank_account(runtime, household.household.id, given, holder)
    await household_repo.insert_first_bank_account(session, account, number_cipher=cipher)
    return account


def application_open(kind: ApplicationKind, application_id: uuid.UUID) -> Conflict:
    """The household has an application of this kind not yet decided: ``application_id``."""
    return Conflict(
        f"The household already has an open {kind.value} application",
        type_slug="application-open",
        application_id=str(application_id),
    )


CONCURRENT_CHANGE = (
    "Another request changed the household while this one was being checked;"
    " nothing was recorded, send it again"
)


def concurrent_change() -> Conflict:
    """What the submission read is no longer so: a change of the household (its version,
    migration 0007) or a row of its own (its first account) committed since."""
    return Conflict(CONCURRENT_CHANGE, type_slug="concurrent-change")


ROSTER_CHANGED = (
    "The staff roster (a caseworker or a relative of staff) changed while this request was"
    " being checked; nothing was recorded, send it again"
)


def roster_changed() -> Conflict:
    """What the submission read of the staff roster is no longer so: a roster change
    committed after its read (the roster's version, migration 0021; ADR 0009): the
    assignment and the staff flag would be the old roster's."""
    return Conflict(ROSTER_CHANGED, type_slug="concurrent-change")


async def submission_race(
    session: AsyncSession, command: SubmitApplication, constraint: str | None
) -> Conflict | None:
    """What the violation of unique ``constraint`` by the submission's one statement means,
    or None when it is no race (a bug, or a constraint added since): another request wrote
    the same unique row after the submission's read, and committed (the statement waited
    for it). Its twin's open application of the kind is the read's answer, application-open
    naming it (concurrent-change if it is no longer open); a first account of the household
    written since is concurrent-change: sent again, the submission reads it."""
    if constraint == submission_repo.ONE_OPEN_APPLICATION_INDEX:
        winner = await submission_repo.open_application_id(
            session, command.household_id, command.kind
        )
        return concurrent_change() if winner is None else application_open(command.kind, winner)
    if constraint in (household_repo.CURRENT_ACCOUNT_INDEX, submission_repo.COMPLETES_INDEX):
        # Another application completing the same returned one committed since the read:
        # sent again, the read names it (422 at /completes_application_id).
        return concurrent_change()
    return None


def _completion_problems(
    context: submission_repo.SubmissionContext,
    completes: uuid.UUID | None,
    kind: ApplicationKind,
) -> list[Violation]:
    """The returned application a submission completes (ADR 0009, 3 Dec 2026): of the same
    household (another household's answers as one that does not exist), returned, of the
    submission's kind (a heating application is no dibao application sent again), and
    completed by no other application."""
    if completes is None:
        return []
    pointer = "/completes_application_id"
    found = context.completes
    if found is None or found.household_id != context.household.household.id:
        return [Violation(pointer, "no application of this household")]
    if found.status is not ApplicationStatus.RETURNED:
        return [
            Violation(
                pointer,
                f"is {found.status.value}: only a returned application is completed by a new one",
            )
        ]
    if found.kind is not kind:
        return [
            Violation(
                pointer,
                f"is a {found.kind.value} application: only an application of its kind"
                f" completes it (this one is {kind.value})",
            )
        ]
    if found.completed_by is not None:
        return [Violation(pointer, f"is completed already, by application {found.completed_by}")]
    return []


async def submit_application(
    session: AsyncSession, runtime: Runtime, caller: Caller, command: SubmitApplication
) -> ApplicationDetail:
    """Record the application; accept it (ApplicationSubmitted) or return it with every
    missing item (ApplicationReturned)."""
    context = await submission_repo.load_submission_context(
        session,
        command.household_id,
        document_ids=command.document_ids,
        kind=command.kind,
        township_name=lambda code: _name(runtime, code),
        mask_name=mask_name,
        completes=command.completes_application_id,
    )
    if context is None:
        raise NotFound(NOT_FOUND)
    household = context.household
    region_code = household.household.region_code
    if not caller.principal.can_see(region_code):
        # A probe of another region's household: refused as its read is (recorded DENIED,
        # in a transaction of its own: nothing of the submission is written).
        target = AccessTarget(
            command.household_id,
            region_code,
            access.RECORD_TYPE_HOUSEHOLD,
            str(command.household_id),
        )
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    if household.household.status is not HouseholdStatus.ACTIVE:
        raise household_dissolved()
    if context.open_application_id is not None:
        raise application_open(command.kind, context.open_application_id)
    today = runtime.clock.today()
    active = household.active_members
    # A document of a household outside the caller's regions is one they cannot see: it
    # answers "no such document", as a missing one does.
    documents = context.documents
    others = {d.household_id for d in documents.values()} - {household.household.id}
    if others:
        regions = await submission_repo.household_regions(session, list(others))
        documents = {
            i: d
            for i, d in documents.items()
            if caller.principal.can_see(regions.get(d.household_id, region_code))
        }
    problems = _document_problems(command.document_ids, documents)
    problems += _completion_problems(context, command.completes_application_id, command.kind)
    try:
        account = await _account_for(session, runtime, household, command.bank_account)
    except RulesViolatedError as error:
        problems.extend(error.violations)
        account = household.bank_account
    draft = ApplicationDraft(
        household_id=household.household.id,
        kind=command.kind,
        applicant_person_id=command.applicant_person_id,
        incomes=command.incomes,
        assets=command.assets,
        documents=[
            DocumentOnFile(d.id, d.document_type, d.household_id, d.person_id)
            for d in (documents[i] for i in command.document_ids if i in documents)
        ],
        has_bank_account=account is not None,
        requested_amount_fen=command.requested_amount_fen,
        reason=command.reason,
        individual_inclusion_person_id=command.individual_inclusion_person_id,
    )
    facts = [m.facts() for m in active]
    try:
        check_application(draft, facts, today=today, policy=runtime.policy)
    except RulesViolatedError as error:
        # The draft lists only the documents found: point back into the request's list.
        on_file = [i for i, d in enumerate(command.document_ids) if d in documents]
        problems.extend(_repoint(v, on_file) for v in error.violations)
    if problems:
        raise rules_failed(RulesViolatedError(problems))
    missing = missing_items(draft, facts, today=today, policy=runtime.policy)
    accepted = not missing
    relations = find_staff_relations(
        [PersonOnFile(m.person_id, m.id_hash, mask_name(m.name)) for m in active],
        context.roster,
    )
    caseworker, unassigned = _assignment(context, relations) if accepted else (None, None)
    now = runtime.clock.now()
    application_id = uuid7()
    # A returned application's notice: its content is in the store before the statement
    # that records it is sent (a committed row always has its content).
    notice = (
        None
        if accepted
        else await _store_notice(
            runtime, caller, household, application_id, command, missing, today=today, at=now
        )
    )
    record = ApplicationRecord(
        id=application_id,
        household_id=household.household.id,
        region_code=region_code,
        kind=command.kind,
        channel=command.channel,
        status=ApplicationStatus.SUBMITTED if accepted else ApplicationStatus.RETURNED,
        applicant_person_id=command.applicant_person_id,
        statement=command.statement,
        reason=command.reason,
        requested_amount_fen=command.requested_amount_fen,
        individual_inclusion_person_id=command.individual_inclusion_person_id,
        bank_account_id=account.id if account is not None else None,
        staff_related=bool(relations),
        staff_relation_note=relation_note(relations) or None,
        assigned_caseworker=caseworker,
        missing_items=[missing_json(m) for m in missing],
        submitted_at=now,
        submitted_by=caller.principal.subject,
        accepted_on=today if accepted else None,
        withdrawn_at=None,
        withdrawal_reason=None,
        withdrawal_cause=None,
        unassigned_reason=unassigned,
        completes_application_id=command.completes_application_id,
        notice_document_id=notice.id if notice is not None else None,
    )
    ordered_documents = [documents[i] for i in command.document_ids]
    # The events first (their outbox rows go in now, or with the idempotent answer), so
    # that the write below carries their timeline entries: one statement for both.
    outgoing = (
        _submitted_events(runtime, caller, household, record, command, account, ordered_documents)
        if accepted
        else [_returned_event(runtime, caller, record, missing, notice)]
    )
    # One entry per person, who may have left and rejoined.
    members = {m.person_id: m for m in household.members}
    # The answer shows the application whole, as its read does (the applicant's name, the
    # account's holder and custody, the documents): recorded as that read is, in the same
    # statement as the events (ADR 0005).
    target = AccessTarget(
        record.household_id, region_code, access.RECORD_TYPE_APPLICATION, str(record.id)
    )
    outgoing.append(_shown(runtime, caller, target, members, with_account=account is not None))
    timeline = await publish_many(session, runtime, caller, outgoing, write_timeline=False)
    await submission_repo.insert_submission(
        session,
        record,
        command.incomes,
        [(uuid7(), a) for a in command.assets],
        command.document_ids,
        timeline,
        recorded_at=now,
        household_version=household.household.version,
        roster_version=context.roster_version,
        notice=notice,
    )
    return ApplicationDetail(
        record=record,
        members=members,
        # In the order its read lists them (by person, by document id: _detail), whatever
        # order the clerk gave them in: the answer is the application as its read shows it.
        incomes=sorted(command.incomes, key=lambda i: i.person_id),
        assets=list(command.assets),
        documents=sorted(ordered_documents, key=lambda d: d.id),
        bank_account=account,
        # Its entries as a read shows them, written with it (intake's own events come first).
        timeline=[entry for about, entry in timeline if about == record.id],
        notice=notice,
    )


def notice_issuer(divisions: DivisionTable, region_code: str) -> str:
    """The accepting township of a household in ``region_code``, as its notice is signed
    (the county's and the township's names: 榆中县夏官营镇人民政府)."""
    county = divisions.get(region_code[:6] + "000000")
    township = divisions.get(region_code[:9] + "000")
    if township is None:
        return region_code[:9]
    return issuer_name(county.name if county is not None else "", township.name)


async def _store_notice(
    runtime: Runtime,
    caller: Caller,
    household: HouseholdAggregate,
    application_id: uuid.UUID,
    command: SubmitApplication,
    missing: Sequence[MissingItem],
    *,
    today: date,
    at: datetime,
) -> DocumentRecord:
    """Render the notice of a returned application, put its content in the store and
    return the document that records it (written with the application, ADR 0009).

    Its bytes name the application's new id, so they are new content: no row names them
    and no other upload puts them, and the race that an upload's content lock closes
    (a put keeping an orphan's file that the sweep then deletes, ADR 0015) cannot happen;
    the sweep's minimum age keeps it while the statement is in flight. A run whose
    statement is not written (a replay, a race) has its content removed again
    (``discard_unwritten_notice``)."""
    names = {m.person_id: m.name for m in household.members}
    content = render(
        ReturnNotice(
            application_id=application_id,
            kind=command.kind,
            issuer=notice_issuer(runtime.divisions, household.household.region_code),
            returned_on=today,
            applicant_name=names.get(command.applicant_person_id, ""),
            items=[
                NoticeItem(
                    code=item.code,
                    document_type=item.document_type,
                    member_name=names.get(item.person_id) if item.person_id else None,
                )
                for item in missing
            ],
        )
    )
    sha256 = hashlib.sha256(content).hexdigest()
    await runtime.store.put(sha256, content)
    return DocumentRecord(
        id=uuid7(),
        household_id=household.household.id,
        # About the household: it names the applicant and the members its items concern,
        # so its reads are recorded as naming every member, as a household's register is.
        person_id=None,
        document_type=DocumentType.RETURN_NOTICE,
        sha256=sha256,
        size_bytes=len(content),
        media_type=NOTICE_MEDIA_TYPE,
        uploaded_by=caller.principal.subject,
        created_at=at,
    )


async def discard_unwritten_notice(
    session: AsyncSession, runtime: Runtime, notice: DocumentRecord
) -> bool:
    """Remove the content of a notice whose submission was not written (its statement
    failed, or the Idempotency-Key's stored answer was sent instead): a retry must not
    leave a second notice in the store. Only when no row names the content, under the
    content's lock as the sweep deletes (ADR 0015), and never when an upload holds it.
    Whether it was removed."""
    async with session.begin():
        conn = await session.connection()
        if not await document_repo.try_lock_content(conn, notice.sha256):
            return False
        if await document_repo.content_named(conn, notice.sha256):
            return False
        removed = await runtime.store.delete(notice.sha256)
    if removed:
        log.info("unwritten return notice removed", sha256=notice.sha256)
    return removed


def _assignment(
    context: submission_repo.SubmissionContext, relations: Sequence[StaffRelation]
) -> tuple[str | None, UnassignedReason | None]:
    """Who an accepted application is assigned to: the township's responsible caseworker,
    or nobody and why (the county assigns it, ADR 0009). Never the caseworker's own case:
    a household of which they are a member, or in which a relative of theirs is (flagged).
    Nor any case while their own ID number is not on file: their own household cannot be
    found then, so none can be given to them."""
    if context.caseworker is None:
        return None, UnassignedReason.NO_CASEWORKER
    if any(r.entry.staff_id == context.caseworker_staff_id for r in relations):
        return None, UnassignedReason.CASEWORKER_RELATED
    if not context.caseworker_identified:
        return None, UnassignedReason.CASEWORKER_NOT_IDENTIFIED
    return context.caseworker, None


def _name(runtime: Runtime, code: str) -> str:
    division = runtime.divisions.get(code)
    return division.name if division is not None else code


def _submitted_events(
    runtime: Runtime,
    caller: Caller,
    household: HouseholdAggregate,
    record: ApplicationRecord,
    command: SubmitApplication,
    account: BankAccountRecord | None,
    documents: list[DocumentRecord],
) -> list[OutgoingEvent]:
    now = runtime.clock.now()
    submitted = ev.ApplicationSubmitted(
        household_id=str(record.household_id),
        region=contracts.region(record.region_code),
        occurred_at=contracts.timestamp(now),
        actor=contracts.actor(caller.principal),
        application_id=str(record.id),
        kind=contracts.APPLICATION_KINDS[record.kind],
        channel=contracts.CHANNELS[record.channel],
        applicant_person_id=str(record.applicant_person_id),
        household=contracts.household_snapshot(
            household.household,
            household.members,
            runtime.pii.hash_key_id,
            declarations=command.incomes,
        ),
        incomes=contracts.declared_incomes(command.incomes),
        assets=contracts.declared_assets(command.assets),
        documents=[contracts.document_ref(d) for d in documents],
        staff_related=record.staff_related,
        staff_relation_note=record.staff_relation_note or "",
        assigned_caseworker=record.assigned_caseworker or "",
        unassigned_reason=(
            contracts.UNASSIGNED_REASONS[record.unassigned_reason]
            if record.unassigned_reason is not None
            else ev.UNASSIGNED_REASON_UNSPECIFIED
        ),
        statement=record.statement or "",
        reason=record.reason or "",
        individual_inclusion_person_id=(
            str(record.individual_inclusion_person_id)
            if record.individual_inclusion_person_id
            else ""
        ),
        completes_application_id=(
            str(record.completes_application_id) if record.completes_application_id else ""
        ),
    )
    ref = contracts.bank_account_ref(account)
    if ref is not None:
        submitted.bank_account.CopyFrom(ref)
    if record.requested_amount_fen is not None:
        submitted.requested_amount.CopyFrom(contracts.money(record.requested_amount_fen))
    accepted = ev.ApplicationAccepted(
        household_id=str(record.household_id),
        region=contracts.region(record.region_code),
        occurred_at=contracts.timestamp(now),
        actor=contracts.actor(caller.principal),
        application_id=str(record.id),
        accepted_on=contracts.local_date(record.accepted_on or runtime.clock.today()),
    )
    return [
        OutgoingEvent(message, key=str(record.household_id), subject=str(record.id))
        for message in (submitted, accepted)
    ]


def _returned_event(
    runtime: Runtime,
    caller: Caller,
    record: ApplicationRecord,
    missing: list[MissingItem],
    notice: DocumentRecord | None,
) -> OutgoingEvent:
    returned = ev.ApplicationReturned(
        household_id=str(record.household_id),
        region=contracts.region(record.region_code),
        occurred_at=contracts.timestamp(runtime.clock.now()),
        actor=contracts.actor(caller.principal),
        application_id=str(record.id),
        missing_items=[contracts.missing_item(m) for m in missing],
        completes_application_id=(
            str(record.completes_application_id) if record.completes_application_id else ""
        ),
    )
    if notice is not None:
        returned.notice.CopyFrom(contracts.document_ref(notice))
    return OutgoingEvent(returned, key=str(record.household_id), subject=str(record.id))


APPLICATION_FIELDS = (
    "kind",
    "requested_amount",
    "applicant_name",
    "statement_and_notes",
    "incomes",
    "assets",
    "documents",
    "individual_inclusion",
    "staff_relation",
    "missing_items",
    "notice",
    "timeline_details",
    "decision",
)
DECISION_IF_DIBAO = "decision_amount_if_dibao"
"""How an access record names an application's decision in the limited view: its outcome
and date, and the amount only of a dibao approval (the public list's; a one-off grant's
amount would tell its kind, as the amount asked for would). ADR 0023."""
# What the limited view shows instead (views.py): masked names, the flag only, the kind
# only when it is dibao; no words, incomes, assets, amount asked for, documents, missing
# items, timeline details or the member applied for alone.
_LIMITED_APPLICATION_FIELDS: dict[str, str | None] = {
    "kind": KIND_IF_DIBAO,
    "requested_amount": None,
    "applicant_name": "applicant_name_masked",
    "statement_and_notes": None,
    "incomes": None,
    "assets": None,
    "documents": None,
    "individual_inclusion": None,
    "staff_relation": "staff_related",
    "account_holder_name": None,
    "custody": None,
    "missing_items": None,
    "notice": None,
    "timeline_details": None,
    "decision": DECISION_IF_DIBAO,
}


async def read_application(
    session: AsyncSession, runtime: Runtime, caller: Caller, application_id: uuid.UUID
) -> ApplicationDetail:
    """The application with its declarations, documents and timeline; the read is recorded."""
    record = await repo.get_application(session, application_id)
    if record is None:
        raise NotFound(NOT_FOUND)
    target = AccessTarget(
        record.household_id, record.region_code, access.RECORD_TYPE_APPLICATION, str(record.id)
    )
    if not caller.principal.can_see(record.region_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    detail = await _detail(session, record)
    await _record_shown(session, runtime, caller, target, detail)
    return detail


async def _record_shown(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    target: AccessTarget,
    detail: ApplicationDetail,
) -> None:
    """The access record of an answer showing the application whole (a read, a withdrawal)."""
    event = _shown(
        runtime, caller, target, detail.members, with_account=detail.bank_account is not None
    )
    await publish(session, runtime, caller, event.message, key=event.key, subject=event.subject)


def _shown(
    runtime: Runtime,
    caller: Caller,
    target: AccessTarget,
    members: Mapping[uuid.UUID, MemberRecord],
    *,
    with_account: bool,
) -> OutgoingEvent:
    """The access record of an answer showing the application whole: every member of the
    household, the fields of the caller's view (a submission's answer, a read, a
    withdrawal)."""
    return access_event(
        runtime,
        caller,
        target,
        persons=[contracts.person_ref(m, runtime.pii.hash_key_id) for m in members.values()],
        fields=application_fields(view_of(caller.principal), with_account=with_account),
    )


def application_fields(view: View, *, with_account: bool) -> tuple[str, ...]:
    """The fields an application's answer shows in ``view``, as its access record names them."""
    return shown(
        APPLICATION_FIELDS + (ACCOUNT_FIELDS if with_account else ()),
        _LIMITED_APPLICATION_FIELDS,
        view,
    )


async def _detail(session: AsyncSession, record: ApplicationRecord) -> ApplicationDetail:
    members = await household_repo.load_members(session, record.household_id)
    document_ids = await repo.load_document_ids(session, record.id)
    notice_id = record.notice_document_id
    documents = await document_repo.get_documents(
        session, document_ids + ([notice_id] if notice_id is not None else [])
    )
    account = None
    if record.bank_account_id is not None:
        found = await household_repo.get_bank_account(session, record.bank_account_id)
        account = found[0] if found is not None else None
    return ApplicationDetail(
        record=record,
        members={m.person_id: m for m in members},
        incomes=await repo.load_incomes(session, record.id),
        assets=await repo.load_assets(session, record.id),
        documents=[documents[d] for d in document_ids],
        bank_account=account,
        timeline=await repo.load_timeline(session, record.id),
        notice=documents[notice_id] if notice_id is not None else None,
    )


def not_withdrawable(status: ApplicationStatus) -> Conflict:
    """Only an accepted application (submitted) is withdrawn: not a returned or withdrawn one."""
    return Conflict(
        f"An application that is {status.value} cannot be withdrawn",
        type_slug="application-not-withdrawable",
    )


def application_decided() -> Conflict:
    """An application assessment has decided is reviewed by the county, not withdrawn."""
    return Conflict(
        "The application has been decided; ask the county to review it instead",
        type_slug="application-decided",
    )


async def withdraw_application(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    application_id: uuid.UUID,
    reason: str,
) -> ApplicationDetail:
    """The applicant withdraws an accepted application not yet decided. The answer shows
    the application whole, as GET /applications/{id} does, and is recorded as that read is
    (a caller of another region is refused as that read is: 404, recorded DENIED)."""
    record = await repo.get_application(session, application_id, for_update=True)
    if record is None:
        raise NotFound(NOT_FOUND)
    target = AccessTarget(
        record.household_id, record.region_code, access.RECORD_TYPE_APPLICATION, str(record.id)
    )
    if not caller.principal.can_see(record.region_code):
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    if record.status is not ApplicationStatus.SUBMITTED:
        raise not_withdrawable(record.status)
    timeline = await repo.load_timeline(session, record.id)
    if any(entry.ce_type in DECIDED_TYPES for entry in timeline):
        raise application_decided()
    now = runtime.clock.now()
    cause, stored_reason = await repo.mark_withdrawn(
        session, record.id, at=now, cause=WithdrawalCause.APPLICANT_REQUEST, reason=reason
    )
    withdrawn = ev.ApplicationWithdrawn(
        household_id=str(record.household_id),
        region=contracts.region(record.region_code),
        occurred_at=contracts.timestamp(now),
        actor=contracts.actor(caller.principal),
        application_id=str(record.id),
        reason=stored_reason or "",
        cause=contracts.WITHDRAWAL_CAUSES[cause],
    )
    await publish(
        session, runtime, caller, withdrawn, key=str(record.household_id), subject=str(record.id)
    )
    updated = await repo.get_application(session, record.id)
    assert updated is not None
    detail = await _detail(session, updated)
    await _record_shown(session, runtime, caller, target, detail)
    return detail


# --- search --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchApplications:
    region_prefix: str | None = None
    status: ApplicationStatus | None = None
    kind: ApplicationKind | None = None
    household_id: uuid.UUID | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None
    """Inclusive, on the China calendar."""
    state: ApplicationState | None = None
    """Open (submitted, undecided) or decided (ADR 0023); None: either, and every status.
    Left out of a cursor's digest when None, as every criterion not given is, so a cursor
    of a search made before it existed continues that search."""
    cursor: str | None = None
    limit: int = 50


def _china_midnight(day: date | None) -> datetime | None:
    """The start of ``day`` in China; None (no bound) for no day, or one at the very
    start of the calendar (its midnight is before the earliest instant in UTC)."""
    if day is None:
        return None
    moment = datetime.combine(day, time(0), tzinfo=CHINA_TZ)
    return moment if has_utc_instant(moment) else None


async def _searched_household(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    household_id: uuid.UUID,
    target: AccessTarget,
) -> AccessTarget:
    """The search's target naming the household its filter names, when the caller may
    read that household. The filter names one record, so it is checked as a read of that
    record is (GET /households/{household_id}): a household that does not exist answers
    404 and leaves no record; one outside the caller's regions answers the same 404 and is
    recorded as refused (outcome DENIED) in the household's region, naming it and nobody's
    data, so that its county's auditor finds the probe (ADR 0017, 3 Dec 2026). An empty
    page would tell nothing either, but recorded as a granted search in the caller's
    region, naming no household, the probe was found by nobody who audits that household."""
    household = await household_repo.get_household(session, household_id)
    if household is None:
        raise NotFound(NOT_FOUND)
    if not caller.principal.can_see(household.region_code):
        probe = replace(
            target,
            household_id=household_id,
            region_code=household.region_code,
            regions=(),
        )
        raise refused(NotFound(NOT_FOUND), runtime, caller, probe)
    # Granted: the search stays recorded where it searched, and names the household whose
    # applications alone it could show, as a read of that household would.
    return replace(target, household_id=household_id)


async def search_applications(
    session: AsyncSession, runtime: Runtime, caller: Caller, query: SearchApplications
) -> Page[ApplicationSummary]:
    """Newest first, keyset-paginated; the search is recorded as one access. A household
    filter naming a household the caller may not read answers as one that does not exist
    (404), its refusal recorded (``_searched_household``)."""
    target = list_target("applications", query, caller.principal)
    view = view_of(caller.principal)
    if view is View.LIMITED and query.kind is not None and query.kind.one_off:
        # The page would say which households asked for this kind, medical assistance too.
        refusal = missing_role(CASE_ROLES_LISTED, "Searching by a one-off kind is casework")
        raise refused(refusal, runtime, caller, target)
    ensure_searchable(runtime, caller, query, target)
    if query.household_id is not None:
        target = await _searched_household(session, runtime, caller, query.household_id, target)
    window = Window.of("applications", query, runtime.page_size_max)
    rows = await repo.search_applications(
        session,
        caller.principal,
        repo.ApplicationFilter(
            region_prefix=query.region_prefix,
            status=query.status,
            kind=query.kind,
            household_id=query.household_id,
            submitted_from=_china_midnight(query.submitted_from),
            # The calendar's last day has no next one: every application is before its end.
            submitted_before=(
                _china_midnight(query.submitted_to + timedelta(days=1))
                if query.submitted_to and query.submitted_to < date.max
                else None
            ),
            state=query.state,
        ),
        after_id=window.after,
        limit=window.read,
    )
    page = window.page(rows)
    await record_access(
        session,
        runtime,
        caller,
        target,
        # Each applicant named as a read of the household names them (keyed hash too),
        # once however many of their applications the page shows.
        persons=list(
            {
                s.applicant_person_id: listed_person(
                    s.applicant_person_id,
                    s.applicant_id_hash,
                    runtime.pii.hash_key_id,
                    s.applicant_masked_id,
                    s.applicant_name,
                )
                for s in page.items
            }.values()
        ),
        fields=shown(
            ("applicant_name_masked", "region", "status", "kind", "staff_related", "decision"),
            {"kind": KIND_IF_DIBAO, "decision": DECISION_IF_DIBAO},
            view,
        ),
    )
    return page
