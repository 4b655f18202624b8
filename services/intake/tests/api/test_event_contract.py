"""Intake's events as a downstream service consumes them: read back from the broker's
``dibao.intake.v1``, decoded with the generated classes, checked against ADR 0002
(CloudEvents headers, key, type), ADR 0005/0007 (no raw number or full name) and the
proto (each HouseholdUpdated says what changed)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.message import Message

from dibao_common.clock import FrozenClock
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.envelope import Envelope, EventRegistry, ce_type_of
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake.domain.codes import Sex
from dibao_intake.main import create_app
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import (
    CLOUDEVENTS_HEADERS,
    ISSUED_ID_NUMBERS,
    TEST_NOW,
    IntakeClient,
    RegisteredHousehold,
    intake_settings_for,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

TOPIC = "dibao.intake.v1"
REGISTRY = EventRegistry.default()


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
            f"{request.node.nodeid}-{uuid.uuid4()}", clock.today(), used=ISSUED_ID_NUMBERS
        )
        yield IntakeClient(http, TokenFactory().with_clock(clock.now), synthesizer)


def _newborn(intake: IntakeClient) -> dict[str, Any]:
    return {
        "name": "马小宝",
        "id_number": intake.synthesizer.id_number(date(2026, 1, 15), Sex.FEMALE),
        "relationship": "child",
        "employment_status": "not_of_working_age",
    }


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
    await intake.change(household, {"kind": "birth", "member": _newborn(intake)})
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
    for envelope, message in decoded:
        record = records[str(envelope.ce_id)]
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
