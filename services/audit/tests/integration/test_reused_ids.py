"""A record with the ce_id of an entry but other content is kept and reported, not dropped."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.entry import RecordedEvent, canonical_bytes
from dibao_audit.merkle import leaf_hash
from dibao_audit.models import LogEntry
from dibao_audit.repository import EntryFilter, WholeLog
from dibao_audit.testing import AuditDb, published_anomalies, recorded_event
from dibao_common.messaging.envelope import EventRegistry, ce_type_of

pytestmark = [pytest.mark.postgres]

ANOMALY = "dibao.audit.AnomalyDetected.v1"


def _withdrawn(i: int, offset: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        application_id=f"app-{i}",
    )
    return recorded_event(message, offset=offset, key="hh-1")


def _other_content(event: RecordedEvent, offset: int) -> RecordedEvent:
    """The same ce_id (headers unchanged), another application, a later offset."""
    message = intake_pb2.ApplicationWithdrawn.FromString(event.payload)
    message.application_id = "app-someone-elses"
    return dataclasses.replace(event, offset=offset, payload=message.SerializeToString())


async def test_an_event_id_with_other_content_is_kept_and_reported(audit_db: AuditDb) -> None:
    """The log's ce_id is its inbox: a record whose id it holds was skipped as a redelivery
    whatever it held, so a second version of an event (a faulty producer, or someone
    writing to the topic) left no trace at all. The same event sent again (a new offset,
    the same content) is still appended once."""
    events = [_withdrawn(i, offset=i) for i in range(6)]
    appender = audit_db.appender()
    await appender.append(events[:4])
    second = _other_content(events[2], offset=50)
    result = await appender.append(
        [
            events[4],
            second,
            dataclasses.replace(events[2], offset=51),  # sent again: the same event
            dataclasses.replace(second, offset=52),  # the second version sent again
        ]
    )
    assert (result.appended, result.duplicates) == (2, 2)
    assert result.reused_ids == 1
    # Inside one batch too, and once more after a restart (nothing in memory).
    in_batch = _other_content(events[5], offset=60)
    result = await audit_db.appender().append([events[5], in_batch, second])
    assert (result.appended, result.duplicates, result.reused_ids) == (2, 1, 1)
    assert result.tree_size == 8

    async with audit_db.sessions() as session:
        entries = list(await session.scalars(sa.select(LogEntry).order_by(LogEntry.leaf_index)))
        stored = await repo.subtree_hashes(session, {(0, i) for i in range(8)})
    kept = [*events[:5], second, events[5], in_batch]
    assert [stored[(0, i)] for i in range(8)] == [leaf_hash(canonical_bytes(e)) for e in kept]
    assert entries[5].payload == second.payload
    assert entries[5].application_id == "app-someone-elses"
    assert str(entries[5].ce_id) != str(entries[2].ce_id)
    assert dict(second.headers)["ce_id"] == str(entries[2].ce_id).encode()  # in the leaf

    # Each content names another application: the anomaly concerns both, one each.
    anomalies = [a for _, _, a in await published_anomalies(audit_db)]
    assert [
        (a.rule, a.subject.kind, a.subject.id, list(a.event_ids), list(a.log_indices))
        for a in anomalies
    ] == [
        ("event_id_reused", "application", "app-2", [str(entries[2].ce_id)], [2, 5]),
        ("event_id_reused", "application", "app-someone-elses", [str(entries[2].ce_id)], [2, 5]),
        ("event_id_reused", "application", "app-5", [str(entries[6].ce_id)], [6, 7]),
        ("event_id_reused", "application", "app-someone-elses", [str(entries[6].ce_id)], [6, 7]),
    ]
    assert {a.severity for a in anomalies} == {audit_pb2.SEVERITY_WARNING}
    assert {(a.household_id, a.region.code) for a in anomalies} == {("hh-1", "620102001001")}


# One of Yuzhong County's villages, and Chengguan District beside it.
VILLAGE, COUNTY, OTHER_COUNTY = "620123101203", "620123", "620102"


def _submitted(application: str, household: str, region: str) -> intake_pb2.ApplicationSubmitted:
    return intake_pb2.ApplicationSubmitted(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        application_id=application,
        kind=enums_pb2.APPLICATION_KIND_DIBAO,
    )


def _replayed(event: RecordedEvent, message: Message, offset: int) -> RecordedEvent:
    """``event``'s headers (its ce_id) and key over another payload, at a later offset."""
    return dataclasses.replace(event, offset=offset, payload=message.SerializeToString())


async def _visible_anomalies(
    db: AuditDb, prefix: str, household: str | None = None, application: str | None = None
) -> list[str]:
    """The anomalies about ``household`` or ``application`` an auditor of ``prefix`` reads
    (their ce_ids), once the log holds them as its consumer appends them."""
    async with db.sessions() as session:
        found = await service.find_visible(
            session,
            EntryFilter(
                region_prefixes=(prefix,),
                household_id=household,
                application_id=application,
                ce_type=ANOMALY,
                whole_log=WholeLog("000000000000", EventRegistry.default()),
            ),
            EventRegistry.default(),
            after=None,
            limit=10,
        )
    return [str(s.columns.ce_id) for s in found.items]


async def test_an_event_id_reused_about_an_application_concerns_it_in_its_county(
    audit_db: AuditDb,
) -> None:
    """A record with the ce_id of an application's ApplicationSubmitted but other content
    (a replaying or broken producer): the anomaly names the application (subject kind
    ``application``, which intake's timeline takes), its household (the Kafka key) and
    the event's region, so its county's auditors read it and another county's do not.
    Until 1 Dec 2026 it named the event only, in the log's region: no application's
    timeline ever showed one."""
    application, household = str(uuid.uuid4()), str(uuid.uuid4())
    first = recorded_event(_submitted(application, household, VILLAGE), offset=0, key=household)
    other = _submitted(application, household, VILLAGE)
    other.kind = enums_pb2.APPLICATION_KIND_TEMPORARY
    appender = audit_db.appender()
    await appender.append([first])
    result = await appender.append([_replayed(first, other, offset=1)])
    assert result.reused_ids == 1

    [(key, subject, anomaly)] = await published_anomalies(audit_db)  # the same application: one
    ce_id = dict(first.headers)["ce_id"].decode()
    assert anomaly.rule == "event_id_reused"
    assert anomaly.severity == audit_pb2.SEVERITY_WARNING
    assert (anomaly.subject.kind, anomaly.subject.id) == ("application", application)
    assert anomaly.application_id == application
    assert (anomaly.household_id, anomaly.region.code) == (household, VILLAGE)
    assert (list(anomaly.event_ids), list(anomaly.log_indices)) == ([ce_id], [0, 1])
    assert (key, subject) == (household, f"application/{application}")

    # Logged as audit's consumer logs it (the relay's record): the county's auditors read
    # it by household, another county's do not (it is no longer the whole log's).
    logged = recorded_event(anomaly, offset=0, key=household)
    await appender.append([logged])
    anomaly_entry = dict(logged.headers)["ce_id"].decode()
    assert await _visible_anomalies(audit_db, COUNTY, household) == [anomaly_entry]
    assert await _visible_anomalies(audit_db, OTHER_COUNTY, household) == []
    # And by the application (the log's application_id column: it found nothing before).
    assert await _visible_anomalies(audit_db, COUNTY, application=application) == [anomaly_entry]
    assert await _visible_anomalies(audit_db, OTHER_COUNTY, application=application) == []


async def test_a_second_content_naming_another_application_concerns_both(
    audit_db: AuditDb,
) -> None:
    """The second content names another application of another county: each application
    gets its own anomaly, in its own region and household, so each county's auditors (and
    each application's timeline) learn that an event about it was contradicted."""
    ours, household = str(uuid.uuid4()), str(uuid.uuid4())
    theirs, their_household = str(uuid.uuid4()), str(uuid.uuid4())
    first = recorded_event(_submitted(ours, household, VILLAGE), offset=0, key=household)
    second = _replayed(first, _submitted(theirs, their_household, "620102001001"), offset=1)
    # In one batch: the first content is the batch's, not the log's yet.
    result = await audit_db.appender().append([first, second])
    assert (result.appended, result.reused_ids) == (2, 1)
    found = await published_anomalies(audit_db)
    assert [(k, a.subject.id, a.household_id, a.region.code) for k, _, a in found] == [
        (household, ours, household, VILLAGE),
        (their_household, theirs, their_household, "620102001001"),
    ]
    assert [a.application_id for _, _, a in found] == [ours, theirs]
    assert {tuple(a.log_indices) for _, _, a in found} == {(0, 1)}


async def test_an_event_id_reused_about_no_application_is_the_whole_logs(
    audit_db: AuditDb,
) -> None:
    """An event about no application (a household's registration) keeps the log's shape:
    subject the event, the log's region, no household, keyed by the anomaly's id, so every
    auditor reads it."""
    household = str(uuid.uuid4())
    registered = intake_pb2.HouseholdRegistered(
        household_id=household, region=types_pb2.RegionCode(code=VILLAGE)
    )
    first = recorded_event(registered, offset=0, key=household)
    registered.region.code = "620123101204"
    appender = audit_db.appender()
    await appender.append([first])
    await appender.append([_replayed(first, registered, offset=1)])
    [(key, subject, anomaly)] = await published_anomalies(audit_db)
    ce_id = dict(first.headers)["ce_id"].decode()
    assert (anomaly.subject.kind, anomaly.subject.id, anomaly.application_id) == (
        "event",
        ce_id,
        "",
    )
    assert (anomaly.household_id, anomaly.region.code) == ("", "000000000000")
    assert (key, subject) == (anomaly.anomaly_id, f"event/{ce_id}")


def _naming(anomalies: list[audit_pb2.AnomalyDetected], application: str) -> int:
    """How many of ``anomalies`` name ``application`` as intake's timeline reads them
    (``application_id``, or the subject of kind ``application``): each one is an entry in
    its timeline."""
    return sum(
        (a.application_id or (a.subject.id if a.subject.kind == "application" else ""))
        == application
        for a in anomalies
    )


# Chengguan District's village: another county than VILLAGE's.
OTHER_VILLAGE = "620102001001"


@pytest.mark.parametrize(
    ("forged_household", "forged_region"),
    [("another", VILLAGE), ("same", ""), ("another", "")],
    ids=["another-household", "no-region", "another-household-no-region"],
)
async def test_a_forged_record_about_the_same_application_decides_no_reader(
    audit_db: AuditDb, forged_household: str, forged_region: str
) -> None:
    """A record reusing the id of an application's submission names the same application
    with another household (and key) or no region. The anomaly is the logged entry's:
    its household the key, its region, one of it. Until 2 Dec 2026 each content gave an
    anomaly about the application (the forged one's household, or the whole log's when it
    gave no region): two entries in the application's timeline for one record."""
    application, household = str(uuid.uuid4()), str(uuid.uuid4())
    other = household if forged_household == "same" else str(uuid.uuid4())
    first = recorded_event(_submitted(application, household, VILLAGE), offset=0, key=household)
    forged = _submitted(application, other, forged_region)
    forged.kind = enums_pb2.APPLICATION_KIND_TEMPORARY
    appender = audit_db.appender()
    await appender.append([first])
    replay = dataclasses.replace(_replayed(first, forged, offset=1), key=other.encode())
    assert (await appender.append([replay])).reused_ids == 1

    found = await published_anomalies(audit_db)
    assert [(k, s, a.application_id, a.household_id, a.region.code) for k, s, a in found] == [
        (household, f"application/{application}", application, household, VILLAGE)
    ]
    assert _naming([a for _, _, a in found], application) == 1


async def test_a_forged_region_does_not_take_the_anomaly_from_the_applications_county(
    audit_db: AuditDb,
) -> None:
    """A record reusing the id of a Yuzhong application's submission names the same
    application in a Chengguan village, with another household as key. Yuzhong's auditors
    read the anomaly about the application (the logged entry's household and region, found
    by application); Chengguan's, who read the forged entry, read one about the event in
    their region (the forged household), which names no application: the application's
    timeline has one anomaly, and Chengguan finds none by the application. Until 2 Dec 2026
    the forged content gave a second anomaly about the application, in Chengguan: its
    auditors found it by the application, and its timeline had two."""
    application, household = str(uuid.uuid4()), str(uuid.uuid4())
    forged_household = str(uuid.uuid4())
    first = recorded_event(_submitted(application, household, VILLAGE), offset=0, key=household)
    forged = _submitted(application, forged_household, OTHER_VILLAGE)
    replay = dataclasses.replace(_replayed(first, forged, offset=1), key=forged_household.encode())
    appender = audit_db.appender()
    await appender.append([first])
    assert (await appender.append([replay])).reused_ids == 1

    ce_id = dict(first.headers)["ce_id"].decode()
    [(key, subject, ours), (their_key, their_subject, theirs)] = await published_anomalies(audit_db)
    assert (key, subject) == (household, f"application/{application}")
    assert (ours.application_id, ours.household_id, ours.region.code) == (
        application,
        household,
        VILLAGE,
    )
    assert (their_key, their_subject) == (forged_household, f"event/{ce_id}")
    assert (theirs.subject.kind, theirs.subject.id, theirs.application_id) == ("event", ce_id, "")
    assert (theirs.household_id, theirs.region.code) == (forged_household, OTHER_VILLAGE)
    for anomaly in (ours, theirs):
        assert (list(anomaly.event_ids), list(anomaly.log_indices)) == ([ce_id], [0, 1])
    assert _naming([ours, theirs], application) == 1

    logged = [
        recorded_event(ours, offset=0, key=household),
        recorded_event(theirs, offset=1, key=forged_household),
    ]
    await appender.append(logged)
    our_entry, their_entry = (dict(e.headers)["ce_id"].decode() for e in logged)
    assert await _visible_anomalies(audit_db, COUNTY, application=application) == [our_entry]
    assert await _visible_anomalies(audit_db, COUNTY, household) == [our_entry]
    assert await _visible_anomalies(audit_db, COUNTY, forged_household) == []
    assert await _visible_anomalies(audit_db, OTHER_COUNTY, application=application) == []
    assert await _visible_anomalies(audit_db, OTHER_COUNTY, household) == []
    assert await _visible_anomalies(audit_db, OTHER_COUNTY, forged_household) == [their_entry]


async def test_an_event_about_no_application_reused_by_one_naming_an_application(
    audit_db: AuditDb,
) -> None:
    """The logged entry is a household's registration; the record reusing its id names an
    application. The anomaly about the event is the whole log's (every auditor, the
    registration's county among them, reads it), and the application named gets one of
    its own. Until 2 Dec 2026 only the forged content's application had one, in the region
    the forged content gave."""
    household, application = str(uuid.uuid4()), str(uuid.uuid4())
    registered = intake_pb2.HouseholdRegistered(
        household_id=household, region=types_pb2.RegionCode(code=VILLAGE)
    )
    first = recorded_event(registered, offset=0, key=household)
    submitted = _submitted(application, household, OTHER_VILLAGE)
    forged = dataclasses.replace(
        _replayed(first, submitted, offset=1),  # its ce_id, the submission's type
        headers=tuple(
            (name, ce_type_of(submitted).encode() if name == "ce_type" else value)
            for name, value in first.headers
        ),
    )
    appender = audit_db.appender()
    await appender.append([first])
    await appender.append([forged])
    ce_id = dict(first.headers)["ce_id"].decode()
    found = await published_anomalies(audit_db)
    assert [
        (s, a.subject.kind, a.application_id, a.household_id, a.region.code) for _, s, a in found
    ] == [
        (f"event/{ce_id}", "event", "", "", "000000000000"),
        (f"application/{application}", "application", application, household, OTHER_VILLAGE),
    ]


@pytest.mark.parametrize(
    ("logged", "x_region", "forged_region"),
    [
        ("before", VILLAGE, OTHER_VILLAGE),
        ("in-batch", VILLAGE, OTHER_VILLAGE),
        ("before", VILLAGE, VILLAGE),
        ("before", OTHER_VILLAGE, VILLAGE),
    ],
    ids=["forged-county", "forged-county-same-batch", "forged-household", "own-county-elsewhere"],
)
async def test_another_application_named_by_a_forged_record_is_read_where_it_is_logged(
    audit_db: AuditDb, logged: str, x_region: str, forged_region: str
) -> None:
    """A record reusing the id of application A's submission (Yuzhong) names another
    application X, which the log holds (its own submission, logged before or earlier in
    the same batch), with another household as key and a region of its choosing. X's
    anomaly is in X's household and region as its earliest entry gives them; the record's
    region, when no anomaly is in it, gets one about the event only. Until 2 Dec 2026
    (helper-76) X's anomaly took the forged household and region: a forged record pointed
    it at whichever county it named, and X's own county found none by X."""
    app_a, household_a = str(uuid.uuid4()), str(uuid.uuid4())
    app_x, household_x = str(uuid.uuid4()), str(uuid.uuid4())
    forged_household = str(uuid.uuid4())
    first = recorded_event(_submitted(app_a, household_a, VILLAGE), offset=0, key=household_a)
    x_submitted = recorded_event(
        _submitted(app_x, household_x, x_region), offset=1, key=household_x
    )
    forged = _submitted(app_x, forged_household, forged_region)
    replay = dataclasses.replace(_replayed(first, forged, offset=2), key=forged_household.encode())
    appender = audit_db.appender()
    if logged == "before":
        await appender.append([first, x_submitted])
        assert (await appender.append([replay])).reused_ids == 1
    else:
        await appender.append([first])
        assert (await appender.append([x_submitted, replay])).reused_ids == 1

    ce_id = dict(first.headers)["ce_id"].decode()
    expected = [
        (household_a, f"application/{app_a}", app_a, household_a, VILLAGE),
        (household_x, f"application/{app_x}", app_x, household_x, x_region),
    ]
    if forged_region not in (VILLAGE, x_region):
        expected.append((forged_household, f"event/{ce_id}", "", forged_household, forged_region))
    found = await published_anomalies(audit_db)
    assert [
        (k, s, a.application_id, a.household_id, a.region.code) for k, s, a in found
    ] == expected
    for _, _, anomaly in found:
        assert (list(anomaly.event_ids), list(anomaly.log_indices)) == ([ce_id], [0, 2])
    assert _naming([a for _, _, a in found], app_x) == 1


async def test_another_application_the_log_does_not_hold_is_read_where_the_record_puts_it(
    audit_db: AuditDb,
) -> None:
    """The record reusing A's id names an application X the log holds nothing about: X's
    anomaly takes the record's household and region (all the log knows of X), and the
    record's region, which that anomaly is in, gets no anomaly about the event besides."""
    app_a, household_a = str(uuid.uuid4()), str(uuid.uuid4())
    app_x, forged_household = str(uuid.uuid4()), str(uuid.uuid4())
    first = recorded_event(_submitted(app_a, household_a, VILLAGE), offset=0, key=household_a)
    forged = _submitted(app_x, forged_household, OTHER_VILLAGE)
    replay = dataclasses.replace(_replayed(first, forged, offset=1), key=forged_household.encode())
    appender = audit_db.appender()
    await appender.append([first])
    assert (await appender.append([replay])).reused_ids == 1

    found = await published_anomalies(audit_db)
    assert [(k, s, a.application_id, a.household_id, a.region.code) for k, s, a in found] == [
        (household_a, f"application/{app_a}", app_a, household_a, VILLAGE),
        (forged_household, f"application/{app_x}", app_x, forged_household, OTHER_VILLAGE),
    ]
