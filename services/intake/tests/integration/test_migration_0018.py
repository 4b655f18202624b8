"""Migration 0018: a decided application keeps its decision's outcome and amount, taken
from its timeline for those decided before (ADR 0023)."""

from __future__ import annotations

import json
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

APPROVED = "dibao.assessment.BenefitApproved.v1"
REJECTED = "dibao.assessment.ApplicationRejected.v1"
ONE_OFF = "dibao.assessment.OneOffAssistanceApproved.v1"
DECIDED_AT = MIGRATION_AT + timedelta(days=30)


async def _entry(
    conn: asyncpg.Connection,
    application: uuid.UUID,
    ce_type: str,
    details: dict[str, object],
    *,
    at: object = DECIDED_AT,
) -> None:
    """A decision's timeline entry, as the consumer wrote it (details as ``describe``)."""
    await conn.execute(
        """INSERT INTO timeline_entry (ce_id, application_id, ce_type, ce_source, occurred_at,
               actor, summary, details, recorded_at)
           VALUES ($1, $2, $3, 'dibao/assessment', $4, 'approver-1', 'decided', $5, $4)""",
        uuid.uuid4(),
        application,
        ce_type,
        at,
        json.dumps(details),
    )


async def _decisions(conn: asyncpg.Connection) -> dict[uuid.UUID, tuple[object, object]]:
    rows = await conn.fetch("SELECT id, decision, decided_amount_fen FROM application")
    return {r["id"]: (r["decision"], r["decided_amount_fen"]) for r in rows}


async def test_0018_backfills_each_decided_applications_outcome_from_its_timeline(
    intake_stack: TestStack,
) -> None:
    """At 0017: applications approved, rejected and granted a one-off payment (their
    decisions' entries in their timelines, one approved twice: the entry at decided_at
    counts), one undecided, one withdrawn with a decision that arrived after. 0018 gives
    each decided one its outcome and amount and leaves the others without; a decided row
    then needs a decision and a refusal no amount (CHECKs); the downgrade drops them and
    the upgrade derives them again."""
    stack = await intake_database_of_its_own("m0018", "0017")
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        household = await insert_household(conn)
        decided = {"decided_at": DECIDED_AT}
        approved = await insert_application(conn, household, "dibao", "submitted", **decided)
        await _entry(conn, approved, APPROVED, {"amount_fen": 52000, "decided_on": "2026-07-01"})
        # A second approval, later: the first decision counted (decided_at is its time).
        await _entry(
            conn, approved, APPROVED, {"amount_fen": 99900}, at=DECIDED_AT + timedelta(hours=1)
        )
        rejected = await insert_application(conn, household, "temporary", "submitted", **decided)
        await _entry(conn, rejected, REJECTED, {"near_dibao": True})
        one_off = await insert_application(conn, household, "festival", "submitted", **decided)
        await _entry(conn, one_off, ONE_OFF, {"amount_fen": 30000})
        no_amount = await insert_application(conn, household, "medical", "submitted", **decided)
        await _entry(conn, no_amount, APPROVED, {"first_payable_month": "2026-08"})
        undecided = await insert_application(conn, household, "heating", "submitted")
        withdrawn = await insert_application(
            conn,
            household,
            "education",
            "withdrawn",
            withdrawn_at=MIGRATION_AT,
            withdrawal_cause="applicant_request",
        )
        await _entry(conn, withdrawn, APPROVED, {"amount_fen": 1, "after_withdrawal": True})

        await stack.migrate("intake", "0018")
        expected = {
            approved: ("approved", 52000),
            rejected: ("rejected", None),
            one_off: ("one_off_approved", 30000),
            no_amount: ("approved", None),
            undecided: (None, None),
            withdrawn: (None, None),
        }
        assert await _decisions(conn) == expected
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE application SET decision = NULL WHERE id = $1", approved)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE application SET decided_amount_fen = 1 WHERE id = $1", rejected
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE application SET decision = 'approved' WHERE id = $1", undecided
            )
        await stack.downgrade("intake", "0017")
        columns = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'application'"
            " AND column_name IN ('decision', 'decided_amount_fen')"
        )
        assert columns == 0
        await stack.migrate("intake", "head")
        assert await _decisions(conn) == expected
    finally:
        await conn.close()


async def test_0018_refuses_a_decided_application_whose_timeline_holds_no_decision(
    intake_stack: TestStack,
) -> None:
    """Its outcome cannot be told: the upgrade fails naming it and changes nothing; with
    the decision's entry in its timeline it goes through."""
    stack = await intake_database_of_its_own("m0018b", "0017")
    conn = await asyncpg.connect(stack.dsn("intake"))
    try:
        household = await insert_household(conn)
        orphan = await insert_application(
            conn, household, "dibao", "submitted", decided_at=DECIDED_AT
        )
        with pytest.raises(Exception, match=str(orphan)):
            await stack.migrate("intake", "0018")
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0017"
        await _entry(conn, orphan, REJECTED, {})
        await stack.migrate("intake", "head")
        assert await _decisions(conn) == {orphan: ("rejected", None)}
    finally:
        await conn.close()
