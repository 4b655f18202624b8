"""Every service answers /healthz and /readyz against the real database and broker, with
its settings read from the environment as a deployed process reads them."""

from __future__ import annotations

import importlib
from contextlib import AsyncExitStack

import pytest
from fastapi import FastAPI
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.testing.service_env import service_env
from dibao_common.testing.stack import SERVICES, TestStack, api_client


def _app(monkeypatch: pytest.MonkeyPatch, stack: TestStack, service: str, **env: str) -> FastAPI:
    for name, value in (service_env(stack, service) | env).items():
        monkeypatch.setenv(name, value)
    main = importlib.import_module(f"dibao_{service}.main")
    app: FastAPI = main.create_app()
    return app


@pytest.mark.parametrize("service", SERVICES)
async def test_healthz_and_readyz(
    monkeypatch: pytest.MonkeyPatch, stack: TestStack, service: str
) -> None:
    async with api_client(_app(monkeypatch, stack, service)) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": service}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
        assert (await client.get("/openapi.json")).json()["info"]["title"] == f"dibao {service}"
        assert (await client.get("/metrics")).status_code == 200


# The work a service runs in its own process beside its requests, switched off: it shares the
# request pool, so a test holding every pooled connection would wait for the one an appender
# or relay held that moment (30 s, the pool's timeout; a CI run failed so for audit, catching
# up on the shared broker's events), or starve it while it waits for a second.
_BACKGROUND_OFF: dict[str, dict[str, str]] = {
    "audit": {"DIBAO_AUDIT_CONSUME": "false", "DIBAO_AUDIT_RELAY": "false"},
    "intake": {"DIBAO_INTAKE_RELAY_ENABLED": "false", "DIBAO_INTAKE_TIMELINE_ENABLED": "false"},
}


@pytest.mark.parametrize("service", SERVICES)
async def test_readyz_answers_while_every_pooled_connection_is_busy(
    monkeypatch: pytest.MonkeyPatch, stack: TestStack, service: str
) -> None:
    # A backlog holds all of the request pool's connections (a fixed pool, ADR 0014):
    # readiness has its own, so the database still reports ready, and within the timeout.
    quiet = _BACKGROUND_OFF.get(service, {})
    app = _app(monkeypatch, stack, service, DIBAO_READINESS_TIMEOUT_S="2.0", **quiet)
    async with api_client(app) as client, AsyncExitStack() as held:
        engine: AsyncEngine = app.state.engine
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        for _ in range(engine.pool.size()):  # type: ignore[attr-defined]
            await held.enter_async_context(engine.connect())
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"


@pytest.mark.parametrize("service", SERVICES)
async def test_readyz_reports_an_unreachable_broker(
    monkeypatch: pytest.MonkeyPatch, stack: TestStack, service: str
) -> None:
    app = _app(
        monkeypatch,
        stack,
        service,
        DIBAO_KAFKA_BOOTSTRAP="127.0.0.1:1",
        DIBAO_READINESS_TIMEOUT_S="1.0",
    )
    async with api_client(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["kafka"] != "ok"


@pytest.mark.parametrize("service", SERVICES)
async def test_readyz_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, stack: TestStack, service: str
) -> None:
    # Nothing listens on port 1: the database probe fails, the broker's still answers.
    url = make_url(stack.database_url(service)).set(host="127.0.0.1", port=1)
    app = _app(
        monkeypatch,
        stack,
        service,
        DIBAO_DATABASE_URL=url.render_as_string(hide_password=False),
        DIBAO_READINESS_TIMEOUT_S="1.0",
    )
    async with api_client(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"] == "ok"
        assert ready.json()["checks"]["database"] != "ok"
