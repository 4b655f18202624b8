"""Migration 0006: timeline entries recorded before the free-text rule lose their words,
and nothing else."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres]

WORDS = "王芳说邻居张伟在外打工，收入没有申报"  # free text naming people, as a clerk writes it
AT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
APPLICATION = uuid.uuid4()

# Entries as the timeline wrote them before f953f2e (its ``describe`` then): the stored
# details, and what 0006 must leave of them.
OLD_ENTRIES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "dibao.intake.ApplicationWithdrawn.v1",
        "Application withdrawn",
        {"reason": WORDS},
        {},
    ),
    (
        "dibao.audit.AnomalyDetected.v1",
        "Anomaly detected: deadline_overrun",
        {"rule": "deadline_overrun", "severity": "SEVERITY_WARNING", "details": WORDS},
        {"rule": "deadline_overrun", "severity": "SEVERITY_WARNING"},
    ),
    (
        "dibao.assessment.InvestigationRecorded.v1",
        "Investigation recorded",
        {"visited_on": "2026-03-02", "form_signed": True, "findings": WORDS},
        {"visited_on": "2026-03-02", "form_signed": True},
    ),
    (
        "dibao.publicity.ObjectionRaised.v1",
        "Objection raised",
        {"objection_id": "o-1", "ground": "concealed_income", "channel": "phone", "summary": WORDS},
        {"objection_id": "o-1", "ground": "concealed_income", "channel": "phone"},
    ),
    (
        "dibao.assessment.OneOffAssistanceApproved.v1",
        "One off assistance approved",
        {"amount_fen": 100000, "reason": WORDS},
        {"amount_fen": 100000},
    ),
]

# Entries 0006 must not rewrite: the same types recorded after the rule, other types, and
# keys named like free text where they are not (a coded reason: no type the timeline takes
# has one today, so a suspension's stands for it; a type 0006 does not know).
KEPT_ENTRIES: list[tuple[str, str, dict[str, Any]]] = [
    ("dibao.intake.ApplicationWithdrawn.v1", "Application withdrawn", {}),
    (
        "dibao.audit.AnomalyDetected.v1",
        "Anomaly detected: deadline_overrun",
        {"rule": "deadline_overrun", "severity": "SEVERITY_WARNING"},
    ),
    (
        "dibao.intake.ApplicationSubmitted.v1",
        "Application submitted",
        {"kind": "dibao", "staff_related": False, "requested_amount_fen": 52000},
    ),
    (
        "dibao.intake.ApplicationReturned.v1",
        "Application returned: 1 item(s) missing",
        {"missing_items": ["the household register"]},
    ),
    (
        "dibao.assessment.HouseholdSuspended.v1",
        "Household suspended",
        {"reason": "under_investigation"},
    ),
    ("dibao.example.Unknown.v1", "Unknown", {"note": "a key 0006 does not name for this type"}),
]

ROWS = """
SELECT ce_id, application_id, ce_type, ce_source, occurred_at, actor, summary,
    details::text AS details, recorded_at, xmin::text AS xmin
FROM timeline_entry
"""


async def _rows(conn: asyncpg.Connection) -> dict[uuid.UUID, dict[str, Any]]:
    rows = {r["ce_id"]: dict(r) for r in await conn.fetch(ROWS)}
    for row in rows.values():
        row["details"] = json.loads(row["details"])
    return rows


@pytest.fixture
async def at_0005(intake_stack: TestStack) -> TestStack:
    """A database of its own at revision 0005 (the session's intake database is at head)."""
    private = TestStack(
        intake_stack.pg_admin_dsn, intake_stack.kafka_bootstrap, f"{intake_stack.db_prefix}_m0006"
    )
    await private.recreate_database("intake")
    await private.migrate("intake", "0005")
    return private


async def _insert(conn: asyncpg.Connection, ce_type: str, summary: str, details: Any) -> uuid.UUID:
    ce_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO timeline_entry (ce_id, application_id, ce_type, ce_source, occurred_at,
               actor, summary, details, recorded_at)
           VALUES ($1, $2, $3, 'test', $4, 'clerk-1', $5, $6::jsonb, $4)""",
        ce_id,
        APPLICATION,
        ce_type,
        AT,
        summary,
        json.dumps(details),
    )
    return ce_id


async def test_0006_removes_the_free_text_of_old_entries_and_nothing_else(
    at_0005: TestStack,
) -> None:
    conn = await asyncpg.connect(at_0005.dsn("intake"))
    try:
        cleaned = {
            await _insert(conn, ce_type, summary, details): left
            for ce_type, summary, details, left in OLD_ENTRIES
        }
        kept = [await _insert(conn, *entry) for entry in KEPT_ENTRIES]
        before = await _rows(conn)
        await at_0005.migrate("intake", "0006")
        after = await _rows(conn)

        for ce_id, left in cleaned.items():
            # The free-text keys gone, the other keys and columns as they were.
            assert after[ce_id] == before[ce_id] | {"details": left, "xmin": after[ce_id]["xmin"]}
        # The others were not even rewritten: same row version.
        assert {k: after[k] for k in kept} == {k: before[k] for k in kept}

        # Downgrade keeps what upgrade left (the text cannot come back); upgrading again
        # rewrites nothing.
        await at_0005.downgrade("intake", "0005")
        assert await _rows(conn) == after
        await at_0005.migrate("intake", "head")
        assert await _rows(conn) == after
    finally:
        await conn.close()
