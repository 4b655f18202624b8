"""Migrations 0010 and 0012: a withdrawn application's cause in a column of its own, backfilled from
the events the application's timeline holds (not from the words of its reason), and
constrained to the known causes; what 0010's first backfill took from applicants given back."""

from __future__ import annotations

import logging
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

CODE = "household_dissolved"


@pytest.fixture
async def at_0009(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0009 (the session's intake database is at head)."""
    return await intake_database_of_its_own("m0010", "0009")


async def _withdrawn(
    conn: asyncpg.Connection,
    household: tuple[uuid.UUID, uuid.UUID],
    kind: str,
    reason: str | None,
    cause: ev.WithdrawalCause.ValueType | None,
    **columns: object,
) -> uuid.UUID:
    """A withdrawn application; with ``cause``, the ApplicationWithdrawn in its timeline
    (6842631 on: UNSPECIFIED for the applicant's withdrawal, HOUSEHOLD_DISSOLVED for the
    change that dissolved its household)."""
    application = await insert_application(
        conn,
        household,
        kind,
        "withdrawn",
        withdrawn_at=MIGRATION_AT,
        withdrawal_reason=reason,
        **columns,
    )
    if cause is not None:
        await insert_own_entry(
            conn,
            ev.ApplicationWithdrawn(
                household_id=str(household[0]),
                application_id=str(application),
                reason=(reason or "") if cause == ev.WITHDRAWAL_CAUSE_UNSPECIFIED else "",
                cause=cause,
            ),
        )
    return application


async def _state(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[tuple[str | None, ...]]:
    rows = {
        r["id"]: r
        for r in await conn.fetch(
            "SELECT id, to_jsonb(a) ->> 'withdrawal_cause' AS cause, withdrawal_reason"
            " FROM application AS a"
        )
    }
    return [(rows[i]["cause"], rows[i]["withdrawal_reason"]) for i in ids]


async def test_0010_backfills_the_cause_and_constrains_it(
    at_0009: TestStack, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(at_0009.dsn("intake"))
    try:
        dissolved, later, living, unexplained = [await insert_household(conn) for _ in range(4)]
        applicant = ev.WITHDRAWAL_CAUSE_UNSPECIFIED
        closed = ev.WITHDRAWAL_CAUSE_HOUSEHOLD_DISSOLVED
        ids = [
            # Closed by the dissolution (6842631): the code in the reason, its event's cause.
            await _withdrawn(conn, dissolved, "dibao", CODE, closed),
            # The applicant's, before the household dissolved.
            await _withdrawn(conn, dissolved, "temporary", "找到稳定工作", applicant),
            # The applicant's words happen to be the code, and their household dissolved
            # later: still theirs (their withdrawal's event has no cause).
            await _withdrawn(conn, later, "dibao", CODE, applicant),
            # The same words; the household still exists.
            await _withdrawn(conn, living, "dibao", CODE, applicant),
            await insert_application(conn, living, "temporary", "submitted"),
            await insert_application(conn, living, "festival", "returned"),
            # The code in a dissolved household, no withdrawal in the timeline: no fact
            # says the dissolution closed it; the applicant's, and logged.
            await _withdrawn(conn, unexplained, "dibao", CODE, None),
        ]
        await conn.execute(
            "UPDATE household SET status = 'dissolved' WHERE id = ANY($1::uuid[])",
            [dissolved[0], later[0], unexplained[0]],
        )

        with caplog.at_level(logging.INFO, logger="dibao_intake.migrations"):
            await at_0009.migrate("intake", "0010")
        assert await _state(conn, ids) == [
            (CODE, None),
            ("applicant_request", "找到稳定工作"),
            ("applicant_request", CODE),
            ("applicant_request", CODE),
            (None, None),
            (None, None),
            ("applicant_request", CODE),
        ]
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.name == "dibao_intake.migrations" and r.levelno == logging.WARNING
        ]
        assert warned == [
            f"application {ids[6]}: withdrawn with the words household_dissolved in a"
            " dissolved household, and its timeline holds no withdrawal; taken as the"
            " applicant's"
        ]
        # Only the known causes, and exactly the withdrawn applications have one.
        for statement in (
            "UPDATE application SET withdrawal_cause = 'clerk' WHERE id = $1",
            "UPDATE application SET withdrawal_cause = NULL WHERE id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(statement, ids[1])
        with pytest.raises(asyncpg.CheckViolationError, match="withdrawn_has_cause"):
            await conn.execute(
                "UPDATE application SET withdrawal_cause = 'applicant_request' WHERE id = $1",
                ids[4],
            )

        # Down: the code back in the dissolved one's reason, the column gone; up again.
        await at_0009.downgrade("intake", "0009")
        assert await _state(conn, ids) == [
            (None, CODE),
            (None, "找到稳定工作"),
            (None, CODE),
            (None, CODE),
            (None, None),
            (None, None),
            (None, CODE),
        ]
        await at_0009.migrate("intake", "head")
        assert (await _state(conn, ids))[:4] == [
            (CODE, None),
            ("applicant_request", "找到稳定工作"),
            ("applicant_request", CODE),
            ("applicant_request", CODE),
        ]
    finally:
        await conn.close()


async def test_0012_gives_back_the_withdrawals_the_first_0010_took_for_dissolutions(
    intake_stack: TestStack,
) -> None:
    at_0011 = await intake_database_of_its_own("m0012", "0011")
    conn = await asyncpg.connect(at_0011.dsn("intake"))
    try:
        households = [await insert_household(conn) for _ in range(3)]
        applicant = ev.WITHDRAWAL_CAUSE_UNSPECIFIED
        dissolved = {"withdrawal_cause": CODE}
        ids = [
            # As 0010's first backfill left an applicant's words in a household dissolved
            # later: the cause a dissolution, the words cleared.
            await _withdrawn(conn, households[0], "dibao", None, applicant, **dissolved),
            # Closed by the dissolution, with its event.
            await _withdrawn(
                conn,
                households[1],
                "dibao",
                None,
                ev.WITHDRAWAL_CAUSE_HOUSEHOLD_DISSOLVED,
                **dissolved,
            ),
            await _withdrawn(
                conn,
                households[2],
                "dibao",
                "找到稳定工作",
                applicant,
                withdrawal_cause="applicant_request",
            ),
        ]
        await conn.execute(
            "UPDATE household SET status = 'dissolved' WHERE id = ANY($1::uuid[])",
            [h[0] for h in households[:2]],
        )
        before = await _state(conn, ids)
        await at_0011.migrate("intake", "0012")
        expected = [("applicant_request", CODE), (CODE, None), before[2]]
        assert await _state(conn, ids) == expected
        # Nothing more on a second run, nor on the way down.
        await at_0011.downgrade("intake", "0011")
        await at_0011.migrate("intake", "head")
        assert await _state(conn, ids) == expected
    finally:
        await conn.close()
