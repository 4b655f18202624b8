"""Every service answers /healthz and /readyz against the real database and broker."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from fastapi import FastAPI

from dibao_common.testing.stack import SERVICES, TestStack, api_client


def _app(service: str, **settings: Any) -> FastAPI:
    main = importlib.import_module(f"dibao_{service}.main")
    settings_module = importlib.import_module(f"dibao_{service}.settings")
    settings_cls = getattr(settings_module, f"{service.capitalize()}Settings")
    app: FastAPI = main.create_app(settings_cls(**settings))
    return app


@pytest.mark.parametrize("service", SERVICES)
async def test_healthz_and_readyz(stack: TestStack, service: str) -> None:
    app = _app(
        service, database_url=stack.database_url(service), kafka_bootstrap=stack.kafka_bootstrap
    )
    async with api_client(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": service}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
        assert (await client.get("/openapi.json")).json()["info"]["title"] == f"dibao {service}"


@pytest.mark.parametrize("service", SERVICES)
async def test_readyz_reports_an_unreachable_broker(stack: TestStack, service: str) -> None:
    app = _app(
        service,
        database_url=stack.database_url(service),
        kafka_bootstrap="127.0.0.1:1",
        readiness_timeout_s=1.0,
    )
    async with api_client(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["kafka"] != "ok"
