"""Wiring point of the audit service: ``uvicorn --factory dibao_audit.main:create_app``."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from fastapi import FastAPI

from dibao_audit.api import AuditRuntime, CheckpointSchedule, document_examples, router
from dibao_audit.appender import LogAppender
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.consumer import LogConsumer
from dibao_audit.db import make_runtime_engine, runtime_role
from dibao_audit.projector import EntryProjector
from dibao_audit.repository import WholeLog
from dibao_audit.settings import AuditSettings
from dibao_audit.witnessing import WitnessSubmitter
from dibao_common.app import build_app
from dibao_common.auth import AuthSettings
from dibao_common.clock import Clock, SystemClock
from dibao_common.db import make_sessionmaker
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.messaging.relay import OutboxRelay, relay_options

log = structlog.get_logger(__name__)


async def _checkpoint_ticker(
    appender: LogAppender, interval_s: float, schedule: CheckpointSchedule
) -> None:
    """A checkpoint at least every ``interval_s`` while the log grows; ``schedule`` says
    when the next tick is (the API's ``Retry-After`` while one is awaited). The witness
    submitter is woken by the appender itself (``on_checkpoint``), for these checkpoints
    and for those the entry count signs."""
    while True:
        schedule.ticks_in(interval_s)
        await asyncio.sleep(interval_s)
        try:
            size = await appender.checkpoint_if_grown()
        except Exception as exc:  # the next tick tries again
            log.error("audit_checkpoint_failed", error=describe_exception(exc))
        else:
            if size is not None:
                log.info("audit_checkpoint_signed", tree_size=size)


def create_app(
    settings: AuditSettings | None = None,
    *,
    auth: AuthSettings | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    resolved = settings if settings is not None else AuditSettings()
    auth_settings = auth if auth is not None else AuthSettings()
    the_clock = clock if clock is not None else SystemClock()
    role = runtime_role(resolved.database_url, resolved.audit_runtime_role)
    # Twenty, a fixed pool (ADR 0014): the relay, the appender, the projector and the
    # housekeeping hold up to seven, and an export holds one for its whole download.
    engine = make_runtime_engine(
        resolved.audit_runtime_database_url or resolved.database_url, role, pool_size=20
    )
    sessions = make_sessionmaker(engine)
    signer = CheckpointSigner(
        resolved.signing_seed(),
        resolved.audit_log_origin,
        next_seed=resolved.next_signing_seed(),
    )
    registry = EventRegistry.default()
    witnesses = resolved.witnesses()
    witnessing = (
        WitnessSubmitter(sessions, witnesses, retry_s=resolved.audit_witness_retry_s)
        if witnesses
        else None
    )
    appender = LogAppender(
        sessions,
        signer,
        registry=registry,
        checkpoint_every=resolved.audit_checkpoint_every,
        region=resolved.audit_log_region,
        now=the_clock.now,
        # Every checkpoint signed, by the ticker or by the entry count, is submitted at once.
        on_checkpoint=None if witnessing is None else witnessing.wake,
    )
    consumer = LogConsumer(
        appender,
        resolved.kafka_bootstrap,
        group=resolved.audit_consumer_group,
        pattern=resolved.audit_topic_pattern,
        batch_max=resolved.audit_batch_max,
    )
    relay = OutboxRelay(
        engine,
        resolved.kafka_bootstrap,
        name="audit",
        **relay_options(resolved),
    )
    projector = EntryProjector(sessions, registry)
    tasks: list[asyncio.Task[None]] = []
    schedule = CheckpointSchedule()

    async def startup(app: FastAPI) -> None:
        app.state.audit = AuditRuntime(
            sessions=sessions,
            appender=appender,
            signer=signer,
            clock=the_clock,
            personal_data_roles=frozenset(resolved.audit_personal_data_roles),
            registry=registry,
            whole_log=WholeLog(resolved.audit_log_region, registry),
            checkpoint_interval_s=resolved.audit_checkpoint_interval_s,
            schedule=schedule,
        )
        app.state.audit_projector = projector
        app.state.audit_consumer = consumer
        if resolved.audit_relay:
            await relay.start()
        if resolved.audit_consume:
            await consumer.start()
            tasks.append(
                asyncio.create_task(
                    _checkpoint_ticker(appender, resolved.audit_checkpoint_interval_s, schedule)
                )
            )
            tasks.append(asyncio.create_task(projector.run_forever()))
            if witnessing is not None:
                # The process that signs submits: every few seconds, and after each
                # checkpoint it signs (the appender wakes it).
                tasks.append(asyncio.create_task(witnessing.run_forever()))

    async def shutdown(app: FastAPI) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Side by side, each within the shutdown timeout: the whole stop is bounded by it,
        # broker or not (ADR 0003).
        await asyncio.gather(
            consumer.stop(resolved.shutdown_timeout_s), relay.stop(resolved.shutdown_timeout_s)
        )
        await engine.dispose()

    app = build_app(
        resolved,
        title="dibao audit",
        description=(
            "The append-only, tamper-evident log of every event and every read of personal data."
        ),
        routers=[router],
        on_startup=[startup],
        on_shutdown=[shutdown],
        engine=engine,
        auth=auth_settings,
        clock=the_clock,
    )
    document_examples(app)
    return app
