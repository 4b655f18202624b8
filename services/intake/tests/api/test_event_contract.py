"""Intake's events as a downstream service consumes them: read back from the broker's
``dibao.intake.v1``, decoded with the generated classes, checked against ADR 0002
(CloudEvents headers, key, type), ADR 0005/0007 (no raw number or full name) and the
proto (each HouseholdUpdated says what changed)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf.message import Message
from sqlalchemy import text

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao.intake.v1 import types_pb2 as intake_types
from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry, ce_type_of
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.fuzz import served
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake import demo
from dibao_intake.adapters import contracts
from dibao_intake.main import create_app
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import (
    CLOUDEVENTS_HEADERS,
    ISSUED_ID_NUMBERS,
    TEST_NOW,
    IntakeClient,
    RegisteredHousehold,
    events,
    intake_database_of_its_own,
    intake_settings_for,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPIC = "dibao.intake.v1"
REGISTRY = EventRegistry.default()
RFC3339_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
DEMO_DAY = datetime(2026, 11, 2, 2, 0, 0, 123456, tzinfo=UTC)
"""The demo test's clock: an instant no other test's events carry."""


class TickingClock(FrozenClock):
    """A clock that moves a millisecond each time it is read, as the system clock moves
    between two reads: what one event says of its time must come from one read."""

    def now(self) -> datetime:
        return self.advance(timedelta(milliseconds=1))


@pytest_asyncio.fixture(loop_scope="session")
async def ticking(
    intake_stack: TestStack, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[IntakeClient]:
    """An intake of its own (relay included) whose clock moves on every read."""
    clock = TickingClock(TEST_NOW)
    app = create_app(intake_settings_for(intake_stack, tmp_path / "documents"), clock=clock)
    async with api_client(app) as http:
        synthesizer = Synthesizer(
            f"{request.node.nodeid}-{uuid.uuid4()}",
            clock.today(),
            used=ISSUED_ID_NUMBERS,
            babies=False,
            in_kind=False,
        )
        yield IntakeClient(http, TokenFactory().with_clock(clock.now), synthesizer)


def _when(message: Message) -> datetime:
    stamp = getattr(message, "occurred_at")  # noqa: B009 - every intake event has it
    at: datetime = stamp.ToDatetime(tzinfo=UTC)
    return at


async def _a_household_through_its_life(intake: IntakeClient) -> RegisteredHousehold:
    """Registered, an application returned, one accepted, changes recorded, withdrawn."""
    household = await intake.register(intake.plan(shape="single_parent"))
    body = await intake.complete_application_body(household)
    returned = await intake.submit(body | {"document_ids": []})
    assert returned.json()["status"] == "returned", returned.text
    accepted = await intake.submit(body)
    assert accepted.json()["status"] == "submitted", accepted.text
    await intake.change(household, {"kind": "birth", "member": intake.newborn()})
    await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": household.person_ids[0],
            "effective_on": "2026-02-27",
            "disability_grade": "3",
        },
    )
    withdrawn = await intake.http.post(
        f"/applications/{accepted.json()['id']}/withdrawal",
        json={"reason": "找到稳定工作"},
        headers=intake.headers(),
    )
    assert withdrawn.status_code == 201, withdrawn.text
    return household


EXPECTED_TYPES = [
    "HouseholdRegistered",
    "ApplicationReturned",
    "ApplicationSubmitted",
    "ApplicationAccepted",
    "HouseholdUpdated",
    "HouseholdUpdated",
    "ApplicationWithdrawn",
]


async def _its_events(
    intake: IntakeClient, stack: TestStack, household: RegisteredHousehold
) -> list[tuple[Envelope, Message]]:
    found = await wait_for_events(stack, TOPIC, len(EXPECTED_TYPES), key=household.id)
    return [(e, REGISTRY.decode(e)) for e in found]


async def test_every_event_about_a_household_has_its_key_headers_and_type(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """Every event of a household's life (its applications' too) is on the household's
    key, carries the CloudEvents headers of ADR 0002, and its ce_type is the message it
    decodes to; none carries a member's ID number or full name (ADR 0007)."""
    household = await _a_household_through_its_life(intake)
    decoded = await _its_events(intake, intake_stack, household)
    assert [type(m).__name__ for _, m in decoded] == EXPECTED_TYPES
    records = {
        r.header("ce_id"): r
        for r in await read_topic(intake_stack.kafka_bootstrap, TOPIC)
        if r.key == household.id.encode()
    }
    # One partition, so one consumer reads them in the order they happened.
    assert len({r.partition for r in records.values()}) == 1
    for envelope, message in decoded:
        record = records[str(envelope.ce_id)]
        assert RFC3339_MICROS.fullmatch(record.header("ce_time") or "")
        assert {name for name, _ in record.headers} >= CLOUDEVENTS_HEADERS
        assert record.header("ce_specversion") == "1.0"
        assert record.header("content-type") == "application/protobuf"
        assert envelope.ce_id.version == 7
        assert envelope.ce_type == ce_type_of(message)
        assert envelope.ce_source == "dibao/intake"
        assert envelope.ce_subject
        assert getattr(message, "household_id") == household.id  # noqa: B009
        for member in household.plan.members:
            assert member.id_number.encode() not in envelope.payload
            assert member.name.encode() not in envelope.payload


async def test_a_returned_applications_items_are_published_with_their_codes(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """ApplicationReturned's MissingItem says which item it is (code, ADR 0009, 3 Dec
    2026), the code the API answers: a consumer words it in its own labels, and tells two
    items of one document type apart."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    answer = (await intake.submit(body | {"document_ids": [], "incomes": []})).json()
    assert answer["status"] == "returned"
    [envelope] = await wait_for_events(intake_stack, TOPIC, 1, subject=answer["id"])
    message = REGISTRY.decode(envelope)
    assert isinstance(message, ev.ApplicationReturned)
    assert [intake_types.MissingItemCode.Name(i.code) for i in message.missing_items] == [
        f"MISSING_ITEM_CODE_{m['code'].upper()}" for m in answer["missing_items"]
    ]
    assert [i.description for i in message.missing_items] == [
        m["description"] for m in answer["missing_items"]
    ]


async def test_an_events_time_is_the_time_its_payload_says(
    ticking: IntakeClient, intake_stack: TestStack
) -> None:
    """ce_time and the payload's occurred_at are both "when it happened" (ADR 0002): one
    instant, read once, though the clock moves while the request runs. The application's
    events (Submitted, Accepted) happened at one instant too."""
    household = await _a_household_through_its_life(ticking)
    decoded = await _its_events(ticking, intake_stack, household)
    assert [type(m).__name__ for _, m in decoded] == EXPECTED_TYPES
    assert [e.ce_time for e, _ in decoded] == [_when(m) for _, m in decoded]
    submitted, accepted = decoded[2], decoded[3]
    assert submitted[0].ce_time == accepted[0].ce_time


async def test_the_submitted_snapshot_carries_what_assessment_computes_from(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """ApplicationSubmitted as assessment reads it (ADR 0007): the area type and region of
    the standard, each member's facts for the rules (counted or why not), every category
    of every declared income in fen, the assets, the account by token, the documents by
    reference; the accepted date follows in ApplicationAccepted."""
    household = await intake.register(intake.plan(shape="member_imprisoned"))
    body = await intake.complete_application_body(household)
    body["assets"] = [
        {"kind": "deposit", "value_fen": 1_234_500, "description": "活期存款"},
        {"kind": "housing", "value_fen": 0, "quantity": 1, "floor_area_m2": 60},
    ]
    response = await intake.submit(body)
    assert response.json()["status"] == "submitted", response.text
    found = await wait_for_events(intake_stack, TOPIC, 3, key=household.id)
    decoded = [REGISTRY.decode(e) for e in found]
    [submitted] = [m for m in decoded if isinstance(m, ev.ApplicationSubmitted)]
    [accepted] = [m for m in decoded if isinstance(m, ev.ApplicationAccepted)]
    [registered] = [m for m in decoded if isinstance(m, ev.HouseholdRegistered)]
    snapshot = submitted.household
    assert snapshot.region.code == household.plan.region_code
    assert snapshot.area_type == contracts.AREA_TYPES[household.plan.area_type]
    assert snapshot.version == registered.household.version == 1
    assert snapshot.head_person_id == household.person_ids[0]
    by_id = {m.person.person_id: m for m in snapshot.members}
    assert set(by_id) == set(household.person_ids)
    for person_id, planned in zip(household.person_ids, household.plan.members, strict=True):
        sent = by_id[person_id]
        assert sent.person.keyed_hash
        assert sent.person.hash_key_id
        assert sent.person.masked_id != planned.id_number
        assert contracts.local_date(planned.birth_date) == sent.birth_date
        assert sent.sex == contracts.SEXES[planned.sex]
        assert sent.relationship == contracts.RELATIONSHIPS[planned.relationship]
        assert sent.employment_status == contracts.EMPLOYMENT_STATUSES[planned.employment_status]
        assert sent.disability_grade == contracts.DISABILITY_GRADES[planned.disability_grade]
        assert (sent.seriously_ill, sent.student, sent.counted) == (
            planned.seriously_ill,
            planned.student,
            planned.counted,
        )
        if planned.exclusion_reason is None:
            assert sent.exclusion_reason == enums.EXCLUSION_REASON_UNSPECIFIED
        else:
            assert sent.exclusion_reason == contracts.EXCLUSION_REASONS[planned.exclusion_reason]
    assert any(not m.counted for m in snapshot.members)
    declared = {
        (i["person_id"], category): i.get(f"{category}_fen", 0)
        for i in body["incomes"]
        for category in ("wage", "operating", "property", "transfer", "other")
    }
    assert {
        (
            i.person_id,
            enums.IncomeCategory.Name(i.category).removeprefix("INCOME_CATEGORY_").lower(),
        ): (i.monthly_amount.fen)
        for i in submitted.incomes
    } == declared
    assert len(submitted.incomes) == len(declared)
    assert {i.period_months for i in submitted.incomes} == {6}
    assert [(a.kind, a.value.fen, a.quantity, a.floor_area_m2) for a in submitted.assets] == [
        (enums.ASSET_KIND_DEPOSIT, 1_234_500, 1, 0),
        (enums.ASSET_KIND_HOUSING, 0, 1, 60),
    ]
    assert submitted.bank_account.token_id
    assert submitted.bank_account.masked_number.endswith(household.plan.account_number[-4:])
    assert household.plan.account_number not in submitted.SerializeToString().decode(
        errors="replace"
    )
    assert sorted(d.document_id for d in submitted.documents) == sorted(body["document_ids"])
    assert all(len(d.sha256) == 64 for d in submitted.documents)
    assert submitted.application_id == accepted.application_id == response.json()["id"]
    assert accepted.accepted_on == contracts.local_date(date(2026, 3, 2))


async def test_every_event_the_demo_loader_produces_decodes_as_a_consumer_reads_it(
    tmp_path: Path,
) -> None:
    """``make up``'s loader, run on a database of its own: each event it causes on
    dibao.intake.v1 carries the headers, decodes to the type its ce_type names, is keyed
    by its household (a roster change by its township, its region) and carries no
    member's ID number or full name."""
    stack = await intake_database_of_its_own("demo_events")
    clock = FrozenClock(DEMO_DAY)
    settings = intake_settings_for(stack, tmp_path / "documents")
    token = TokenFactory().with_clock(clock.now)(
        roles=[Role.INTAKE_CLERK.value, Role.POLICY_ADMIN.value],
        regions=["620102", "620123"],
        subject=demo.SUBJECT,
    )
    with served(lambda: create_app(settings, clock=clock)) as app:
        loaded = await asyncio.to_thread(
            demo.load, app.base_url, token, tmp_path / "state", clock=clock
        )
    assert isinstance(loaded, demo.Loaded), loaded
    engine = make_engine(stack.database_url("intake"), pool_size=1)
    try:
        async with engine.connect() as conn:
            households = {str(h) for h in (await conn.scalars(text("SELECT id FROM household")))}
            townships = {
                str(t)
                for t in await conn.scalars(text("SELECT DISTINCT township_code FROM staff_member"))
            }
            outbox_left = await conn.scalar(text("SELECT count(*) FROM outbox_message"))
    finally:
        await engine.dispose()
    assert len(households) == loaded.households
    assert outbox_left == 0  # the relay had published everything when the app stopped
    found = [
        e
        for e in await events(stack, TOPIC)
        if e.key in households | townships and e.ce_time == DEMO_DAY
    ]
    _, plans = demo.plans()
    secrets = [s.encode() for p in plans for m in p.members for s in (m.id_number, m.name)]
    counts: dict[str, int] = {}
    for envelope in found:
        message = REGISTRY.decode(envelope)
        counts[type(message).__name__] = counts.get(type(message).__name__, 0) + 1
        assert envelope.ce_type == ce_type_of(message)
        assert (envelope.ce_source, envelope.content_type) == (
            "dibao/intake",
            "application/protobuf",
        )
        assert envelope.ce_subject
        assert envelope.actor == demo.SUBJECT
        assert _when(message) == envelope.ce_time
        if isinstance(message, ev.StaffRosterChanged):
            assert envelope.key == message.region.code[:9] + "000"
            assert envelope.key in townships
        else:
            assert envelope.key == getattr(message, "household_id")  # noqa: B009
        assert not [s for s in secrets if s in envelope.payload]
    assert counts == {
        "HouseholdRegistered": loaded.households,
        "ApplicationSubmitted": loaded.applications - loaded.returned,
        "ApplicationAccepted": loaded.applications - loaded.returned,
        "ApplicationReturned": loaded.returned,
        "StaffRosterChanged": 36,
    }


async def test_a_dissolution_and_the_withdrawal_it_causes_are_in_order_on_one_key(
    ticking: IntakeClient, intake_stack: TestStack
) -> None:
    """The death of a household's last member: HouseholdUpdated (dissolved, no members)
    then ApplicationWithdrawn (cause household_dissolved), on the household's key, in
    that order, each with ce_time its own occurred_at, the withdrawal not before the
    change."""
    household = await ticking.register(ticking.plan(shape="unemployed_single"))
    accepted = await ticking.submit(await ticking.complete_application_body(household))
    assert accepted.json()["status"] == "submitted", accepted.text
    await ticking.change(
        household,
        {"kind": "death", "person_id": household.person_ids[0], "date_of_death": "2026-02-20"},
    )
    found = await wait_for_events(intake_stack, TOPIC, 5, key=household.id)
    decoded = [(e, REGISTRY.decode(e)) for e in found]
    assert [type(m).__name__ for _, m in decoded] == [
        "HouseholdRegistered",
        "ApplicationSubmitted",
        "ApplicationAccepted",
        "HouseholdUpdated",
        "ApplicationWithdrawn",
    ]
    (_, update), (_, withdrawn) = decoded[3], decoded[4]
    assert isinstance(update, ev.HouseholdUpdated)
    assert isinstance(withdrawn, ev.ApplicationWithdrawn)
    assert update.WhichOneof("change") == "death"
    assert (update.household.dissolved, list(update.household.members)) == (True, [])
    assert update.household.head_person_id == ""
    assert withdrawn.cause == ev.WITHDRAWAL_CAUSE_HOUSEHOLD_DISSOLVED
    assert withdrawn.application_id == accepted.json()["id"]
    assert [e.ce_time for e, _ in decoded] == [_when(m) for _, m in decoded]
    assert _when(update) <= _when(withdrawn)


async def test_a_household_update_names_its_change_in_its_body(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """HouseholdUpdated's ce_subject is the change's id, the one POST /households/{id}/
    changes answers; ADR 0002 makes ce_subject optional, so the body names the change too
    (change_id, field 24): a consumer reading the body alone finds the change it is."""
    household = await intake.register(intake.plan(shape="single_parent"))
    birth = await intake.change(household, {"kind": "birth", "member": intake.newborn()})
    grade = await intake.change(
        household,
        {
            "kind": "member_change",
            "person_id": household.person_ids[0],
            "effective_on": "2026-02-27",
            "disability_grade": "3",
        },
    )
    found = await wait_for_events(intake_stack, TOPIC, 3, key=household.id)
    updates = [(e, REGISTRY.decode(e)) for e in found[1:]]
    assert birth["change_id"] != grade["change_id"]
    for (envelope, message), answered in zip(updates, (birth, grade), strict=True):
        assert isinstance(message, ev.HouseholdUpdated)
        assert message.change_id == envelope.ce_subject == answered["change_id"]
