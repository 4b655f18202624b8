"""Wiring point of the audit service: ``uvicorn --factory dibao_audit.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from dibao_audit.settings import AuditSettings
from dibao_common.app import build_app


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    resolved = settings if settings is not None else AuditSettings()
    return build_app(
        resolved,
        title="dibao audit",
        description=(
            "The append-only, tamper-evident log of every event and every read of personal data."
        ),
    )
