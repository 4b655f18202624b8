"""Households: register, read, record changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_intake.adapters.records import ChangeRecord
from dibao_intake.api import replays
from dibao_intake.api import schemas as s
from dibao_intake.api.deps import (
    PERSON_IN_HOUSEHOLD,
    SEARCH_FORBIDDEN,
    CaseReader,
    Clerk,
    Cursor,
    Idempotency,
    PageSize,
    Reader,
    RegionPrefix,
    RuntimeDep,
    created,
    in_transaction,
    json_response,
    problems,
)
from dibao_intake.api.mapping import change_read_out, household_out, household_summary_out
from dibao_intake.api.replays import replay
from dibao_intake.domain.changes import NewMemberDetails
from dibao_intake.domain.codes import ChangeKind, HouseholdStatus
from dibao_intake.domain.household import MemberInput
from dibao_intake.service_layer import households as service
from dibao_intake.service_layer.views import View, view_of

router = APIRouter(tags=["households"])


def member_input(m: s.MemberIn) -> MemberInput:
    return MemberInput(
        name=m.name,
        id_number=m.id_number,
        relationship=m.relationship,
        disability_grade=m.disability_grade,
        seriously_ill=m.seriously_ill,
        employment_status=m.employment_status,
        student=m.student,
        counted=m.counted,
        exclusion_reason=m.exclusion_reason,
        exclusion_note=m.exclusion_note,
        declared_birth_date=m.birth_date,
        declared_sex=m.sex,
        name_correction=m.name_correction,
        marriage_age_basis=m.marriage_age_basis,
    )


def bank_account_input(a: s.BankAccountIn) -> service.BankAccountInput:
    return service.BankAccountInput(
        account_number=a.account_number,
        bank_code=a.bank_code,
        bank_name=a.bank_name,
        holder_person_id=a.holder_person_id,
        holder_name=a.holder_name,
    )


@router.post(
    "/households",
    status_code=201,
    response_model=s.HouseholdOut,
    summary="Register a household with its members",
    description="Validates every ID number (check digit, birth date and sex cross-checked), the"
    " region against the division table and the composition, then refuses a person already"
    " active in another household. Publishes HouseholdRegistered. The 422 rules the schema"
    " cannot show are listed in the request body's description (HouseholdIn): among them,"
    " one head and at most one spouse, a child or grandchild younger than the head and a"
    " parent or grandparent older, and the head's spouse of the other sex and, with the"
    " head, of the legal marriage age by the registration day (22 for a man, 20 for a woman,"
    " Civil Code art. 1047; 20 and 18 for one who could marry before 1981; no marriage date"
    " is asked), each refused at"
    " members/<i>/relationship.",
    responses=created(
        "Registered",
        "The household: GET /households/{household_id}",
        "/households/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b",
    )
    | problems(400, 401, 403, 409, 413, 422, conflict=PERSON_IN_HOUSEHOLD),
)
async def register_household(
    request: Request,
    body: s.HouseholdIn,
    caller: Clerk,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    holder = body.bank_account.holder_member_index if body.bank_account else None
    command = service.RegisterHousehold(
        region_code=body.region_code,
        area_type=body.area_type,
        address=body.address,
        members=[member_input(m) for m in body.members],
        bank_account=(
            service.BankAccountInput(
                account_number=body.bank_account.account_number,
                bank_code=body.bank_account.bank_code,
                bank_name=body.bank_account.bank_name,
            )
            if body.bank_account
            else None
        ),
        bank_account_holder_index=holder,
    )

    async def work(session: AsyncSession) -> Response:
        aggregate = await service.register_household(session, runtime, caller, command)
        return json_response(
            household_out(aggregate, runtime.divisions, view_of(caller.principal)),
            201,
            {"Location": f"/households/{aggregate.household.id}"},
        )

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.registered)
    )


@router.get(
    "/households",
    response_model=s.HouseholdPageOut,
    summary="List households by region and status",
    description="Newest first, within the caller's regions, cursor-paginated: each with its"
    " head's masked name and its size. For the roles that work or audit cases: every"
    " registered household is listed, those that never applied or receive nothing too,"
    " which is more than the public lists show (only recipients), so the other roles get"
    " 403. The page is recorded on dibao.access.v1 (action search, each head named). A"
    " region outside every one of the caller's regions is 403 region-out-of-scope, recorded"
    " as a refused search (outcome DENIED, in that region), as a read of another region's"
    " record is; so is any search by a token that carries no regions.",
    responses=problems(400, 401, 403, 422, forbidden=SEARCH_FORBIDDEN),
)
async def list_households(
    request: Request,
    caller: CaseReader,
    runtime: RuntimeDep,
    region: RegionPrefix = None,
    status: HouseholdStatus | None = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Response:
    query = service.SearchHouseholds(
        region_prefix=region, status=status, cursor=cursor, limit=limit
    )
    view = view_of(caller.principal)

    async def work(session: AsyncSession) -> Response:
        page = await service.search_households(session, runtime, caller, query)
        return json_response(
            s.HouseholdPageOut(
                view=view,
                items=[household_summary_out(h) for h in page.items],
                next_cursor=page.next_cursor,
            )
        )

    return await in_transaction(request, work)


@router.post(
    "/households/lookup",
    response_model=s.HouseholdLookupOut,
    summary="Find the household a person is a member of, by their ID number",
    description="For a clerk facing an applicant with an ID card, or an investigator with a"
    " registry's answer. The number travels in the body, never in a URL (URLs reach access"
    " logs and proxies); it is checked (check digit) and found by its keyed hash. For the"
    " roles that work or audit cases, within their regions: a household in another region"
    " answers 404 as no household does. The lookup is recorded on dibao.access.v1 (action"
    " search, the person named), a refused one too (outcome DENIED). The household itself"
    " is read with GET /households/{household_id}. A read: an Idempotency-Key is ignored,"
    " each lookup is checked and recorded afresh.",
    responses=problems(400, 401, 403, 404, 413, 422),
)
async def look_up_household(
    request: Request,
    body: s.HouseholdLookupIn,
    caller: CaseReader,
    runtime: RuntimeDep,
) -> Response:
    # A read, so no Idempotency-Key: a stored answer would be replayed without the region
    # check or an access record, and its fingerprint would be a plain sha256 of the number.
    async def work(session: AsyncSession) -> Response:
        found = await service.look_up_household(session, runtime, caller, body.id_number)
        return json_response(
            s.HouseholdLookupOut(
                household_id=found.household_id,
                region_code=found.region_code,
                region_name=runtime.divisions.full_name(found.region_code),
                person_id=found.member.person_id,
                id_number_masked=found.member.masked_id,
                relationship=found.member.relationship,
            )
        )

    return await in_transaction(request, work)


@router.get(
    "/households/{household_id}",
    response_model=s.HouseholdOut,
    summary="A household with its members, bank account and changes",
    description="ID numbers are masked. The read is recorded on dibao.access.v1.",
    responses=problems(401, 403, 404, 422),
)
async def get_household(
    request: Request, household_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> Response:
    async def work(session: AsyncSession) -> Response:
        aggregate = await service.read_household(session, runtime, caller, household_id)
        return json_response(household_out(aggregate, runtime.divisions, view_of(caller.principal)))

    return await in_transaction(request, work)


def _answered(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A read's 200, with its example."""
    return {200: {"content": {"application/json": {"example": example}}}}


def _change_example() -> dict[str, Any]:
    """The answer to a clerk's read of a recorded birth, made by the mapping that answers
    it (ADR 0020)."""
    record = ChangeRecord(
        id=uuid.UUID("0193a4f2-7c1e-7003-8000-3f9c0000c001"),
        kind=ChangeKind.BIRTH.value,
        effective_on=date(2026, 11, 20),
        details={
            "joined_person_ids": ["0193a4f2-7c1e-7004-8000-3f9c0000b004"],
            "document_ids": ["0193a4f2-7c1e-7005-8000-3f9c0000d005"],
        },
        note="出生医学证明已核验",
        recorded_by="clerk-620123101",
        recorded_at=datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
    )
    answer: dict[str, Any] = change_read_out(record, View.CASE).model_dump(mode="json")
    return answer


@router.get(
    "/households/{household_id}/changes/{change_id}",
    response_model=s.ChangeReadOut,
    summary="One change of a household",
    description="The change as GET /households/{household_id} shows it among its changes"
    " (kind, day, details by id, date, code and flag, never a name nor an address; its"
    " note), with the view it is shown in: the limited view leaves out the note, a custody"
    " agreement and the documents, and of a member_change shows whose details changed"
    " only. Every role reads it within its regions, as the household's read. The read is"
    " recorded on dibao.access.v1 (record change:<change_id> of the household, naming the"
    " members the change names by person id). A change of another household, or none, is"
    " 404; so is a household outside the caller's regions, that refusal recorded (outcome"
    " DENIED). The Location of POST /households/{household_id}/changes.",
    responses=_answered(_change_example()) | problems(401, 403, 404, 422),
)
async def get_change(
    request: Request,
    household_id: uuid.UUID,
    change_id: uuid.UUID,
    caller: Reader,
    runtime: RuntimeDep,
) -> Response:
    view = view_of(caller.principal)

    async def work(session: AsyncSession) -> Response:
        change = await service.read_change(session, runtime, caller, household_id, change_id)
        return json_response(change_read_out(change, view))

    return await in_transaction(request, work)


def change_command(
    body: s.BirthIn
    | s.DeathIn
    | s.MarriageIn
    | s.MoveInIn
    | s.MoveOutIn
    | s.BankAccountChangeIn
    | s.MemberChangeIn
    | s.AddressChangeIn
    | s.DivorceIn
    | s.SpouseDeathIn,
) -> service.RecordChange:
    change: service.Change
    match body:
        case s.BirthIn():
            change = service.Birth(member=member_input(body.member))
        case s.DeathIn():
            change = service.Death(
                body.person_id,
                body.date_of_death,
                body.new_head_person_id,
                body.relationships,
                body.new_applicant_person_id,
            )
        case s.MarriageIn():
            change = service.Marriage(
                body.person_id,
                body.married_on,
                member_input(body.spouse) if body.spouse else None,
                body.spouse_person_id,
                body.marriage_age_basis,
            )
        case s.MoveInIn():
            change = service.MoveIn(
                member=member_input(body.member),
                moved_on=body.moved_on,
                leaves_household_id=body.leaves_household_id,
                new_head_person_id=body.new_head_person_id,
                relationships=body.relationships,
                new_applicant_person_id=body.new_applicant_person_id,
            )
        case s.MoveOutIn():
            change = service.MoveOut(
                body.person_id,
                body.moved_on,
                body.new_head_person_id,
                body.to_region_code,
                body.relationships,
                body.new_applicant_person_id,
            )
        case s.BankAccountChangeIn():
            change = service.AccountChange(
                account=bank_account_input(body.account),
                custody_agreement=body.custody_agreement,
                custody_document_id=body.custody_document_id,
                custodian_subject=body.custodian_subject,
            )
        case s.MemberChangeIn():
            change = service.MemberChange(
                body.person_id,
                body.effective_on,
                NewMemberDetails(
                    name=body.name,
                    disability_grade=body.disability_grade,
                    seriously_ill=body.seriously_ill,
                    employment_status=body.employment_status,
                    student=body.student,
                    counted=body.counted,
                    exclusion_reason=body.exclusion_reason,
                    exclusion_note=body.exclusion_note,
                ),
                body.relationship,
                body.new_applicant_person_id,
            )
        case s.AddressChangeIn():
            change = service.AddressChange(
                address=body.address,
                moved_on=body.moved_on,
                region_code=body.region_code,
                area_type=body.area_type,
            )
        case s.DivorceIn():
            change = service.Divorce(
                body.person_id, body.divorced_on, body.spouse_person_id, body.relationships
            )
        case s.SpouseDeathIn():
            change = service.SpouseDeath(body.person_id, body.date_of_death)
    return service.RecordChange(change=change, note=body.note, document_ids=body.document_ids)


@router.post(
    "/households/{household_id}/changes",
    status_code=201,
    response_model=s.HouseholdChangeOut,
    summary="Record a birth, death, marriage, divorce, move, bank account, member's details"
    " or address change",
    description="One change per request, checked against the household as it is (a"
    " member_change: a member's own details, as a registration checks them, or a correction"
    " of their name or of their relationship to the head, refused at relationship as a"
    " registration or the record's marriages would refuse it, with a note saying why; an"
    " address_change: the whole household's move, its region as a registration's). A"
    " marriage names a spouse who is a member already by spouse_person_id: the head and a"
    " member unrelated to them (other, other_dependant), who becomes the head's spouse; or"
    " two other members, one of them at least unrelated to the head, who becomes to the head"
    " what the other's spouse is (a child's: child_in_law; a parent's: parent, a"
    " grandparent's: grandparent, when older than the head; a parent-in-law's:"
    " parent_in_law) or else stays as recorded (two co-residents, a sibling's or a"
    " grandchild's spouse); the change's relationships say what changed. Refused (422 at"
    " the field): two relatives or in-laws of the head, the head's spouse, a parent (or"
    " parent-in-law) while another lives in the household and their divorce is not"
    " recorded (a spouse joining too), a member married to a member still here (not for a"
    " child and a child-in-law registered together: that guess permits their divorce and"
    " nothing more), either under the legal marriage age on married_on (22 for a man, 20 for"
    " a woman, Civil Code art. 1047; 20 and 18 for a marriage dated before 1981), at that"
    " member's own field (person_id, spouse_person_id, spouse/id_number), a marriage"
    " dated before the end of either one's last marriage in the household (at married_on,"
    " naming that day), two of one sex by their ID numbers (at spouse/id_number or"
    " spouse_person_id; a move_in as the head's spouse likewise, at member/relationship)."
    " Nobody under 20 (a woman) or 22 (a man) is married in China (Civil Code art. 1047;"
    " 18 and 20 before 1981), and no marriage date is asked where the spouse joins without"
    " a marriage: a move_in as the head's spouse is refused when the spouse or the head"
    " is under that age on moved_on, unless of the age of the law then by an earlier day"
    " (at member/relationship; the"
    " rest of a move_in's rules: MoveInIn's description), and a member_change correcting a"
    " relationship to spouse when either was under that age on the day the code was"
    " first recorded, not effective_on (the member's joining, the registration day for a"
    " member registered with the household, the head's joining when later; at"
    " relationship, naming the day: MemberChangeIn.relationship)."
    " A divorce ends a marriage the record knows (a couple here, or a"
    " member's to a spouse living elsewhere); both partners may stay, the head's or a"
    " child's former spouse as other. A spouse_death ends a member's marriage to a spouse"
    " living elsewhere on the spouse's date of death, as such a divorce does (422 at"
    " person_id: no such marriage recorded, or the record shows one to a member here, whose"
    " death is recorded instead; at date_of_death: before the marriage's day or the member's"
    " joining; at document_ids/<i>: a member's death certificate). A death is not dated"
    " before the member's last marriage or divorce recorded here (at date_of_death). Publishes"
    " HouseholdUpdated with the kind of change and the household after it; the change"
    " enters the timeline of each of the household's applications still being decided."
    " The answer shows the household as GET /households/{household_id} does, and is"
    " recorded on dibao.access.v1 as that read is; a caller of another region is refused"
    " as that read is (404, recorded DENIED). A death or move out of the last member"
    " dissolves the household and closes its applications still being decided: withdrawn,"
    " withdrawal_cause household_dissolved, an ApplicationWithdrawn (cause HOUSEHOLD_"
    "DISSOLVED) each, in their timelines after the change. A death or move out of the"
    " applicant of an open application hands it to new_applicant_person_id, else to the"
    " head after the change when they may apply (422 at new_applicant_person_id when they"
    " may not and another member may); with nobody who stays able to apply it is closed"
    " (withdrawal_cause applicant_left, ApplicationWithdrawn cause APPLICANT_LEFT; ADR 0016)."
    " So too a member_change after which its member, the applicant of an open application,"
    " may no longer apply (not counted for a reason of living apart: imprisoned, compulsory"
    " rehabilitation, declared missing, religious living apart, military service)."
    " HouseholdUpdated.applicants_replaced names each one handed over. A move_in naming"
    " the household the person leaves (leaves_household_id, the one they are an active member"
    " of) records that household's move_out too, in the same transaction, dated moved_on,"
    " with every rule of a move_out (new_head_person_id, relationships and"
    " new_applicant_person_id of the body are the household left's): two HouseholdUpdated,"
    " its move_out with to_household_id, then this move_in with from_household_id; both"
    " households' versions go up. 403 region-out-of-scope: an address_change to a region"
    " outside the caller's, or a household left outside them (named by its masked"
    " reference alone). Location is the change's URL, GET"
    " /households/{household_id}/changes/{change_id}; GET /households/{household_id}"
    " shows it among changes too (its id is change_id).",
    responses=created(
        "Recorded: the change and the household after it",
        "The change: GET /households/{household_id}/changes/{change_id}",
        "/households/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b/changes/"
        "0193a4f2-7c1e-7003-8000-3f9c0000c001",
    )
    | problems(
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        conflict=PERSON_IN_HOUSEHOLD + " The household is dissolved (household-dissolved)."
        " An address_change to another township while an application is being decided"
        " (open-application-in-township). A divorce the record shows already"
        " (already-divorced). A spouse_death of a marriage to a spouse living elsewhere the"
        " record shows ended already, divorced or widowed (marriage-ended). A move_in naming"
        " the household left (leaves_household_id) whose person no longer is its member once"
        " it is locked, a change of it committed meanwhile (concurrent-change).",
    ),
)
async def record_change(
    request: Request,
    household_id: uuid.UUID,
    body: s.HouseholdChangeIn,
    caller: Clerk,
    runtime: RuntimeDep,
    idempotency: Idempotency,
) -> Response:
    command = change_command(body)

    async def work(session: AsyncSession) -> Response:
        done = await service.record_change(session, runtime, caller, household_id, command)
        return json_response(
            s.HouseholdChangeOut(
                change_id=done.change_id,
                kind=done.kind,
                household=household_out(
                    done.household, runtime.divisions, view_of(caller.principal)
                ),
            ),
            201,
            {"Location": f"/households/{household_id}/changes/{done.change_id}"},
        )

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.changed)
    )
