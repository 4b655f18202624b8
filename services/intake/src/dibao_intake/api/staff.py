"""The staff roster of a township."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_intake.api import replays
from dibao_intake.api import schemas as s
from dibao_intake.api.deps import (
    Idempotency,
    PolicyAdmin,
    RosterReader,
    RuntimeDep,
    created,
    in_transaction,
    json_response,
    problems,
)
from dibao_intake.api.mapping import staff_out
from dibao_intake.api.replays import replay
from dibao_intake.service_layer import staff as service

router = APIRouter(tags=["staff roster"])

TownshipCode = Annotated[
    str,
    Path(pattern=r"^[0-9]{9}000$", description="12-digit township code", examples=["620123101000"]),
]


@router.post(
    "/townships/{township_code}/staff",
    status_code=201,
    response_model=s.StaffOut,
    summary="Add someone to a township's roster",
    description="Applicants related to anyone on the roster (by ID number of the staff member"
    " or a listed relative) are flagged for a county visit. A responsible caseworker gets the"
    " township's accepted applications, except those of their own household or a relative's"
    " (left unassigned, for the county), so their own id_number is required (422 without);"
    " naming one replaces the previous one. One person (by subject or ID number) is the"
    " responsible caseworker of one township: naming the responsible caseworker of another"
    " township is a 409 caseworker-of-another-township problem (nothing written). The change"
    " is published (StaffRosterChanged, people by keyed hash) for the audit log. Location is"
    " the township's roster: no route reads one staff member alone, GET"
    " /townships/{township_code}/staff shows them (by id).",
    responses=created(
        "Added to the roster",
        "The township's roster, whose GET shows the staff member (by id)",
        "/townships/620123101000/staff",
    )
    | problems(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        conflict="The person is the responsible caseworker of another township"
        " (caseworker-of-another-township); another responsible caseworker of this township"
        " was named at the same time (caseworker-conflict: try again); or the"
        " Idempotency-Key is in flight",
    ),
)
async def add_staff(
    request: Request,
    township_code: TownshipCode,
    body: s.StaffIn,
    caller: PolicyAdmin,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    command = service.AddStaff(
        name=body.name,
        role=body.role,
        id_number=body.id_number,
        subject=body.subject,
        responsible_caseworker=body.responsible_caseworker,
        relatives=[service.RelativeInput(r.name, r.id_number, r.relation) for r in body.relatives],
    )

    async def work(session: AsyncSession) -> Response:
        record = await service.add_staff(session, runtime, caller, township_code, command)
        # No route reads one staff member: the roster's GET shows them (by id).
        return json_response(
            staff_out(record), 201, {"Location": f"/townships/{township_code}/staff"}
        )

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.staff_added)
    )


@router.get(
    "/townships/{township_code}/staff",
    response_model=list[s.StaffOut],
    summary="A township's roster (ID numbers masked; the read is recorded)",
    responses=problems(401, 403, 404, 422),
)
async def list_staff(
    request: Request, township_code: TownshipCode, caller: RosterReader, runtime: RuntimeDep
) -> Response:
    async def work(session: AsyncSession) -> Response:
        roster = await service.list_staff(session, runtime, caller, township_code)
        body = b"[" + b",".join(staff_out(r).model_dump_json().encode() for r in roster) + b"]"
        return Response(body, media_type="application/json")

    return await in_transaction(request, work)


@router.post(
    "/staff/{staff_id}/deactivation",
    status_code=204,
    summary="Take someone off the roster",
    description="Records who (the token subject) and when: the roster read shows them as"
    " deactivated_by and deactivated_at, and keeps showing the member, inactive, with their"
    " relatives. Their relatives' applications are no longer flagged and they are no longer"
    " the responsible caseworker. A member already off the roster keeps the first record."
    " Taking someone off is published (StaffRosterChanged) for the audit log; a second"
    " deactivation changes nothing and publishes nothing. Another region's staff member is"
    " 404, as a missing one, and the attempt is recorded (outcome DENIED).",
    responses=problems(400, 401, 403, 404, 409, 413, 422),
)
async def deactivate_staff(
    request: Request,
    staff_id: uuid.UUID,
    caller: PolicyAdmin,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    async def work(session: AsyncSession) -> Response:
        await service.deactivate_staff(session, runtime, caller, staff_id)
        return Response(status_code=204)

    return await in_transaction(request, work, idempotency)
