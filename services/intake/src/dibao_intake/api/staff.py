"""The staff roster of a township."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_intake.adapters.records import StaffRecord, StaffRelativeRecord
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
from dibao_intake.domain.codes import StaffRole
from dibao_intake.service_layer import staff as service

router = APIRouter(tags=["staff roster"])

EXAMPLE_STAFF_ID = uuid.UUID("0193a4f2-7c1e-7006-8000-3f9c0000e001")
"""The roster entry of the examples (a 201's Location, the entry's read)."""


def _added(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The 201's Content-Location declared beside its Location: the same URL, the body
    being that entry's representation."""
    headers = responses[201]["headers"]
    headers["Content-Location"] = headers["Location"] | {
        "description": "The roster entry the body represents (as Location)"
    }
    return responses


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
    " the entry's URL, GET /townships/{township_code}/staff/{staff_id}, and so is"
    " Content-Location: the answer is what that GET answers. The roster's GET"
    " /townships/{township_code}/staff shows it too (by id).",
    responses=_added(
        created(
            "Added to the roster",
            "The roster entry: GET /townships/{township_code}/staff/{staff_id}",
            f"/townships/620123101000/staff/{EXAMPLE_STAFF_ID}",
        )
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
        where = f"/townships/{township_code}/staff/{record.id}"
        # The body is the entry as its GET answers it: Content-Location says so (RFC 9110
        # 8.7), kept with a keyed answer and replayed (88c26c9).
        return json_response(staff_out(record), 201, {"Location": where, "Content-Location": where})

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


def _answered(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A read's 200, with its example."""
    return {200: {"content": {"application/json": {"example": example}}}}


def _staff_example() -> dict[str, Any]:
    """A roster entry as a township reviewer reads it, made by the mapping that answers it
    (ADR 0020): a caseworker with one relative listed, numbers masked."""
    record = StaffRecord(
        id=EXAMPLE_STAFF_ID,
        township_code="620123101000",
        name="王建国",
        role=StaffRole.CASEWORKER,
        subject="caseworker-620123101",
        responsible_caseworker=True,
        masked_id="620123********0011",
        active=True,
        created_at=datetime(2026, 12, 1, 8, 30, tzinfo=UTC),
        relatives=(
            StaffRelativeRecord(
                id=uuid.UUID("0193a4f2-7c1e-7007-8000-3f9c0000e002"),
                relation="spouse",
                name="李秀英",
                masked_id="620123********0024",
                id_hash="",
            ),
        ),
        id_hash=None,
        deactivated_at=None,
        deactivated_by=None,
    )
    answer: dict[str, Any] = staff_out(record).model_dump(mode="json")
    return answer


@router.get(
    "/townships/{township_code}/staff/{staff_id}",
    response_model=s.StaffOut,
    summary="One entry of a township's roster (ID numbers masked; the read is recorded)",
    description="The staff member as the roster's GET /townships/{township_code}/staff"
    " shows them: role, token subject, whether the responsible caseworker, active or when"
    " and by whom taken off, and their relatives, every ID number masked. For the roles"
    " that read the roster (policy administrator, county approver, township reviewer,"
    " auditor), within their regions. The read is recorded on dibao.access.v1 (record"
    " staff:<staff_id>, naming the member and their relatives by keyed hash), as the"
    " roster's read is. An entry of another township's roster, or none, is 404; so is a"
    " township outside the caller's regions, that refusal recorded (outcome DENIED). The"
    " Location of POST /townships/{township_code}/staff.",
    responses=_answered(_staff_example()) | problems(401, 403, 404, 422),
)
async def get_staff(
    request: Request,
    township_code: TownshipCode,
    staff_id: uuid.UUID,
    caller: RosterReader,
    runtime: RuntimeDep,
) -> Response:
    async def work(session: AsyncSession) -> Response:
        entry = await service.read_staff(session, runtime, caller, township_code, staff_id)
        return json_response(staff_out(entry))

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
