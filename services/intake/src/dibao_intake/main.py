"""Wiring point of the intake service: ``uvicorn --factory dibao_intake.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from dibao_common.app import build_app
from dibao_intake.settings import IntakeSettings


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    resolved = settings if settings is not None else IntakeSettings()
    return build_app(
        resolved,
        title="dibao intake",
        description="Households, members, applications and documents, for district portals.",
    )
