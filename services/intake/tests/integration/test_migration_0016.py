"""Migration 0016: a withdrawn application's cause may be applicant_left (its applicant
died or moved out with nobody who stays able to apply, ADR 0016, 3 Dec 2026); a downgrade
is refused while one holds it."""

from __future__ import annotations

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


async def test_0016_admits_applicant_left_and_refuses_to_downgrade_while_a_row_holds_it(
    intake_stack: TestStack,
) -> None:
    """Before 0016 the CHECK refuses the cause; after it, it is stored; the downgrade is
    refused naming the application, and goes through once no row holds it."""
    stack = await intake_database_of_its_own("m0016", "0015")
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        household = await insert_household(conn)
        closed = {
            "withdrawn_at": MIGRATION_AT,
            "withdrawal_cause": "applicant_left",
        }
        with pytest.raises(asyncpg.CheckViolationError):
            await insert_application(conn, household, "dibao", "withdrawn", **closed)
        await stack.migrate("intake", "0016")
        application = await insert_application(conn, household, "dibao", "withdrawn", **closed)
        with pytest.raises(Exception, match=str(application)):
            await stack.downgrade("intake", "0015")
        await conn.execute(
            "UPDATE application SET withdrawal_cause = 'applicant_request' WHERE id = $1",
            application,
        )
        await stack.downgrade("intake", "0015")
        with pytest.raises(asyncpg.CheckViolationError):
            await insert_application(conn, household, "temporary", "withdrawn", **closed)
        await stack.migrate("intake", "head")
    finally:
        await conn.close()
