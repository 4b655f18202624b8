"""Wiring point of the payments service: ``uvicorn --factory dibao_payments.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from dibao_common.app import build_app
from dibao_payments.settings import PaymentsSettings


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    resolved = settings if settings is not None else PaymentsSettings()
    return build_app(
        resolved,
        title="dibao payments",
        description="Beneficiaries, monthly payroll runs, bank batches and confirmations.",
    )
