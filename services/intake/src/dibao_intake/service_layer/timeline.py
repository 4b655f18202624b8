"""Each application's timeline, built from every service's events about it.

Intake's own events enter it in the transaction that publishes them
(:mod:`dibao_intake.service_layer.events`); the consumer reads the other services' topics
(audit's today, assessment's, publicity's and payments' as those services publish). Each
application keeps one entry per event: when, what, who, and a few non-personal details.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from dibao.intake.v1 import events_pb2 as ev
from dibao.intake.v1 import types_pb2 as intake
from dibao_common.clock import Clock
from dibao_common.messaging.envelope import Envelope
from dibao_common.observability import get_logger
from dibao_intake.adapters.records import TimelineRecord
from dibao_intake.adapters.repositories import applications as repo
from dibao_intake.domain.decisions import OUTCOMES, decision_of

log = get_logger(__name__)

DECISIONS_AFTER_WITHDRAWAL = Counter(
    "dibao_intake_decisions_after_withdrawal_total",
    "Decisions that reached an application already withdrawn (entered in its timeline as"
    " such, deciding nothing): the county holds a decision on a withdrawn case and should"
    " look. Counted as the timeline consumer applies them (a fetch redone after a failure"
    " may count one again)",
    ["ce_type"],
)

UNKNOWN_APPLICATIONS = Counter(
    "dibao_intake_timeline_unknown_applications_total",
    "Events of other services about an application this intake does not have: consumed,"
    " entered in no timeline, logged (WARNING, event and application ids). Intake publishes"
    " an application before anyone else can know it, so each one is an incident: an event"
    " with a wrong id, from another deployment, or a database restored from an older backup",
    ["ce_type"],
)

CONSUMER_NAME = "intake.timeline"
# Decisions taken elsewhere: the application is no longer open, nor can it be withdrawn;
# each type's outcome is kept with it (domain.decisions, ADR 0023).
DECIDED_TYPES = frozenset(OUTCOMES)
# Where the timeline consumer puts events it cannot apply (intake's dead letters).
DLQ_TOPIC = "dibao.intake.dlq"

# Top-level fields never copied into a timeline entry: large, personal, or already shown.
_SKIPPED = frozenset(
    {
        "household_id",
        "application_id",
        "region",
        "occurred_at",
        "actor",
        "household",
        "incomes",
        "assets",
        "documents",
        "bank_account",
        "persons",
    }
)
# Text fields written in words by someone, never copied either (ADR 0009): a finding of a
# home visit, what an objection says (it may identify the objector), its resolution, an
# explanation, a note, a comment, a reason given in words, the applicant's statement.
# Any of them may name or describe a person, and every reader role sees a timeline. Only
# string fields are left out by these names: a coded reason (an enum, an audit rule) stays.
_FREE_TEXT = frozenset(
    {
        "comment",
        "details",
        "explanation",
        "findings",
        "note",
        "reason",
        "resolution",
        "staff_relation_note",
        "statement",
        "summary",
    }
)
_HIDDEN: dict[str, frozenset[str]] = {}
_MAX_TEXT = 200


NOT_IN_TIMELINE = frozenset({"dibao.access.v1.PersonalDataAccessed"})
"""Event types no timeline shows: an access record names the application read (so an
audit query by application finds who read it), but a read is no step of the case, and a
timeline of every GET would bury the steps."""


def application_of(message: Message) -> uuid.UUID | None:
    """The application an event is about, if any."""
    fields = message.DESCRIPTOR.fields_by_name
    raw = ""
    if "application_id" in fields:
        raw = getattr(message, "application_id")  # noqa: B009 - read by descriptor
    if not raw and "subject" in fields:
        # audit's AnomalyDetected: its subject names the application (and, since 1 Dec
        # 2026, application_id too; one published before has the subject alone).
        subject = getattr(message, "subject")  # noqa: B009
        if getattr(subject, "kind", "") == "application":
            raw = subject.id
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def hidden_fields(message: Message) -> frozenset[str]:
    """The top-level fields of an event's type that its timeline entries leave out."""
    descriptor = message.DESCRIPTOR
    found = _HIDDEN.get(descriptor.full_name)
    if found is None:
        found = frozenset(
            f.name
            for f in descriptor.fields
            if f.name in _SKIPPED
            or (f.name in _FREE_TEXT and f.type == FieldDescriptor.TYPE_STRING)
        )
        _HIDDEN[descriptor.full_name] = found
    return found


def _words(name: str) -> str:
    spaced = re.sub(r"(?<!^)(?=[A-Z])", " ", name)
    return spaced[:1] + spaced[1:].lower()


def event_words(ce_type: str) -> str:
    """An event type in words: ``dibao.intake.ApplicationReturned.v1`` -> ``Application
    returned`` (the limited view's summary, which names no item and no rule)."""
    parts = ce_type.split(".")
    return _words(parts[-2] if len(parts) >= 2 else ce_type)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[: _MAX_TEXT - 1] + "…"
    return value


def describe(envelope: Envelope, message: Message) -> tuple[str, dict[str, Any]]:
    """A one-line summary and a few details of an event, without personal data or free text
    (enums in words, dates as ``YYYY-MM-DD``, months as ``YYYY-MM``, money in fen)."""
    name = message.DESCRIPTOR.name
    if name == "HouseholdUpdated":
        return _described_household_change(message)
    plan = _plan(message)
    if plan is None:
        return _described_from_dict(message)
    details: dict[str, Any] = {}
    for field, value in message.ListFields():
        kind = plan.get(field.name)
        if kind is None:
            continue
        key = field.name
        if kind == "enum":
            known = field.enum_type.values_by_number.get(value)
            # An unknown number reads as the number, as the JSON mapping writes it.
            details[key] = (
                value
                if known is None
                else known.name.removeprefix(_enum_prefix(field.enum_type.name)).lower()
            )
        elif kind == _MONTH:
            details[key] = f"{value.year:04d}-{value.month:02d}"
        elif kind == _DATE:
            details[key] = date(value.year or 1, value.month or 1, value.day or 1).isoformat()
        elif kind == _MONEY:
            details[f"{key}_fen"] = int(value.fen)
        elif kind == _TIMESTAMP:
            details[key] = value.ToJsonString()
        else:
            details[key] = _short(value)
    return _words(name), details


def _described_household_change(message: Message) -> tuple[str, dict[str, Any]]:
    """A household change, as the timelines of the household's open applications show it:
    its kind in words, and of what changed only ids, dates and flags (a member joining is
    named by nothing: the record of a person is the household's; a note is words; a
    member's changed details by the member's person id)."""
    change = message.WhichOneof("change")
    if change is None:
        return "Household updated", {}
    details: dict[str, Any] = {"change": change}
    for field, value in getattr(message, change).ListFields():
        kind = field.message_type.full_name if field.message_type is not None else None
        if kind == _DATE:
            details[field.name] = date(value.year, value.month, value.day).isoformat()
        elif kind is None and (
            field.type == FieldDescriptor.TYPE_BOOL or field.name.endswith("_id")
        ):
            details[field.name] = value
    if isinstance(message, ev.HouseholdUpdated) and change == "member_change":
        # The member as now recorded is health, disability, employment, exclusion: whose
        # details changed is named by the person id alone.
        details["person_id"] = message.member_change.member.person.person_id
    if isinstance(message, ev.HouseholdUpdated) and change == "divorce":
        # Both partners by person id: the former spouse's record is the household's.
        former = message.divorce.former_spouse.person.person_id
        if former:
            details["former_spouse_person_id"] = former
    if isinstance(message, ev.HouseholdUpdated) and change == "address_change":
        # Where from and where to, by division code; the address itself is the household's.
        details["previous_region"] = message.address_change.previous_region.code
        details["region"] = message.region.code
    return f"Household updated: {change.replace('_', ' ')}", details


_MONTH, _DATE, _MONEY = (f"dibao.common.v1.{t}" for t in ("Month", "LocalDate", "Money"))
_TIMESTAMP = "google.protobuf.Timestamp"
_SCALARS = frozenset(
    {FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_INT32}
)
_PLANS: dict[str, dict[str, str] | None] = {}


def _plan(message: Message) -> dict[str, str] | None:
    """How each field an entry may show reads, by name (fields left out have none); None
    for a type read from its JSON mapping instead (a list to summarise, an anomaly, or a
    field whose JSON form this does not write: 64-bit integers, floats, bytes, other
    well-known types). Reading the fields directly costs a third of the JSON mapping
    (ApplicationSubmitted: 19 µs against 61)."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in _PLANS:
        return _PLANS[descriptor.full_name]
    plan: dict[str, str] | None = {}
    hidden = hidden_fields(message)
    if descriptor.name in ("ApplicationReturned", "AnomalyDetected"):
        plan = None
    for field in descriptor.fields:
        if plan is None:
            break
        if field.name in hidden or field.is_repeated:
            continue  # a list reads as nothing, as in the JSON mapping's path
        if field.enum_type is not None:
            plan[field.name] = "enum"
        elif field.message_type is not None:
            full = field.message_type.full_name
            if full in (_MONTH, _DATE, _MONEY, _TIMESTAMP):
                plan[field.name] = full
            elif full.startswith("google.protobuf."):
                plan = None  # a wrapper or Duration reads as a scalar in JSON
            # Any other message reads as nothing.
        elif field.type in _SCALARS:
            plan[field.name] = "scalar"
        else:
            plan = None
    _PLANS[descriptor.full_name] = plan
    return plan


def _described_from_dict(message: Message) -> tuple[str, dict[str, Any]]:
    """``describe`` from an event's JSON mapping: the path for the types ``_plan`` does not
    read directly."""
    if isinstance(message, ev.ApplicationReturned):
        items = message.missing_items
        missing = {
            # The descriptions as before; the codes beside them, one an item in the same
            # order, for a reader to word them in its own labels (ADR 0009, 3 Dec 2026).
            "missing_items": [i.description for i in items],
            "missing_item_codes": [_missing_item_code(i.code) for i in items],
        }
        return f"Application returned: {len(items)} item(s) missing", missing
    name = message.DESCRIPTOR.name
    data = MessageToDict(_without_skipped(message), preserving_proto_field_name=True)
    enums = {
        f.name: _enum_prefix(f.enum_type.name)
        for f in message.DESCRIPTOR.fields
        if f.enum_type is not None
    }
    if name == "AnomalyDetected":
        # The rule is a stable code; the details are words (left out, as free text is).
        # The severity reads as every other enum here does (``warning``).
        coded: dict[str, Any] = {
            k: data[k].removeprefix(enums[k]).lower()
            if k in enums and isinstance(data[k], str)
            else _short(data[k])
            for k in ("rule", "severity")
            if k in data
        }
        return f"Anomaly detected: {data.get('rule', '')}", coded
    # By the field's type, not the dict's keys: a Money of 0 fen converts to {}, as an
    # empty date does (it read as "0001-01-01").
    kinds = {
        f.name: f.message_type.full_name
        for f in message.DESCRIPTOR.fields
        if f.message_type is not None
    }
    details: dict[str, Any] = {}
    for key, value in data.items():
        kind = kinds.get(key)
        if key in enums and isinstance(value, str):
            details[key] = value.removeprefix(enums[key]).lower()
        elif kind == _MONTH and isinstance(value, dict):
            details[key] = f"{value.get('year', 0):04d}-{value.get('month', 0):02d}"
        elif kind == _DATE and isinstance(value, dict):
            details[key] = date(
                value.get("year", 1), value.get("month", 1), value.get("day", 1)
            ).isoformat()
        elif kind == _MONEY and isinstance(value, dict):
            details[f"{key}_fen"] = int(value.get("fen", 0))
        elif not isinstance(value, dict | list):
            details[key] = _short(value)
    return _words(name), details


def _without_skipped(message: Message) -> Message:
    """A copy of the fields a timeline may show: converting an application's household
    snapshot to a dict, only to drop it, was most of a timeline entry's cost (and copying
    it, to clear it from the copy, the most of what remained)."""
    hidden = hidden_fields(message)
    present = message.ListFields()
    if all(field.name not in hidden for field, _ in present):
        return message
    slim = type(message)()
    for field, value in present:
        if field.name in hidden:
            continue
        target = getattr(slim, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target.update(value)
        elif field.is_repeated:
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(slim, field.name, value)
    return slim


def _enum_prefix(enum_name: str) -> str:
    """``ApplicationKind`` -> ``APPLICATION_KIND_``, the prefix of its constants."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


_MISSING_ITEM_PREFIX = _enum_prefix("MissingItemCode")


def _missing_item_code(code: int) -> str | int | None:
    """A missing item's code as the API answers it (``id_card``); None for an event
    published before the code was (UNSPECIFIED); a number this intake does not know as the
    number, as the JSON mapping writes it."""
    if code == intake.MISSING_ITEM_CODE_UNSPECIFIED:
        return None
    known = intake.MissingItemCode.DESCRIPTOR.values_by_number.get(code)
    return code if known is None else known.name.removeprefix(_MISSING_ITEM_PREFIX).lower()


def _occurred_at(envelope: Envelope, message: Message) -> Any:
    if "occurred_at" in message.DESCRIPTOR.fields_by_name and message.HasField("occurred_at"):
        stamp = getattr(message, "occurred_at")  # noqa: B009
        assert isinstance(stamp, Timestamp)
        return stamp.ToDatetime(tzinfo=envelope.ce_time.tzinfo)
    return envelope.ce_time


def _actor(envelope: Envelope, message: Message) -> str | None:
    if "actor" in message.DESCRIPTOR.fields_by_name and message.HasField("actor"):
        subject = getattr(message, "actor").subject  # noqa: B009
        return str(subject) or envelope.actor
    return envelope.actor


TimelineHandler = Callable[[AsyncSession, Envelope, Message], Awaitable[None]]
TimelineBatchHandler = Callable[[AsyncSession, Sequence[tuple[Envelope, Message]]], Awaitable[None]]


def _record(envelope: Envelope, message: Message) -> TimelineRecord:
    summary, details = describe(envelope, message)
    return TimelineRecord(
        ce_id=envelope.ce_id,
        ce_type=envelope.ce_type,
        ce_source=envelope.ce_source,
        occurred_at=_occurred_at(envelope, message),
        actor=_actor(envelope, message),
        summary=summary,
        details=details,
    )


def entries_of(
    events: Sequence[tuple[Envelope, Message]],
    *,
    open_applications: Sequence[uuid.UUID] = (),
) -> list[tuple[uuid.UUID, TimelineRecord]]:
    """The timeline entries of those events that are about an application (an access
    record never: ``NOT_IN_TIMELINE``); with
    ``open_applications`` (the household's applications not yet decided), an event about
    the household and no application enters each of their timelines (a member's death
    while the case is being investigated, a new account before the first payment)."""
    entries: list[tuple[uuid.UUID, TimelineRecord]] = []
    for envelope, message in events:
        if message.DESCRIPTOR.full_name in NOT_IN_TIMELINE:
            continue
        application_id = application_of(message)
        if application_id is not None:
            record = _record(envelope, message)
            completed = _completes(message)
            if completed is not None:
                # The new application's entry says which it completes; the returned one's
                # timeline says by which it was completed (ADR 0009, 3 Dec 2026).
                record = replace(
                    record, details={**record.details, "completes_application_id": str(completed)}
                )
                entries.append((completed, _completed_by(record, application_id)))
            entries.append((application_id, record))
        elif open_applications:
            record = _record(envelope, message)
            replaced = _applicants_replaced(message)
            entries += [
                (a, _with_applicant(record, replaced[a]) if a in replaced else record)
                for a in open_applications
            ]
    return entries


def _completes(message: Message) -> uuid.UUID | None:
    """The returned application a submission's event says it completes, if any."""
    if not isinstance(message, ev.ApplicationSubmitted | ev.ApplicationReturned):
        return None
    raw = message.completes_application_id
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def _completed_by(entry: TimelineRecord, application_id: uuid.UUID) -> TimelineRecord:
    """The entry of a returned application completed by ``application_id``, sent again:
    accepted (ApplicationSubmitted) or returned again."""
    outcome = "returned" if entry.ce_type.endswith(".ApplicationReturned.v1") else "submitted"
    return replace(
        entry,
        summary="Completed by an application sent again",
        details={"completed_by_application_id": str(application_id), "outcome": outcome},
    )


def _applicants_replaced(
    message: Message,
) -> dict[uuid.UUID, ev.HouseholdUpdated.ApplicantReplaced]:
    """The open applications a household change handed to another applicant (ADR 0016)."""
    if not isinstance(message, ev.HouseholdUpdated):
        return {}
    return {uuid.UUID(r.application_id): r for r in message.applicants_replaced}


def _with_applicant(
    entry: TimelineRecord, replaced: ev.HouseholdUpdated.ApplicantReplaced
) -> TimelineRecord:
    """The change's entry in the timeline of an application it handed over: who applied
    until the change and who applies now, by person id (the household's other open
    applications' entries do not say it: their applicant is unchanged)."""
    return replace(
        entry,
        details={
            **entry.details,
            "previous_applicant_person_id": replaced.previous_applicant_person_id,
            "applicant_person_id": replaced.applicant_person_id,
        },
    )


AFTER_WITHDRAWAL = "after_withdrawal"
"""The detail that marks a decision taken on an application already withdrawn."""


def _after_withdrawal(application_id: uuid.UUID, entry: TimelineRecord) -> TimelineRecord:
    """A decision that reached an application already withdrawn (assessment decided before
    it had the withdrawal, or decided regardless): entered in the timeline as what it is,
    arrived after the withdrawal, and decides nothing here. The application stays
    withdrawn, and is not marked decided; the mismatch is logged (WARNING) for the county,
    which holds both the decision and the withdrawal. Intake publishes nothing of it:
    assessment has the withdrawal on the application's own partition, after or before its
    decision, and the decision is its to undo."""
    log.warning(
        "decision after the withdrawal",
        application_id=str(application_id),
        ce_id=str(entry.ce_id),
        ce_type=entry.ce_type,
    )
    DECISIONS_AFTER_WITHDRAWAL.labels(ce_type=entry.ce_type).inc()
    return replace(
        entry,
        summary=f"{entry.summary} (arrived after the withdrawal)",
        details={**entry.details, AFTER_WITHDRAWAL: True},
    )


def timeline_batch_handler(clock: Clock) -> TimelineBatchHandler:
    """The consumer's handler for a fetch's new events: their timeline entries, those about
    applications intake knows, written with one statement."""

    async def handle(session: AsyncSession, events: Sequence[tuple[Envelope, Message]]) -> None:
        entries = entries_of(events)
        decisions = [a for a, e in entries if e.ce_type in DECIDED_TYPES]
        withdrawn = await repo.withdrawn_before_decision(session, decisions) if decisions else set()
        if withdrawn:
            entries = [
                (a, _after_withdrawal(a, e))
                if a in withdrawn and e.ce_type in DECIDED_TYPES
                else (a, e)
                for a, e in entries
            ]
        written = await repo.add_timeline_entries_if_known(session, entries, at=clock.now())
        if written < len(entries):
            # Skipped: an entry already there (the event's own, ADR 0012), or an application
            # this intake does not have, which must not pass unnoticed. Only then the look.
            await _note_unknown_applications(session, entries)
        decided = [
            (a, e.occurred_at, decision)
            for a, e in entries
            if a not in withdrawn and (decision := decision_of(e.ce_type, e.details)) is not None
        ]
        if decided:
            await repo.mark_decided(session, decided)

    return handle


async def _note_unknown_applications(
    session: AsyncSession, entries: Sequence[tuple[uuid.UUID, TimelineRecord]]
) -> None:
    """Log and count the entries about applications this database does not have."""
    known = await repo.existing_applications(session, [a for a, _ in entries])
    for application_id, entry in entries:
        if application_id in known:
            continue
        log.warning(
            "event about an unknown application",
            application_id=str(application_id),
            ce_id=str(entry.ce_id),
            ce_type=entry.ce_type,
            ce_source=entry.ce_source,
        )
        UNKNOWN_APPLICATIONS.labels(ce_type=entry.ce_type).inc()


def timeline_handler(clock: Clock) -> TimelineHandler:
    """The consumer's handler for one event (a run that failed is redone one by one)."""
    batch = timeline_batch_handler(clock)

    async def handle(session: AsyncSession, envelope: Envelope, message: Message) -> None:
        await batch(session, [(envelope, message)])

    return handle
