"""Applications: submit, search, read with timeline, withdraw."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_common.errors import ProblemError
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
    in_one_statement,
    in_transaction,
    json_response,
    problems,
)
from dibao_intake.api.households import bank_account_input
from dibao_intake.api.mapping import application_out, summary_out
from dibao_intake.api.replays import replay
from dibao_intake.domain.application import (
    AssetDeclaration,
    Deduction,
    IncomeDeclaration,
    InKind,
    NotCountedReceipt,
)
from dibao_intake.domain.codes import ApplicationKind, ApplicationState, ApplicationStatus
from dibao_intake.service_layer import applications as service
from dibao_intake.service_layer.views import view_of

router = APIRouter(tags=["applications"])


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
    responses=problems(
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
        " another request changed it while this one was checked (concurrent-change: send"
        " it again). Or the Idempotency-Key is in flight.",
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

    async def work(session: AsyncSession) -> Response:
        detail = await service.submit_application(session, runtime, caller, command)
        return json_response(
            application_out(detail, runtime.divisions, view_of(caller.principal)),
            201,
            {"Location": f"/applications/{detail.record.id}"},
        )

    async def race(session: AsyncSession, constraint: str | None) -> ProblemError | None:
        return await service.submission_race(session, command, constraint)

    return await in_one_statement(
        request, work, idempotency, replay(runtime, caller, replays.application), race
    )


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
    description="Publishes ApplicationWithdrawn.",
    responses=problems(
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
            application_out(detail, runtime.divisions, view_of(caller.principal)), 201
        )

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.application)
    )
