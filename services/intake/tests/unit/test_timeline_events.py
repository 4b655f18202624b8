"""Which application an event is about, and what its timeline entry says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message

from dibao.assessment.v1 import events_pb2 as assessment
from dibao.audit.v1 import events_pb2 as audit
from dibao.common.v1 import enums_pb2 as enums
from dibao.common.v1 import types_pb2 as common
from dibao.intake.v1 import events_pb2 as intake
from dibao.intake.v1 import types_pb2 as intake_types
from dibao_common.messaging.outbox import build_envelope
from dibao_intake.service_layer.timeline import application_of, describe

APPLICATION = uuid.uuid4()


def _describe(message: Message) -> tuple[str, dict[str, object]]:
    envelope = build_envelope(
        message, key="h", source="test", time=datetime(2026, 3, 2, tzinfo=UTC)
    )
    return describe(envelope, message)


def test_events_name_their_application_by_field_or_audit_subject() -> None:
    assert (
        application_of(intake.ApplicationWithdrawn(application_id=str(APPLICATION))) == APPLICATION
    )
    assert application_of(assessment.CaseOpened(application_id=str(APPLICATION))) == APPLICATION
    anomaly = audit.AnomalyDetected(subject=audit.Subject(kind="application", id=str(APPLICATION)))
    assert application_of(anomaly) == APPLICATION
    assert (
        application_of(audit.AnomalyDetected(subject=audit.Subject(kind="payment", id="p1")))
        is None
    )
    assert application_of(intake.HouseholdRegistered(household_id="h")) is None
    assert application_of(intake.ApplicationWithdrawn(application_id="not-a-uuid")) is None


def test_summaries_are_plain_words_and_details_stay_small_and_impersonal() -> None:
    summary, details = _describe(
        intake.ApplicationWithdrawn(application_id=str(APPLICATION), reason="工作了")
    )
    assert summary == "Application withdrawn"
    assert details == {"reason": "工作了"}
    returned = intake.ApplicationReturned(
        application_id=str(APPLICATION),
        missing_items=[intake_types.MissingItem(description="the household register")],
    )
    assert _describe(returned) == (
        "Application returned: 1 item(s) missing",
        {"missing_items": ["the household register"]},
    )
    submitted = intake.ApplicationSubmitted(
        application_id=str(APPLICATION), statement="private story", staff_relation_note="x is y"
    )
    assert _describe(submitted)[1] == {}


def test_enums_dates_and_money_read_plainly() -> None:
    submitted = intake.ApplicationSubmitted(
        application_id=str(APPLICATION),
        kind=enums.APPLICATION_KIND_HEATING,
        requested_amount=common.Money(fen=30000),
    )
    assert _describe(submitted)[1] == {"kind": "heating", "requested_amount_fen": 30000}
    accepted = intake.ApplicationAccepted(
        application_id=str(APPLICATION), accepted_on=common.LocalDate(year=2026, month=3, day=2)
    )
    assert _describe(accepted)[1] == {"accepted_on": "2026-03-02"}


def test_a_full_submission_shows_only_its_plain_fields() -> None:
    """The snapshot, the declarations and the free text are left out; repeated, message
    and scalar fields that may be shown are kept as they were."""
    submitted = intake.ApplicationSubmitted(
        household_id="h",
        application_id=str(APPLICATION),
        kind=enums.APPLICATION_KIND_DIBAO,
        applicant_person_id="p-1",
        household=intake_types.HouseholdSnapshot(household_id="h"),
        incomes=[intake_types.DeclaredIncome(person_id="p-1")],
        documents=[common.DocumentRef(document_id="d-1")],
        staff_related=True,
        staff_relation_note="x is y",
        assigned_caseworker="cw-1",
        statement="private story",
        requested_amount=common.Money(fen=100),
    )
    assert _describe(submitted) == (
        "Application submitted",
        {
            "kind": "dibao",
            "applicant_person_id": "p-1",
            "staff_related": True,
            "assigned_caseworker": "cw-1",
            "requested_amount_fen": 100,
        },
    )
    returned = intake.ApplicationReturned(
        application_id=str(APPLICATION),
        actor=common.Actor(subject="clerk"),
        missing_items=[intake_types.MissingItem(description=d) for d in ("a", "b")],
    )
    assert _describe(returned)[1] == {"missing_items": ["a", "b"]}


def test_months_read_as_months() -> None:
    """Months are ``YYYY-MM`` (a month has no day): payment from April 2026 is not
    payment from 1 April 2026."""
    approved = assessment.BenefitApproved(
        application_id=str(APPLICATION),
        decided_on=common.LocalDate(year=2026, month=3, day=20),
        first_payable_month=common.Month(year=2026, month=4),
        amount=common.Money(fen=52000),
    )
    assert _describe(approved) == (
        "Benefit approved",
        {"decided_on": "2026-03-20", "first_payable_month": "2026-04", "amount_fen": 52000},
    )
