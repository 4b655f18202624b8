"""Who may do what where: every role reads within its regions; only clerks write a case,
within theirs, and policy administrators the rosters; a document that shows ID or account
numbers is downloaded only by those who may see them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.crypto import mask_name
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.stack import TestStack
from dibao_intake.synthetic import Synthesizer, application_payload, pdf_bytes
from dibao_intake.testing import (
    ISSUED_ID_NUMBERS,
    RURAL_VILLAGE,
    IntakeClient,
    RegisteredHousehold,
    access_records,
    events,
    row_counts,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OWN = ["620123101"]  # 夏官营镇: the households' township
FOREIGN = ["620102"]  # 城关区
ACCESS_TOPIC = "dibao.access.v1"


@pytest.fixture
async def case(intake: IntakeClient) -> tuple[RegisteredHousehold, str]:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body)
    assert response.status_code == 201
    return household, str(response.json()["id"])


CASE_ROLES = {
    Role.INTAKE_CLERK,
    Role.INVESTIGATOR,
    Role.VILLAGE_COMMITTEE,
    Role.TOWNSHIP_REVIEWER,
    Role.COUNTY_APPROVER,
    Role.AUDITOR,
}
"""The roles that work or audit cases (service_layer.views): they alone list households
and look them up."""

IDENTITY_ROLES = {Role.INVESTIGATOR, Role.TOWNSHIP_REVIEWER, Role.COUNTY_APPROVER, Role.AUDITOR}
"""The roles a full ID number is disclosed to (GET /persons/{id}/identity)."""
ACCOUNT_ROLES = {Role.FINANCE_OFFICER, Role.AUDITOR}
"""The roles an account number is disclosed to (GET /bank-accounts/{token_id})."""

ROSTER_ROLES = {Role.POLICY_ADMIN, Role.COUNTY_APPROVER, Role.TOWNSHIP_REVIEWER, Role.AUDITOR}
"""The roles that read a township's staff roster (GET /townships/{code}/staff)."""

# The matrix's regions (ADR 0004: a token's regions are division prefixes, one level each;
# a record is seen when its code starts with one of them). Its own villages, under no other
# test's: two of one township, and one of another township of the same county.
VILLAGE_A = "620123103212"  # 金崖镇大涝池村
VILLAGE_B = "620123103213"  # 金崖镇大耳朵村: A's sibling
TOWNSHIP_AB = "620123103"  # 金崖镇
ROSTERED_TOWNSHIP = TOWNSHIP_AB + "000"
VILLAGE_C = "620123104203"  # 和平镇沈家河村: another township of the county (榆中县)


@dataclass(frozen=True)
class Case:
    """A household of the matrix with its accepted application."""

    household_id: str
    application_id: str
    head_person_id: str
    head_id_number: str
    region_code: str
    account_token_id: str
    document_id: str


@dataclass(frozen=True)
class Scope:
    """A token's regions, and which of the cases (A, B, C) they hold."""

    regions: tuple[str, ...]
    sees: frozenset[str]


SCOPES = {
    "village A": Scope((VILLAGE_A,), frozenset("A")),
    "village B": Scope((VILLAGE_B,), frozenset("B")),
    "township of A and B": Scope((TOWNSHIP_AB,), frozenset("AB")),
    "township of C": Scope(("620123104",), frozenset("C")),
    "county": Scope(("620123",), frozenset("ABC")),
    "city": Scope(("6201",), frozenset("ABC")),
    "province": Scope(("62",), frozenset("ABC")),
    "another county": Scope(("620102",), frozenset()),
    "another county and village B": Scope(("620102", VILLAGE_B), frozenset("B")),
}
LISTED_REGIONS = {"A": VILLAGE_A, "B": VILLAGE_B, "A and B": TOWNSHIP_AB}
"""The region filters each cell lists households and applications by."""
LISTED_RECORDS: dict[str, Callable[[Case], str]] = {
    "households": lambda case: case.household_id,
    "applications": lambda case: case.application_id,
}
"""The lists filtered by region, and what of a case each shows."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix_cases(
    intake_http: httpx.AsyncClient, intake_clock: FrozenClock
) -> dict[str, Case]:
    """Households A, B and C, each with an application, registered once for the matrix."""
    client = IntakeClient(
        intake_http,
        TokenFactory().with_clock(intake_clock.now),
        Synthesizer(f"{__name__}-{uuid.uuid4()}", intake_clock.today(), used=ISSUED_ID_NUMBERS),
    )
    cases = {}
    for label, village in (("A", VILLAGE_A), ("B", VILLAGE_B), ("C", VILLAGE_C)):
        household = await client.register(client.plan(village))
        submitted = await client.submit(await client.complete_application_body(household))
        assert submitted.status_code == 201, submitted.text
        photo = await client.upload(household.id, "photo")
        assert photo.status_code == 201, photo.text
        cases[label] = Case(
            household.id,
            str(submitted.json()["id"]),
            household.person_ids[0],
            household.plan.members[0].id_number,
            village,
            household.body["bank_account"]["token_id"],
            photo.json()["id"],
        )
    return cases


Recorded = tuple[str, str, str, str]
"""An access record as the matrix expects it: outcome, action, record type (their names, as
a failure shows them), record id."""


async def _records_of(
    stack: TestStack, engine: AsyncEngine, reader: str
) -> list[access.PersonalDataAccessed]:
    """Every access record ``reader``'s requests left, exactly: each was committed to the
    outbox with (or, refused, right after) its request, so once the relay has published every
    access row written so far, the topic holds them all and nothing of theirs is to come."""
    async with engine.connect() as conn:
        mark = await conn.scalar(
            text("SELECT coalesce(max(id), 0) FROM outbox_message WHERE topic = :t"),
            {"t": ACCESS_TOPIC},
        )
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with engine.connect() as conn:
            pending = await conn.scalar(
                text("SELECT count(*) FROM outbox_message WHERE topic = :t AND id <= :m"),
                {"t": ACCESS_TOPIC, "m": mark},
            )
        if pending == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, f"{pending} access rows unpublished"
        await asyncio.sleep(0.1)
    decoded = [EventRegistry.default().decode(e) for e in await events(stack, ACCESS_TOPIC)]
    return [
        r
        for r in decoded
        if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == reader
    ]


def _described(
    outcome: access.AccessOutcome.ValueType,
    action: access.AccessAction.ValueType,
    record_type: access.RecordType.ValueType,
    record_id: str,
) -> Recorded:
    return (
        access.AccessOutcome.Name(outcome),
        access.AccessAction.Name(action),
        access.RecordType.Name(record_type),
        record_id,
    )


def _expected(
    granted: bool,
    action: access.AccessAction.ValueType,
    record_type: access.RecordType.ValueType,
    record_id: str,
) -> Recorded:
    outcome = access.ACCESS_OUTCOME_GRANTED if granted else access.ACCESS_OUTCOME_DENIED
    return _described(outcome, action, record_type, record_id)


@pytest.mark.parametrize("scope_name", list(SCOPES))
@pytest.mark.parametrize("role", list(Role))
async def test_every_role_reads_within_its_regions_only(
    intake: IntakeClient,
    intake_stack: TestStack,
    intake_engine: AsyncEngine,
    matrix_cases: dict[str, Case],
    role: Role,
    scope_name: str,
) -> None:
    """One cell of the role x region matrix. A record is read (200) when it lies in one of
    the token's regions, and answers the 404 of a record that does not exist otherwise: a
    village's token does not read its sibling village's household, its township's reads
    both, the county's and above all three. The same for a lookup by ID number, a
    document, the disclosure of an ID or account number, the township's roster, and the
    lists (a region filter within or holding a region is searched there, one outside them
    all is 403 region-out-of-scope; a household filter is checked as a read of the
    household, one outside them the 404 of one that does not exist, recorded DENIED naming
    it). Households are listed and looked up, and documents
    read, by the roles that work or audit cases; numbers are disclosed and rosters read by
    the roles named for them; other roles get 403 missing-role (a document's, in its
    region, recorded as refused; the others before any record is looked up). Every read
    granted leaves exactly one access record naming the reader and the record, every
    refusal of an existing record one DENIED naming nobody's data, and nothing else is
    recorded (not a role's 403 before the lookup, not a record that does not exist)."""
    scope = SCOPES[scope_name]
    reader = f"matrix-{role.value}-{uuid.uuid4()}"
    headers = intake.headers(role, scope.regions, subject=reader)
    case_role = role in CASE_ROLES
    expected: list[Recorded] = []
    view, search = access.ACCESS_ACTION_VIEW, access.ACCESS_ACTION_SEARCH
    granted_heads: dict[str, set[str]] = {}  # a list's record id -> heads it must name

    def refused_as_missing(answer: httpx.Response, missing: httpx.Response, what: str) -> None:
        assert answer.status_code == missing.status_code == 404, (what, answer.text)
        assert answer.json()["detail"] == missing.json()["detail"], what  # indistinguishable

    def refused_for_role(answer: httpx.Response, what: str) -> None:
        assert answer.status_code == 403, (what, answer.text)
        assert answer.json()["type"].endswith("/missing-role"), what
        assert set(answer.json()["required_roles"]) == {r.value for r in CASE_ROLES}, what

    missing_household = await intake.http.get(f"/households/{uuid.uuid4()}", headers=headers)
    missing_application = await intake.http.get(f"/applications/{uuid.uuid4()}", headers=headers)
    missing_listed = await intake.http.get(
        "/applications", params={"household_id": str(uuid.uuid4())}, headers=headers
    )
    nobody = await intake.http.post(
        "/households/lookup",
        json={"id_number": intake.plan(VILLAGE_A).members[0].id_number},
        headers=headers,
    )
    if case_role:
        assert nobody.status_code == 404, nobody.text
    else:
        refused_for_role(nobody, "lookup of nobody")
    for label, case in matrix_cases.items():
        seen = label in scope.sees
        household = await intake.http.get(f"/households/{case.household_id}", headers=headers)
        application = await intake.http.get(f"/applications/{case.application_id}", headers=headers)
        found = await intake.http.post(
            "/households/lookup", json={"id_number": case.head_id_number}, headers=headers
        )
        listed = await intake.http.get(
            "/applications", params={"household_id": case.household_id}, headers=headers
        )
        document = await intake.http.get(f"/documents/{case.document_id}", headers=headers)
        audit = {"purpose": "audit"}
        identity = await intake.http.get(
            f"/persons/{case.head_person_id}/identity", params=audit, headers=headers
        )
        account = await intake.http.get(
            f"/bank-accounts/{case.account_token_id}", params=audit, headers=headers
        )
        if seen:
            assert household.status_code == application.status_code == 200, (label, household.text)
            assert household.json()["id"] == case.household_id
            assert application.json()["household_id"] == case.household_id
        else:
            refused_as_missing(household, missing_household, f"household {label}")
            refused_as_missing(application, missing_application, f"application {label}")
        expected += [
            _expected(seen, view, access.RECORD_TYPE_HOUSEHOLD, case.household_id),
            _expected(seen, view, access.RECORD_TYPE_APPLICATION, case.application_id),
        ]
        if not case_role:
            refused_for_role(found, f"lookup {label}")
        elif seen:
            assert found.status_code == 200, (label, found.text)
            assert (found.json()["household_id"], found.json()["person_id"]) == (
                case.household_id,
                case.head_person_id,
            )
            expected.append(
                _expected(True, search, access.RECORD_TYPE_HOUSEHOLD, case.household_id)
            )
        else:
            refused_as_missing(found, nobody, f"lookup {label}")
            expected.append(
                _expected(False, search, access.RECORD_TYPE_HOUSEHOLD, case.household_id)
            )
        # A document's description is the case roles': another's is refused for their
        # role where the document is in their regions, recorded as a refusal either way.
        if not seen:
            refused_as_missing(document, missing_household, f"document {label}")
        elif case_role:
            assert document.status_code == 200, (label, document.text)
        else:
            refused_for_role(document, f"document {label}")
        expected.append(
            _expected(seen and case_role, view, access.RECORD_TYPE_DOCUMENT, case.document_id)
        )
        # The numbers are disclosed to the roles named, for a purpose, within their regions;
        # the other roles are refused before any record is looked up (nothing recorded).
        decrypt = access.ACCESS_ACTION_DECRYPT
        for answer, readers, record_type, record_id in (
            (identity, IDENTITY_ROLES, access.RECORD_TYPE_MEMBER, case.head_person_id),
            (account, ACCOUNT_ROLES, access.RECORD_TYPE_BANK_ACCOUNT, case.account_token_id),
        ):
            what = f"{record_type} of {label}"
            if role not in readers:
                assert answer.status_code == 403, (what, answer.text)
                assert answer.json()["type"].endswith("/missing-role"), what
                assert set(answer.json()["required_roles"]) == {r.value for r in readers}, what
                continue
            if seen:
                assert answer.status_code == 200, (what, answer.text)
            else:
                refused_as_missing(answer, missing_household, what)
            expected.append(_expected(seen, decrypt, record_type, record_id))
        # A search by household names one record: one outside the caller's regions is
        # refused as a read of it is (the 404 of a household that does not exist), recorded
        # DENIED naming it (ADR 0017, 3 Dec 2026); it was a 200 with an empty page,
        # recorded as a granted search naming no household.
        list_id = f"applications?household_id={case.household_id}"
        if seen:
            assert listed.status_code == 200, (label, listed.text)
            assert [i["id"] for i in listed.json()["items"]] == [case.application_id], label
            granted_heads[list_id] = {case.head_person_id}
        else:
            refused_as_missing(listed, missing_listed, f"applications of household {label}")
        expected.append(_expected(seen, search, access.RECORD_TYPE_LIST, list_id))
    for labels, region in LISTED_REGIONS.items():
        # Within the filter and the token's regions alike: a village's token filtering by
        # its township is shown its own village's, never its sibling's.
        under = {
            label
            for label, case in matrix_cases.items()
            if case.region_code.startswith(region) and label in scope.sees
        }
        overlaps = any(r.startswith(region) or region.startswith(r) for r in scope.regions)
        for name, record_of in LISTED_RECORDS.items():
            answer = await intake.http.get(
                f"/{name}", params={"region": region, "limit": 200}, headers=headers
            )
            list_id = f"{name}?region_prefix={region}"
            if name == "households" and not case_role:
                refused_for_role(answer, f"{name} of {labels}")
                continue
            if not overlaps:
                assert answer.status_code == 403, (name, labels, answer.text)
                assert answer.json()["type"].endswith("/region-out-of-scope")
                expected.append(_expected(False, search, access.RECORD_TYPE_LIST, list_id))
                continue
            assert answer.status_code == 200, (name, labels, answer.text)
            ours = {label: record_of(case) for label, case in matrix_cases.items()}
            shown_ids = {item["id"] for item in answer.json()["items"]}
            assert {label for label, i in ours.items() if i in shown_ids} == under, (
                name,
                labels,
            )
            assert answer.json()["next_cursor"] is None, (name, labels)  # nothing beyond
            expected.append(_expected(True, search, access.RECORD_TYPE_LIST, list_id))
            granted_heads[list_id] = {matrix_cases[label].head_person_id for label in under}

    # The roster of A's and B's township, for the roles that keep or check rosters: its
    # region is the township's, so a village's token (A's or B's) does not read it.
    roster = await intake.http.get(f"/townships/{ROSTERED_TOWNSHIP}/staff", headers=headers)
    roster_seen = {"A", "B"} <= scope.sees
    if role not in ROSTER_ROLES:
        assert roster.status_code == 403, roster.text
        assert roster.json()["type"].endswith("/missing-role")
        assert set(roster.json()["required_roles"]) == {r.value for r in ROSTER_ROLES}
    else:
        if roster_seen:
            assert roster.status_code == 200, roster.text
        else:
            refused_as_missing(roster, missing_household, "roster")
        roster_id = f"staff-roster:{ROSTERED_TOWNSHIP}"
        expected.append(_expected(roster_seen, view, access.RECORD_TYPE_OTHER, roster_id))
    # Without a filter: every one of the token's regions, nothing beyond them.
    everything = await intake.http.get("/applications", params={"limit": 200}, headers=headers)
    assert everything.status_code == 200, everything.text
    shown_ids = {item["id"] for item in everything.json()["items"]}
    shown_labels = {label for label, c in matrix_cases.items() if c.application_id in shown_ids}
    assert shown_labels <= scope.sees
    expected.append(_expected(True, search, access.RECORD_TYPE_LIST, "applications?"))
    granted_heads["applications?"] = {matrix_cases[label].head_person_id for label in shown_labels}

    records = await _records_of(intake_stack, intake_engine, reader)
    assert sorted(
        _described(r.outcome, r.action, r.record_type, r.record_id) for r in records
    ) == sorted(expected)
    heads = {c.head_person_id for c in matrix_cases.values()}
    for record in records:
        named = {p.person_id for p in record.persons}
        if record.outcome == access.ACCESS_OUTCOME_DENIED:
            # Refused: the record is named, nobody's data (none was shown).
            assert named == set(), record.record_id
            assert list(record.fields) == [], record.record_id
        elif record.record_type == access.RECORD_TYPE_LIST:
            assert named & heads == granted_heads[record.record_id], record.record_id
        else:
            assert record.fields, record.record_id
        if record.record_type == access.RECORD_TYPE_LIST:
            # A search by household names it, granted or refused; refused, in its region.
            by_household = [
                c
                for c in matrix_cases.values()
                if record.record_id == f"applications?household_id={c.household_id}"
            ]
            if by_household:
                [case] = by_household
                assert record.household_id == case.household_id, record.record_id
                if record.outcome == access.ACCESS_OUTCOME_DENIED:
                    assert (record.region.code, list(record.regions)) == (
                        case.region_code,
                        [],
                    ), record.record_id
            else:
                assert record.household_id == "", record.record_id
            continue
        if record.record_type == access.RECORD_TYPE_OTHER:  # the roster: no household's
            assert (record.household_id, record.region.code) == ("", ROSTERED_TOWNSHIP)
            continue
        # One record's access names its household and region, granted or refused.
        [case] = [
            c
            for c in matrix_cases.values()
            if record.record_id
            in (
                c.household_id,
                c.application_id,
                c.head_person_id,
                c.account_token_id,
                c.document_id,
            )
        ]
        assert (record.household_id, record.region.code) == (
            case.household_id,
            case.region_code,
        ), record.record_id
        if (
            record.outcome == access.ACCESS_OUTCOME_GRANTED
            and record.record_type != access.RECORD_TYPE_DOCUMENT  # a photo: of no one
        ):
            assert case.head_person_id in named, record.record_id


STATEMENT = "丈夫打零工收入不稳定，妻子二级残疾需长期照料。"
INCOME_NOTE = "在兰州建筑工地打零工，每月约二十天"
ASSET_NOTE = "农村信用社活期存款"


async def _access_fields(stack: TestStack, subject: str, reader: str) -> list[list[str]]:
    """The fields named by ``reader``'s access records of ``subject`` (waiting for
    ``reader``'s: a submission's answer leaves the clerk's first)."""
    return [list(r.fields) for r in await access_records(stack, subject, reader)]


@pytest.mark.parametrize("role", list(Role))
async def test_roles_without_a_case_are_shown_what_the_lists_may_show(
    intake: IntakeClient, intake_stack: TestStack, role: Role
) -> None:
    """Publicity and finance officers and policy administrators read households and
    applications with names masked and without the address, incomes, assets, health and
    disability, exclusion reasons, documents or the words written about the household
    (domain.md: the lists never show them); the roles that work or audit cases read them
    whole. The access record names what was shown."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body["statement"] = STATEMENT
    body["incomes"][0]["note"] = INCOME_NOTE
    body["assets"] = [{"kind": "deposit", "value_fen": 120000, "description": ASSET_NOTE}]
    submitted = await intake.submit(body)
    assert submitted.status_code == 201, submitted.text
    application_id = submitted.json()["id"]
    reader = f"reader-{role.value}"
    headers = intake.headers(role, OWN, subject=reader)
    read_household = await intake.http.get(f"/households/{household.id}", headers=headers)
    read_application = await intake.http.get(f"/applications/{application_id}", headers=headers)
    assert read_household.status_code == read_application.status_code == 200
    h, a = read_household.json(), read_application.json()
    planned = household.plan.members
    names = [m.name for m in planned]
    health = [
        {"disability_grade": m.disability_grade.value, "seriously_ill": m.seriously_ill}
        for m in planned
    ]
    shown_health = [
        {"disability_grade": m["disability_grade"], "seriously_ill": m["seriously_ill"]}
        for m in h["members"]
    ]
    employment = [m["employment_status"] for m in h["members"]]
    if role in CASE_ROLES:
        assert h["view"] == a["view"] == "case"
        assert employment == [m.employment_status.value for m in planned]
        assert [m["name"] for m in h["members"]] == names
        assert h["address"] == household.plan.address
        assert shown_health == health
        assert h["bank_account"]["holder_name"] in names
        assert a["applicant_name"] == names[0]
        assert a["statement"] == STATEMENT
        assert a["incomes"][0]["note"] == INCOME_NOTE
        assert [i["total_fen"] for i in a["incomes"]] == [
            i["wage_fen"] + i["operating_fen"] + i["transfer_fen"] for i in body["incomes"]
        ]
        assert a["assets"][0]["description"] == ASSET_NOTE
        assert [d["id"] for d in a["documents"]] == body["document_ids"]
    else:
        assert h["view"] == a["view"] == "limited"
        # unable_to_work tells of a disability or an illness.
        assert employment == [None] * len(names)
        assert [m["name"] for m in h["members"]] == [mask_name(n) for n in names]
        assert h["address"] is None
        assert shown_health == [{"disability_grade": None, "seriously_ill": None}] * len(names)
        # Who holds the account is left out: a holder outside the household is a custodian.
        assert h["bank_account"]["holder_name"] is h["bank_account"]["holder_person_id"] is None
        assert a["applicant_name"] == mask_name(names[0])
        assert a["statement"] is None
        assert a["incomes"] is a["assets"] is a["documents"] is None
        assert a["bank_account"]["holder_name"] is a["bank_account"]["holder_person_id"] is None
    # The household's make-up is the same in both views.
    assert [(m["relationship"], m["birth_date"], m["counted"]) for m in h["members"]] == [
        (m.relationship.value, m.birth_date.isoformat(), m.counted) for m in planned
    ]
    assert (a["status"], a["kind"]) == ("submitted", "dibao")
    [household_fields] = await _access_fields(intake_stack, household.id, reader)
    [application_fields] = await _access_fields(intake_stack, application_id, reader)
    if role in CASE_ROLES:
        assert {
            "name",
            "address",
            "disability_grade",
            "employment_status",
            "notes",
            "account_holder_name",
        } <= set(household_fields)
        assert {"applicant_name", "statement_and_notes", "incomes", "documents"} <= set(
            application_fields
        )
    else:
        assert "name_masked" in household_fields
        assert not {
            "name",
            "account_holder_name",
            "account_holder_name_masked",
            "address",
            "disability_grade",
            "serious_illness",
            "employment_status",
            "notes",
        } & set(household_fields)
        assert "applicant_name_masked" in application_fields
        assert not {
            "applicant_name",
            "statement_and_notes",
            "incomes",
            "assets",
            "account_holder_name",
            "account_holder_name_masked",
        } & set(application_fields)


# The roles that may see an ID number (GET /persons/{id}/identity), and clerks, who took
# the document in: they alone download a scan showing ID or account numbers.
NUMBER_READERS = {
    Role.INVESTIGATOR,
    Role.TOWNSHIP_REVIEWER,
    Role.COUNTY_APPROVER,
    Role.AUDITOR,
    Role.INTAKE_CLERK,
}


@pytest.mark.parametrize("role", list(Role))
async def test_documents_with_numbers_are_downloaded_by_named_roles_for_a_purpose(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str], role: Role
) -> None:
    household, _ = case
    person = household.person_ids[0]
    with_numbers = [
        (await intake.upload(household.id, "id_card", person)).json()["id"],
        (await intake.upload(household.id, "bank_card", person)).json()["id"],
        (await intake.upload(household.id, "household_register")).json()["id"],
        (await intake.upload(household.id, "medical_record", person)).json()["id"],
    ]
    photo = (await intake.upload(household.id, "photo")).json()["id"]
    own, foreign = intake.headers(role, OWN), intake.headers(role, FOREIGN)
    # Documents, a description or a photo's content, are for the case roles (without a
    # purpose): the others read the household in the limited view, and are not told even
    # a document's type.
    for url in [
        *(f"/documents/{d}" for d in [*with_numbers, photo]),
        f"/documents/{photo}/content",
    ]:
        answer = await intake.http.get(url, headers=own)
        if role in CASE_ROLES:
            assert answer.status_code == 200, (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.text)
            assert answer.json()["type"].endswith("/missing-role")
            assert set(answer.json()["required_roles"]) == {r.value for r in CASE_ROLES}
            assert not any(t in answer.text for t in ("id_card", "medical", "photo")), answer.text
    for document_id in with_numbers:
        url = f"/documents/{document_id}/content"
        given = await intake.http.get(url, params={"purpose": "investigation"}, headers=own)
        bare = await intake.http.get(url, headers=own)
        if role in NUMBER_READERS:
            assert given.status_code == 200, (role, given.text)
            assert bare.status_code == 422, (role, bare.text)
            assert [e["pointer"] for e in bare.json()["errors"]] == ["/query/purpose"]
        else:
            for refused in (given, bare):
                assert refused.status_code == 403, (role, refused.text)
                assert refused.json()["type"].endswith("/missing-role")
        elsewhere = await intake.http.get(url, params={"purpose": "audit"}, headers=foreign)
        assert elsewhere.status_code == 404, (role, elsewhere.text)


WRITERS: dict[str, frozenset[Role]] = {
    "POST /documents": frozenset({Role.INTAKE_CLERK}),
    "POST /households": frozenset({Role.INTAKE_CLERK}),
    "POST /households/{household_id}/changes": frozenset({Role.INTAKE_CLERK}),
    "POST /applications/{application_id}/withdrawal": frozenset({Role.INTAKE_CLERK}),
    "POST /applications": frozenset({Role.INTAKE_CLERK}),
    "POST /townships/{township_code}/staff": frozenset({Role.POLICY_ADMIN}),
    "POST /staff/{staff_id}/deactivation": frozenset({Role.POLICY_ADMIN}),
}
"""Every operation that writes, and the roles that may: the clerks take in households,
their changes, applications and documents; policy administrators keep the staff rosters."""
READS_BY_POST = frozenset({"POST /households/lookup"})
"""Reads sent as a POST (the ID number travels in the body): in the read matrix."""
ROSTER_TOWNSHIP = "620102021000"  # 盐场路街道: no other test's roster


def _write_operations(intake_app: FastAPI) -> set[str]:
    """Every operation of the app's OpenAPI that is no GET: the document lists the routes
    of the included routers, which FastAPI 0.165's app.routes no longer shows."""
    return {
        f"{method.upper()} {path}"
        for path, item in intake_app.openapi()["paths"].items()
        for method in item
        if method in {"post", "put", "patch", "delete"}
    }


def test_every_write_operation_is_in_the_matrix(intake_app: FastAPI) -> None:
    """A write route added to the app without a row in WRITERS (and so a request in
    test_only_their_writers_write) fails here."""
    operations = _write_operations(intake_app)
    assert operations >= READS_BY_POST
    assert operations - READS_BY_POST == set(WRITERS)


@pytest.mark.parametrize("role", list(Role))
async def test_only_their_writers_write(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_app: FastAPI, role: Role
) -> None:
    """Each write operation of the OpenAPI, sent by ``role`` with a token for the whole
    province and a body its writers get accepted: a role that may not write it gets 403
    missing-role naming the roles that may, as problem+json, and nothing is written (no
    row, no event, no access record: the token check comes before any record is looked
    up); its writers get it done."""
    household = await intake.register(intake.plan(RURAL_VILLAGE, shape="elderly_couple"))
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    application_id = submitted.json()["id"]
    next_body = await intake.complete_application_body(household)
    admin = intake.headers(Role.POLICY_ADMIN, ["620102"])
    staff = await intake.http.post(
        f"/townships/{ROSTER_TOWNSHIP}/staff",
        json={"name": "卫东", "role": "dibao_staff"},
        headers=admin,
    )
    assert staff.status_code == 201, staff.text
    headers = intake.headers(role, ["62"], subject=f"writer-{role.value}-{uuid.uuid4()}")
    upload = {"household_id": household.id, "document_type": "photo"}
    # In this order, so that each is accepted when its writers send it: the withdrawal
    # frees the household for the next application, whose body the death would outdate.
    requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "POST /documents": lambda: intake.http.post(
            "/documents",
            data=upload,
            files={"file": ("photo.pdf", pdf_bytes(f"photo {uuid.uuid4()}"), "application/pdf")},
            headers=headers,
        ),
        "POST /households": lambda: intake.http.post(
            "/households", json=intake.plan().payload(), headers=headers
        ),
        "POST /applications/{application_id}/withdrawal": lambda: intake.http.post(
            f"/applications/{application_id}/withdrawal",
            json={"reason": "重新申请"},
            headers=headers,
        ),
        "POST /applications": lambda: intake.http.post(
            "/applications", json=next_body, headers=headers
        ),
        "POST /households/{household_id}/changes": lambda: intake.http.post(
            f"/households/{household.id}/changes",
            json={
                "kind": "death",
                "person_id": household.person_ids[1],
                "date_of_death": "2026-02-01",
            },
            headers=headers,
        ),
        "POST /townships/{township_code}/staff": lambda: intake.http.post(
            f"/townships/{ROSTER_TOWNSHIP}/staff",
            json={"name": "李明", "role": "dibao_staff"},
            headers=headers,
        ),
        "POST /staff/{staff_id}/deactivation": lambda: intake.http.post(
            f"/staff/{staff.json()['id']}/deactivation", headers=headers
        ),
    }
    assert set(requests) == _write_operations(intake_app) - READS_BY_POST
    for operation, send in requests.items():
        writers = WRITERS[operation]
        before = await row_counts(intake_engine)
        answer = await send()
        if role in writers:
            assert answer.status_code in (201, 204), (operation, answer.text)
            continue
        assert answer.status_code == 403, (operation, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/missing-role"), operation
        assert set(answer.json()["required_roles"]) == {r.value for r in writers}, operation
        assert await row_counts(intake_engine) == before, operation


SendAs = Callable[[dict[str, str]], Awaitable[httpx.Response]]
"""A request, sent with the headers given."""


@pytest.mark.parametrize(
    "regions",
    [FOREIGN, ["620123101202"], ["620123101202", "620123102"]],
    ids=["another county", "the sibling village", "the sibling village and another township"],
)
async def test_a_clerk_of_another_region_cannot_touch_the_household(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine, regions: list[str]
) -> None:
    """A clerk writes within their regions only: one of the sibling village under the same
    township (太平堡村 beside 夏官营村) is as far from the household as one of another
    county. Each write about the household (a change, an application, a withdrawal, a
    document), with a body its own clerk gets accepted, answers the 404 of a household
    that does not exist and writes nothing but the attempt's DENIED access record, naming
    the record and nobody's data; registering a household in its village is 403
    region-out-of-scope and writes nothing at all. Its own village's clerk then writes
    each of them."""
    household = await intake.register(intake.plan(RURAL_VILLAGE, shape="elderly_couple"))
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    application_id = submitted.json()["id"]
    body = await intake.complete_application_body(household)
    missing = await intake.http.get(
        f"/households/{uuid.uuid4()}", headers=intake.headers(regions=regions)
    )
    probes: list[tuple[str, str, access.RecordType.ValueType, SendAs]] = [
        (
            "POST /documents",
            household.id,
            access.RECORD_TYPE_HOUSEHOLD,
            lambda headers: intake.http.post(
                "/documents",
                data={"household_id": household.id, "document_type": "photo"},
                files={"file": ("photo.pdf", pdf_bytes("photo"), "application/pdf")},
                headers=headers,
            ),
        ),
        (
            "POST /applications/{application_id}/withdrawal",
            application_id,
            access.RECORD_TYPE_APPLICATION,
            lambda headers: intake.http.post(
                f"/applications/{application_id}/withdrawal",
                json={"reason": "重新申请"},
                headers=headers,
            ),
        ),
        (
            "POST /applications",
            household.id,
            access.RECORD_TYPE_HOUSEHOLD,
            lambda headers: intake.http.post("/applications", json=body, headers=headers),
        ),
        (
            "POST /households/{household_id}/changes",
            household.id,
            access.RECORD_TYPE_HOUSEHOLD,
            lambda headers: intake.http.post(
                f"/households/{household.id}/changes",
                json={
                    "kind": "death",
                    "person_id": household.person_ids[1],
                    "date_of_death": "2026-02-01",
                },
                headers=headers,
            ),
        ),
    ]
    for operation, subject, record_type, send in probes:
        prober = f"clerk-elsewhere-{uuid.uuid4()}"
        before = await row_counts(intake_engine)
        refused = await send(intake.headers(Role.INTAKE_CLERK, regions, subject=prober))
        assert refused.status_code == 404, (operation, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"] == missing.json()["detail"], operation
        # The access record's outbox row, and nothing else.
        assert await row_counts(intake_engine) == before | {
            "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
        }, operation
        [record] = await access_records(intake_stack, subject, prober)
        assert (record.outcome, record.record_type, record.record_id) == (
            access.ACCESS_OUTCOME_DENIED,
            record_type,
            subject,
        ), operation
        assert record.operation == operation
        assert list(record.persons) == list(record.fields) == [], operation
    before = await row_counts(intake_engine)
    registration = await intake.http.post(
        "/households",
        json=intake.plan(RURAL_VILLAGE).payload(),
        headers=intake.headers(Role.INTAKE_CLERK, regions),
    )
    assert registration.status_code == 403, registration.text
    assert registration.json()["type"].endswith("/region-out-of-scope")
    assert await row_counts(intake_engine) == before
    own = intake.headers(Role.INTAKE_CLERK, [RURAL_VILLAGE])
    for operation, _, _, send in probes:
        done = await send(own)
        assert done.status_code == 201, (operation, done.text)


async def test_no_token_is_a_401_problem(intake: IntakeClient) -> None:
    response = await intake.http.get("/applications")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_refused_read_is_recorded_all_the_same(
    intake: IntakeClient,
    intake_stack: TestStack,
    intake_engine: AsyncEngine,
    case: tuple[RegisteredHousehold, str],
) -> None:
    """A read of another region's record (404) or of a document the role may not see
    (403) leaves an access record with outcome DENIED, naming the record and no one's
    data, as dibao.access.v1 says ("recorded all the same"); it was never recorded. A
    record that does not exist leaves none: it is nobody's."""
    household, application_id = case
    person = household.person_ids[0]
    token = household.body["bank_account"]["token_id"]
    photo = (await intake.upload(household.id, "photo")).json()["id"]
    prober = "prober-of-620102"
    foreign = intake.headers(Role.AUDITOR, FOREIGN, subject=prober)
    attempts = [
        (f"/households/{household.id}", {}, household.id, access.RECORD_TYPE_HOUSEHOLD),
        (f"/applications/{application_id}", {}, application_id, access.RECORD_TYPE_APPLICATION),
        (f"/documents/{photo}", {}, photo, access.RECORD_TYPE_DOCUMENT),
        (
            f"/persons/{person}/identity",
            {"purpose": "audit"},
            person,
            access.RECORD_TYPE_MEMBER,
        ),
        (f"/bank-accounts/{token}", {"purpose": "audit"}, token, access.RECORD_TYPE_BANK_ACCOUNT),
    ]
    for url, params, subject, record_type in attempts:
        answer = await intake.http.get(url, params=params, headers=foreign)
        assert answer.status_code == 404, (url, answer.text)
        [record] = await access_records(intake_stack, subject, prober)
        assert record.outcome == access.ACCESS_OUTCOME_DENIED, url
        assert (record.record_type, record.record_id) == (record_type, subject)
        # Keyed by the application when it is one (an audit query by application finds
        # the attempt), by nothing else.
        assert record.application_id == (
            subject if record_type == access.RECORD_TYPE_APPLICATION else ""
        ), url
        assert (record.household_id, record.region.code) == (
            household.id,
            household.plan.region_code,
        )
        assert list(record.persons) == [], url
        assert list(record.fields) == [], url
    # A role that works no cases, in the document's own region: 403, recorded.
    officer = "publicity-officer-1"
    answer = await intake.http.get(
        f"/documents/{photo}/content",
        headers=intake.headers(Role.PUBLICITY_OFFICER, OWN, subject=officer),
    )
    assert answer.status_code == 403
    [record] = await access_records(intake_stack, photo, officer)
    assert (record.outcome, record.action) == (
        access.ACCESS_OUTCOME_DENIED,
        access.ACCESS_ACTION_DOWNLOAD,
    )
    # Nothing there: nothing recorded. A record would have been committed with the
    # request, in the outbox: there still, or (deleted once acknowledged) on the topic. So
    # the outbox, then the topic, with no wait: 2 s for the relay, as before, could be too
    # few on a slow machine, where a stray record came later and the test passed.
    missing = str(uuid.uuid4())
    assert (await intake.http.get(f"/households/{missing}", headers=foreign)).status_code == 404
    async with intake_engine.connect() as conn:
        outbox = await conn.scalar(
            text("SELECT count(*) FROM outbox_message WHERE headers->>'ce_subject' = :s"),
            {"s": missing},
        )
    assert outbox == 0
    assert await events(intake_stack, "dibao.access.v1", subject=missing) == []


_FAIL_OUTBOX_ROW = """
CREATE OR REPLACE FUNCTION test_refuse_outbox_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'outbox refuses this row (test)';
END $$"""


async def test_a_refusal_whose_record_cannot_be_written_is_answered_as_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, case: tuple[RegisteredHousehold, str]
) -> None:
    """When the DENIED record cannot be written (here the database refuses the row), the
    answer stays the refusal, rendered as it is when recorded: another region's household
    answers the 404 a missing one does (a 500 would tell that the id names a record), a
    document the role may not see its 403 with required_roles."""
    household, _ = case
    photo = (await intake.upload(household.id, "photo")).json()["id"]
    foreign = intake.headers(Role.AUDITOR, FOREIGN, subject="prober-when-db-fails")
    officer = intake.headers(Role.PUBLICITY_OFFICER, OWN, subject="officer-when-db-fails")

    async def answers() -> list[tuple[int, str, dict[str, object]]]:
        found = []
        for url, headers in (
            (f"/households/{household.id}", foreign),
            (f"/households/{uuid.uuid4()}", foreign),
            (f"/documents/{photo}/content", officer),
        ):
            response = await intake.http.get(url, headers=headers)
            body = response.json()
            body.pop("instance", None)
            found.append((response.status_code, response.headers["content-type"], body))
        return found

    recorded = await answers()
    missed_before = REGISTRY.get_sample_value("dibao_access_refusals_unrecorded_total") or 0
    async with intake_engine.begin() as conn:
        await conn.execute(text(_FAIL_OUTBOX_ROW))
        await conn.execute(
            text(
                "CREATE TRIGGER test_refuse_denied BEFORE INSERT ON outbox_message FOR EACH ROW"
                f" WHEN (NEW.ce_subject IN ('{household.id}', '{photo}'))"
                " EXECUTE FUNCTION test_refuse_outbox_row()"
            )
        )
    try:
        unrecorded = await answers()
    finally:
        async with intake_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_refuse_denied ON outbox_message"))
            await conn.execute(text("DROP FUNCTION test_refuse_outbox_row()"))
    assert [status for status, _, _ in recorded] == [404, 404, 403]
    assert recorded[2][2]["required_roles"]
    assert unrecorded == recorded
    assert unrecorded[0] == unrecorded[1]  # indistinguishable from a missing record
    # Operators see each one missed on /metrics (the household's and the document's).
    missed = REGISTRY.get_sample_value("dibao_access_refusals_unrecorded_total") or 0
    assert missed - missed_before == 2


@pytest.mark.parametrize("role", list(Role))
async def test_the_limited_view_names_no_missing_item_timeline_detail_or_one_off_kind(
    intake: IntakeClient, intake_stack: TestStack, role: Role
) -> None:
    """What a returned application lacks names documents ("the disability certificate",
    "the diagnosis of the illness"), the timeline's details carry incomes, missing items and
    the member applied for alone, and medical assistance tells of an illness: the limited
    view showed all three. It now shows missing items and details as null, each entry's
    summary as the event's name alone, and a one-off kind as null (whichever it is, so a
    null does not stand for medical); searching by a one-off kind is refused, and recorded.
    The case roles see everything, as before."""
    household = await intake.register()
    returned = await intake.submit(
        application_payload(household.id, household.person_ids, household.plan, [])
    )
    medical_body = await intake.complete_application_body(household)
    medical_body |= {"kind": "medical", "requested_amount_fen": 80000, "reason": "住院治疗"}
    medical = await intake.submit(medical_body)
    assert returned.status_code == medical.status_code == 201, (returned.text, medical.text)
    assert returned.json()["status"] == "returned"
    reader = f"lister-{role.value}"
    headers = intake.headers(role, OWN, subject=reader)
    [r, m] = [
        (await intake.http.get(f"/applications/{x.json()['id']}", headers=headers)).json()
        for x in (returned, medical)
    ]
    entries = [e for a in (r, m) for e in a["timeline"]]
    assert "ApplicationReturned" in {e["type"].split(".")[-2] for e in entries}
    listing = await intake.http.get(
        "/applications", params={"household_id": household.id}, headers=headers
    )
    assert listing.status_code == 200
    listed = {i["id"]: i["kind"] for i in listing.json()["items"]}
    by_kind = await intake.http.get(
        "/applications", params={"household_id": household.id, "kind": "medical"}, headers=headers
    )
    if role in CASE_ROLES:
        assert r["missing_items"]
        assert all(i["description"] for i in r["missing_items"])
        assert all(e["details"] is not None for e in entries)
        returned_entry = next(e for e in r["timeline"] if "Returned" in e["type"])
        assert "item(s) missing" in returned_entry["summary"]
        assert returned_entry["details"]["missing_items"]
        assert (r["kind"], m["kind"]) == ("dibao", "medical")
        assert listed == {r["id"]: "dibao", m["id"]: "medical"}
        assert [i["id"] for i in by_kind.json()["items"]] == [m["id"]]
    else:
        assert r["missing_items"] is m["missing_items"] is None
        assert all(e["details"] is None for e in entries)
        assert {e["summary"] for e in entries} <= {
            "Application returned",
            "Application submitted",
            "Application accepted",
        }
        assert (r["kind"], m["kind"]) == ("dibao", None)
        assert listed == {r["id"]: "dibao", m["id"]: None}
        assert by_kind.status_code == 403, by_kind.text
        assert by_kind.json()["type"].endswith("/missing-role")
        assert set(by_kind.json()["required_roles"]) == {c.value for c in CASE_ROLES}
        [refusal] = await access_records(
            intake_stack, f"applications?kind=medical&household_id={household.id}", reader
        )
        assert refusal.outcome == access.ACCESS_OUTCOME_DENIED
        assert list(refusal.fields) == []
    # The records say what each view was shown.
    [read] = await access_records(intake_stack, r["id"], reader)
    [search] = await access_records(
        intake_stack, f"applications?household_id={household.id}", reader
    )
    if role in CASE_ROLES:
        assert {"kind", "missing_items", "timeline_details"} <= set(read.fields)
        assert "kind" in search.fields
    else:
        assert "kind_if_dibao" in read.fields
        assert "kind_if_dibao" in search.fields
        assert not {"kind", "missing_items", "timeline_details"} & set(read.fields)
        assert "kind" not in search.fields


@pytest.mark.parametrize("role", list(Role))
async def test_the_limited_view_shows_no_amount_asked_for(
    intake: IntakeClient, intake_stack: TestStack, role: Role
) -> None:
    """A one-off kind is null in the limited view so that it does not tell medical
    assistance (an illness) from the others, but the amount asked for was still shown: a
    festival or heating grant asks a small fixed sum, medical assistance the cost of a
    treatment, so the figure told the kind (and it is a figure the household declared, as
    its incomes are). The limited view shows it as null; the case roles see it, and the
    access record names it for them only."""
    household = await intake.register()
    asked = {"medical": 800000, "festival": 20000}
    ids = {}
    for kind, amount in asked.items():
        body = await intake.complete_application_body(household)
        body |= {"kind": kind, "requested_amount_fen": amount, "reason": "一次性救助"}
        submitted = await intake.submit(body)
        assert submitted.status_code == 201, submitted.text
        ids[kind] = submitted.json()["id"]
    reader = f"amounts-{role.value}"
    headers = intake.headers(role, OWN, subject=reader)
    shown = {}
    for kind, application_id in ids.items():
        read = await intake.http.get(f"/applications/{application_id}", headers=headers)
        assert read.status_code == 200, read.text
        shown[kind] = (read.json()["kind"], read.json()["requested_amount_fen"])
    [record] = await access_records(intake_stack, ids["medical"], reader)
    if role in CASE_ROLES:
        assert shown == {k: (k, amount) for k, amount in asked.items()}
        assert "requested_amount" in record.fields
    else:
        assert shown == dict.fromkeys(asked, (None, None))
        assert "requested_amount" not in record.fields


@pytest.mark.parametrize("role", list(Role))
async def test_the_limited_view_does_not_say_staff_hold_the_card(
    intake: IntakeClient, intake_stack: TestStack, role: Role
) -> None:
    """A bank card that staff hold under a custody agreement tells that its holder cannot
    manage it (the elderly, the severely disabled): the limited view showed the agreement and
    the staff member holding the card, on the account and in the change's details. It now
    shows neither; a finance officer who pays into the account gets the agreement with the
    number from the disclosure endpoint, for a purpose. The case roles see both."""
    household = await intake.register()
    document = (await intake.upload(household.id, "custody_agreement")).json()["id"]
    changed = await intake.http.post(
        f"/households/{household.id}/changes",
        json={
            "kind": "bank_account_change",
            "account": {
                "account_number": "6228480402564890099",
                "bank_code": "103",
                "bank_name": "中国农业银行",
                "holder_name": "村委会代管",
            },
            "custody_agreement": True,
            "custodian_subject": "cw-xiaguanying-01",
            "custody_document_id": document,
            "document_ids": [document],
        },
        headers=intake.headers(),
    )
    assert changed.status_code == 201, changed.text
    reader = f"custody-reader-{role.value}"
    read = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(role, OWN, subject=reader)
    )
    assert read.status_code == 200
    account = read.json()["bank_account"]
    [change] = [c for c in read.json()["changes"] if c["kind"] == "bank_account_change"]
    [record] = await access_records(intake_stack, household.id, reader)
    if role in CASE_ROLES:
        assert (account["custody_agreement"], account["custodian_subject"]) == (
            True,
            "cw-xiaguanying-01",
        )
        assert change["details"]["custody_agreement"] is True
        assert change["details"]["document_ids"] == [document]
        assert (account["holder_name"], account["holder_person_id"]) == ("村委会代管", None)
        assert "custody" in record.fields
    else:
        assert account["custody_agreement"] is account["custodian_subject"] is None
        # A holder outside the household (村委会代管) would tell it as well.
        assert account["holder_name"] is account["holder_person_id"] is None
        assert not {"account_holder_name", "account_holder_name_masked"} & set(record.fields)
        # Nor do the change's documents, the signed custody agreement among them.
        assert not {"custody_agreement", "document_ids"} & set(change["details"])
        assert change["details"]["bank_account_id"] == account["token_id"]
        assert "custody" not in record.fields
