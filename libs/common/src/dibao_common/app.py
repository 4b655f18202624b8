"""The FastAPI application skeleton every service is built on: health, readiness, lifespan
(with the kit tables' housekeeping, ``dibao_common.housekeeping``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import AuthSettings, install_token_verifier
from dibao_common.bank import BankSettings, BankVerification, install_bank_verification
from dibao_common.clock import Clock, SystemClock
from dibao_common.db import make_engine
from dibao_common.errors import BodyLimitMiddleware, install_problem_handlers
from dibao_common.health import DatabaseProbe, Probe, kafka_probe, run_probes
from dibao_common.heap import settle_heap
from dibao_common.housekeeping import Housekeeping, start_housekeeping, stop_housekeeping
from dibao_common.idempotency import install_idempotency
from dibao_common.observability import configure_logging, install_observability
from dibao_common.query_params import one_value_each
from dibao_common.security_headers import SecurityHeadersMiddleware
from dibao_common.settings import CommonSettings

Hook = Callable[[FastAPI], Awaitable[None]]


def build_app(
    settings: CommonSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    engine: AsyncEngine | None = None,
    auth: AuthSettings | None = None,
    bank: BankSettings | None = None,
    clock: Clock | None = None,
    max_body_size: int | None = None,
) -> FastAPI:
    """One service's app. The engine lives on ``app.state.engine`` for dependencies.

    A request body past ``max_body_size`` bytes (``settings.max_request_body_bytes``
    unless given, e.g. by a service with an upload route) is a 413 problem: FastAPI
    reads and parses a body before any dependency, the bearer token's included, runs.

    Bearer tokens and bank signatures are checked with ``auth`` / ``bank``, or with
    ``settings`` itself when the service's settings class includes those settings.
    While the app runs, expired idempotency answers and bank webhook ids are purged every
    ``settings.housekeeping_interval_s`` by ``clock``'s time.
    """
    db_engine = engine if engine is not None else make_engine(settings.database_url)
    app_clock = clock or SystemClock()
    database = DatabaseProbe(db_engine, application_name=f"dibao-{settings.service_name}-readiness")
    probes: dict[str, Probe] = {
        "database": database,
        "kafka": kafka_probe(settings.kafka_bootstrap),
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = db_engine
        for hook in on_startup:
            await hook(app)
        housekeeping = start_housekeeping(
            db_engine,
            _housekeeping_of(app, settings),
            now=app_clock.now,
            interval_s=settings.housekeeping_interval_s,
        )
        settle_heap()
        try:
            yield
        finally:
            await stop_housekeeping(housekeeping)
            for hook in reversed(on_shutdown):
                await hook(app)
            await database.close()
            if engine is None:
                await db_engine.dispose()

    # Every route refuses a query parameter of one value given twice (query_params).
    app = FastAPI(
        title=title,
        description=description,
        version="1",
        lifespan=lifespan,
        dependencies=[Depends(one_value_each)],
    )
    # Before observability, so that its middleware sees (and logs) the 500 problem response.
    install_problem_handlers(app)
    body_limit = settings.max_request_body_bytes if max_body_size is None else max_body_size
    app.add_middleware(BodyLimitMiddleware, max_body_size=body_limit)
    _install_http_security(app, settings, auth, bank, app_clock)
    # JSON logs with trace/correlation ids, request metrics and /metrics.
    configure_logging(settings.log_level, service_name=settings.service_name)
    install_observability(app)
    # Outermost: every answer, a problem of the body limit or the last-resort 500 too, is
    # sent with them (no-store: a shared proxy must not keep a household).
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the database and the broker answer",
        responses={503: {"description": "A dependency is not reachable"}},
    )
    async def readyz() -> JSONResponse:
        results = await run_probes(probes, settings.readiness_timeout_s)
        body: dict[str, Any] = {
            "status": "ok" if all(r.ok for r in results) else "unavailable",
            "checks": {r.name: r.detail for r in results},
        }
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    for router in routers:
        app.include_router(router)
    return app


def _install_http_security(
    app: FastAPI,
    settings: CommonSettings,
    auth: AuthSettings | None,
    bank: BankSettings | None,
    clock: Clock,
) -> None:
    # Typed as object: mypy's pydantic plugin deems a CommonSettings+AuthSettings class impossible.
    composed: object = settings
    if auth is None and isinstance(composed, AuthSettings):
        auth = composed
    if bank is None and isinstance(composed, BankSettings):
        bank = composed
    if auth is not None:
        install_token_verifier(app, auth, now=clock.now)
    if bank is not None:
        install_bank_verification(app, bank, now=clock.now)
    install_idempotency(app, fingerprint_keys=settings.fingerprint_keys(), now=clock.now)


def _housekeeping_of(app: FastAPI, settings: CommonSettings) -> Housekeeping:
    verification = getattr(app.state, "bank_verification", None)
    return Housekeeping(
        idempotency_retention=timedelta(seconds=settings.idempotency_retention_s),
        webhook_tolerance=(
            verification.tolerance if isinstance(verification, BankVerification) else None
        ),
    )
