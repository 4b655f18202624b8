"""The timeline consumer as a process of its own: ``python -m dibao_intake.worker``.

The API process runs it too by default (``DIBAO_INTAKE_TIMELINE_ENABLED``); a deployment
that scales the API runs the API with it disabled and this worker beside it, so that
consuming events never takes CPU from requests. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

from dibao_common import loop as event_loop
from dibao_common.clock import SystemClock
from dibao_common.db import make_engine, make_sessionmaker
from dibao_common.heap import settle_heap
from dibao_common.messaging.consumer import ConsumerRunner
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.observability import configure_logging
from dibao_intake.service_layer.timeline import (
    CONSUMER_NAME,
    DLQ_TOPIC,
    timeline_batch_handler,
    timeline_handler,
)
from dibao_intake.settings import IntakeSettings


async def run(settings: IntakeSettings) -> None:
    # The consumer uses one connection at a time (a fetch's transaction, or an event's
    # when a run is redone one by one; dead letters go to Kafka): a fixed pool of two
    # (ADR 0014), one of them idle.
    engine = make_engine(settings.database_url, pool_size=2)
    clock = SystemClock()
    consumer = ConsumerRunner(
        CONSUMER_NAME,
        list(settings.intake_timeline_topics),
        timeline_handler(clock),
        make_sessionmaker(engine),
        settings.kafka_bootstrap,
        registry=EventRegistry.default(),
        dlq_topic=DLQ_TOPIC,
        consumer_overrides=settings.timeline_consumer_overrides(),
        batch_handler=timeline_batch_handler(clock),
        group_id=settings.intake_timeline_group,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    settle_heap()
    try:
        await stop.wait()
    finally:
        await consumer.stop()
        await engine.dispose()


def main() -> None:
    settings = IntakeSettings()
    configure_logging(settings.log_level, service_name=f"{settings.service_name}-worker")
    event_loop.run(run(settings))


if __name__ == "__main__":
    main()
