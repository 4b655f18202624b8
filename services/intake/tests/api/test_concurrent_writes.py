"""Two writes of intake at once, interleaved deterministically against the real PostgreSQL:
nothing is lost and nothing is written twice.

Each test holds a row in a transaction of its own (``_held``), as a request in progress
would, sends two real requests through the app, waits until both wait on that row
(``pg_stat_activity``, never a sleep as synchronisation), then lets go: both have read
before either writes, the interleaving a lock or a constraint of intake must make safe.
Which of the two then goes first is the scheduler's; the assertions hold for either.

What each relies on (each test fails without it, helper hAY, 3 Dec 2026):
- two withdrawals: ``withdraw_application`` reading the application ``FOR UPDATE``;
- a birth and the head's death: ``record_change`` loading the household ``FOR UPDATE``;
- one person moved into two households: the unique index
  ``uq_household_member_active_person``;
- one Idempotency-Key with two bodies: the key's primary key in ``idempotency_record``
  (the one-statement path, ADR 0013).
- a submission and a roster change (helper hBA, 3 Dec 2026): the roster's version, read
  by the submission and compared by its write (migration 0021), and the roster's
  advisory lock, shared by that write and exclusive for a roster change from before it
  reads its clock (ADR 0009).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_intake.testing import TEST_NOW, IntakeClient, RegisteredHousehold, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

WAIT_S = 30.0
"""How long two requests may take to reach the held row (a slow, shared machine)."""


async def _waiting(engine: AsyncEngine) -> int:
    """How many sessions of the test database wait on a lock: on the row the test holds,
    or on one of the others already waiting for it (PostgreSQL queues the second waiter
    of a row behind the first's tuple lock, not behind the holder)."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting or 0)


@asynccontextmanager
async def _held(engine: AsyncEngine, lock: str, params: dict[str, Any]) -> AsyncIterator[None]:
    """A transaction of the test's holding what ``lock`` (SQL) locks until the block ends
    (rolled back: it writes nothing)."""
    conn: AsyncConnection
    async with engine.connect() as conn:
        await conn.execute(text(lock), params)
        yield
        await conn.rollback()


async def _both_wait_then_go(
    engine: AsyncEngine,
    lock: str,
    params: dict[str, Any],
    requests: Sequence[Awaitable[httpx.Response]],
) -> list[httpx.Response]:
    """Send ``requests`` while the test holds ``lock``; once every one waits on it (none
    answered before), let go: their answers, in the order sent."""
    loop = asyncio.get_running_loop()
    async with _held(engine, lock, params):
        sent = [asyncio.ensure_future(r) for r in requests]
        deadline = loop.time() + WAIT_S
        while await _waiting(engine) < len(sent):
            done = [t.result().text for t in sent if t.done()]
            assert not done, f"answered before the others read: {done}"
            assert loop.time() < deadline, "the requests never all waited on the held row"
            await asyncio.sleep(0.02)
    return list(await asyncio.gather(*sent))


def _type_of(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[1]


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def test_two_withdrawals_at_once_withdraw_once(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Two clerks withdraw the same accepted application at once, each with its own
    reason, both reading it while it is still submitted (held so): one is recorded (201);
    the other waits for it on the application's row, reads it withdrawn and is 409
    application-not-withdrawable, writing nothing. One ApplicationWithdrawn, one timeline
    entry of it, the winner's reason stored. (Without the withdrawal's FOR UPDATE both
    read it submitted and both answered 201: two withdrawals, two events, the second's
    reason over the first's.)"""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    application_id = accepted.json()["id"]
    url = f"/applications/{application_id}/withdrawal"
    reasons = ["找到稳定工作", "搬到外地居住"]
    before = await row_counts(intake_engine)
    answers = await _both_wait_then_go(
        intake_engine,
        "SELECT id FROM application WHERE id = CAST(:id AS uuid) FOR UPDATE",
        {"id": application_id},
        [
            intake.http.post(
                url,
                json={"reason": reason},
                headers=intake.headers(idempotency_key=str(uuid.uuid4())),
            )
            for reason in reasons
        ],
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [(won, reason)] = [(a, r) for a, r in zip(answers, reasons, strict=True) if a.is_success]
    [lost] = [a for a in answers if not a.is_success]
    assert _type_of(lost) == "application-not-withdrawable", lost.text
    assert won.json()["withdrawal_reason"] == reason
    stored = await _scalar(
        intake_engine,
        "SELECT withdrawal_reason FROM application WHERE id = CAST(:id AS uuid)",
        id=application_id,
    )
    assert stored == reason
    entries = await _scalar(
        intake_engine,
        "SELECT count(*) FROM timeline_entry WHERE application_id = CAST(:id AS uuid)"
        " AND ce_type = 'dibao.intake.ApplicationWithdrawn.v1'",
        id=application_id,
    )
    assert entries == 1
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"]


async def test_a_birth_and_the_heads_death_at_once_keep_the_new_head(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A birth and the head's death (naming a child the new head) recorded at once, both
    read while the household is held: each is recorded in turn, the second made from the
    household as the first left it. Both 201; the household's version moved by two; its
    head is the heir, never the dead head again; the newborn and the heir active, the head
    not; the second change's answer shows both. (Without the change's FOR UPDATE on the
    household both read it as it was, and the birth, storing the head it read, made the
    dead member the head again: a lost update.)"""
    household = await intake.register(intake.plan(shape="single_parent"))
    head, heir = household.person_ids[0], household.person_ids[1]
    version = household.body["version"]
    newborn = intake.newborn()
    death = {
        "kind": "death",
        "person_id": head,
        "date_of_death": "2026-02-20",
        "new_head_person_id": heir,
    }
    birth = {"kind": "birth", "member": newborn}
    url = f"/households/{household.id}/changes"
    answers = await _both_wait_then_go(
        intake_engine,
        "SELECT id FROM household WHERE id = CAST(:id AS uuid) FOR UPDATE",
        {"id": household.id},
        [
            intake.http.post(
                url, json=change, headers=intake.headers(idempotency_key=str(uuid.uuid4()))
            )
            for change in (death, birth)
        ],
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    read = await intake.http.get(f"/households/{household.id}", headers=intake.headers())
    now = read.json()
    assert now["version"] == version + 2
    assert now["head_person_id"] == heir
    assert now["status"] == "active"
    active = {m["person_id"] for m in now["members"] if m["active"]}
    assert heir in active
    assert head not in active
    [born] = [
        m
        for m in now["members"]
        if m["person_id"] not in household.person_ids and m["name"] == newborn["name"]
    ]
    assert born["active"]
    # The later of the two (by version) was made from the household the earlier left.
    last = max(answers, key=lambda a: int(a.json()["household"]["version"]))
    shown = last.json()["household"]
    assert shown["version"] == version + 2
    assert shown["head_person_id"] == heir
    assert {m["person_id"] for m in shown["members"] if m["active"]} == active
    changes = await _scalar(
        intake_engine,
        "SELECT count(*) FROM household_change WHERE household_id = CAST(:id AS uuid)",
        id=household.id,
    )
    assert changes == 2


async def test_one_person_moved_into_two_households_at_once_joins_one(
    intake: IntakeClient, intake_app: Any, intake_engine: AsyncEngine
) -> None:
    """A person on no register moved into two households at once, by two clerks: both
    read no membership of theirs anywhere (held so: the test's transaction inserts the
    person first, which both wait for, and rolls back). One is recorded (201); the other's
    membership meets the winner's on the one-active-household index and is 409
    person-in-household (its conflict at /body/member), nothing of it written. The person
    is active in one household. (Without the index both were recorded: one person active
    in two households.)"""
    first = await intake.register()
    second = await intake.register()
    member = intake.plan(shape="elderly_alone").members[0].payload() | {"relationship": "other"}
    move_in = {"kind": "move_in", "moved_on": "2026-02-20", "member": member}
    id_hash = intake_app.state.runtime.pii.hash_id_number(member["id_number"])
    before = await row_counts(intake_engine)
    answers = await _both_wait_then_go(
        intake_engine,
        "INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,"
        " birth_date, sex, created_at) VALUES (:id, :hash, 'k1', '\\x00', 'masked', 'name',"
        " '1950-01-01', 'male', now())",
        {"id": uuid.uuid4(), "hash": id_hash},
        [
            intake.http.post(
                f"/households/{h.id}/changes",
                json=move_in,
                headers=intake.headers(idempotency_key=str(uuid.uuid4())),
            )
            for h in (first, second)
        ],
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [(won, winner)] = [
        (a, h) for a, h in zip(answers, (first, second), strict=True) if a.is_success
    ]
    [lost] = [a for a in answers if not a.is_success]
    assert _type_of(lost) == "person-in-household", lost.text
    assert [c["pointer"] for c in lost.json()["conflicts"]] == ["/body/member"]
    active = await _scalar(
        intake_engine,
        "SELECT count(*) FROM household_member hm JOIN person p ON p.id = hm.person_id"
        " WHERE p.id_hash = :hash AND hm.active",
        hash=id_hash,
    )
    assert active == 1
    where = await _scalar(
        intake_engine,
        "SELECT hm.household_id FROM household_member hm JOIN person p ON p.id = hm.person_id"
        " WHERE p.id_hash = :hash AND hm.active",
        hash=id_hash,
    )
    assert str(where) == winner.id
    after = await row_counts(intake_engine)
    assert after["person"] == before["person"] + 1
    assert after["household_member"] == before["household_member"] + 1
    assert won.json()["household"]["version"] == winner.body["version"] + 1


async def test_one_idempotency_key_sent_at_once_with_two_bodies_makes_one_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """One clerk's Idempotency-Key sent at once with two different submissions (two
    households'), both running their work while the households are held (the one-statement
    path checks the key only when it stores the answer, ADR 0013): one application is
    written (201); the other's statement meets the key's stored answer, made for another
    request, and is 422 idempotency-key-reused, nothing of it written. Sent again, the key
    replays the winner's answer to the winner's body and refuses the other's alike.
    (Without the key's primary key both were written under one key.)"""
    households: list[RegisteredHousehold] = [await intake.register(), await intake.register()]
    bodies = [await intake.complete_application_body(h) for h in households]
    key = str(uuid.uuid4())
    before = await row_counts(intake_engine)
    answers = await _both_wait_then_go(
        intake_engine,
        "SELECT id FROM household WHERE id IN (CAST(:a AS uuid), CAST(:b AS uuid))"
        " ORDER BY id FOR UPDATE",
        {"a": households[0].id, "b": households[1].id},
        [intake.submit(body, idempotency_key=key) for body in bodies],
    )
    assert sorted(a.status_code for a in answers) == [201, 422], [a.text for a in answers]
    [(won, won_body)] = [(a, b) for a, b in zip(answers, bodies, strict=True) if a.is_success]
    [(lost, lost_body)] = [(a, b) for a, b in zip(answers, bodies, strict=True) if not a.is_success]
    assert _type_of(lost) == "idempotency-key-reused", lost.text
    after = await row_counts(intake_engine)
    assert after["application"] == before["application"] + 1
    written = await _scalar(
        intake_engine,
        "SELECT count(*) FROM application WHERE household_id = CAST(:id AS uuid)",
        id=lost_body["household_id"],
    )
    assert written == 0
    replayed = await intake.submit(won_body, idempotency_key=key)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == won.json()["id"]
    again = await intake.submit(lost_body, idempotency_key=key)
    assert again.status_code == 422, again.text
    assert _type_of(again) == "idempotency-key-reused"
    assert (await row_counts(intake_engine))["application"] == after["application"]


async def test_a_person_who_dies_while_a_registration_names_them_is_not_registered(
    intake: IntakeClient, intake_app: Any, intake_engine: AsyncEngine
) -> None:
    """A registration reads its persons' memberships (none active, none ended by death)
    and only then locks and stores them: a person on no register who, meanwhile, moves
    into another household and dies there (both changes committed while the registration
    waits, held at its other member's person row) was registered alive, an active member
    of a new household though recorded deceased. Now the memberships, once inserted, are
    read again: 422 at the member's id_number (deceased), as a registration sent after
    the death is, nothing written. (Failed before: 201, the dead person active in the new
    household.)"""
    plan = intake.plan(shape="elderly_couple")
    payload = plan.payload()
    pii = intake_app.state.runtime.pii
    hashes = [pii.hash_id_number(m["id_number"]) for m in payload["members"]]
    # The registration stores its persons in hash order: held at the first, it has not
    # touched the second, who dies meanwhile.
    held, dies = (0, 1) if hashes[0] < hashes[1] else (1, 0)
    host = await intake.register()
    loop = asyncio.get_running_loop()
    async with intake_engine.connect() as conn:
        await conn.execute(
            text(
                "INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id,"
                " name, birth_date, sex, created_at) VALUES (:id, :hash, 'k1', '\\x00',"
                " 'masked', 'name', '1950-01-01', 'male', now())"
            ),
            {"id": uuid.uuid4(), "hash": hashes[held]},
        )
        registration = asyncio.ensure_future(
            intake.http.post("/households", json=payload, headers=intake.headers())
        )
        deadline = loop.time() + WAIT_S
        while await _waiting(intake_engine) < 1:
            assert not registration.done(), registration.result().text
            assert loop.time() < deadline, "the registration never waited on the held person"
            await asyncio.sleep(0.02)
        member = payload["members"][dies] | {"relationship": "other"}
        moved = await intake.change(
            host, {"kind": "move_in", "moved_on": "2026-02-20", "member": member}
        )
        [person_id] = [
            m["person_id"]
            for m in moved["household"]["members"]
            if m["active"] and m["person_id"] not in host.person_ids
        ]
        await intake.change(
            host, {"kind": "death", "person_id": person_id, "date_of_death": "2026-02-25"}
        )
        before = await row_counts(intake_engine)
        await conn.rollback()
    response = await registration
    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == [
        f"/body/members/{dies}/id_number"
    ], response.text
    after = await row_counts(intake_engine)
    # Nothing written but the record of what the refusal told (one access event).
    assert after.pop("outbox_message_ids_issued") > before.pop("outbox_message_ids_issued")
    assert after == before
    active = await _scalar(
        intake_engine,
        "SELECT count(*) FROM household_member hm JOIN person p ON p.id = hm.person_id"
        " WHERE p.id_hash = :hash AND hm.active",
        hash=hashes[dies],
    )
    assert active == 0


# --- a submission and a roster change ------------------------------------------------------

ADMIN_REGIONS = ["620102"]


async def _until_waiting(
    engine: AsyncEngine, count: int, pending: Sequence[asyncio.Future[httpx.Response]]
) -> None:
    """Until ``count`` sessions wait on a lock; none of ``pending`` may answer meanwhile
    (an answer would be a request that went through what it should have waited for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while await _waiting(engine) < count:
        done = [t.result().text for t in pending if t.done()]
        assert not done, f"answered instead of waiting: {done}"
        assert loop.time() < deadline, f"fewer than {count} requests ever waited"
        await asyncio.sleep(0.02)


async def _name_caseworker(
    intake: IntakeClient, township: str, community: str, **extra: Any
) -> dict[str, Any]:
    """Name a responsible caseworker of ``township`` (a subject of their own); the entry."""
    response = await intake.http.post(
        f"/townships/{township}/staff",
        json={
            "name": "周建华",
            "role": "caseworker",
            "subject": f"cw-{uuid.uuid4()}",
            "responsible_caseworker": True,
            "id_number": intake.plan(community, shape="elderly_alone").members[0].id_number,
        }
        | extra,
        headers=intake.headers(Role.POLICY_ADMIN, ADMIN_REGIONS),
    )
    assert response.status_code == 201, response.text
    entry: dict[str, Any] = response.json()
    return entry


async def _applications_of(engine: AsyncEngine, household: RegisteredHousehold) -> int:
    return int(
        await _scalar(
            engine,
            "SELECT count(*) FROM application WHERE household_id = CAST(:id AS uuid)",
            id=household.id,
        )
    )


@pytest.mark.parametrize("change", ["caseworker_deactivated", "relative_added"])
async def test_a_roster_change_committed_between_a_submissions_read_and_write_is_seen(
    intake: IntakeClient, intake_engine: AsyncEngine, change: str
) -> None:
    """A submission reads the roster (the township's responsible caseworker, the staff
    relatives among the household's members), then writes the application. A roster
    change committed in between (held so: the write waits on the household the test
    holds, the read before it does not) was not seen: the application was accepted
    assigned to the caseworker just taken off the roster, or not flagged though a
    member's relative had just been put on it. Now the write compares the roster's
    version with the one its read saw: 409 concurrent-change, nothing written; sent
    again, the submission reads the roster as it now is (nobody assigned; flagged and
    left for the county). (Failed before: 201, assigned to the deactivated caseworker;
    201, staff_related false.)"""
    township, community = "620102004000", "620102004001"  # 临夏路街道: these tests' own
    admin = intake.headers(Role.POLICY_ADMIN, ADMIN_REGIONS)
    caseworker = await _name_caseworker(intake, township, community)
    household = await intake.register(intake.plan(community, shape="elderly_couple"))
    wife = household.plan.members[1]
    body = await intake.complete_application_body(household)
    async with _held(
        intake_engine,
        "SELECT id FROM household WHERE id = CAST(:id AS uuid) FOR UPDATE",
        {"id": household.id},
    ):
        submission = asyncio.ensure_future(intake.submit(body))
        await _until_waiting(intake_engine, 1, [submission])
        if change == "caseworker_deactivated":
            changed = await intake.http.post(
                f"/staff/{caseworker['id']}/deactivation", headers=admin
            )
            assert changed.status_code == 204, changed.text
        else:
            changed = await intake.http.post(
                f"/townships/{township}/staff",
                json={
                    "name": "马德胜",
                    "role": "village_committee",
                    "relatives": [
                        {"name": wife.name, "id_number": wife.id_number, "relation": "brother"}
                    ],
                },
                headers=admin,
            )
            assert changed.status_code == 201, changed.text
    answer = await submission
    assert answer.status_code == 409, answer.text
    assert _type_of(answer) == "concurrent-change", answer.text
    assert await _applications_of(intake_engine, household) == 0
    again = await intake.submit(body)
    assert again.status_code == 201, again.text
    out = again.json()
    assert out["status"] == "submitted"
    if change == "caseworker_deactivated":
        assert (out["assigned_caseworker"], out["unassigned_reason"]) == (None, "no_caseworker")
        assert out["staff_related"] is False
    else:
        # Flagged for the county's visit; the caseworker is no relative, and keeps it.
        assert out["staff_related"] is True
        assert out["assigned_caseworker"] == caseworker["subject"]


async def test_a_submission_made_while_a_caseworker_is_being_replaced_waits_for_it(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_clock: FrozenClock
) -> None:
    """A new responsible caseworker named (the naming's time taken, the old caseworker
    about to be replaced: held so, at the old caseworker's row) while a submission of the
    township is made a minute later: the submission read the old caseworker, and its write
    went through while the naming was in progress, so the application was accepted at a
    time after the new caseworker's entry, yet assigned to the one it replaced. Now the
    naming holds the roster (its advisory lock, exclusive) from before it reads its clock,
    the submission's write waits for it (shared), then finds the roster's version moved:
    409 concurrent-change, nothing written; sent again, it is assigned to the new
    caseworker. (Failed before: the submission answered 201 while the naming waited,
    assigned to the replaced caseworker, submitted_at a minute after the new entry's
    created_at.)"""
    township, community = "620102006000", "620102006001"  # 五泉街道: this test's own
    old = await _name_caseworker(intake, township, community)
    household = await intake.register(intake.plan(community, shape="elderly_alone"))
    body = await intake.complete_application_body(household)
    try:
        async with _held(
            intake_engine,
            "SELECT id FROM staff_member WHERE id = CAST(:id AS uuid) FOR UPDATE",
            {"id": old["id"]},
        ):
            naming = asyncio.ensure_future(
                intake.http.post(
                    f"/townships/{township}/staff",
                    json={
                        "name": "韩雪梅",
                        "role": "caseworker",
                        "subject": f"cw-{uuid.uuid4()}",
                        "responsible_caseworker": True,
                        "id_number": intake.plan(community, shape="elderly_alone")
                        .members[0]
                        .id_number,
                    },
                    headers=intake.headers(Role.POLICY_ADMIN, ADMIN_REGIONS),
                )
            )
            await _until_waiting(intake_engine, 1, [naming])
            intake_clock.advance(timedelta(minutes=1))
            submission = asyncio.ensure_future(intake.submit(body))
            await _until_waiting(intake_engine, 2, [naming, submission])
        named, answer = await naming, await submission
    finally:
        intake_clock.set(TEST_NOW)
    assert named.status_code == 201, named.text
    new = named.json()
    assert answer.status_code == 409, answer.text
    assert _type_of(answer) == "concurrent-change", answer.text
    assert await _applications_of(intake_engine, household) == 0
    again = await intake.submit(body)
    assert again.status_code == 201, again.text
    out = again.json()
    assert out["assigned_caseworker"] == new["subject"] != old["subject"]
    assert datetime.fromisoformat(out["submitted_at"]) >= datetime.fromisoformat(new["created_at"])


async def test_a_roster_change_waits_for_a_submission_being_written(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_clock: FrozenClock
) -> None:
    """The other order: a submission's write in progress (held so: at the end of its
    statement, on a document it names, which the test holds) when the township's
    caseworker is taken off the roster a minute later. The deactivation waits for the
    write (the roster's lock, which the write holds shared), so the application is
    committed, assigned to the caseworker responsible when it was made, before the
    deactivation, whose time is after it. (Failed before: the deactivation answered 204
    while the application, assigned to the deactivated caseworker, was still to commit.)"""
    township, community = "620102007000", "620102007001"  # 白银路街道: this test's own
    caseworker = await _name_caseworker(intake, township, community)
    household = await intake.register(intake.plan(community, shape="elderly_alone"))
    body = await intake.complete_application_body(household)
    try:
        async with _held(
            intake_engine,
            "SELECT id FROM document WHERE id = CAST(:id AS uuid) FOR UPDATE",
            {"id": body["document_ids"][0]},
        ):
            submission = asyncio.ensure_future(intake.submit(body))
            await _until_waiting(intake_engine, 1, [submission])
            intake_clock.advance(timedelta(minutes=1))
            deactivation = asyncio.ensure_future(
                intake.http.post(
                    f"/staff/{caseworker['id']}/deactivation",
                    headers=intake.headers(Role.POLICY_ADMIN, ADMIN_REGIONS),
                )
            )
            await _until_waiting(intake_engine, 2, [submission, deactivation])
        answer, deactivated = await submission, await deactivation
    finally:
        intake_clock.set(TEST_NOW)
    assert answer.status_code == 201, answer.text
    assert deactivated.status_code == 204, deactivated.text
    out = answer.json()
    assert out["assigned_caseworker"] == caseworker["subject"]
    roster = await intake.http.get(
        f"/townships/{township}/staff", headers=intake.headers(Role.POLICY_ADMIN, ADMIN_REGIONS)
    )
    [entry] = [e for e in roster.json() if e["id"] == caseworker["id"]]
    assert entry["active"] is False
    assert datetime.fromisoformat(entry["deactivated_at"]) > datetime.fromisoformat(
        out["submitted_at"]
    )
