"""Which application an event is about, and what its timeline entry says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from dibao.access.v1 import events_pb2 as access
from dibao.assessment.v1 import events_pb2 as assessment
from dibao.assessment.v1 import types_pb2 as assessment_types
from dibao.audit.v1 import events_pb2 as audit
from dibao.common.v1 import enums_pb2 as enums
from dibao.common.v1 import types_pb2 as common
from dibao.intake.v1 import events_pb2 as intake
from dibao.intake.v1 import types_pb2 as intake_types
from dibao.payments.v1 import events_pb2 as payments
from dibao.payments.v1 import types_pb2 as payments_types
from dibao.publicity.v1 import events_pb2 as publicity
from dibao.publicity.v1 import types_pb2 as publicity_types
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.messaging.outbox import build_envelope
from dibao_intake.domain.codes import MissingItemCode
from dibao_intake.service_layer import timeline
from dibao_intake.service_layer.timeline import application_of, describe, hidden_fields

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
    assert application_of(anomaly) == APPLICATION  # published before 1 Dec 2026: subject alone
    anomaly.application_id = str(APPLICATION)  # since: both (the log's column reads the field)
    assert application_of(anomaly) == APPLICATION
    anomaly.ClearField("subject")
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
    assert details == {}  # the reason in words is on the application, not in its timeline
    returned = intake.ApplicationReturned(
        application_id=str(APPLICATION),
        missing_items=[
            intake_types.MissingItem(
                description="the household register",
                code=intake_types.MISSING_ITEM_CODE_HOUSEHOLD_REGISTER,
            )
        ],
    )
    assert _describe(returned) == (
        "Application returned: 1 item(s) missing",
        {"missing_items": ["the household register"], "missing_item_codes": ["household_register"]},
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
    # Published before 3 Dec 2026: no code (UNSPECIFIED), null beside each description.
    assert _describe(returned)[1] == {
        "missing_items": ["a", "b"],
        "missing_item_codes": [None, None],
    }


def test_a_returned_entry_gives_each_missing_items_code_beside_its_description() -> None:
    """The entry listed descriptions alone (English words), though the event names each
    item by code since 3 Dec 2026 (febdd74): a portal could not word them in its own
    labels. Each code is now beside its description, in the same order; a code this
    intake does not know reads as its number, as the JSON mapping writes it."""
    codes = [
        intake_types.MISSING_ITEM_CODE_WAGE_PROOF,
        intake_types.MISSING_ITEM_CODE_UNSPECIFIED,
        intake_types.MISSING_ITEM_CODE_NO_PAY_PROOF,
        intake_types.MissingItemCode.ValueType(999),  # a code of a later contract
    ]
    returned = intake.ApplicationReturned(
        application_id=str(APPLICATION),
        missing_items=[
            intake_types.MissingItem(
                description=f"item {n}", document_type=enums.DOCUMENT_TYPE_INCOME_PROOF, code=c
            )
            for n, c in enumerate(codes)
        ],
    )
    summary, details = _describe(returned)
    assert summary == "Application returned: 4 item(s) missing"
    assert details == {
        "missing_items": ["item 0", "item 1", "item 2", "item 3"],
        "missing_item_codes": ["wage_proof", None, "no_pay_proof", 999],
    }
    # Every code the contract has reads as the API's word for it (MissingItemCode).
    for value in intake_types.MissingItemCode.values():
        item = intake_types.MissingItem(description="x", code=value)
        read = _describe(intake.ApplicationReturned(missing_items=[item]))[1]
        assert isinstance(read["missing_item_codes"], list)
        [code] = read["missing_item_codes"]
        if value == intake_types.MISSING_ITEM_CODE_UNSPECIFIED:
            assert code is None
        else:
            assert MissingItemCode(code).value == code


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


WORDS = "王芳说邻居张伟在外打工，收入没有申报"  # free text naming people, as a clerk writes it
ON = common.LocalDate(year=2026, month=3, day=2)


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (
            assessment.InvestigationRecorded(
                application_id=str(APPLICATION), visited_on=ON, form_signed=True, findings=WORDS
            ),
            {"visited_on": "2026-03-02", "form_signed": True},
        ),
        (
            publicity.ObjectionRaised(
                application_id=str(APPLICATION),
                objection_id="o-1",
                ground=publicity_types.OBJECTION_GROUND_CONCEALED_INCOME,
                channel=publicity_types.OBJECTION_CHANNEL_PHONE,
                summary=WORDS,
            ),
            {"objection_id": "o-1", "ground": "concealed_income", "channel": "phone"},
        ),
        (
            publicity.ObjectionResolved(
                application_id=str(APPLICATION),
                outcome=publicity_types.OBJECTION_OUTCOME_UPHELD,
                resolved_on=ON,
                resolution=WORDS,
            ),
            {"outcome": "upheld", "resolved_on": "2026-03-02"},
        ),
        (
            assessment.AssessmentCompleted(
                application_id=str(APPLICATION),
                eligible=True,
                amount=common.Money(fen=52000),
                explanation=WORDS,
            ),
            {"eligible": True, "amount_fen": 52000},
        ),
        (
            assessment.DemocraticEvaluationRecorded(
                application_id=str(APPLICATION),
                result=assessment_types.EVALUATION_RESULT_SUPPORTED,
                votes_for=9,
                note=WORDS,
            ),
            {"result": "supported", "votes_for": 9},
        ),
        (
            assessment.TownshipReviewCompleted(
                application_id=str(APPLICATION),
                opinion=assessment_types.TOWNSHIP_OPINION_AGREED,
                proposed_amount=common.Money(fen=40000),
                comment=WORDS,
            ),
            {"opinion": "agreed", "proposed_amount_fen": 40000},
        ),
        (
            assessment.CaseDeadlineExtended(
                application_id=str(APPLICATION), new_due_on=ON, reason=WORDS
            ),
            {"new_due_on": "2026-03-02"},
        ),
        (
            assessment.CaseReturnedToInvestigation(
                application_id=str(APPLICATION), objection_id="o-1", reason=WORDS
            ),
            {"objection_id": "o-1"},
        ),
        (
            assessment.OneOffAssistanceApproved(
                application_id=str(APPLICATION), amount=common.Money(fen=100000), reason=WORDS
            ),
            {"amount_fen": 100000},
        ),
        (
            intake.ApplicationWithdrawn(application_id=str(APPLICATION), reason=WORDS),
            {},
        ),
        (
            audit.AnomalyDetected(
                rule="deadline_overrun",
                severity=audit.SEVERITY_WARNING,
                subject=audit.Subject(kind="application", id=str(APPLICATION)),
                details=WORDS,
            ),
            {"rule": "deadline_overrun", "severity": "warning"},
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Message) else "",
)
def test_words_written_by_someone_stay_out_of_the_timeline(
    message: Message, kept: dict[str, object]
) -> None:
    """Findings, what an objection says, resolutions, explanations, notes, comments and
    reasons in words may name or describe people, and every role reads a timeline: the
    entry keeps the structured facts and leaves the words out."""
    assert _describe(message)[1] == kept


def test_coded_reasons_stay_in_the_timeline() -> None:
    """A reason that is a code says nothing about a person beyond the decision itself."""
    suspended = assessment.HouseholdSuspended(
        reason=assessment_types.SUSPENSION_REASON_UNDER_INVESTIGATION
    )
    assert _describe(suspended)[1] == {"reason": "under_investigation"}
    cancelled = payments.PaymentCancelled(
        payment_id="p-1", reason=payments_types.CANCELLATION_REASON_AMOUNT_CHANGED, note=WORDS
    )
    assert _describe(cancelled)[1] == {"payment_id": "p-1", "reason": "amount_changed"}


# Every text field of an event the timeline takes that its entries show: identifiers,
# token subjects, versions and digests, stable codes. Anything else is left out.
SHOWN_TEXT = {
    "anomaly_id",
    "applicant_person_id",
    "assessment_id",
    "assigned_caseworker",
    "case_id",
    "completes_application_id",
    "entitlement_id",
    "event_ids",
    "grant_id",
    "individual_inclusion_person_id",
    "inputs_sha256",
    "investigation_id",
    "investigators",
    "notice_id",
    "objection_id",
    "policy_version",
    "request_id",
    "review_id",
    "rule",
}


def test_every_text_field_of_a_timeline_event_is_decided() -> None:
    """A text field added to an event the timeline takes must be decided on: left out (free
    text) or listed here as shown (an identifier or a code). Until then this fails."""
    undecided: list[str] = []
    for module in (intake, assessment, publicity, payments, audit):
        for name in module.DESCRIPTOR.message_types_by_name:
            message: Message = getattr(module, name)()
            descriptor = message.DESCRIPTOR
            if "application_id" not in descriptor.fields_by_name and name != "AnomalyDetected":
                continue  # never an entry
            hidden = hidden_fields(message)
            undecided += [
                f"{descriptor.full_name}.{f.name}"
                for f in descriptor.fields
                if f.type == FieldDescriptor.TYPE_STRING
                and f.name not in hidden
                and f.name not in SHOWN_TEXT
            ]
    assert undecided == []


def test_an_amount_of_nothing_reads_as_zero_fen() -> None:
    """A Money of 0 fen (an ineligible household's base amount, a household without
    income) converts to an empty dict, which read as a date: "0001-01-01"."""
    completed = assessment.AssessmentCompleted(
        application_id=str(APPLICATION),
        household_income=common.Money(fen=0),
        base_amount=common.Money(),
        amount=common.Money(fen=12300),
    )
    details = _describe(completed)[1]
    assert details["household_income_fen"] == 0
    assert details["base_amount_fen"] == 0
    assert details["amount_fen"] == 12300
    assert "0001-01-01" not in details.values()
    assert "household_income" not in details
    assert "base_amount" not in details


def _timeline_types() -> list[type[Message]]:
    registry = EventRegistry.default()
    found = [registry.message_class(t) for t in registry.types()]
    return [
        c
        for c in found
        if c is not None
        and (
            "application_id" in c.DESCRIPTOR.fields_by_name
            or c.DESCRIPTOR.name == "AnomalyDetected"
        )
    ]


def _filled(cls: type[Message], variant: int) -> Message:
    """An event with every field set, differently for each variant (0 sets the defaults a
    field may still carry: a Money of 0, an empty date)."""
    message = cls()
    for field in cls.DESCRIPTOR.fields:
        target = getattr(message, field.name)
        if field.is_repeated:
            if field.message_type is None:
                target.append(_scalar(field, variant))
            elif not field.message_type.GetOptions().map_entry:
                target.add()
            continue
        if field.message_type is None:
            setattr(message, field.name, _scalar(field, variant))
            continue
        target.SetInParent()
        kind = field.message_type.full_name
        if kind == "dibao.common.v1.Month":
            target.year, target.month = 2026, variant % 12 + (variant > 0)
        elif kind == "dibao.common.v1.LocalDate" and variant:
            target.year, target.month, target.day = 2026, 3, variant % 28
        elif kind == "dibao.common.v1.Money":
            target.fen = variant * 12_345
        elif kind == "google.protobuf.Timestamp":
            target.FromDatetime(datetime(2026, 3, 2, 8, 30, variant, 1000 * variant, tzinfo=UTC))
    return message


def _scalar(field: FieldDescriptor, variant: int) -> object:
    if field.enum_type is not None:
        numbers = [v.number for v in field.enum_type.values]
        return 999 if variant == 3 else numbers[variant % len(numbers)]
    if field.type == FieldDescriptor.TYPE_STRING:
        return "文" * (60 * variant)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return variant % 2 == 1
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(variant)
    if (
        field.cpp_type == FieldDescriptor.CPPTYPE_DOUBLE
        or field.cpp_type == FieldDescriptor.CPPTYPE_FLOAT
    ):
        return variant / 3
    return variant * 7


@pytest.mark.parametrize("cls", _timeline_types(), ids=lambda c: c.DESCRIPTOR.name)
def test_an_entry_reads_as_the_json_mapping_of_its_event(cls: type[Message]) -> None:
    """Entries read an event's fields directly (a third of the JSON mapping's cost); what
    they say is what the JSON mapping's path says, for every field of every event type
    the timeline takes, set to defaults, to long text, to an enum number no one knows."""
    for variant in range(5):
        message = _filled(cls, variant)
        envelope = build_envelope(
            message, key="h", source="test", time=datetime(2026, 3, 2, tzinfo=UTC)
        )
        assert describe(envelope, message) == timeline._described_from_dict(message), variant


def _household_updated(**change: Message) -> intake.HouseholdUpdated:
    update = intake.HouseholdUpdated(household_id="h", note="她走得很安详")
    for name, value in change.items():
        getattr(update, name).SetInParent()  # an empty change is a change too
        getattr(update, name).CopyFrom(value)
    return update


def test_a_household_change_reads_as_its_kind_with_ids_dates_and_flags_only() -> None:
    """A household change in an open application's timeline: what kind, and of what
    changed only ids, dates and flags; no member's record (a name, a masked ID number),
    no custodian, no note."""
    person = str(uuid.uuid4())
    died = _household_updated(
        death=intake.HouseholdUpdated.Death(
            person_id=person,
            date_of_death=common.LocalDate(year=2026, month=2, day=20),
            death_certificate=common.DocumentRef(document_id="d1"),
        )
    )
    assert _describe(died) == (
        "Household updated: death",
        {"change": "death", "person_id": person, "date_of_death": "2026-02-20"},
    )
    member = intake_types.Member(
        person=common.PersonRef(person_id=person, masked_name="罗*敏", masked_id="6201")
    )
    moved = _household_updated(
        move_in=intake.HouseholdUpdated.MoveIn(
            member=member,
            moved_on=common.LocalDate(year=2026, month=3, day=1),
            from_household_id="h0",
        )
    )
    assert _describe(moved) == (
        "Household updated: move in",
        {"change": "move_in", "moved_on": "2026-03-01", "from_household_id": "h0"},
    )
    account = _household_updated(
        bank_account_change=intake.HouseholdUpdated.BankAccountChange(
            custody_agreement=True, custodian_subject="cw-xiaguanying-01"
        )
    )
    assert _describe(account) == (
        "Household updated: bank account change",
        {"change": "bank_account_change", "custody_agreement": True},
    )
    assert _describe(_household_updated()) == ("Household updated", {})


def test_a_member_change_reads_as_whose_details_changed_and_no_more() -> None:
    """The member as now recorded is a disability grade, an illness, an employment status
    and an exclusion: the timeline names the member by their person id alone."""
    person = str(uuid.uuid4())
    member = intake_types.Member(
        person=common.PersonRef(person_id=person, masked_name="罗*敏", masked_id="6201"),
        birth_date=common.LocalDate(year=1970, month=9, day=14),
        disability_grade=enums.DISABILITY_GRADE_2,
        seriously_ill=True,
        employment_status=enums.EMPLOYMENT_STATUS_UNABLE_TO_WORK,
        student=False,
        counted=False,
        exclusion_reason=enums.EXCLUSION_REASON_IMPRISONED,
        exclusion_note="服刑",
    )
    changed = _household_updated(member_change=intake.HouseholdUpdated.MemberChange(member=member))
    assert _describe(changed) == (
        "Household updated: member change",
        {"change": "member_change", "person_id": person},
    )
    # The day it took effect is a date, as a death's is.
    changed.member_change.effective_on.CopyFrom(common.LocalDate(year=2026, month=2, day=10))
    assert _describe(changed) == (
        "Household updated: member change",
        {"change": "member_change", "effective_on": "2026-02-10", "person_id": person},
    )


def test_a_household_move_reads_as_where_from_and_where_to_by_division_code() -> None:
    moved = _household_updated(
        address_change=intake.HouseholdUpdated.AddressChange(
            previous_region=common.RegionCode(code="620123101203"),
            area_type=enums.AREA_TYPE_RURAL,
        )
    )
    moved.region.code = "620123102201"
    assert _describe(moved) == (
        "Household updated: address change",
        {
            "change": "address_change",
            "previous_region": "620123101203",
            "region": "620123102201",
        },
    )


def test_a_divorce_reads_as_both_partners_by_person_id_and_its_date() -> None:
    """A divorce in the timeline: the partner whose relationship stays and the former
    spouse by person id, the day; not the former spouse's record (a masked name, a
    masked ID number, counted or not). A spouse living elsewhere is named by nobody."""
    person, former = str(uuid.uuid4()), str(uuid.uuid4())
    divorced = _household_updated(
        divorce=intake.HouseholdUpdated.Divorce(
            person_id=person,
            divorced_on=common.LocalDate(year=2026, month=3, day=2),
            former_spouse=intake_types.Member(
                person=common.PersonRef(person_id=former, masked_name="杨*兰", masked_id="6201"),
                relationship=enums.RELATIONSHIP_OTHER,
                counted=True,
            ),
        )
    )
    assert _describe(divorced) == (
        "Household updated: divorce",
        {
            "change": "divorce",
            "person_id": person,
            "divorced_on": "2026-03-02",
            "former_spouse_person_id": former,
        },
    )
    divorced.divorce.ClearField("former_spouse")
    assert _describe(divorced) == (
        "Household updated: divorce",
        {"change": "divorce", "person_id": person, "divorced_on": "2026-03-02"},
    )


def test_a_household_change_enters_each_open_application_s_timeline() -> None:
    """An event about the household and no application enters the timelines of the
    household's open applications, one entry each; an event naming its application enters
    that one alone."""
    first, second = uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 3, 2, tzinfo=UTC)
    change = _household_updated(birth=intake.HouseholdUpdated.Birth())
    withdrawn = intake.ApplicationWithdrawn(application_id=str(APPLICATION))
    events = [(build_envelope(m, key="h", source="test", time=at), m) for m in (change, withdrawn)]
    entries = timeline.entries_of(events, open_applications=[first, second])
    assert [(a, e.summary) for a, e in entries] == [
        (first, "Household updated: birth"),
        (second, "Household updated: birth"),
        (APPLICATION, "Application withdrawn"),
    ]
    assert entries[0][1] is entries[1][1]
    assert [a for a, _ in timeline.entries_of(events)] == [APPLICATION]


def test_an_access_record_enters_no_timeline() -> None:
    """A read of an application names it (``PersonalDataAccessed.application_id``, for the
    audit log's query by application) and of a household names the household, but a read
    is no step of the case: no entry, in the application's timeline or an open one's."""
    at = datetime(2026, 3, 2, tzinfo=UTC)
    reads = [
        access.PersonalDataAccessed(
            household_id="h",
            record_type=access.RECORD_TYPE_APPLICATION,
            record_id=str(APPLICATION),
            application_id=str(APPLICATION),
        ),
        access.PersonalDataAccessed(household_id="h", record_type=access.RECORD_TYPE_HOUSEHOLD),
    ]
    assert application_of(reads[0]) == APPLICATION
    events = [(build_envelope(m, key="h", source="test", time=at), m) for m in reads]
    assert timeline.entries_of(events, open_applications=[uuid.uuid4()]) == []
