"""Who may do what where: every role reads within its regions; only clerks write; a
document that shows ID or account numbers is downloaded only by those who may see them."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.crypto import mask_name
from dibao_common.testing.stack import TestStack
from dibao_intake.synthetic import application_payload
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    access_records,
    events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OWN = ["620123101"]  # 夏官营镇: the households' township
FOREIGN = ["620102"]  # 城关区


@pytest.fixture
async def case(intake: IntakeClient) -> tuple[RegisteredHousehold, str]:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body)
    assert response.status_code == 201
    return household, str(response.json()["id"])


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_reads_within_its_regions_only(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str], role: Role
) -> None:
    household, application_id = case
    for url in (f"/households/{household.id}", f"/applications/{application_id}"):
        own = await intake.http.get(url, headers=intake.headers(role, OWN))
        assert own.status_code == 200, (role, url, own.text)
        foreign = await intake.http.get(url, headers=intake.headers(role, FOREIGN))
        assert foreign.status_code == 404, (role, url)
        missing = await intake.http.get(
            url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}", headers=intake.headers(role, OWN)
        )
        assert missing.json()["detail"] == foreign.json()["detail"]  # indistinguishable
    listing = await intake.http.get("/applications", headers=intake.headers(role, FOREIGN))
    assert listing.status_code == 200
    assert application_id not in {item["id"] for item in listing.json()["items"]}


CASE_ROLES = {
    Role.INTAKE_CLERK,
    Role.INVESTIGATOR,
    Role.VILLAGE_COMMITTEE,
    Role.TOWNSHIP_REVIEWER,
    Role.COUNTY_APPROVER,
    Role.AUDITOR,
}
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


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.INTAKE_CLERK])
async def test_only_intake_clerks_write(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str], role: Role
) -> None:
    household, application_id = case
    headers = intake.headers(role, OWN)
    attempts = [
        await intake.http.post("/households", json=intake.plan().payload(), headers=headers),
        await intake.http.post(
            f"/households/{household.id}/changes",
            json={
                "kind": "death",
                "person_id": household.person_ids[-1],
                "date_of_death": "2026-01-01",
            },
            headers=headers,
        ),
        await intake.http.post(
            "/applications",
            json={"household_id": household.id, "applicant_person_id": household.person_ids[0]},
            headers=headers,
        ),
        await intake.http.post(
            f"/applications/{application_id}/withdrawal", json={"reason": "x"}, headers=headers
        ),
    ]
    for response in attempts:
        assert response.status_code == 403, (role, response.text)
        assert response.json()["type"].endswith("/missing-role")


async def test_a_clerk_of_another_region_cannot_touch_the_household(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str]
) -> None:
    household, application_id = case
    headers = intake.headers(Role.INTAKE_CLERK, FOREIGN)
    change = await intake.http.post(
        f"/households/{household.id}/changes",
        json={
            "kind": "death",
            "person_id": household.person_ids[-1],
            "date_of_death": "2026-01-01",
        },
        headers=headers,
    )
    assert change.status_code == 404
    submit = await intake.http.post(
        "/applications",
        json={"household_id": household.id, "applicant_person_id": household.person_ids[0]},
        headers=headers,
    )
    assert submit.status_code == 404
    withdraw = await intake.http.post(
        f"/applications/{application_id}/withdrawal", json={"reason": "x"}, headers=headers
    )
    assert withdraw.status_code == 404


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
