"""An application keeps what assessment decided of it, not only when.

The timeline consumer sets ``application.decided_at`` from a decision's event
(``BenefitApproved``, ``ApplicationRejected``, ``OneOffAssistanceApproved``), which closes
the application, but the row kept nothing of the outcome: a read and a search still said
``submitted``, with no outcome (ADR 0023). ``decision`` is the outcome (``approved``,
``rejected``, ``one_off_approved``: the event's type) and ``decided_amount_fen`` the amount
the event grants (the monthly allowance of ``BenefitApproved``, the payment of
``OneOffAssistanceApproved``; none for a refusal). A decision is set exactly when
``decided_at`` is (CHECK ``decided_has_decision``), an amount only with a grant.

Backfill, from what was published: each decided application's timeline holds the entry of
the decision that decided it, written with ``decided_at`` in the consumer's transaction
(its ``occurred_at`` is ``decided_at``; its ``details.amount_fen`` the amount). The entry
whose time is ``decided_at`` is taken, else the earliest (then by event id); entries that
arrived after a withdrawal (``details.after_withdrawal``) decided nothing and are never
taken. A decided application whose timeline holds no decision (no code of this project
writes one) cannot be given an outcome: the upgrade is refused, naming it, and nothing is
changed (the transaction is undone). One UPDATE: decided applications are read with their
timelines (the index on ``application_id``), and the constraints are added after it, in the
same transaction.

Downgrade drops the constraints and the two columns (``decided_at`` stays): the upgrade
derives them again from the timelines.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = {
    "dibao.assessment.BenefitApproved.v1": "approved",
    "dibao.assessment.ApplicationRejected.v1": "rejected",
    "dibao.assessment.OneOffAssistanceApproved.v1": "one_off_approved",
}
"""Frozen: the mapping of ``domain.decisions.OUTCOMES`` when this was written (a unit test
compares them)."""

_TYPES = ", ".join(f"'{t}'" for t in OUTCOMES)
_OUTCOME = " ".join(f"WHEN '{t}' THEN '{o}'" for t, o in OUTCOMES.items())

BACKFILL = f"""
UPDATE application AS a
SET decision = d.decision, decided_amount_fen = d.amount_fen
FROM (
    SELECT DISTINCT ON (t.application_id) t.application_id,
        CASE t.ce_type {_OUTCOME} END AS decision,
        CASE WHEN t.ce_type <> 'dibao.assessment.ApplicationRejected.v1'
                  AND jsonb_typeof(t.details -> 'amount_fen') = 'number'
                  AND t.details ->> 'amount_fen' ~ '^[0-9]{{1,18}}$'
             THEN CAST(t.details ->> 'amount_fen' AS bigint) END AS amount_fen
    FROM timeline_entry AS t JOIN application AS x ON x.id = t.application_id
    WHERE x.decided_at IS NOT NULL AND t.ce_type IN ({_TYPES})
      AND (t.details ->> 'after_withdrawal') IS DISTINCT FROM 'true'
    ORDER BY t.application_id, t.occurred_at = x.decided_at DESC, t.occurred_at, t.ce_id
) AS d
WHERE a.id = d.application_id
"""  # noqa: S608 - fixed text

UNDECIDABLE = """
SELECT id FROM application WHERE decided_at IS NOT NULL AND decision IS NULL ORDER BY id
"""
"""Decided applications whose timeline holds no decision to read the outcome from."""


def upgrade() -> None:
    op.add_column("application", sa.Column("decision", sa.Text))
    op.add_column("application", sa.Column("decided_amount_fen", sa.BigInteger))
    op.execute(BACKFILL)
    unknown = [str(row[0]) for row in op.get_bind().execute(sa.text(UNDECIDABLE))]
    if unknown:
        raise RuntimeError(
            "decided applications whose timeline holds no decision (BenefitApproved,"
            " ApplicationRejected, OneOffAssistanceApproved): their outcome cannot be"
            f" told, nothing was changed: {', '.join(unknown)}"
        )
    op.create_check_constraint(
        "decision", "application", "decision IN ('approved', 'rejected', 'one_off_approved')"
    )
    op.create_check_constraint(
        "decided_has_decision", "application", "(decision IS NULL) = (decided_at IS NULL)"
    )
    op.create_check_constraint(
        "decided_amount_of_a_grant",
        "application",
        "decided_amount_fen IS NULL"
        " OR (decided_amount_fen >= 0 AND decision IN ('approved', 'one_off_approved'))",
    )


def downgrade() -> None:
    for name in ("decided_amount_of_a_grant", "decided_has_decision", "decision"):
        op.drop_constraint(op.f(f"ck_application_{name}"), "application", type_="check")
    op.drop_column("application", "decided_amount_fen")
    op.drop_column("application", "decision")
