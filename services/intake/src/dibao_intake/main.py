"""Wiring point of the intake service: ``uvicorn --factory dibao_intake.main:create_app``.

The only place that builds settings, the engine, the runtime, the outbox relay and the
timeline consumer; everything else receives them.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.app import build_app
from dibao_common.clock import Clock, SystemClock
from dibao_common.db import make_engine, make_sessionmaker
from dibao_common.messaging.consumer import ConsumerRunner
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.messaging.relay import OutboxRelay, relay_options
from dibao_intake.adapters.document_store import DocumentStore, FilesystemDocumentStore
from dibao_intake.adapters.pii import PersonalData
from dibao_intake.api import applications, documents, households, reference, staff
from dibao_intake.api.problem_examples import document_problem_examples
from dibao_intake.domain.divisions import DivisionTable
from dibao_intake.service_layer.runtime import Runtime
from dibao_intake.service_layer.timeline import (
    CONSUMER_NAME,
    DLQ_TOPIC,
    timeline_batch_handler,
    timeline_handler,
)
from dibao_intake.settings import IntakeSettings


def make_intake_engine(url: str) -> AsyncEngine:
    """The kit's engine without the liveness ping on every checkout (ADR 0009): on the
    measured machine a round trip costs more CPU than the Python around it; connections
    the server closed are still refused at checkout, without one. Twenty connections,
    a fixed pool (ADR 0014): requests beyond them wait their turn for one."""
    return make_engine(
        url,
        pool_size=20,
        pre_ping=False,
        pool_recycle=1800,
        application_name="dibao-intake",
    )


def build_runtime(
    settings: IntakeSettings, *, clock: Clock, store: DocumentStore | None = None
) -> Runtime:
    """The process-wide parts every use case needs."""
    return Runtime(
        divisions=DivisionTable.load(settings.intake_division_files),
        pii=PersonalData.from_settings(settings.pii),
        clock=clock,
        policy=settings.completeness_policy(),
        store=store if store is not None else FilesystemDocumentStore(settings.intake_document_dir),
        document_max_bytes=settings.intake_document_max_bytes,
        media_types=frozenset(settings.intake_document_media_types),
        page_size_max=settings.intake_page_size_max,
    )


def create_app(
    settings: IntakeSettings | None = None,
    *,
    clock: Clock | None = None,
    store: DocumentStore | None = None,
) -> FastAPI:
    resolved = settings if settings is not None else IntakeSettings()
    clock = clock if clock is not None else SystemClock()
    engine = make_intake_engine(resolved.database_url)
    sessionmaker = make_sessionmaker(engine)
    runtime = build_runtime(resolved, clock=clock, store=store)
    relay = (
        OutboxRelay(
            engine,
            resolved.kafka_bootstrap,
            name="intake",
            **relay_options(resolved),
        )
        if resolved.intake_relay_enabled
        else None
    )
    consumer = (
        ConsumerRunner(
            CONSUMER_NAME,
            list(resolved.intake_timeline_topics),
            timeline_handler(clock),
            sessionmaker,
            resolved.kafka_bootstrap,
            registry=EventRegistry.default(),
            dlq_topic=DLQ_TOPIC,
            consumer_overrides=resolved.timeline_consumer_overrides(),
            batch_handler=timeline_batch_handler(clock),
            group_id=resolved.intake_timeline_group,
        )
        if resolved.intake_timeline_enabled
        else None
    )

    async def start(app: FastAPI) -> None:
        app.state.runtime = runtime
        app.state.sessionmaker = sessionmaker
        if relay is not None:
            await relay.start()
        if consumer is not None:
            await consumer.start()

    async def stop(app: FastAPI) -> None:
        # Side by side, each within the shutdown timeout: the whole stop is bounded by it.
        stopping = []
        if consumer is not None:
            stopping.append(consumer.stop(resolved.shutdown_timeout_s))
        if relay is not None:
            stopping.append(relay.stop(resolved.shutdown_timeout_s))
        await asyncio.gather(*stopping)
        await engine.dispose()

    app = build_app(
        resolved,
        title="dibao intake",
        description="Households, members, applications and documents, for district portals."
        " Errors are RFC 9457 problem details; every read of personal data is recorded on"
        " dibao.access.v1; every POST accepts an Idempotency-Key.",
        routers=[
            households.router,
            applications.router,
            documents.router,
            staff.router,
            reference.router,
        ],
        on_startup=[start],
        on_shutdown=[stop],
        engine=engine,
        clock=clock,
        # An upload is a document plus its form: the route refuses a larger one itself
        # (document-too-large); the kit's limit only has to let it through.
        max_body_size=max(
            resolved.max_request_body_bytes, resolved.intake_document_max_bytes + 64 * 1024
        ),
    )
    document_problem_examples(app)
    return app
