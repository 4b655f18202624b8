"""Wiring point of the assessment service (``uvicorn --factory ...main:create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from dibao_assessment.settings import AssessmentSettings
from dibao_common.app import build_app


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    resolved = settings if settings is not None else AssessmentSettings()
    return build_app(
        resolved,
        title="dibao assessment",
        description="Policy, cases, investigations, income assessment and decisions.",
    )
