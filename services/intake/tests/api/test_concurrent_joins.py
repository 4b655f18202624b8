"""A join (move in, birth, marriage's spouse) checks the person's memberships before it
locks the person and writes theirs: what other requests commit in between, against the
real PostgreSQL, interleaved deterministically (ADR 0016, 3 Dec 2026, helper hBD).

As in ``test_concurrent_writes.py``, the test holds rows in transactions of its own,
sends real requests through the app and waits until they wait on those rows
(``pg_stat_activity``, never a sleep as synchronisation). A join holds nothing between
its first read and its person's row, which any other request writing a membership of
that person locks too: so the join of a move in is held further on, where it corrects the
person's recorded name (``name_correction``) and updates the accounts they hold, at the
account of the household they left, while the registration that named the person first
(holding their row) commits, and the person's move out of that household, or their
death there, is recorded. A birth has no such point (a newborn's name is not corrected):
its test's own transaction writes and commits the person's membership elsewhere, joined
and left, while the birth waits on the person's row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dibao_intake.testing import IntakeClient, RegisteredHousehold, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

WAIT_S = 30.0
"""How long a request may take to reach the held row (a slow, shared machine)."""

PERSON_ROW = (
    "INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,"
    " birth_date, sex, created_at) VALUES (:id, :hash, 'k1', '\\x00', 'masked', 'name',"
    " '1950-01-01', 'male', now())"
)
"""A person row of the test's (rolled back: a request inserting the same waits for it)."""
CHILD_ROW = PERSON_ROW.replace("'name', '1950-01-01', 'male'", ":name, '2026-01-15', 'female'")
"""The person row of ``IntakeClient.newborn()``'s child, named ``:name``."""


async def _waiting(engine: AsyncEngine, statement: str = "%") -> int:
    """How many sessions of the test database wait on a lock in a statement like
    ``statement`` (SQL LIKE)."""
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE :statement"
            ),
            {"statement": statement},
        )
        return int(waiting or 0)


async def _until_waiting(
    engine: AsyncEngine,
    count: int,
    pending: list[asyncio.Future[httpx.Response]],
    statement: str = "%",
) -> None:
    """Until ``count`` sessions wait on a lock in ``statement``; none of ``pending`` may
    answer meanwhile (it went through what it should have waited for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while await _waiting(engine, statement) < count:
        done = [t.result().text for t in pending if t.done()]
        assert not done, f"answered instead of waiting: {done}"
        assert loop.time() < deadline, f"fewer than {count} requests ever waited ({statement})"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def _holding(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> AsyncIterator[None]:
    """A transaction of the test's holding what ``sql`` locks until it is rolled back."""
    conn: AsyncConnection
    async with engine.connect() as conn:
        await conn.execute(text(sql), params)
        yield
        await conn.rollback()


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def _join_while_registered_elsewhere(
    intake: IntakeClient,
    intake_app: Any,
    intake_engine: AsyncEngine,
    meanwhile: dict[str, Any],
) -> tuple[httpx.Response, dict[str, int], RegisteredHousehold, str]:
    """A woman who moved out of her household A on 10 Feb 2026 (holding its card) moves
    into H on 20 Feb, correcting her recorded name with her ID card. The move in reads her
    memberships (A's alone) while a registration of household B naming her (and another,
    first in hash order, whose row the test holds) has locked her row: it waits for it.
    The registration is let go and commits (201); the move in, past her row, waits at A's
    card (held by the test) to correct its holder's name, while ``meanwhile`` (a change of
    B about her, ``{person}`` standing for her person id) is recorded (201). Then the move
    in goes on. Its answer, the rows counted while it waited (nothing of it committed),
    H, and her person id."""
    former = intake.plan(shape="elderly_couple")
    payload = former.payload()
    payload["bank_account"]["holder_member_index"] = 1
    registered = await intake.http.post(
        "/households", json=payload, headers=intake.headers(regions=[former.region_code])
    )
    assert registered.status_code == 201, registered.text
    she = former.members[1]
    [person] = [
        m["person_id"]
        for m in registered.json()["members"]
        if m["id_number_masked"][-4:] == she.id_number[-4:] and m["name"] == she.name
    ]
    household_a = RegisteredHousehold(registered.json()["id"], former, [], registered.json())
    await intake.change(
        household_a, {"kind": "move_out", "person_id": person, "moved_on": "2026-02-10"}
    )
    here = await intake.register(intake.plan(shape="elderly_alone"))
    card = await intake.upload(here.id, "id_card")
    assert card.status_code == 201, card.text
    member = she.payload() | {"relationship": "other"}
    move_in = {
        "kind": "move_in",
        "moved_on": "2026-02-20",
        "member": member | {"name": "王秀芝", "name_correction": True},
        "document_ids": [card.json()["id"]],
    }
    pii = intake_app.state.runtime.pii
    own_hash = pii.hash_id_number(she.id_number)
    # Household B: a head first in hash order (held), then her (locked before the head).
    head = intake.plan(shape="elderly_alone").members[0]
    while pii.hash_id_number(head.id_number) < own_hash:
        head = intake.plan(shape="elderly_alone").members[0]
    elsewhere = intake.plan(shape="elderly_alone").payload() | {
        "members": [head.payload() | {"relationship": "head"}, member]
    }
    async with _holding(
        intake_engine,
        "SELECT id FROM bank_account WHERE holder_person_id = CAST(:person AS uuid)"
        " AND superseded_at IS NULL FOR UPDATE",
        {"person": person},
    ):
        async with _holding(
            intake_engine,
            PERSON_ROW,
            {"id": uuid.uuid4(), "hash": pii.hash_id_number(head.id_number)},
        ):
            registration = asyncio.ensure_future(
                intake.http.post("/households", json=elsewhere, headers=intake.headers())
            )
            await _until_waiting(intake_engine, 1, [registration])
            joining = asyncio.ensure_future(
                intake.http.post(
                    f"/households/{here.id}/changes", json=move_in, headers=intake.headers()
                )
            )
            await _until_waiting(intake_engine, 2, [registration, joining])
        answered = await registration
        assert answered.status_code == 201, answered.text
        await _until_waiting(intake_engine, 1, [joining], "UPDATE bank_account%")
        household_b = RegisteredHousehold(answered.json()["id"], former, [], answered.json())
        body = {k: person if v == "{person}" else v for k, v in meanwhile.items()}
        await intake.change(household_b, body)
        assert not joining.done(), joining.result().text
        before = await row_counts(intake_engine)
    return await joining, before, here, person


async def test_a_move_in_dated_before_the_person_left_a_household_meanwhile_is_refused(
    intake: IntakeClient, intake_app: Any, intake_engine: AsyncEngine
) -> None:
    """She moves into H on 20 Feb, having left her household A on 10 Feb, as the registry
    held when the move in read it; meanwhile she was registered in household B (2 Mar)
    and moved out of it on 2 Mar, both committed before the move in wrote her membership.
    Sent after them, the move in is refused: 20 Feb is before she left her last household
    (2 Mar), else she was a member of H and of B at once. So it is now, from the read of
    her memberships made once hers is inserted: 422 at /body/moved_on naming that day,
    nothing written (but the record of the lookup the refusal tells of), her name not
    corrected. (Failed before: 201, her membership of H from 20 Feb beside B's.)"""
    response, before, here, person = await _join_while_registered_elsewhere(
        intake,
        intake_app,
        intake_engine,
        {"kind": "move_out", "person_id": "{person}", "moved_on": "2026-03-02"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [e["pointer"] for e in errors] == ["/body/moved_on"], response.text
    assert "(2026-03-02)" in errors[0]["detail"]
    after = await row_counts(intake_engine)
    assert after.pop("outbox_message_ids_issued") > before.pop("outbox_message_ids_issued")
    assert after == before
    joined = await _scalar(
        intake_engine,
        "SELECT count(*) FROM household_member WHERE household_id = CAST(:here AS uuid)"
        " AND person_id = CAST(:person AS uuid)",
        here=here.id,
        person=person,
    )
    assert joined == 0
    name = await _scalar(
        intake_engine, "SELECT name FROM person WHERE id = CAST(:id AS uuid)", id=person
    )
    assert name != "王秀芝"


async def test_a_person_who_dies_while_a_move_in_names_them_is_not_moved_in(
    intake: IntakeClient, intake_app: Any, intake_engine: AsyncEngine
) -> None:
    """As ``test_concurrent_writes``' registration (dcfc11d), for a join: she moves into H
    while, meanwhile, she is registered in household B and dies there (both committed
    before the move in wrote her membership). The move in read her memberships before
    (A's alone, moved out): the read made once hers is inserted finds the death, 422 at
    /body/member/id_number (deceased) as a move in sent after it is, nothing written.
    (Without that read, dcfc11d's: 201, the dead woman an active member of H.)"""
    response, before, _here, person = await _join_while_registered_elsewhere(
        intake,
        intake_app,
        intake_engine,
        {"kind": "death", "person_id": "{person}", "date_of_death": "2026-03-02"},
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["pointer"] for e in errors] == ["/body/member/id_number"], response.text
    assert errors[0]["detail"] == "the person is recorded as deceased"
    after = await row_counts(intake_engine)
    assert after.pop("outbox_message_ids_issued") > before.pop("outbox_message_ids_issued")
    assert after == before
    active = await _scalar(
        intake_engine,
        "SELECT count(*) FROM household_member WHERE person_id = CAST(:person AS uuid) AND active",
        person=person,
    )
    assert active == 0


async def test_a_birth_of_a_person_registered_meanwhile_is_refused(
    intake: IntakeClient, intake_app: Any, intake_engine: AsyncEngine
) -> None:
    """A birth reads the child's memberships (none: a birth) and then stores the person,
    waiting here on the test's transaction, which inserted the same person first. That
    transaction records what a registration of household B naming the child and a move
    out of it would have (the person, a membership of B joined 20 Jan and left 1 Feb
    2026) and commits: the birth, let go, finds the person on file, no active membership
    (the index lets it in), and was recorded, the child "born" into H on 15 Jan though
    registered in B. Sent after, it is refused: already registered, not a birth. So it is
    now, from the read made once the membership is inserted: 422 at
    /body/member/id_number, nothing written but the lookup's record. (Failed before:
    201.) A birth has no point between its first read and that insert where a real
    registration and move out could be let through (see the module's docstring): its
    person's row is the only lock it waits on, and both would take it too."""
    household = await intake.register(intake.plan(shape="single_parent"))
    elsewhere = await intake.register(intake.plan(shape="elderly_alone"))
    newborn = intake.newborn()
    id_hash = intake_app.state.runtime.pii.hash_id_number(newborn["id_number"])
    person = uuid.uuid4()
    async with intake_engine.connect() as conn:
        # Under the child's name and birth: the birth's name check passes.
        await conn.execute(
            text(CHILD_ROW), {"id": person, "hash": id_hash, "name": newborn["name"]}
        )
        birth = asyncio.ensure_future(
            intake.http.post(
                f"/households/{household.id}/changes",
                json={"kind": "birth", "member": newborn},
                headers=intake.headers(),
            )
        )
        await _until_waiting(intake_engine, 1, [birth], "INSERT INTO person%")
        before = await row_counts(intake_engine)
        await conn.execute(
            text(
                "INSERT INTO household_member (id, household_id, person_id, relationship,"
                " disability_grade, seriously_ill, employment_status, student, counted,"
                " active, joined_on, left_on, left_reason) VALUES (:id, CAST(:household AS"
                " uuid), :person, 'other', 'none', false, 'not_of_working_age', false, true,"
                " false, '2026-01-20', '2026-02-01', 'move_out')"
            ),
            {"id": uuid.uuid4(), "household": elsewhere.id, "person": person},
        )
        await conn.commit()
    response = await birth
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["pointer"] for e in errors] == ["/body/member/id_number"], response.text
    assert errors[0]["detail"] == "the person is already registered: not a birth"
    after = await row_counts(intake_engine)
    assert after.pop("outbox_message_ids_issued") > before.pop("outbox_message_ids_issued")
    # The test's own person and membership, committed; nothing of the birth.
    assert after == before | {
        "person": before["person"] + 1,
        "household_member": before["household_member"] + 1,
    }
