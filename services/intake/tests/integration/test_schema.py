"""The migrations run down and up, and the database itself keeps what the models say.

That they build exactly the tables the models describe, the kit's tables included, is
``tests/infra/test_schema_drift.py`` (every service alike).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.testing.stack import TestStack
from dibao_intake.models import Household, HouseholdMember, Person, table_of

pytestmark = [pytest.mark.postgres]


async def test_the_chain_runs_down_and_up(intake_stack: TestStack) -> None:
    private = TestStack(
        intake_stack.pg_admin_dsn, intake_stack.kafka_bootstrap, f"{intake_stack.db_prefix}_chain"
    )
    await private.recreate_database("intake")
    await private.migrate("intake")
    await private.downgrade("intake", "0001")
    await private.migrate("intake")
    engine = make_engine(private.database_url("intake"), pool_size=1)
    try:
        async with engine.connect() as conn:
            tables = {
                r[0]
                for r in await conn.execute(
                    text("select tablename from pg_tables where schemaname='public'")
                )
            }
        assert {"person", "household", "application", "timeline_entry"} <= tables
    finally:
        await engine.dispose()


async def test_the_database_itself_keeps_a_person_in_one_active_household(
    intake_engine: AsyncEngine,
) -> None:
    person, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    household = {
        "region_code": "620123101203",
        "area_type": "rural",
        "address": "a",
        "status": "active",
        "head_person_id": None,
        "version": 1,
        "created_at": now,
        "created_by": "t",
        "updated_at": now,
    }

    def membership(household_id: uuid.UUID) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "household_id": household_id,
            "person_id": person,
            "relationship": "head",
            "disability_grade": "none",
            "seriously_ill": False,
            "employment_status": "retired",
            "student": False,
            "counted": True,
            "exclusion_reason": None,
            "exclusion_note": None,
            "active": True,
            "joined_on": date(2026, 1, 1),
            "left_on": None,
            "left_reason": None,
        }

    async with intake_engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(
                sa.insert(table_of(Person)).values(
                    id=person,
                    id_hash=f"hash-{person}",
                    hash_key_id="h1",
                    id_number_cipher=b"\x00",
                    masked_id="m",
                    name="n",
                    birth_date=date(1970, 1, 1),
                    sex="male",
                    created_at=now,
                )
            )
            for household_id in (first, second):
                await conn.execute(
                    sa.insert(table_of(Household)).values(id=household_id, **household)
                )
            await conn.execute(sa.insert(table_of(HouseholdMember)).values(**membership(first)))
            with pytest.raises(IntegrityError, match="uq_household_member_active_person"):
                await conn.execute(
                    sa.insert(table_of(HouseholdMember)).values(**membership(second))
                )
        finally:
            await transaction.rollback()
