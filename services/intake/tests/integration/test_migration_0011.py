"""Migration 0011: why an accepted application was assigned to nobody, backfilled from
what its ApplicationSubmitted named (its timeline entry), so that a reason survives a
downgrade and upgrade; a downgrade that would lose one is refused."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from dibao.intake.v1 import events_pb2 as ev
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import (
    MIGRATION_AT,
    insert_application,
    insert_household,
    insert_own_entry,
    intake_database_of_its_own,
)

pytestmark = [pytest.mark.postgres]

REASONS = {
    None: ev.UNASSIGNED_REASON_UNSPECIFIED,
    "caseworker_related": ev.UNASSIGNED_REASON_CASEWORKER_RELATED,
    "caseworker_not_identified": ev.UNASSIGNED_REASON_CASEWORKER_NOT_IDENTIFIED,
    "no_caseworker": ev.UNASSIGNED_REASON_NO_CASEWORKER,
}


@pytest.fixture
async def at_0010(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0010 (the session's intake database is at head)."""
    return await intake_database_of_its_own("m0011", "0010")


async def _accepted(
    conn: asyncpg.Connection, caseworker: str | None, reason: str | None, **columns: object
) -> uuid.UUID:
    """An accepted application and its ApplicationSubmitted's timeline entry, as intake
    writes them (``reason``: what the event names; the column is the caller's)."""
    household = await insert_household(conn)
    application = await insert_application(
        conn,
        household,
        "dibao",
        "submitted",
        accepted_on=MIGRATION_AT.date(),
        assigned_caseworker=caseworker,
        staff_related=reason == "caseworker_related",
        **columns,
    )
    details = await insert_own_entry(
        conn,
        ev.ApplicationSubmitted(
            household_id=str(household[0]),
            application_id=str(application),
            assigned_caseworker=caseworker or "",
            unassigned_reason=REASONS[reason],
        ),
    )
    assert details.get("unassigned_reason") == reason
    return application


async def _reasons(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[str | None]:
    rows = await conn.fetch(
        "SELECT id, to_jsonb(a) ->> 'unassigned_reason' AS reason FROM application AS a"
    )
    found = {r["id"]: r["reason"] for r in rows}
    return [found[i] for i in ids]


async def test_0011_backfills_reasons_from_the_submissions_and_keeps_them_down_and_up(
    at_0010: TestStack,
) -> None:
    conn = await asyncpg.connect(at_0010.dsn("intake"))
    try:
        # At 0010: an application accepted by code that named its reason (then taken down
        # to 0010), one accepted before the reason existed, one assigned, one returned.
        ids = [
            await _accepted(conn, None, "no_caseworker"),
            await _accepted(conn, None, None),
            await _accepted(conn, "caseworker-7", None),
            await insert_application(conn, await insert_household(conn), "dibao", "returned"),
        ]
        await at_0010.migrate("intake", "0011")
        assert await _reasons(conn, ids) == ["no_caseworker", None, None, None]

        # At 0011 the service writes the reason with its entry; down to 0010 and up again
        # gives every reason back.
        ids += [
            await _accepted(conn, None, reason, unassigned_reason=reason)
            for reason in ("caseworker_related", "caseworker_not_identified", "no_caseworker")
        ]
        expected = [
            "no_caseworker",
            None,
            None,
            None,
            "caseworker_related",
            "caseworker_not_identified",
            "no_caseworker",
        ]
        assert await _reasons(conn, ids) == expected
        await at_0010.downgrade("intake", "0010")
        assert await _reasons(conn, ids) == [None] * len(ids)
        await at_0010.migrate("intake", "head")
        assert await _reasons(conn, ids) == expected

        # A reason no submission named could not come back: the downgrade is refused, and
        # nothing of it is done.
        await conn.execute(
            "UPDATE application SET unassigned_reason = 'no_caseworker' WHERE id = $1", ids[1]
        )
        with pytest.raises(RuntimeError, match=f"0011 downgrade refused: 1 application.*{ids[1]}"):
            await at_0010.downgrade("intake", "0010")
        assert await conn.fetchval("SELECT version_num FROM alembic_version") >= "0011"
        assert await _reasons(conn, ids) == [expected[0], "no_caseworker", *expected[2:]]
    finally:
        await conn.close()
