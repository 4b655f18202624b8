"""Migration 0015: a member's receipts not counted and deductions, one of each kind, each
referring to the member's declaration (ADR 0007, 3 Dec 2026); the downgrade drops them."""

from __future__ import annotations

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack
from dibao_intake.testing import insert_application, insert_household, intake_database_of_its_own

pytestmark = [pytest.mark.postgres]

NOT_COUNTED = (
    "INSERT INTO application_income_not_counted (application_id, person_id, kind, monthly_fen)"
    " VALUES ($1, $2, $3, $4)"
)
DEDUCTION = (
    "INSERT INTO application_income_deduction (application_id, person_id, kind, monthly_fen)"
    " VALUES ($1, $2, $3, $4)"
)


async def test_0015_holds_one_item_of_a_kind_for_a_declared_member_and_downgrades(
    intake_stack: TestStack,
) -> None:
    stack = await intake_database_of_its_own("m0015", "0014")
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        household = await insert_household(conn)
        application = await insert_application(conn, household, "dibao", "submitted")
        person = household[1]
        await stack.migrate("intake", "0015")
        # No declaration of the member yet: nothing beside it.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(NOT_COUNTED, application, person, "social_assistance", 5_000)
        await conn.execute(
            "INSERT INTO application_income (application_id, person_id, wage_fen,"
            " operating_fen, property_fen, transfer_fen, other_fen, period_months)"
            " VALUES ($1, $2, 0, 0, 0, 20000, 0, 6)",
            application,
            person,
        )
        await conn.execute(NOT_COUNTED, application, person, "residents_basic_pension", 18_000)
        await conn.execute(DEDUCTION, application, person, "serious_illness_costs", 60_000)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(NOT_COUNTED, application, person, "residents_basic_pension", 1)
        for statement, kind, fen in (
            (NOT_COUNTED, "lottery_win", 100),
            (NOT_COUNTED, "social_assistance", 0),
            (DEDUCTION, "funeral_costs", 100),
            (DEDUCTION, "disability_costs", 10_000_001),
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(statement, application, person, kind, fen)
        await stack.downgrade("intake", "0014")
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'application_income_%'"
        )
        assert tables == []
        # The declaration itself stays.
        assert await conn.fetchval("SELECT count(*) FROM application_income") == 1
        await stack.migrate("intake", "head")
    finally:
        await conn.close()
