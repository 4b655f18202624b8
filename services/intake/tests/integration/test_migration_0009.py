"""Migration 0009: names stored in the spelling typed (before 5b2ca35) take their one
spelling, in every name column, and nothing else is rewritten."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres]

AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
DOT = "\u00b7"

# (as typed before 5b2ca35, its one spelling)
OLD_SPELLINGS = [
    ("买买提・艾力", f"买买提{DOT}艾力"),  # U+30FB
    (" 买买提 ． 艾力\u3000", f"买买提{DOT}艾力"),  # U+FF0E padded
    ("买买提。艾力", f"买买提{DOT}艾力"),  # U+3002
    ("王\u3000芳", "王芳"),  # padded for alignment
    ("ＪＯＨＮ\u3000\u3000ＳＭＩＴＨ", "JOHN SMITH"),
    ("\ufeff阿卜杜\u200b·热合曼", f"阿卜杜{DOT}热合曼"),
]
NORMAL = [f"买买提{DOT}艾力", "王芳", "J. Smith", "马 Li"]
EMPTY = ["·", "\u3000．\u200b"]

ROWS = {
    "person": "SELECT id, name, xmin::text AS xmin FROM person",
    "staff_member": "SELECT id, name, xmin::text AS xmin FROM staff_member",
    "staff_relative": "SELECT id, name, xmin::text AS xmin FROM staff_relative",
    "bank_account": "SELECT id, holder_name AS name, bank_name, xmin::text AS xmin"
    " FROM bank_account",
}


@pytest.fixture
async def at_0008(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0008 (the session's intake database is at head)."""
    private = TestStack(
        intake_stack.pg_admin_dsn, intake_stack.kafka_bootstrap, f"{intake_stack.db_prefix}_m0009"
    )
    await private.recreate_database("intake")
    await private.migrate("intake", "0008")
    return private


async def _person(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    person = uuid.uuid4()
    await conn.execute(
        """INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,
               birth_date, sex, created_at)
           VALUES ($1, $2, 'h1', '\\x00', '6201**********0221', $3, $4, 'female', $5)""",
        person,
        f"hash-{person}",
        name,
        date(1972, 3, 8),
        AT,
    )
    return person


async def _household(conn: asyncpg.Connection) -> uuid.UUID:
    household = uuid.uuid4()
    await conn.execute(
        """INSERT INTO household (id, region_code, area_type, address, status, head_person_id,
               version, created_at, created_by, updated_at)
           VALUES ($1, '620123101203', 'rural', 'a', 'active', NULL, 1, $2, 'clerk-1', $2)""",
        household,
        AT,
    )
    return household


async def _account(
    conn: asyncpg.Connection, household: uuid.UUID, holder: str, superseded: bool
) -> uuid.UUID:
    account = uuid.uuid4()
    await conn.execute(
        """INSERT INTO bank_account (id, household_id, number_cipher, number_hash,
               masked_number, bank_code, bank_name, holder_name, holder_person_id,
               custody_agreement, created_at, superseded_at)
           VALUES ($1, $2, '\\x00', $3, '6228****0001', 'ABC', '中国农业银行　榆中县支行', $4,
               NULL, false, $5, $6)""",
        account,
        household,
        f"hash-{account}",
        holder,
        AT,
        AT if superseded else None,
    )
    return account


async def _staff(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    staff = uuid.uuid4()
    await conn.execute(
        """INSERT INTO staff_member (id, township_code, name, role, subject,
               responsible_caseworker, active, created_at, created_by)
           VALUES ($1, '620123101000', $2, 'clerk', NULL, false, true, $3, 'admin-1')""",
        staff,
        name,
        AT,
    )
    return staff


async def _relative(conn: asyncpg.Connection, staff: uuid.UUID, name: str) -> uuid.UUID:
    relative = uuid.uuid4()
    await conn.execute(
        """INSERT INTO staff_relative (id, staff_id, relation, name, id_hash,
               id_number_cipher, masked_id)
           VALUES ($1, $2, 'spouse', $3, $4, '\\x00', '6201**********0221')""",
        relative,
        staff,
        name,
        f"hash-{relative}",
    )
    return relative


async def _snapshot(conn: asyncpg.Connection) -> dict[tuple[str, uuid.UUID], dict[str, str]]:
    found: dict[tuple[str, uuid.UUID], dict[str, str]] = {}
    for table, query in ROWS.items():
        for row in await conn.fetch(query):
            found[(table, row["id"])] = {k: v for k, v in dict(row).items() if k != "id"}
    return found


async def test_0009_brings_every_stored_name_to_its_spelling_once(
    at_0008: TestStack, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(at_0008.dsn("intake"))
    try:
        household = await _household(conn)
        expected: dict[tuple[str, uuid.UUID], str] = {}
        kept: list[tuple[str, uuid.UUID]] = []
        empty: list[tuple[str, uuid.UUID]] = []
        for typed, spelling in OLD_SPELLINGS:
            staff = await _staff(conn, typed)
            expected[("person", await _person(conn, typed))] = spelling
            expected[("staff_member", staff)] = spelling
            expected[("staff_relative", await _relative(conn, staff, typed))] = spelling
            for superseded in (True, False):
                if superseded or typed == OLD_SPELLINGS[0][0]:
                    account = await _account(conn, household, typed, superseded)
                    expected[("bank_account", account)] = spelling
        for name in NORMAL:
            staff = await _staff(conn, name)
            kept += [("person", await _person(conn, name)), ("staff_member", staff)]
            kept.append(("staff_relative", await _relative(conn, staff, name)))
            kept.append(("bank_account", await _account(conn, household, name, True)))
        for name in EMPTY:
            empty += [
                ("person", await _person(conn, name)),
                ("staff_member", await _staff(conn, name)),
            ]
        # More rows than one batch (1000): a run of old spellings across the batches' edges.
        await conn.execute(
            """INSERT INTO person (id, id_hash, hash_key_id, id_number_cipher, masked_id, name,
                   birth_date, sex, created_at)
               SELECT gen_random_uuid(), 'bulk-' || i, 'h1', '\\x00', 'm',
                   CASE WHEN i % 3 = 0 THEN '李　娜' ELSE '李娜' END, '1980-01-01', 'female', $1
               FROM generate_series(1, 2500) AS i""",
            AT,
        )

        before = await _snapshot(conn)
        with caplog.at_level(logging.INFO, logger="dibao_intake.migrations"):
            await at_0008.migrate("intake", "0009")
        after = await _snapshot(conn)

        for key, spelling in expected.items():
            assert after[key]["name"] == spelling, key
            assert after[key]["xmin"] != before[key]["xmin"]
        # Names already in their spelling are not even rewritten (same row version), nor
        # are names of nothing (left as typed, their row ids logged).
        assert {k: after[k] for k in kept + empty} == {k: before[k] for k in kept + empty}
        warned = {
            r.getMessage()
            for r in caplog.records
            if r.name == "dibao_intake.migrations" and r.levelno == logging.WARNING
        }
        assert warned == {
            f"{table} {row_id}: name holds no name, left as it is" for table, row_id in empty
        }
        # A bank's name is not a person's: as typed.
        assert {v["bank_name"] for k, v in after.items() if k[0] == "bank_account"} == {
            "中国农业银行　榆中县支行"
        }
        bulk = await conn.fetch(
            "SELECT name, count(*) AS n FROM person WHERE id_hash LIKE 'bulk-%' GROUP BY name"
        )
        assert {r["name"]: r["n"] for r in bulk} == {"李娜": 2500}

        # Downgrade is a no-op and upgrading again rewrites nothing.
        await at_0008.downgrade("intake", "0008")
        assert await _snapshot(conn) == after
        await at_0008.migrate("intake", "head")
        assert await _snapshot(conn) == after
        assert await conn.fetchval("SELECT version_num FROM alembic_version") is not None
    finally:
        await conn.close()
