"""The decision an event of assessment's records (ADR 0023): its outcome by type, and the
amount its timeline entry holds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from dibao_intake.domain.codes import DecisionOutcome
from dibao_intake.domain.decisions import OUTCOMES, Decision, decision_of
from dibao_intake.service_layer import timeline

APPROVED = "dibao.assessment.BenefitApproved.v1"
REJECTED = "dibao.assessment.ApplicationRejected.v1"
ONE_OFF = "dibao.assessment.OneOffAssistanceApproved.v1"
MIGRATION = (
    Path(__file__).resolve().parents[2] / "migrations" / "versions" / "0018_application_decision.py"
)


@pytest.mark.parametrize(
    ("ce_type", "details", "decided"),
    [
        (APPROVED, {"amount_fen": 52000}, Decision(DecisionOutcome.APPROVED, 52000)),
        (APPROVED, {"amount_fen": 0}, Decision(DecisionOutcome.APPROVED, 0)),
        (APPROVED, {}, Decision(DecisionOutcome.APPROVED, None)),
        (ONE_OFF, {"amount_fen": 150000}, Decision(DecisionOutcome.ONE_OFF_APPROVED, 150000)),
        # A refusal grants nothing, whatever its details hold.
        (REJECTED, {"amount_fen": 52000}, Decision(DecisionOutcome.REJECTED, None)),
        (REJECTED, {"near_dibao": True}, Decision(DecisionOutcome.REJECTED, None)),
        # No amount is an amount that is no whole number of fen, or below zero.
        (APPROVED, {"amount_fen": -1}, Decision(DecisionOutcome.APPROVED, None)),
        (APPROVED, {"amount_fen": "52000"}, Decision(DecisionOutcome.APPROVED, None)),
        (APPROVED, {"amount_fen": True}, Decision(DecisionOutcome.APPROVED, None)),
        (APPROVED, {"amount_fen": 520.5}, Decision(DecisionOutcome.APPROVED, None)),
        # Events that decide nothing.
        ("dibao.assessment.AssessmentCompleted.v1", {"amount_fen": 52000}, None),
        ("dibao.assessment.BenefitAdjusted.v1", {}, None),
        ("dibao.intake.ApplicationAccepted.v1", {}, None),
    ],
)
def test_a_decision_is_its_events_type_and_the_amount_it_grants(
    ce_type: str, details: dict[str, Any], decided: Decision | None
) -> None:
    assert decision_of(ce_type, details) == decided


def test_the_decided_types_are_the_outcomes_and_the_migrations_backfill_knows_them() -> None:
    """The consumer closes an application on exactly the types that have an outcome, and
    migration 0018's frozen SQL mapping is that of the code (a new decision type must be
    backfilled by a migration of its own)."""
    assert frozenset(OUTCOMES) == timeline.DECIDED_TYPES
    spec = importlib.util.spec_from_file_location("m0018", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {t: o.value for t, o in OUTCOMES.items()} == module.OUTCOMES
    assert {o.value for o in DecisionOutcome} == set(module.OUTCOMES.values())
