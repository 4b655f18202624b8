"""Applications: submit, search, read with timeline, withdraw."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_common.errors import ProblemError
from dibao_common.observability import get_logger
from dibao_intake.adapters.records import ApplicationRecord, DocumentRecord, MemberRecord
from dibao_intake.api import replays
from dibao_intake.api import schemas as s
from dibao_intake.api.deps import (
    SEARCH_FORBIDDEN,
    Clerk,
    Cursor,
    Idempotency,
    PageSize,
    Reader,
    RegionPrefix,
    RuntimeDep,
    created,
    in_one_statement,
    in_transaction,
    json_response,
    location_header,
    problems,
)
from dibao_intake.api.households import bank_account_input
from dibao_intake.api.mapping import application_out, summary_out
from dibao_intake.api.replays import replay
from dibao_intake.domain.application import (
    ApplicationDraft,
    AssetDeclaration,
    CompletenessPolicy,
    Deduction,
    DocumentOnFile,
    IncomeDeclaration,
    InKind,
    MissingItem,
    NotCountedReceipt,
    missing_items,
)
from dibao_intake.domain.codes import (
    ApplicationKind,
    ApplicationState,
    ApplicationStatus,
    DisabilityGrade,
    DocumentType,
    EmploymentStatus,
    Relationship,
    Sex,
    SubmissionChannel,
)
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.domain.return_notice import (
    NOTICE_MEDIA_TYPE,
    NoticeItem,
    ReturnNotice,
    render,
)
from dibao_intake.service_layer import applications as service
from dibao_intake.service_layer.runtime import Runtime
from dibao_intake.service_layer.views import View, view_of

router = APIRouter(tags=["applications"])
log = get_logger(__name__)


_EXAMPLE_HOUSEHOLD = uuid.UUID("0193a4f2-7c1e-7000-8000-3f9c0000a7f2")
_EXAMPLE_REGION = "620123101203"
_DIVISIONS = DivisionTable.load()
"""The packaged divisions, for the examples (a province's extra files name its own)."""
_EXAMPLE_MEMBERS = (
    # (person id, name, birth date, relationship, disability, employment, student): the
    # household of HouseholdIn's example, as ApplicationIn's example names its people.
    (1, "马建国", date(1968, 4, 2), Relationship.HEAD, DisabilityGrade.NONE, "flexible", False),
    (2, "王秀兰", date(1970, 9, 14), Relationship.SPOUSE, DisabilityGrade.GRADE_2, "unable", False),
    (3, "马小军", date(2012, 1, 5), Relationship.CHILD, DisabilityGrade.NONE, "young", True),
)
_EMPLOYMENT = {
    "flexible": EmploymentStatus.FLEXIBLE,
    "unable": EmploymentStatus.UNABLE_TO_WORK,
    "young": EmploymentStatus.NOT_OF_WORKING_AGE,
}


def _example_person(n: int) -> uuid.UUID:
    return uuid.UUID(f"0193a4f2-7c1e-7001-8000-3f9c0000b00{n}")


def _example_case() -> tuple[dict[uuid.UUID, MemberRecord], ApplicationDraft, list[MissingItem]]:
    """ApplicationIn's example household sent with the application form, the authorisation
    and the applicant's ID card only: its members, the draft and the domain's missing items."""
    day = date(2026, 12, 3)
    applicant = _example_person(1)
    members = {
        _example_person(n): MemberRecord(
            membership_id=uuid.UUID(f"0193a4f2-7c1e-7004-8000-3f9c0000c00{n}"),
            person_id=_example_person(n),
            name=name,
            masked_id="620123********0000",
            id_hash="",
            birth_date=born,
            sex=Sex.FEMALE if relationship is Relationship.SPOUSE else Sex.MALE,
            relationship=relationship,
            disability_grade=grade,
            seriously_ill=False,
            employment_status=_EMPLOYMENT[work],
            student=student,
            counted=True,
            exclusion_reason=None,
            exclusion_note=None,
            active=True,
            joined_on=date(2020, 1, 1),
            left_on=None,
            left_reason=None,
        )
        for n, name, born, relationship, grade, work, student in _EXAMPLE_MEMBERS
    }
    handed_in = [
        (DocumentType.APPLICATION_FORM, None),
        (DocumentType.VERIFICATION_AUTHORISATION, None),
        (DocumentType.ID_CARD, applicant),
    ]
    draft = ApplicationDraft(
        household_id=_EXAMPLE_HOUSEHOLD,
        kind=ApplicationKind.DIBAO,
        applicant_person_id=applicant,
        incomes=[IncomeDeclaration(_example_person(n), 0, 0, 0, 0, 0, 6) for n in (1, 2)],
        assets=[],
        documents=[
            DocumentOnFile(uuid.UUID(int=i + 1), kind, _EXAMPLE_HOUSEHOLD, person)
            for i, (kind, person) in enumerate(handed_in)
        ],
        has_bank_account=True,
        requested_amount_fen=None,
        reason=None,
        individual_inclusion_person_id=None,
    )
    missing = missing_items(
        draft, [m.facts() for m in members.values()], today=day, policy=CompletenessPolicy()
    )
    return members, draft, missing


def returned_example() -> dict[str, Any]:
    """A returned application as POST /applications answers it, made by the code that
    answers (ADR 0020): the domain's missing items of :func:`_example_case`, its notice
    rendered by the notice's own renderer."""
    at = datetime(2026, 12, 3, 2, 15, tzinfo=UTC)
    members, draft, missing = _example_case()
    applicant = draft.applicant_person_id
    content = example_notice_content()
    document = DocumentRecord(
        id=uuid.UUID("0193a4f2-7c1e-7002-8000-3f9c0000d0e1"),
        household_id=_EXAMPLE_HOUSEHOLD,
        person_id=None,
        document_type=DocumentType.RETURN_NOTICE,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        media_type=NOTICE_MEDIA_TYPE,
        uploaded_by="clerk-620123101",
        created_at=at,
    )
    record = ApplicationRecord(
        id=EXAMPLE_APPLICATION,
        household_id=_EXAMPLE_HOUSEHOLD,
        region_code=_EXAMPLE_REGION,
        kind=ApplicationKind.DIBAO,
        channel=SubmissionChannel.COUNTER,
        status=ApplicationStatus.RETURNED,
        applicant_person_id=applicant,
        statement=None,
        reason=None,
        requested_amount_fen=None,
        individual_inclusion_person_id=None,
        bank_account_id=None,
        staff_related=False,
        staff_relation_note=None,
        assigned_caseworker=None,
        missing_items=[service.missing_json(m) for m in missing],
        submitted_at=at,
        submitted_by="clerk-620123101",
        accepted_on=None,
        withdrawn_at=None,
        withdrawal_reason=None,
        withdrawal_cause=None,
        unassigned_reason=None,
        notice_document_id=document.id,
    )
    detail = service.ApplicationDetail(
        record=record,
        members=members,
        incomes=list(draft.incomes),
        assets=[],
        documents=[],
        bank_account=None,
        timeline=[],
        notice=document,
    )
    answer: dict[str, Any] = application_out(detail, _DIVISIONS, View.CASE).model_dump(mode="json")
    return answer


EXAMPLE_APPLICATION = uuid.UUID("0193a4f2-7c1e-7003-8000-3f9c0000e001")


def example_notice_content() -> bytes:
    """The notice of the returned example, rendered (the download's example shows it)."""
    members, _, missing = _example_case()
    return render(_example_notice(members, missing))


def _example_notice(
    members: Mapping[uuid.UUID, MemberRecord], missing: Sequence[MissingItem]
) -> ReturnNotice:
    return ReturnNotice(
        application_id=EXAMPLE_APPLICATION,
        kind=ApplicationKind.DIBAO,
        issuer=service.notice_issuer(_DIVISIONS, _EXAMPLE_REGION),
        returned_on=date(2026, 12, 3),
        applicant_name=members[_example_person(1)].name,
        items=[
            NoticeItem(
                item.code,
                item.document_type,
                members[item.person_id].name if item.person_id else None,
            )
            for item in missing
        ],
    )


_APPLICATION_URL = "/applications/0193a1b2-8d4e-7f5a-9b6c-7d8e9f0a1b2c"

_SUBMITTED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Recorded: accepted (status submitted) or returned with every missing"
        " item and the notice given to the applicant (notice, a return_notice document:"
        " ADR 0009), as the example",
        "content": {"application/json": {"example": returned_example()}},
        "headers": location_header(
            "The application: GET /applications/{application_id}", _APPLICATION_URL
        ),
    }
}


def submit_command(body: s.ApplicationIn) -> service.SubmitApplication:
    return service.SubmitApplication(
        household_id=body.household_id,
        kind=body.kind,
        channel=body.channel,
        applicant_person_id=body.applicant_person_id,
        incomes=[
            IncomeDeclaration(
                person_id=i.person_id,
                wage_fen=i.wage_fen,
                operating_fen=i.operating_fen,
                property_fen=i.property_fen,
                transfer_fen=i.transfer_fen,
                other_fen=i.other_fen,
                period_months=i.period_months,
                note=i.note,
                not_counted=tuple(NotCountedReceipt(r.kind, r.monthly_fen) for r in i.not_counted),
                deductions=tuple(Deduction(d.kind, d.monthly_fen) for d in i.deductions),
                in_kind=InKind(
                    wage_fen=i.in_kind.wage_fen,
                    operating_fen=i.in_kind.operating_fen,
                    property_fen=i.in_kind.property_fen,
                    transfer_fen=i.in_kind.transfer_fen,
                    other_fen=i.in_kind.other_fen,
                ),
            )
            for i in body.incomes
        ],
        assets=[
            AssetDeclaration(
                person_id=a.person_id,
                kind=a.kind,
                value_fen=a.value_fen,
                quantity=a.quantity,
                floor_area_m2=a.floor_area_m2,
                description=a.description,
            )
            for a in body.assets
        ],
        document_ids=body.document_ids,
        bank_account=bank_account_input(body.bank_account) if body.bank_account else None,
        statement=body.statement,
        reason=body.reason,
        requested_amount_fen=body.requested_amount_fen,
        individual_inclusion_person_id=body.individual_inclusion_person_id,
        completes_application_id=body.completes_application_id,
    )


@router.post(
    "/applications",
    status_code=201,
    response_model=s.ApplicationOut,
    summary="Submit an application",
    description="A complete application is accepted (status submitted, caseworker assigned,"
    " ApplicationSubmitted with a full snapshot, then ApplicationAccepted). An incomplete one"
    " is recorded as returned with every missing item listed at once (ApplicationReturned)."
    " An applicant related to staff is flagged: the county must visit. Send an"
    " Idempotency-Key: a retried submission creates nothing twice. A household of another"
    " region is refused as GET /households/{household_id} refuses it (404, recorded DENIED"
    " on dibao.access.v1; nothing else written). The answer shows the application whole"
    " and is recorded on dibao.access.v1 as GET /applications/{application_id} is.",
    responses=_SUBMITTED
    | problems(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        conflict="The household already has an open application of this kind (type"
        " application-open, with its application_id; also when a submission of the same"
        " household and kind committed first), is dissolved (household-dissolved), or"
        " another request changed it, or the staff roster, while this one was checked"
        " (concurrent-change: send it again). Or the Idempotency-Key is in flight.",
    ),
)
async def submit_application(
    request: Request,
    body: s.ApplicationIn,
    caller: Clerk,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    command = submit_command(body)
    # What this run made: its answer, and a returned application's notice (its content put
    # in the store before the statement is sent).
    made: list[tuple[Response, DocumentRecord | None]] = []

    async def work(session: AsyncSession) -> Response:
        detail = await service.submit_application(session, runtime, caller, command)
        response = json_response(
            application_out(detail, runtime.divisions, view_of(caller.principal)),
            201,
            {"Location": f"/applications/{detail.record.id}"},
        )
        made.append((response, detail.notice))
        return response

    async def race(session: AsyncSession, constraint: str | None) -> ProblemError | None:
        return await service.submission_race(session, command, constraint)

    answer: Response | None = None
    try:
        answer = await in_one_statement(
            request, work, idempotency, replay(runtime, caller, replays.application), race
        )
        return answer
    finally:
        # A notice whose statement was not written (a retry answered with the stored
        # answer, a race, a failure) leaves no content behind (ADR 0009, 3 Dec 2026).
        for response, notice in made:
            if notice is not None and response is not answer:
                await _discard(request, runtime, notice)


async def _discard(request: Request, runtime: Runtime, notice: DocumentRecord) -> None:
    """Remove an unwritten notice's content; on failure it stays an orphan, which
    ``verify_documents --sweep`` removes (nothing names it)."""
    sessionmaker = request.app.state.sessionmaker
    try:
        async with sessionmaker() as session:
            await service.discard_unwritten_notice(session, runtime, notice)
    except Exception:  # the request's own outcome stands
        log.warning("unwritten return notice left for the sweep", sha256=notice.sha256)


@router.get(
    "/applications",
    response_model=s.ApplicationPageOut,
    summary="Search applications by region, status, state, kind and date",
    description="Newest first, within the caller's regions, cursor-paginated. The search is"
    " recorded on dibao.access.v1. In the limited view (publicity and finance officers,"
    " policy administrators) a one-off kind is null, and searching by one is 403"
    " missing-role (recorded as refused): medical assistance tells of an illness. A region"
    " outside every one of the caller's regions is 403 region-out-of-scope, recorded as a"
    " refused search (outcome DENIED, in that region), as a read of another region's record"
    " is; so is any search by a token that carries no regions. A household_id names one"
    " record and is checked as GET /households/{household_id} reads it: a household that"
    " does not exist and one outside the caller's regions answer the same 404 (the"
    " answer tells nothing of it); the latter is recorded as a refused search (outcome"
    " DENIED) naming that household, in its region, with no person and no field, and"
    " nothing else. A household within them is searched, and the search's record names"
    " it. Each item shows its decision once assessment has made it (outcome, when, the"
    " amount granted), and state=open lists the cases not yet decided, state=decided the"
    " decided ones (ADR 0023); state with a status other than submitted is 422, as it"
    " would find nothing.",
    responses=problems(
        400,
        401,
        403,
        404,
        422,
        forbidden=SEARCH_FORBIDDEN,
        not_found="No household has this household_id, or it is not in the caller's"
        " regions (the same answer; the latter recorded as a refused search)",
    ),
)
async def search_applications(
    request: Request,
    caller: Reader,
    runtime: RuntimeDep,
    region: RegionPrefix = None,
    status: Annotated[
        ApplicationStatus | None,
        Query(
            description="Intake's own status: submitted (accepted, with assessment, decided"
            " or not: see state), returned (incomplete) or withdrawn. A decided application"
            " stays submitted, as before 3 Dec 2026"
        ),
    ] = None,
    state: Annotated[
        ApplicationState | None,
        Query(
            description="open: submitted and not yet decided (the cases being worked on, one"
            " per household and kind); decided: assessment has decided it (its decision"
            " says how). Both are submitted applications: with status returned or withdrawn"
            " it is 422. Not given: every application, as before"
        ),
    ] = None,
    kind: ApplicationKind | None = None,
    household_id: Annotated[
        uuid.UUID | None,
        Query(
            description="One household's applications. A household that does not exist, or"
            " lies outside your regions, is 404 (the same answer, as GET"
            " /households/{household_id} gives)"
        ),
    ] = None,
    submitted_from: Annotated[
        s.Day | None, Query(description="First day (China time), as YYYY-MM-DD")
    ] = None,
    submitted_to: Annotated[s.Day | None, Query(description="Last day, inclusive")] = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Response:
    if submitted_from is not None and submitted_to is not None and submitted_to < submitted_from:
        # Bounds given the wrong way round find nothing: an empty page would read as "no
        # applications in those days".
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "submitted_to"),
                    "msg": f"is before submitted_from ({submitted_from.isoformat()}): the"
                    " last day of the search comes after its first",
                    "type": "value_error",
                }
            ]
        )
    if state is not None and status not in (None, ApplicationStatus.SUBMITTED):
        # Open and decided applications are submitted ones: an empty page would read as
        # "none open here".
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "state"),
                    "msg": f"{state.value} applications are submitted ones, never"
                    f" {status.value}: give state without status, or with status submitted",
                    "type": "value_error",
                }
            ]
        )
    query = service.SearchApplications(
        region_prefix=region,
        status=status,
        state=state,
        kind=kind,
        household_id=household_id,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
        cursor=cursor,
        limit=limit,
    )

    view = view_of(caller.principal)

    async def work(session: AsyncSession) -> Response:
        page = await service.search_applications(session, runtime, caller, query)
        return json_response(
            s.ApplicationPageOut(
                view=view,
                items=[summary_out(a, view) for a in page.items],
                next_cursor=page.next_cursor,
            )
        )

    return await in_transaction(request, work)


@router.get(
    "/applications/{application_id}",
    response_model=s.ApplicationOut,
    summary="An application with its declarations, documents and timeline",
    description="The timeline holds intake's own events about the application, written with"
    " each change (its submission, acceptance or return, withdrawal, and the household's"
    " changes while it is being decided), and the events of other services that name it, as"
    " intake's timeline consumer reads them from Kafka. Today those are audit's"
    " `AnomalyDetected` about the application, shown by rule and severity: `event_id_reused`"
    " (a record came with the id of an event about it but other content) and"
    " `accepted_without_submission` (its acceptance was logged without its submission"
    " before it);"
    " assessment's, publicity's and payments' events will enter it once those services"
    " publish. A decision of assessment's (BenefitApproved, ApplicationRejected,"
    " OneOffAssistanceApproved) also shows as the application's decision: outcome, when,"
    " and the amount granted (ADR 0023). The read is recorded.",
    responses=problems(401, 403, 404, 422),
)
async def get_application(
    request: Request, application_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> Response:
    async def work(session: AsyncSession) -> Response:
        detail = await service.read_application(session, runtime, caller, application_id)
        return json_response(application_out(detail, runtime.divisions, view_of(caller.principal)))

    return await in_transaction(request, work)


@router.post(
    "/applications/{application_id}/withdrawal",
    status_code=201,
    response_model=s.ApplicationOut,
    summary="Withdraw an accepted application not yet decided",
    description="Publishes ApplicationWithdrawn. Answers the application withdrawn; Location"
    " is its URL (GET /applications/{application_id} shows the withdrawal: status, reason"
    " and cause, the timeline's entry).",
    responses=created(
        "Withdrawn: the application as it now is",
        "The application, whose GET shows the withdrawal",
        _APPLICATION_URL,
    )
    | problems(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        conflict="Returned or already withdrawn (application-not-withdrawable), or decided"
        " by assessment (application-decided: the county reviews it); or the"
        " Idempotency-Key is in flight",
    ),
)
async def withdraw_application(
    request: Request,
    application_id: uuid.UUID,
    body: s.WithdrawalIn,
    caller: Clerk,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    async def work(session: AsyncSession) -> Response:
        detail = await service.withdraw_application(
            session, runtime, caller, application_id, body.reason
        )
        return json_response(
            application_out(detail, runtime.divisions, view_of(caller.principal)),
            201,
            {"Location": f"/applications/{application_id}"},
        )

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.application)
    )
