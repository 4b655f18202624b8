"""The division table, and disclosure of numbers to those who need them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_common.errors import NotFound
from dibao_intake.api import schemas as s
from dibao_intake.api.deps import (
    AccountReader,
    IdentityReader,
    Reader,
    RuntimeDep,
    in_transaction,
    json_response,
    problems,
)
from dibao_intake.api.purposes import NoteQuery, PurposeQuery, note_missing, purpose_value
from dibao_intake.service_layer import disclosure
from dibao_intake.service_layer.access import PurposeNoteRequiredError

router = APIRouter()


@router.get(
    "/divisions/{code}",
    tags=["divisions"],
    response_model=s.DivisionOut,
    summary="A division of the table and its children",
    responses=problems(401, 403, 404, 422, database=False),  # the table is in memory
)
async def get_division(
    code: Annotated[
        str,
        Path(
            pattern=r"^[0-9]{12}$",
            examples=["620123000000"],
            description="The full 12-digit code: a province's, city's, county's or township's"
            " padded with zeros (county 620123 is 620123000000), where a token's regions and"
            " a search's region are prefixes (620123)",
        ),
    ],
    caller: Reader,
    runtime: RuntimeDep,
) -> Response:
    division = runtime.divisions.get(code)
    if division is None:
        raise NotFound("No such division in the table")
    return json_response(
        s.DivisionOut(
            code=division.code,
            name=division.name,
            full_name=runtime.divisions.full_name(code),
            level=division.level,
            parent_code=division.parent_code,
            children=[
                s.DivisionBrief(code=c.code, name=c.name, level=c.level)
                for c in runtime.divisions.children(code)
            ],
        )
    )


@router.get(
    "/persons/{person_id}/identity",
    tags=["disclosure"],
    response_model=s.IdentityOut,
    summary="A person's name and full ID number, for a named purpose",
    description="For registry cross-checks and home-visit forms. The decryption is recorded on"
    " dibao.access.v1 with the purpose. Disclosed within the caller's regions to the region of"
    " the person's current household (their active one; the last they left when none is),"
    " or of the household of an open application (application_id: submitted, neither"
    " withdrawn, returned nor decided; household active) they are or were a member of. A"
    " region the person has left sees the number masked (the household's read) and is"
    " answered 403 identity-of-a-former-member; a region that never held them, 404. Both"
    " refusals are recorded (outcome DENIED).",
    responses=problems(401, 403, 404, 422),
)
async def reveal_identity(
    request: Request,
    person_id: uuid.UUID,
    purpose: PurposeQuery,
    caller: IdentityReader,
    runtime: RuntimeDep,
    purpose_note: NoteQuery = "",
    application_id: Annotated[
        uuid.UUID | None,
        Query(
            description="An open application being worked on whose household holds or held"
            " the person: its region may have the number too"
        ),
    ] = None,
) -> Response:
    # A note's absence is checked by the service once the caller may have the number.
    recorded = purpose_value(purpose)

    async def work(session: AsyncSession) -> Response:
        try:
            found = await disclosure.reveal_identity(
                session,
                runtime,
                caller,
                person_id,
                purpose=recorded,
                purpose_note=purpose_note,
                application_id=application_id,
            )
        except PurposeNoteRequiredError as error:
            raise note_missing(error) from None
        return json_response(
            s.IdentityOut(person_id=found.person_id, name=found.name, id_number=found.id_number)
        )

    return await in_transaction(request, work)


@router.get(
    "/bank-accounts/{token_id}",
    tags=["disclosure"],
    response_model=s.BankAccountDisclosureOut,
    summary="The account behind a BankAccountRef token, for a named purpose",
    description="For bank files: payments resolves the token of an approved household. The"
    " decryption is recorded on dibao.access.v1 with the purpose.",
    responses=problems(401, 403, 404, 422),
)
async def reveal_bank_account(
    request: Request,
    token_id: uuid.UUID,
    purpose: PurposeQuery,
    caller: AccountReader,
    runtime: RuntimeDep,
    purpose_note: NoteQuery = "",
) -> Response:
    # A note's absence is checked by the service once the caller may have the number.
    recorded = purpose_value(purpose)

    async def work(session: AsyncSession) -> Response:
        try:
            found = await disclosure.reveal_bank_account(
                session,
                runtime,
                caller,
                token_id,
                purpose=recorded,
                purpose_note=purpose_note,
            )
        except PurposeNoteRequiredError as error:
            raise note_missing(error) from None
        a = found.account
        return json_response(
            s.BankAccountDisclosureOut(
                token_id=a.id,
                account_number=found.account_number,
                bank_code=a.bank_code,
                bank_name=a.bank_name,
                holder_name=a.holder_name,
                holder_person_id=a.holder_person_id,
                custody_agreement=a.custody_agreement,
                current=found.current,
            )
        )

    return await in_transaction(request, work)
