"""Migration 0014: one document per content, type and member of a household, held by a
unique index. Documents handed in twice before it stay (applications and events name
them): each later copy is marked ``duplicate_of`` the earliest, outside the index; a
downgrade drops the marks and keeps every row, and an upgrade again marks the same."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack
from dibao_intake.testing import (
    MIGRATION_AT,
    insert_application,
    insert_household,
    intake_database_of_its_own,
)

pytestmark = [pytest.mark.postgres]

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.fixture
async def at_0013(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0013 (the session's intake database is at head)."""
    return await intake_database_of_its_own("m0014", "0013")


async def _document(
    conn: asyncpg.Connection,
    household: uuid.UUID,
    person: uuid.UUID | None,
    document_type: str,
    sha256: str,
    *,
    minutes: int = 0,
    document_id: uuid.UUID | None = None,
) -> uuid.UUID:
    document = document_id or uuid.uuid4()
    await conn.execute(
        """INSERT INTO document (id, household_id, person_id, document_type, sha256,
               size_bytes, media_type, uploaded_by, created_at)
           VALUES ($1, $2, $3, $4, $5, 10, 'application/pdf', 'clerk-1', $6)""",
        document,
        household,
        person,
        document_type,
        sha256,
        MIGRATION_AT + timedelta(minutes=minutes),
    )
    return document


async def _marks(conn: asyncpg.Connection) -> dict[uuid.UUID, uuid.UUID | None]:
    rows = await conn.fetch("SELECT id, to_jsonb(d) ->> 'duplicate_of' AS of FROM document AS d")
    return {r["id"]: uuid.UUID(r["of"]) if r["of"] else None for r in rows}


async def _index(conn: asyncpg.Connection) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_document_handed_in'"
    )
    return found


async def test_0014_marks_the_copies_handed_in_before_and_holds_one_document(
    at_0013: TestStack,
) -> None:
    conn = await asyncpg.connect(at_0013.dsn("intake"))
    try:
        household, head = await insert_household(conn)
        other, _ = await insert_household(conn)
        # At 0013: the head's ID card handed in three times (the last two at the same
        # time: the id orders them), the register twice, and one of each of the rest.
        card = await _document(conn, household, head, "id_card", SHA_A, minutes=0)
        late, early = sorted([uuid.uuid4(), uuid.uuid4()], reverse=True)
        card_late = await _document(
            conn, household, head, "id_card", SHA_A, minutes=5, document_id=late
        )
        card_early = await _document(
            conn, household, head, "id_card", SHA_A, minutes=5, document_id=early
        )
        register = await _document(conn, household, None, "household_register", SHA_B, minutes=1)
        register_again = await _document(
            conn, household, None, "household_register", SHA_B, minutes=2
        )
        as_form = await _document(conn, household, None, "application_form", SHA_A)
        theirs = await _document(conn, other, None, "household_register", SHA_B)
        # An application named a later copy: it keeps naming it.
        application = await insert_application(conn, (household, head), "dibao", "submitted")
        await conn.execute(
            "INSERT INTO application_document (application_id, document_id) VALUES ($1, $2)",
            application,
            card_late,
        )

        await at_0013.migrate("intake", "0014")
        expected = {
            card: None,
            card_early: card,
            card_late: card,
            register: None,
            register_again: register,
            as_form: None,
            theirs: None,
        }
        assert await _marks(conn) == expected
        definition = await _index(conn)
        assert definition is not None
        assert "UNIQUE" in definition
        assert "NULLS NOT DISTINCT" in definition
        assert "WHERE (duplicate_of IS NULL)" in definition
        assert (
            await conn.fetchval(
                "SELECT document_id FROM application_document WHERE application_id = $1",
                application,
            )
            == card_late
        )
        # The index holds: the same document again, with a member or without, is refused.
        again = ((head, "id_card", SHA_A), (None, "household_register", SHA_B))
        for person, document_type, sha in again:
            with pytest.raises(asyncpg.UniqueViolationError):
                await _document(conn, household, person, document_type, sha, minutes=9)
        # Another member's, another type's: documents of their own.
        await _document(conn, household, head, "income_proof", SHA_A, minutes=9)

        await at_0013.downgrade("intake", "0013")
        assert await _index(conn) is None
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'document'"
        )
        assert "duplicate_of" not in {c["column_name"] for c in columns}
        assert await conn.fetchval("SELECT count(*) FROM document") == len(expected) + 1
        # Down, a copy can be written again (0013's code did); up again, it is marked too.
        copy = await _document(conn, household, head, "id_card", SHA_A, minutes=20)
        await at_0013.migrate("intake", "0014")
        marks = await _marks(conn)
        assert {k: marks[k] for k in expected} == expected
        assert marks[copy] == card
    finally:
        await conn.close()
