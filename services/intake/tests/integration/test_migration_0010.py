"""Migration 0010: a withdrawn application's cause in a column of its own, backfilled from
what the row and its household say, and constrained to the known causes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres]

AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
async def at_0009(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0009 (the session's intake database is at head)."""
    private = TestStack(
        intake_stack.pg_admin_dsn, intake_stack.kafka_bootstrap, f"{intake_stack.db_prefix}_m0010"
    )
    await private.recreate_database("intake")
    await private.migrate("intake", "0009")
    return private


async def _household(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    household, person = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,
               birth_date, sex, created_at)
           VALUES ($1, $2, 'h1', '\\x00', 'm', '马建国', $3, 'male', $4)""",
        person,
        f"hash-{person}",
        date(1950, 1, 1),
        AT,
    )
    await conn.execute(
        """INSERT INTO household (id, region_code, area_type, address, status, head_person_id,
               version, created_at, created_by, updated_at)
           VALUES ($1, '620123101203', 'rural', 'a', 'active', $2, 1, $3, 'clerk-1', $3)""",
        household,
        person,
        AT,
    )
    return household, person


async def _application(
    conn: asyncpg.Connection,
    household: tuple[uuid.UUID, uuid.UUID],
    kind: str,
    status: str,
    reason: str | None,
) -> uuid.UUID:
    application = uuid.uuid4()
    await conn.execute(
        """INSERT INTO application (id, household_id, region_code, kind, channel, status,
               applicant_person_id, staff_related, missing_items, submitted_at, submitted_by,
               withdrawn_at, withdrawal_reason)
           VALUES ($1, $2, '620123101203', $3, 'counter', $4, $5, false, '[]', $6,
               'clerk-1', $7, $8)""",
        application,
        household[0],
        kind,
        status,
        household[1],
        AT,
        AT if status == "withdrawn" else None,
        reason,
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


async def test_0010_backfills_the_cause_and_constrains_it(at_0009: TestStack) -> None:
    conn = await asyncpg.connect(at_0009.dsn("intake"))
    try:
        dissolved, living = await _household(conn), await _household(conn)
        ids = [
            # Closed by the dissolution (6842631): the code in the reason.
            await _application(conn, dissolved, "dibao", "withdrawn", "household_dissolved"),
            # The applicant's, before the household dissolved.
            await _application(conn, dissolved, "temporary", "withdrawn", "找到稳定工作"),
            # The applicant's words happen to be the code; the household still exists.
            await _application(conn, living, "dibao", "withdrawn", "household_dissolved"),
            await _application(conn, living, "temporary", "submitted", None),
            await _application(conn, living, "festival", "returned", None),
        ]
        await conn.execute("UPDATE household SET status = 'dissolved' WHERE id = $1", dissolved[0])

        await at_0009.migrate("intake", "0010")
        assert await _state(conn, ids) == [
            ("household_dissolved", None),
            ("applicant_request", "找到稳定工作"),
            ("applicant_request", "household_dissolved"),
            (None, None),
            (None, None),
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
                ids[3],
            )

        # Down: the code back in the dissolved one's reason, the column gone; up again.
        await at_0009.downgrade("intake", "0009")
        assert await _state(conn, ids) == [
            (None, "household_dissolved"),
            (None, "找到稳定工作"),
            (None, "household_dissolved"),
            (None, None),
            (None, None),
        ]
        await at_0009.migrate("intake", "head")
        assert (await _state(conn, ids))[:3] == [
            ("household_dissolved", None),
            ("applicant_request", "找到稳定工作"),
            ("applicant_request", "household_dissolved"),
        ]
    finally:
        await conn.close()
