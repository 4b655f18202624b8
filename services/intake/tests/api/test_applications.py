"""Applications through the API: accepted or returned, events on Kafka, idempotency, search."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from dibao.access.v1 import events_pb2 as access
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.auth import Role
from dibao_common.crypto import PersonHasher, mask_id_number, mask_name
from dibao_common.logged_errors import WITHHELD, format_exception
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import (
    CLOUDEVENTS_HEADERS,
    RURAL_VILLAGE,
    URBAN_VILLAGE,
    IntakeClient,
    RegisteredHousehold,
    access_records,
    assert_probe_refused_as_read,
    events,
    pii_settings_for_tests,
    row_counts,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

INTAKE_TOPIC = "dibao.intake.v1"
SUBMITTED = "dibao.intake.ApplicationSubmitted.v1"


async def test_a_complete_application_is_accepted_with_one_decodable_event(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "submitted"
    assert out["missing_items"] == []
    assert out["accepted_on"] == "2026-03-02"
    assert response.headers["location"] == f"/applications/{out['id']}"

    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 2, subject=out["id"])
    assert [e.ce_type for e in found] == [SUBMITTED, "dibao.intake.ApplicationAccepted.v1"]
    envelope = found[0]
    assert envelope.key == household.id
    assert envelope.ce_source == "dibao/intake"
    assert envelope.content_type == "application/protobuf"
    assert envelope.actor == "test-clerk"
    assert envelope.correlation_id
    message = EventRegistry.default().decode(envelope)
    assert isinstance(message, ev.ApplicationSubmitted)
    assert message.application_id == out["id"]
    assert message.household.household_id == household.id
    # Made from the household as registered, which still exists.
    assert (message.household.version, message.household.dissolved) == (1, False)
    assert len(message.household.members) == len(household.plan.members)
    assert {m.person.masked_id[:6] for m in message.household.members} <= {
        m.id_number[:6] for m in household.plan.members
    }
    assert len(message.incomes) == 5 * sum(1 for m in household.plan.members if m.counted)
    assert message.bank_account.token_id == out["bank_account"]["token_id"]
    [record] = [
        r
        for r in await read_topic(intake_stack.kafka_bootstrap, INTAKE_TOPIC)
        if r.header("ce_id") == str(envelope.ce_id)
    ]
    assert {name for name, _ in record.headers} >= CLOUDEVENTS_HEADERS
    assert record.key == household.id.encode()
    # The snapshot never carries a raw ID number or a full name.
    raw = envelope.payload
    for member in household.plan.members:
        assert member.id_number.encode() not in raw
        assert member.name.encode() not in raw


async def test_an_incomplete_application_is_returned_with_every_missing_item_at_once(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body["document_ids"] = []
    body["incomes"] = []
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "returned"
    assert out["accepted_on"] is None
    missing = out["missing_items"]
    fields = {(m["document_type"], m["field"]) for m in missing}
    assert ("application_form", None) in fields
    assert ("household_register", None) in fields
    assert (None, "incomes") in fields
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 1, subject=out["id"])
    assert [e.ce_type for e in found] == ["dibao.intake.ApplicationReturned.v1"]
    returned = EventRegistry.default().decode(found[0])
    assert isinstance(returned, ev.ApplicationReturned)
    assert len(returned.missing_items) == len(missing)


MISSING_ITEM_SHAPES = {
    "application_form": ("application_form", None),
    "household_register": ("household_register", None),
    "verification_authorisation": ("verification_authorisation", None),
    "id_card": ("id_card", None),
    "income_declaration": (None, "incomes"),
    "disability_certificate": ("disability_certificate", None),
    "diagnosis": ("medical_record", None),
    "student_proof": ("student_proof", None),
}
"""The code of each item a dibao application without documents or declarations lacks, with
the document type or field the item names."""


async def test_a_missing_item_says_its_code_and_one_stored_without_it_answers_null(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Each missing item names which it is by code (ADR 0009, 3 Dec 2026), for a portal to
    show its own label rather than parse the English description: in the answer, the
    stored row and the read. A row stored before the code was answers null, the rest of the
    item as stored."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body | {"document_ids": [], "incomes": []})
    assert response.status_code == 201, response.text
    out = response.json()
    missing = out["missing_items"]
    assert [m["code"] for m in missing][:3] == [
        "application_form",
        "household_register",
        "verification_authorisation",
    ]
    for item in missing:
        assert MISSING_ITEM_SHAPES[item["code"]] == (item["document_type"], item["field"]), item
    assert {m["code"] for m in missing} >= {"id_card", "income_declaration"}
    assert (await intake.read_application(out["id"]))["missing_items"] == missing
    async with intake_engine.begin() as conn:
        stored = (
            await conn.execute(
                text("SELECT missing_items FROM application WHERE id = :id"), {"id": out["id"]}
            )
        ).scalar_one()
        assert [i["code"] for i in stored] == [m["code"] for m in missing]
        # As an application returned before 3 Dec 2026 was stored.
        await conn.execute(
            text(
                "UPDATE application SET missing_items = (SELECT jsonb_agg(i - 'code' ORDER BY n)"
                " FROM jsonb_array_elements(missing_items) WITH ORDINALITY AS e(i, n))"
                " WHERE id = :id"
            ),
            {"id": out["id"]},
        )
    before = await intake.read_application(out["id"])
    assert before["missing_items"] == [m | {"code": None} for m in missing]


async def test_the_submissions_answer_has_the_timeline_a_read_of_it_has(
    intake: IntakeClient,
) -> None:
    """The 201 of a submission is the application as its read shows it: its timeline,
    written with it, was answered as empty (the withdrawal's answer carried its own)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    returned = await intake.submit(
        body | {"document_ids": [], "incomes": []}, idempotency_key=str(uuid.uuid4())
    )
    accepted = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    for response, types in (
        (accepted, [SUBMITTED, "dibao.intake.ApplicationAccepted.v1"]),
        (returned, ["dibao.intake.ApplicationReturned.v1"]),
    ):
        assert response.status_code == 201, response.text
        out = response.json()
        assert [e["type"] for e in out["timeline"]] == types
        read = await intake.http.get(f"/applications/{out['id']}", headers=intake.headers())
        assert read.status_code == 200, read.text
        assert out == read.json()


async def test_a_retried_submission_creates_nothing_twice(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    key = str(uuid.uuid4())
    first = await intake.submit(body, idempotency_key=key)
    before = await row_counts(intake_engine)
    second = await intake.submit(body, idempotency_key=key)
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    # Nothing written twice: the one outbox row is the replay's access record.
    assert await row_counts(intake_engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
    }
    reused = await intake.submit(body | {"statement": "different"}, idempotency_key=key)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 2, subject=first.json()["id"])
    assert [e.ce_type for e in found].count(SUBMITTED) == 1


async def test_simultaneous_duplicates_create_one_application(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A submission's writes go as one statement with its answer (ADR 0013): duplicates
    sent at once may all run, but one statement stands and every one answers with it."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    key = str(uuid.uuid4())
    before = await row_counts(intake_engine)
    answers = await asyncio.gather(*(intake.submit(body, idempotency_key=key) for _ in range(4)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"] + 1
    application_id = answers[0].json()["id"]
    read = await intake.http.get(f"/applications/{application_id}", headers=intake.headers())
    assert read.status_code == 200, read.text
    assert [e["summary"] for e in read.json()["timeline"]] == [
        "Application submitted",
        "Application accepted",
    ]
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 2, subject=application_id)
    assert [e.ce_type for e in found].count(SUBMITTED) == 1


async def _naming_its_first_account(
    intake: IntakeClient, household: RegisteredHousehold
) -> dict[str, Any]:
    """A complete application naming the planned account of a household registered
    without one."""
    body = await intake.complete_application_body(household)
    body["bank_account"] = {
        "account_number": household.plan.account_number,
        "bank_code": household.plan.bank_code,
        "bank_name": household.plan.bank_name,
        "holder_person_id": household.person_ids[0],
    }
    return body


async def test_the_first_account_of_a_household_comes_with_its_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A household registered without an account gets the one its application names,
    written in the submission's one statement (the application refers to it)."""
    household = await intake.register(with_account=False)
    assert household.body["bank_account"] is None
    body = await _naming_its_first_account(intake, household)
    before = await row_counts(intake_engine)
    response = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "submitted", out["missing_items"]
    assert out["bank_account"]["masked_number"].endswith(household.plan.account_number[-4:])
    after = await row_counts(intake_engine)
    assert after["bank_account"] == before["bank_account"] + 1
    read = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    assert read.json()["bank_account"]["token_id"] == out["bank_account"]["token_id"]


async def test_the_recorded_account_named_with_another_bank_or_holder_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """An application naming the household's recorded card with another bank name or
    holder was accepted and paid to the account as recorded: the clerk would believe it
    corrected. It is refused, writing nothing; the change is a bank_account_change. The
    card as recorded is still accepted."""
    household = await intake.register(intake.plan(shape="three_generations"), with_account=False)
    first = await intake.submit(await _naming_its_first_account(intake, household))
    assert first.status_code == 201, first.text
    withdrawn = await intake.http.post(
        f"/applications/{first.json()['id']}/withdrawal",
        json={"reason": "重新申请"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    as_recorded = await _naming_its_first_account(intake, household)
    others = [
        as_recorded | {"bank_account": as_recorded["bank_account"] | {"bank_name": "别的银行"}},
        as_recorded
        | {
            "bank_account": as_recorded["bank_account"]
            | {"holder_person_id": household.person_ids[1]}
        },
    ]
    for body in others:
        before = await row_counts(intake_engine)
        response = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
        assert response.status_code == 422, response.text
        assert [e["pointer"] for e in response.json()["errors"]] == ["/body/bank_account"]
        assert await row_counts(intake_engine) == before
    again = await intake.submit(as_recorded, idempotency_key=str(uuid.uuid4()))
    assert again.status_code == 201, again.text
    assert again.json()["bank_account"]["token_id"] == first.json()["bank_account"]["token_id"]


async def _blocked_by(engine: AsyncEngine, holder_pid: int) -> int:
    """How many sessions wait on a lock the session ``holder_pid`` holds."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND CAST(:holder AS integer) = ANY(pg_blocking_pids(pid))"
            ),
            {"holder": holder_pid},
        )
        return int(waiting or 0)


async def _both_read_before_either_writes(
    intake: IntakeClient,
    engine: AsyncEngine,
    household_id: str,
    body: dict[str, Any],
    other: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Send ``body`` and ``other`` (by default ``body`` again), each with its own key, so
    that both submissions read the household before either writes: the test holds the
    household's row FOR UPDATE, which each submission's read does not wait for and its one
    write statement does (migration 0007's trigger on the application takes FOR KEY SHARE
    of it), until both wait on it; then lets go. Which of the two then writes first is the
    scheduler's; one is accepted (201), the other a 409 (never a 500): the accepted
    answer, the refused problem and the body refused."""
    loop = asyncio.get_running_loop()
    async with engine.connect() as holder:
        await holder.execute(
            text("SELECT 1 FROM household WHERE id = CAST(:id AS uuid) FOR UPDATE"),
            {"id": household_id},
        )
        holder_pid = int(await holder.scalar(text("SELECT pg_backend_pid()")) or 0)
        bodies = [body, body if other is None else other]
        sends = [
            asyncio.create_task(intake.submit(sent, idempotency_key=str(uuid.uuid4())))
            for sent in bodies
        ]
        deadline = loop.time() + 10
        while await _blocked_by(engine, holder_pid) < 2:
            # Neither may answer before the other has read: each must wait for the row.
            done = [t.result().text for t in sends if t.done()]
            assert not done, done
            assert loop.time() < deadline, "the two writes never both waited on the household"
            await asyncio.sleep(0.05)
        await holder.rollback()
    answers = await asyncio.gather(*sends)
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [accepted] = [a.json() for a in answers if a.status_code == 201]
    [(refused, lost)] = [
        (a.json(), b) for a, b in zip(answers, bodies, strict=True) if a.status_code == 409
    ]
    return accepted, refused, lost


def _type_of(problem: dict[str, Any]) -> str:
    return str(problem["type"]).rsplit("/", 1)[1]


async def test_two_clerks_at_once_make_one_application_and_a_409(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Two submissions of one kind with different keys for a household without an
    account, both naming its first account, both reading the household with no account
    and no open application (held so, deterministically): one stands; the other's
    statement meets its twin's application on the one-open-application index (its
    application is written before its account: the trigger that waits for the household
    is the application's), so it is told of that application: 409 application-open
    naming it, not concurrent-change (which a resend would only turn into this). Sent
    again after the first committed, its read finds the open application: the same
    answer. Never a 500, never a second account."""
    household = await intake.register(with_account=False)
    body = await _naming_its_first_account(intake, household)
    before = await row_counts(intake_engine)
    accepted, refused, _ = await _both_read_before_either_writes(
        intake, intake_engine, household.id, body
    )
    assert (_type_of(refused), refused["application_id"]) == ("application-open", accepted["id"])
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"] + 1
    assert after["bank_account"] == before["bank_account"] + 1
    again = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert again.status_code == 409, again.text
    assert (_type_of(again.json()), again.json()["application_id"]) == (
        "application-open",
        accepted["id"],
    )
    assert await row_counts(intake_engine) == after


async def test_two_kinds_at_once_naming_the_first_account_make_one_account_and_a_409(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A dibao and a festival application, different keys, for a household without an
    account, both naming its first account, both reading the household with no account
    (held so, deterministically): the two applications do not meet (one open application
    per kind), the two accounts do (one current account per household). One stands; the
    other's account meets its twin's committed one and no application of its kind is
    there: 409 concurrent-change, nothing of it written. Sent again, it reads the account
    now recorded (the one it names) and is accepted."""
    household = await intake.register(with_account=False)
    body = await _naming_its_first_account(intake, household)
    festival = body | {
        "kind": "festival",
        "incomes": [],
        "requested_amount_fen": 50000,
        "reason": "春节慰问",
    }
    before = await row_counts(intake_engine)
    accepted, refused, lost = await _both_read_before_either_writes(
        intake, intake_engine, household.id, body, festival
    )
    assert _type_of(refused) == "concurrent-change", refused
    assert "application_id" not in refused
    assert accepted["kind"] != lost["kind"]
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"] + 1
    assert after["bank_account"] == before["bank_account"] + 1
    again = await intake.submit(lost, idempotency_key=str(uuid.uuid4()))
    assert again.status_code == 201, again.text
    assert again.json()["bank_account"]["token_id"] == accepted["bank_account"]["token_id"]


async def test_negative_income_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body["incomes"][0]["wage_fen"] = -100
    before = await row_counts(intake_engine)
    response = await intake.submit(body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/incomes/0/wage_fen"]
    assert await row_counts(intake_engine) == before


async def test_an_id_or_card_number_in_free_text_is_refused_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # Free text is stored and published as typed: an ID number in it would escape the
    # encryption and masking of the fields made for one.
    household = await intake.register()
    body = await intake.complete_application_body(household)
    id_number = household.plan.members[0].id_number
    body["statement"] = f"申请人身份证号{id_number}，家庭困难"
    body["incomes"][0]["note"] = "工资打到卡 6228480402564890018"
    before = await row_counts(intake_engine)
    response = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert sorted(e["pointer"] for e in errors) == ["/body/incomes/0/note", "/body/statement"]
    assert all("resident ID" in e["detail"] for e in errors)
    assert id_number not in response.text
    assert await row_counts(intake_engine) == before
    # A phone number or a house number is no ID number.
    body["statement"] = "联系电话 13800138000，住三社12号"
    body["incomes"][0]["note"] = "季节性务工"
    accepted = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert accepted.status_code == 201, accepted.text


async def test_inconsistent_application_names_each_problem(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body["applicant_person_id"] = str(uuid.uuid4())
    body["document_ids"].append(str(uuid.uuid4()))
    before = await row_counts(intake_engine)
    response = await intake.submit(body)
    assert response.status_code == 422
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {
        "/body/applicant_person_id",
        f"/body/document_ids/{len(body['document_ids']) - 1}",
    }
    assert await row_counts(intake_engine) == before


async def test_malformed_json_is_a_400_problem(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/applications",
        content=b'{"household_id": ',
        headers=intake.headers() | {"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "https://dibao.gov.cn/problems/malformed-body"
    assert await row_counts(intake_engine) == before


async def test_an_unknown_household_is_404(intake: IntakeClient) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body | {"household_id": str(uuid.uuid4())})
    assert response.status_code == 404


async def test_one_off_assistance_needs_an_amount_and_a_reason(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """Returned without its amount and reason; accepted with both, and ApplicationSubmitted
    carries both, so assessment sees why it is asked for (the reason was not published
    before 3 Dec 2026)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body.update(kind="festival", incomes=[])
    returned = (await intake.submit(body)).json()
    assert returned["status"] == "returned"
    assert {m["field"] for m in returned["missing_items"]} == {"requested_amount_fen", "reason"}
    body.update(requested_amount_fen=50000, reason="春节慰问")
    accepted = (await intake.submit(body)).json()
    assert accepted["status"] == "submitted", accepted["missing_items"]
    assert accepted["requested_amount_fen"] == 50000
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 2, subject=accepted["id"])
    message = EventRegistry.default().decode(found[0])
    assert isinstance(message, ev.ApplicationSubmitted)
    assert (message.requested_amount.fen, message.reason) == (50000, "春节慰问")


async def test_withdrawal_of_an_accepted_application(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The applicant's withdrawal, by a clerk: its cause applicant_request in the answer,
    the GET and the row, UNSPECIFIED (the applicant's) with the reason in its event."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    assert accepted["withdrawal_cause"] is None
    url = f"/applications/{accepted['id']}/withdrawal"
    response = await intake.http.post(
        url, json={"reason": "找到稳定工作"}, headers=intake.headers()
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "withdrawn"
    assert response.json()["withdrawal_cause"] == "applicant_request"
    read = await intake.http.get(f"/applications/{accepted['id']}", headers=intake.headers())
    assert (read.json()["withdrawal_cause"], read.json()["withdrawal_reason"]) == (
        "applicant_request",
        "找到稳定工作",
    )
    again = await intake.http.post(url, json={"reason": "again"}, headers=intake.headers())
    assert again.status_code == 409
    assert again.json()["type"].endswith("/application-not-withdrawable")
    found = await wait_for_events(intake_stack, INTAKE_TOPIC, 3, subject=accepted["id"])
    assert found[-1].ce_type == "dibao.intake.ApplicationWithdrawn.v1"
    message = EventRegistry.default().decode(found[-1])
    assert isinstance(message, ev.ApplicationWithdrawn)
    assert (message.cause, message.reason) == (ev.WITHDRAWAL_CAUSE_UNSPECIFIED, "找到稳定工作")


async def test_a_withdrawals_answer_is_recorded_as_the_read_it_is(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The answer to a withdrawal is the application whole (incomes, assets, statement,
    documents, timeline), as GET /applications/{id} shows it: recorded as that read is,
    and a clerk of another region is refused as that read is (404, recorded DENIED)."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    url = f"/applications/{accepted['id']}/withdrawal"
    prober = f"prober-{uuid.uuid4()}"
    foreign = await intake.http.post(
        url,
        json={"reason": "试探"},
        headers=intake.headers(regions=["620102"], subject=prober),
    )
    assert foreign.status_code == 404
    [refusal] = await access_records(intake_stack, accepted["id"], prober)
    assert refusal.outcome == access.ACCESS_OUTCOME_DENIED
    assert list(refusal.persons) == list(refusal.fields) == []
    clerk = f"clerk-{uuid.uuid4()}"
    response = await intake.http.post(
        url, json={"reason": "找到稳定工作"}, headers=intake.headers(subject=clerk)
    )
    assert response.status_code == 201, response.text
    [record] = await access_records(intake_stack, accepted["id"], clerk)
    assert (record.action, record.outcome) == (
        access.ACCESS_ACTION_VIEW,
        access.ACCESS_OUTCOME_GRANTED,
    )
    assert record.record_type == access.RECORD_TYPE_APPLICATION
    assert record.application_id == accepted["id"]
    assert sorted(p.person_id for p in record.persons) == sorted(household.person_ids)
    assert {"incomes", "assets", "statement_and_notes", "timeline_details"} <= set(record.fields)
    assert record.operation == "POST /applications/{application_id}/withdrawal"


async def test_search_by_region_status_and_date_with_a_cursor(intake: IntakeClient) -> None:
    village = "620123104207"  # 和平镇范家营村: used by this test only
    headers = intake.headers(Role.TOWNSHIP_REVIEWER, ["620123104"])
    # This test's earlier runs in the session (the village is its own, not each run's).
    earlier = await intake.http.get(
        "/applications", params={"region": village, "limit": "200"}, headers=headers
    )
    earlier_ids = [item["id"] for item in earlier.json()["items"]]
    ids = []
    for _ in range(5):
        household = await intake.register(intake.plan(village))
        ids.append(
            (await intake.submit(await intake.complete_application_body(household))).json()["id"]
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"region": village, "status": "submitted", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = await intake.http.get("/applications", params=params, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)) + earlier_ids  # newest first, each once
    dated = await intake.http.get(
        "/applications",
        params={"region": village, "submitted_from": "2026-03-02", "submitted_to": "2026-03-02"},
        headers=headers,
    )
    assert [item["id"] for item in dated.json()["items"]] == seen  # all on the frozen day
    before = await intake.http.get(
        "/applications", params={"region": village, "submitted_to": "2026-03-01"}, headers=headers
    )
    assert before.json()["items"] == []
    bad = await intake.http.get("/applications", params={"cursor": "!!"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/invalid-cursor")  # audit's answer too


async def test_search_never_leaves_the_callers_regions(intake: IntakeClient) -> None:
    urban = await intake.register(intake.plan(URBAN_VILLAGE))
    await intake.submit(await intake.complete_application_body(urban))
    headers = intake.headers(Role.AUDITOR, ["620123"])
    page = await intake.http.get(
        "/applications", params={"region": "62", "limit": "200"}, headers=headers
    )
    assert page.status_code == 200
    assert all(item["region_code"].startswith("620123") for item in page.json()["items"])


async def test_reads_are_recorded_on_the_access_topic(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register(intake.plan(RURAL_VILLAGE))
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    reader = intake.headers(Role.INVESTIGATOR, ["620123"], subject="investigator-7")
    response = await intake.http.get(f"/applications/{accepted['id']}", headers=reader)
    assert response.status_code == 200
    # The submission's answer and the read: one record each.
    found = await wait_for_events(intake_stack, "dibao.access.v1", 2, subject=accepted["id"])
    assert len(found) == 2
    records = [EventRegistry.default().decode(e) for e in found]
    assert [(r.actor.subject, r.operation) for r in records] == [  # type: ignore[attr-defined]
        ("test-clerk", "POST /applications"),
        ("investigator-7", "GET /applications/{application_id}"),
    ]
    assert {e.key for e in found} == {household.id}
    assert len(await events(intake_stack, "dibao.access.v1", subject=household.id)) == 0


async def test_a_search_names_the_applicants_it_shows_by_keyed_hash(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A search shows each applicant's masked name: its access record names them as a read
    of the household does (person id, keyed hash and its key, masked number and name), so
    that "who looked at this person's data" finds a search too; once per person."""
    household = await intake.register(intake.plan(RURAL_VILLAGE))
    body = await intake.complete_application_body(household)
    accepted = (await intake.submit(body)).json()
    body.update(kind="festival", incomes=[], requested_amount_fen=50000, reason="春节慰问")
    festival = (await intake.submit(body)).json()
    head = household.plan.members[0]
    assert accepted["applicant_person_id"] == festival["applicant_person_id"]
    assert accepted["applicant_person_id"] == household.person_ids[0]
    page = await intake.http.get(
        "/applications",
        params={"household_id": household.id},
        headers=intake.headers(Role.TOWNSHIP_REVIEWER, ["620123"]),
    )
    assert [item["id"] for item in page.json()["items"]] == [festival["id"], accepted["id"]]
    [found] = await wait_for_events(
        intake_stack, "dibao.access.v1", 1, subject=f"applications?household_id={household.id}"
    )
    record = EventRegistry.default().decode(found)
    assert isinstance(record, access.PersonalDataAccessed)
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    assert [
        (p.person_id, p.keyed_hash, p.hash_key_id, p.masked_id, p.masked_name)
        for p in record.persons
    ] == [
        (
            household.person_ids[0],
            hasher.hash_id_number(head.id_number),
            hasher.key_id,
            mask_id_number(head.id_number),
            mask_name(head.name),
        )
    ]
    assert head.id_number.encode() not in found.payload


async def test_a_household_has_one_open_application_of_a_kind(intake: IntakeClient) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    first = (await intake.submit(body)).json()
    second = await intake.submit(body)
    assert second.status_code == 409
    assert second.json()["type"].endswith("/application-open")
    assert second.json()["application_id"] == first["id"]
    withdrawn = await intake.http.post(
        f"/applications/{first['id']}/withdrawal",
        json={"reason": "重新申请"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201
    assert (await intake.submit(body)).status_code == 201


async def test_two_clerks_at_once_for_a_household_with_an_account_make_one_application(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """The open-application rule holds under concurrency too: two submissions of the same
    kind (different keys, a household that already has its account), both reading the
    household before either writes (held so, deterministically), leave one application;
    the other's write meets its twin's on the one-open-application index and is told of
    it: 409 application-open naming the accepted application (not concurrent-change: the
    household it read is still so). Sent after the first committed, the read finds it:
    the same answer."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    before = await row_counts(intake_engine)
    accepted, refused, _ = await _both_read_before_either_writes(
        intake, intake_engine, household.id, body
    )
    assert (_type_of(refused), refused["application_id"]) == ("application-open", accepted["id"])
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"] + 1
    again = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert again.status_code == 409, again.text
    assert (_type_of(again.json()), again.json()["application_id"]) == (
        "application-open",
        accepted["id"],
    )
    assert await row_counts(intake_engine) == after


async def test_a_document_of_another_region_is_answered_like_a_missing_one(
    intake: IntakeClient,
) -> None:
    """Naming a document of a household outside the clerk's regions must not tell the
    clerk that it exists: the same problem as for an id that does not exist."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    elsewhere = await intake.register(intake.plan(URBAN_VILLAGE))
    uploaded = await intake.upload(elsewhere.id, "application_form", regions=[URBAN_VILLAGE])
    assert uploaded.status_code == 201, uploaded.text
    body["document_ids"] += [uploaded.json()["id"], str(uuid.uuid4())]
    response = await intake.http.post(
        "/applications", json=body, headers=intake.headers(regions=["620123"])
    )
    assert response.status_code == 422, response.text
    details = {e["pointer"]: e["detail"] for e in response.json()["errors"]}
    foreign, missing = len(body["document_ids"]) - 2, len(body["document_ids"]) - 1
    assert details[f"/body/document_ids/{foreign}"] == details[f"/body/document_ids/{missing}"]


@pytest.mark.parametrize("keyed", [False, True])
async def test_a_submission_for_another_regions_household_is_refused_as_its_read_is(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine, keyed: bool
) -> None:
    """A clerk of another region submitting for a household probes its id as a GET does:
    answered the same 404 (the same detail) and recorded DENIED as a GET is, in a
    transaction of its own (the submission's one statement is not sent); nothing else is
    written, with an Idempotency-Key (no stored answer) or without."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    prober = f"prober-{uuid.uuid4()}"
    foreign = intake.headers(
        regions=["620102"],
        subject=prober,
        idempotency_key=f"probe-{uuid.uuid4()}" if keyed else None,
    )
    before = await row_counts(intake_engine)
    response = await intake.http.post("/applications", json=body, headers=foreign)
    # The access record's outbox row, and nothing else (no application, no stored answer).
    await assert_probe_refused_as_read(
        intake,
        intake_stack,
        intake_engine,
        before,
        response,
        household_id=household.id,
        prober=prober,
        operation="POST /applications",
    )


@pytest.mark.parametrize(
    "params", [{"submitted_to": "9999-12-31"}, {"submitted_from": "0001-01-01"}]
)
async def test_search_dates_at_the_ends_of_the_calendar_are_no_error(
    intake: IntakeClient, params: dict[str, str]
) -> None:
    """The first and last days a date can name are valid bounds (every application lies
    within them), not a 500."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    page = await intake.http.get(
        "/applications",
        params=params | {"household_id": household.id},
        headers=intake.headers(Role.AUDITOR, ["62"]),
    )
    assert page.status_code == 200, page.text
    assert [item["id"] for item in page.json()["items"]] == [accepted["id"]]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("submitted_from", "86400"),  # Unix seconds: 1970-01-02
        ("submitted_to", "0"),
        ("submitted_to", "2026-03-02T00:00:00"),  # a date-time at midnight: its day
        ("submitted_from", "20260302"),  # a clerk's compact date
    ],
)
async def test_a_search_date_is_a_date_as_yyyy_mm_dd(
    intake: IntakeClient, name: str, value: str
) -> None:
    """The bounds are dates (format date) as the bodies' are: pydantic took a number as
    Unix seconds and a date-time at midnight as its day, so 86400 searched from 1970, and
    20260302 was told "Datetimes provided to dates should have zero time"."""
    household = await intake.register()
    await intake.submit(await intake.complete_application_body(household))
    page = await intake.http.get(
        "/applications",
        params={name: value, "household_id": household.id},
        headers=intake.headers(Role.AUDITOR, ["62"]),
    )
    assert page.status_code == 422, page.text
    assert page.json()["errors"] == [
        {
            "pointer": f"/query/{name}",
            "detail": "Value error, must be a date as YYYY-MM-DD",
            "code": "value_error",
        }
    ]


async def test_a_json_body_sent_as_a_form_is_told_its_content_type(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """curl -d sends its body as application/x-www-form-urlencoded: the JSON in it was
    refused as "Input should be a valid dictionary or object to extract fields from",
    which does not say what to change."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    before = await row_counts(intake_engine)
    for content_type in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8", None):
        headers = intake.headers(idempotency_key=str(uuid.uuid4()))
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await intake.http.post(
            "/applications", content=json.dumps(body).encode(), headers=headers
        )
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["pointer"] == "/body"
        media_type = (content_type or "").split(";")[0]
        sent = f" (it came as {media_type})" if content_type else ""
        assert error["detail"] == (
            f"The body is read as JSON only with Content-Type: application/json{sent}"
        )
    assert await row_counts(intake_engine) == before
    # A JSON body that is no object is told so, as before.
    listed = await intake.http.post("/applications", json=[body], headers=intake.headers())
    assert listed.status_code == 422
    assert "Content-Type" not in listed.json()["errors"][0]["detail"]


BLANK = (
    "must not be blank: something besides white space, and no control character (but a tab"
    " or a line break) nor direction embedding, override or isolate (U+202A-U+202E,"
    " U+2066-U+2069)"
)


async def test_a_blank_text_is_told_it_is_blank_not_a_pattern(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A text that must not be blank (a withdrawal's reason, an address, a name) sent as
    white space was told "String should match pattern '^[^\\x00]*[^\\x00\\t-\\r ...'"."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    before = await row_counts(intake_engine)
    withdrawn = await intake.http.post(
        f"/applications/{accepted['id']}/withdrawal",
        json={"reason": " \u3000 "},
        headers=intake.headers(idempotency_key=str(uuid.uuid4())),
    )
    assert withdrawn.status_code == 422, withdrawn.text
    assert withdrawn.json()["errors"] == [
        {
            "pointer": "/body/reason",
            "detail": BLANK,
            "code": "string_pattern_mismatch",
        }
    ]
    payload = intake.plan().payload()
    payload["address"] = "\t "
    payload["members"][0]["name"] = "·\u3000."
    payload["members"][0]["id_number"] = "62010219700315123"
    registered = await intake.http.post("/households", json=payload, headers=intake.headers())
    assert registered.status_code == 422, registered.text
    assert {e["pointer"]: e["detail"] for e in registered.json()["errors"]} == {
        "/body/address": BLANK,
        "/body/members/0/name": "must hold a name: something besides white space, dots and"
        " invisible characters, and no control character",
        "/body/members/0/id_number": "must be 18 characters: 17 digits, then a digit or X",
    }
    assert await row_counts(intake_engine) == before


async def test_a_dissolved_household_cannot_apply(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """The death of a household's only member dissolves it (its HouseholdUpdated says so):
    an application for it is a 409 household-dissolved problem and writes nothing."""
    household = await intake.register(intake.plan(shape="elderly_alone"))
    body = await intake.complete_application_body(household)
    death = {"kind": "death", "person_id": household.person_ids[0], "date_of_death": "2026-02-20"}
    died = await intake.http.post(
        f"/households/{household.id}/changes", json=death, headers=intake.headers()
    )
    assert died.status_code == 201, died.text
    assert died.json()["household"]["status"] == "dissolved"
    [update] = await wait_for_events(
        intake_stack, INTAKE_TOPIC, 1, subject=died.json()["change_id"]
    )
    decoded = EventRegistry.default().decode(update)
    assert isinstance(decoded, ev.HouseholdUpdated)
    snapshot = decoded.household
    assert (snapshot.version, snapshot.dissolved, len(snapshot.members)) == (2, True, 0)
    before = await row_counts(intake_engine)
    response = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/household-dissolved")
    assert await row_counts(intake_engine) == before


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting.scalar_one()) > 0


async def _submitted_during_a_change(
    intake: IntakeClient,
    intake_engine: AsyncEngine,
    household: RegisteredHousehold,
    change: str,
    *,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """Submit ``household``'s complete application while a change is in progress: it
    holds the household FOR UPDATE, as record_change does, and runs ``change`` (SQL on
    ``:id``); it commits once the submission's write waits on the lock. Asserts that the
    refused submission wrote nothing, and returns its answer. The submission's
    Idempotency-Key is ``idempotency_key``, a new one when not given."""
    body = await intake.complete_application_body(household)
    before = await row_counts(intake_engine)
    async with intake_engine.connect() as conn:
        await conn.execute(
            text("SELECT id FROM household WHERE id = :id FOR UPDATE"), {"id": household.id}
        )
        await conn.execute(text(change), {"id": household.id})
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        submission = asyncio.create_task(intake.submit(body, idempotency_key=key))
        # Until it waits on the held row (at most 30 s, else a failure): 200 looks (5 to
        # 10 s) could run out unnoticed on a slow machine, the commit below then coming
        # first and the test no longer about the race it is for.
        deadline = asyncio.get_running_loop().time() + 30
        while not submission.done() and not await _waiting_on_a_lock(intake_engine):
            assert asyncio.get_running_loop().time() < deadline, "it never waited on the lock"
            await asyncio.sleep(0.02)
        assert not submission.done(), submission.result().text
        await conn.commit()
    response = await submission
    assert response.status_code == 409, response.text
    after = await row_counts(intake_engine)
    # The refused statement drew its outbox rows' ids before it failed (a sequence does
    # not roll back); its rows, the events' among them, went with it.
    assert after.pop("outbox_message_ids_issued") > before.pop("outbox_message_ids_issued")
    assert after == before
    return response


async def test_a_household_dissolved_while_the_submission_is_checked_gets_no_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A change that dissolves the household, in progress while a submission reads it,
    makes the submission's write wait; once it commits, the submission is a 409
    household-dissolved problem and writes nothing: no accepted application, and no
    ApplicationSubmitted, for a household that no longer exists."""
    household = await intake.register()
    response = await _submitted_during_a_change(
        intake,
        intake_engine,
        household,
        "UPDATE household SET status = 'dissolved', head_person_id = NULL WHERE id = :id",
    )
    assert response.json()["type"].endswith("/household-dissolved")


async def test_a_household_changed_while_the_submission_is_checked_gets_no_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Any change that commits between the submission's read and its write (a death, a
    birth, a new account: record_change raises the household's version) makes the
    submission a 409 concurrent-change problem that writes nothing: the application and its
    ApplicationSubmitted would describe the household as it was before (the dead member in
    the snapshot, the old account to be paid). Sent again, it is made from the household as
    it now is, and records that version."""
    household = await intake.register()
    response = await _submitted_during_a_change(
        intake,
        intake_engine,
        household,
        "UPDATE household SET version = version + 1 WHERE id = :id",
    )
    assert response.json()["type"].endswith("/concurrent-change")
    body = await intake.complete_application_body(household)
    again = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert again.status_code == 201, again.text
    async with intake_engine.connect() as conn:
        recorded = await conn.execute(
            text(
                "SELECT a.household_version, h.version FROM application a"
                " JOIN household h ON h.id = a.household_id WHERE a.id = :id"
            ),
            {"id": again.json()["id"]},
        )
        made_from, now = recorded.one()
        assert (made_from, now) == (2, 2)


async def test_a_submission_refused_for_a_concurrent_change_may_be_sent_again_with_its_key(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The 409 concurrent-change of a submission whose household changed under it stores
    no answer under its Idempotency-Key: sent again with the same key (as a client retrying
    a 409 does), it is made from the household as it now is, and a further retry replays
    that answer."""
    household = await intake.register()
    key = str(uuid.uuid4())
    response = await _submitted_during_a_change(
        intake,
        intake_engine,
        household,
        "UPDATE household SET version = version + 1 WHERE id = :id",
        idempotency_key=key,
    )
    assert response.json()["type"].endswith("/concurrent-change")
    body = await intake.complete_application_body(household)
    again = await intake.submit(body, idempotency_key=key)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    replayed = await intake.submit(body, idempotency_key=key)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["id"] == again.json()["id"]
    async with intake_engine.connect() as conn:
        made_from = await conn.scalar(
            text("SELECT household_version FROM application WHERE id = :id"),
            {"id": again.json()["id"]},
        )
    assert made_from == 2


async def test_a_submissions_answer_is_recorded_as_a_read_of_the_application(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """The answer to a submission shows the application whole, as a withdrawal's and a
    read's do: the applicant's name, the account's holder and custody (the household's
    current account when none is given), the documents' descriptions, none of which the
    request sent. It left no record on dibao.access.v1, where the withdrawal's answer and
    the same answer replayed each leave one (ADR 0005: every read of personal data is
    recorded). Accepted or returned, it is now recorded as the read of the application
    it is: every member named by keyed hash, the fields by view."""
    household = await intake.register(intake.plan(RURAL_VILLAGE))
    body = await intake.complete_application_body(household)
    hasher = PersonHasher.from_settings(pii_settings_for_tests())
    members = sorted(hasher.hash_id_number(m.id_number) for m in household.plan.members)
    clerk = f"clerk-{uuid.uuid4()}"
    for sent, status in (
        (body | {"document_ids": [], "incomes": []}, "returned"),
        (body, "submitted"),
    ):
        response = await intake.http.post(
            "/applications", json=sent, headers=intake.headers(subject=clerk)
        )
        assert response.status_code == 201, response.text
        answer = response.json()
        assert answer["status"] == status
        assert answer["applicant_name"] in {m.name for m in household.plan.members}
        [record] = await access_records(intake_stack, answer["id"], clerk)
        assert record.action == access.ACCESS_ACTION_VIEW
        assert record.outcome == access.ACCESS_OUTCOME_GRANTED
        assert record.record_type == access.RECORD_TYPE_APPLICATION
        assert record.application_id == answer["id"]
        assert record.household_id == household.id
        assert record.operation == "POST /applications"
        assert record.correlation_id
        assert sorted(p.keyed_hash for p in record.persons) == members
        assert "applicant_name" in record.fields
        assert "bank_account_masked" in record.fields


_TWIN = (
    "INSERT INTO application (id, household_id, region_code, kind, channel, status,"
    " applicant_person_id, staff_related, missing_items, submitted_at, submitted_by,"
    " household_version)"
    " SELECT :twin, id, region_code, 'dibao', 'counter', 'submitted', head_person_id, false,"
    " '[]', now(), 'twin', version FROM household WHERE id = :id"
)


async def test_a_submission_that_loses_to_its_twin_names_the_twins_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Two submissions of a household and kind at once both pass the read's check, and
    the second write fails on the one-open-application index (migration 0003). That was
    a 409 concurrent-change "send it again", whose retry then met application-open: the
    lost race now answers what the read answers once the twin is there, application-open
    naming the twin's application. The twin is written in a transaction of the test's
    own, committed once the submission's write waits on it; nothing of the submission is
    written."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    twin = uuid.uuid4()
    before = await row_counts(intake_engine)
    async with intake_engine.connect() as conn:
        await conn.execute(text(_TWIN), {"twin": twin, "id": household.id})
        submission = asyncio.create_task(intake.submit(body, idempotency_key=str(uuid.uuid4())))
        deadline = asyncio.get_running_loop().time() + 30
        while not submission.done() and not await _waiting_on_a_lock(intake_engine):
            assert asyncio.get_running_loop().time() < deadline, "it never waited on the twin"
            await asyncio.sleep(0.02)
        assert not submission.done(), submission.result().text
        await conn.commit()
    response = await submission
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/application-open"), response.text
    assert response.json()["application_id"] == str(twin)
    after = await row_counts(intake_engine)
    after.pop("outbox_message_ids_issued")
    before.pop("outbox_message_ids_issued")
    assert after == before | {"application": before["application"] + 1}


@pytest.mark.parametrize("constraint", ["unique", "check"])
async def test_a_violation_that_is_no_race_is_no_conflict(
    intake: IntakeClient, intake_engine: AsyncEngine, constraint: str
) -> None:
    """in_one_statement answered every unique violation of the submission's statement 409
    concurrent-change "send it again": one no race explains (a bug, a constraint added
    since) had the clerk retry what can never pass. Only the indexes a request that wrote
    the same row since can violate (one open application of a kind, a household's current
    account) are a 409 now; any other is a 500, logged by table and constraint without
    the driver's DETAIL (the row's values: a CHECK's quotes the whole application, the
    applicant's statement among them), as is a CHECK other than the household triggers'.
    No constraint the submission can reach is violated by a valid request today, so one
    is added: a partial unique index, or a CHECK, refusing this test's household alone,
    committed (the service's connections must see it) and dropped after."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    first = await intake.submit(body, idempotency_key=str(uuid.uuid4()))
    assert first.status_code == 201, first.text
    withdrawn = await intake.http.post(
        f"/applications/{first.json()['id']}/withdrawal",
        json={"reason": "重新申请"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    name = f"test_no_race_{uuid.UUID(household.id).hex}"
    add, drop = {
        "unique": (
            f"CREATE UNIQUE INDEX {name} ON application (household_id)"
            f" WHERE household_id = '{household.id}'",
            f"DROP INDEX {name}",
        ),
        "check": (
            f"ALTER TABLE application ADD CONSTRAINT {name}"
            f" CHECK (household_id <> '{household.id}') NOT VALID",
            f"ALTER TABLE application DROP CONSTRAINT {name}",
        ),
    }[constraint]
    async with intake_engine.begin() as conn:
        await conn.execute(text(add))
    try:
        for key in (str(uuid.uuid4()), None):
            before = await row_counts(intake_engine)
            with capture_logs() as logs:
                response = await intake.submit(body, idempotency_key=key)
            assert response.status_code == 500, response.text
            assert response.json()["type"].endswith("/internal-error")
            after = await row_counts(intake_engine)
            after.pop("outbox_message_ids_issued")
            before.pop("outbox_message_ids_issued")
            assert after == before
            [logged] = [e for e in logs if e["event"] == "unhandled exception"]
            # As the kit's log renders the traceback: the driver's error it is raised from
            # named (SQLSTATE, frames), its DETAIL withheld (ADR 0005, 3 Dec 2026).
            text_logged = format_exception(logged["exc_info"])
            assert f"table application, constraint {name}" in text_logged
            assert "The above exception was the direct cause" in text_logged
            assert ("SQLSTATE 23505" if constraint == "unique" else "SQLSTATE 23514") in text_logged
            assert f"DETAIL {WITHHELD}" in text_logged
            assert "DETAIL:" not in text_logged
            assert household.id not in text_logged
    finally:
        async with intake_engine.begin() as conn:
            await conn.execute(text(drop))
