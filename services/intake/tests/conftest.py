"""Fixtures of the intake tests (they live in ``dibao_intake.testing`` so tests can type them)."""

from dibao_intake.testing import (
    intake,
    intake_app,
    intake_clock,
    intake_engine,
    intake_http,
    intake_stack,
)

__all__ = ["intake", "intake_app", "intake_clock", "intake_engine", "intake_http", "intake_stack"]
