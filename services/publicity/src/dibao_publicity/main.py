"""Wiring point of the publicity service: ``uvicorn --factory dibao_publicity.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from dibao_common.app import build_app
from dibao_publicity.settings import PublicitySettings


def create_app(settings: PublicitySettings | None = None) -> FastAPI:
    resolved = settings if settings is not None else PublicitySettings()
    return build_app(
        resolved,
        title="dibao publicity",
        description="Three-list publicity: notices, public pages and objections.",
    )
