"""Timeline entries recorded before f953f2e lose the free text they copied.

Since f953f2e a timeline entry leaves out the words someone wrote (ADR 0009): every role
that reads an application reads its timeline. Entries recorded before kept them in
``timeline_entry.details``: a withdrawal's ``reason``, an investigation's ``findings``,
what an objection says (``summary``), audit's anomaly ``details``, and so on. This
removes those keys from the stored entries.

What is removed is frozen here, not read from the application code, which will change:
``FREE_TEXT_KEYS`` is, for each event type (``ce_type`` as stored) the timeline takes
(one with an ``application_id``, or audit's ``AnomalyDetected``), its top-level string
fields named in the timeline's free-text rule, from the proto registry as it is at this
revision (the v1 catalogue, unchanged since it was written). A unit test checks that it
still covers what the code leaves out. The keys are field names: before the rule an entry
kept every scalar field under its own name (a string as it was, cut at 200 characters),
and an anomaly ``rule``, ``severity`` and ``details``. The key goes by type, so a coded
reason (an enum ``reason`` of another type, shown in words) stays. The one-line summaries
held no free text (an event's name, a count of missing items, an anomaly's rule code),
nor did other keys. ``statement`` and ``staff_relation_note`` of ApplicationSubmitted are
in the rule but never reached an entry (the timeline always skipped them): they are listed
because the constant is the rule, and match no row.

One UPDATE for every type, not one per type nor in batches. The table has no index on
``ce_type``, so a statement per type would read it twelve times; this reads it once and
rewrites only the rows holding such a key (``?|``). The migration runs in a transaction of
its own (``dibao_common.db.alembic_env``), so batches inside it would free nothing before
its commit, and batches committed one by one (an autocommit block) would only help if
something waited on the rewritten rows: timeline entries are only ever inserted, and
readers do not wait on row locks. The table lock is ROW EXCLUSIVE, which neither the
timeline's inserts nor its reads conflict with (an event delivered again while this runs
waits for it, if its entry is one being rewritten). Measured on a test instance (two
shared cores, load 1.5-3.6): 2,000,000 entries (650 MB), 300,000 of them holding such a
key, took 15-19 s and 12 s of the server's CPU; a statement per type took 29 s and 20 s.

Downgrade does nothing: the entries keep no copy of what was removed, so it cannot be put
back from them. The words remain where their owners keep them (an application's
``withdrawal_reason`` in intake; assessment's and publicity's records; audit's log), and
copying them back would show every reader role what the rule hides.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# For each ce_type, the details keys that held words written by someone. Frozen: never
# edit it after it has run (a later change of the rule is a later migration).
FREE_TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "dibao.assessment.AssessmentCompleted.v1": ("explanation",),
    "dibao.assessment.CaseDeadlineExtended.v1": ("reason",),
    "dibao.assessment.CaseReturnedToInvestigation.v1": ("reason",),
    "dibao.assessment.DemocraticEvaluationRecorded.v1": ("note",),
    "dibao.assessment.InvestigationRecorded.v1": ("findings",),
    "dibao.assessment.OneOffAssistanceApproved.v1": ("reason",),
    "dibao.assessment.TownshipReviewCompleted.v1": ("comment",),
    "dibao.audit.AnomalyDetected.v1": ("details",),
    "dibao.intake.ApplicationSubmitted.v1": ("staff_relation_note", "statement"),
    "dibao.intake.ApplicationWithdrawn.v1": ("reason",),
    "dibao.publicity.ObjectionRaised.v1": ("summary",),
    "dibao.publicity.ObjectionResolved.v1": ("resolution",),
}

# The mapping goes in as one JSON parameter: {ce_type: [key, ...]}.
REMOVE_FREE_TEXT = """
UPDATE timeline_entry AS t
SET details = t.details - k.keys
FROM (
    SELECT f.key AS ce_type, ARRAY(SELECT jsonb_array_elements_text(f.value)) AS keys
    FROM jsonb_each(CAST(:free_text_keys AS jsonb)) AS f
) AS k
WHERE t.ce_type = k.ce_type AND t.details ?| k.keys
"""


def upgrade() -> None:
    op.execute(
        sa.text(REMOVE_FREE_TEXT).bindparams(
            free_text_keys=json.dumps(FREE_TEXT_KEYS, sort_keys=True)
        )
    )


def downgrade() -> None:
    """Nothing: the removed text cannot be restored (the entries kept no copy of it)."""
