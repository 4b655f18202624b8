"""What a decision's event says of an application: its outcome, and the amount granted.

Assessment decides; intake learns it from the decision's event on ``dibao.assessment.v1``
(the timeline consumer) and keeps it with the application, so that a read and a search
say "approved on ..." instead of a bare ``submitted`` (ADR 0023). The outcome is the
event's type; the amount is the event's own (``BenefitApproved.amount``, the monthly
allowance, supplements included; ``OneOffAssistanceApproved.amount``, the payment), as
the event's timeline entry holds it (``amount_fen``); a refusal carries none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dibao_intake.domain.codes import DecisionOutcome

OUTCOMES: Mapping[str, DecisionOutcome] = {
    "dibao.assessment.BenefitApproved.v1": DecisionOutcome.APPROVED,
    "dibao.assessment.ApplicationRejected.v1": DecisionOutcome.REJECTED,
    "dibao.assessment.OneOffAssistanceApproved.v1": DecisionOutcome.ONE_OFF_APPROVED,
}
"""The decision's event types, and the outcome each stands for. Migration 0018's
backfill holds the same mapping in SQL (frozen there; a unit test compares them)."""

_GRANTED = frozenset({DecisionOutcome.APPROVED, DecisionOutcome.ONE_OFF_APPROVED})


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: DecisionOutcome
    amount_fen: int | None
    """Granted: monthly for ``approved``, once for ``one_off_approved``; None for a
    refusal, and for a grant whose event names no amount."""


def decision_of(ce_type: str, details: Mapping[str, Any]) -> Decision | None:
    """The decision an event of ``ce_type`` with these timeline details records, or None
    for an event that decides nothing. An amount that is not a whole number of fen, or is
    negative, is no amount (the event's contract is ``Money.fen``, an int64)."""
    outcome = OUTCOMES.get(ce_type)
    if outcome is None:
        return None
    amount = details.get("amount_fen") if outcome in _GRANTED else None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        amount = None
    return Decision(outcome, amount)
