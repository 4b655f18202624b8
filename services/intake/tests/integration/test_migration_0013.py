"""Migration 0013: one person is the responsible caseworker of one township, held by two
unique indexes; a database that already names someone for two townships is not upgraded
(the upgrade refuses, naming the entries, and changes nothing) until the roster is put
right."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack
from dibao_intake.testing import MIGRATION_AT, intake_database_of_its_own

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def at_0012(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0012 (the session's intake database is at head)."""
    return await intake_database_of_its_own("m0013", "0012")


async def _caseworker(
    conn: asyncpg.Connection, township: str, subject: str, id_hash: str | None
) -> uuid.UUID:
    staff = uuid.uuid4()
    await conn.execute(
        """INSERT INTO staff_member (id, township_code, name, role, subject,
               responsible_caseworker, id_hash, active, created_at, created_by)
           VALUES ($1, $2, '张伟', 'caseworker', $3, true, $4, true, $5, 'admin-1')""",
        staff,
        township,
        subject,
        id_hash,
        MIGRATION_AT,
    )
    return staff


async def _indexes(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'staff_member'"
        " AND indexname LIKE 'uq_staff_member_caseworker_%'"
    )
    return {r["indexname"] for r in rows}


async def test_0013_refuses_a_caseworker_of_two_townships_then_holds_one(
    at_0012: TestStack,
) -> None:
    conn = await asyncpg.connect(at_0012.dsn("intake"))
    try:
        await _caseworker(conn, "620123101000", "cw-a", "hash-a")
        await _caseworker(conn, "620123102000", "cw-b", None)  # no number on file (ADR 0009)
        by_subject = await _caseworker(conn, "620123103000", "cw-a", "hash-c")
        by_hash = await _caseworker(conn, "620123104000", "cw-d", "hash-a")
        with pytest.raises(
            RuntimeError, match=f"0013 refused: 3 active roster entries.*{by_subject}"
        ):
            await at_0012.migrate("intake", "0013")
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0012"
        assert await _indexes(conn) == set()

        # Put right through the roster (here: the later entries deactivated), it upgrades.
        await conn.execute(
            "UPDATE staff_member SET active = false, deactivated_at = $2,"
            " deactivated_by = 'admin-1' WHERE id = ANY($1::uuid[])",
            [by_subject, by_hash],
            MIGRATION_AT,
        )
        await at_0012.migrate("intake", "0013")
        assert await _indexes(conn) == {
            "uq_staff_member_caseworker_subject",
            "uq_staff_member_caseworker_id_hash",
        }
        with pytest.raises(asyncpg.UniqueViolationError):
            await _caseworker(conn, "620123105000", "cw-b", None)
        await at_0012.downgrade("intake", "0012")
        assert await _indexes(conn) == set()
    finally:
        await conn.close()
