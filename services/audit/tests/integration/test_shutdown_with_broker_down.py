"""Audit stopped while its broker is down: the stop of its log consumer and outbox relay
ends within ``shutdown_timeout_s`` (ADR 0003), as intake's does
(``tests/chaos/test_shutdown_with_broker_down.py``).

The stop comes once the relay holds the rows (handed to its producer, unacknowledged;
``watch_relay``), not after a guessed pause.

Real servers: a Kafka broker of the test's own (``kafka.sh``, stopped and started here) and
the suite's PostgreSQL, with an audit database of this test's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from dibao_audit.main import create_app
from dibao_audit.testing import api_settings, make_audit_db
from dibao_common.testing.auth_fixtures import make_auth_settings
from dibao_common.testing.kafka_fixtures import eventually, kafka_sh, own_broker
from dibao_common.testing.relay_watch import watch_relay
from dibao_common.testing.stack import TestStack, api_client

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

SHUTDOWN_TIMEOUT_S = 4.0
# For the relay to hold the rows: it polls every 0.1 s, and hands them over without asking
# the broker anything (it published on their topic before the broker stopped).
HOLD_DEADLINE_S = 60.0
TOPIC = "dibao.audit.v1"
_INSERT = """
INSERT INTO outbox_message (ce_id, ce_type, ce_source, ce_time, topic, key, payload)
VALUES (:ce_id, 'dibao.test.Held.v1', 'dibao.test', now(), :topic, :key, '\\x00'::bytea)
RETURNING id
"""


async def test_audit_stops_within_the_shutdown_timeout_with_the_broker_down(
    audit_stack: TestStack, tmp_path: Path
) -> None:
    # Offsets 10,000-10,090 but 10,035/10,085 are other tests' brokers and controllers.
    directory = tmp_path / "kafka"
    directory.mkdir()
    with own_broker(directory, port_offset=10_035) as bootstrap:
        kafka_sh("topics", "--bootstrap", bootstrap)
        own = dataclasses.replace(audit_stack, kafka_bootstrap=bootstrap)
        db = await make_audit_db(own, f"shutdown{uuid.uuid4().hex[:6]}")
        settings = api_settings(
            db,
            audit_consume=True,
            audit_relay=True,
            audit_consumer_group=f"audit-shutdown-{uuid.uuid4().hex[:8]}",
            shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
        )
        app = create_app(settings, auth=make_auth_settings())

        async def pending() -> int:
            async with db.owner.connect() as conn:
                return int(
                    (
                        await conn.execute(
                            text("SELECT count(*) FROM outbox_message WHERE published_at IS NULL")
                        )
                    ).scalar_one()
                )

        async def drained() -> bool:
            return await pending() == 0

        async def hold(n: int) -> list[int]:
            """Commit ``n`` rows in one transaction (claimed together); their ids."""
            async with db.owner.begin() as conn:
                return [
                    int(
                        (
                            await conn.execute(
                                text(_INSERT),
                                {"ce_id": uuid.uuid4(), "topic": TOPIC, "key": f"k{i}"},
                            )
                        ).scalar_one()
                    )
                    for i in range(n)
                ]

        broker_stopped = False
        try:
            with watch_relay("audit") as watch:
                async with api_client(app):
                    # The relay's producer knows the topic and the consumer has joined.
                    await hold(1)
                    await eventually(drained, timeout_s=30, what="the first row to be published")
                    consumer = app.state.audit_consumer

                    async def appended() -> bool:
                        return bool(consumer.appended)

                    await eventually(appended, timeout_s=30, what="the consumer to append it")

                    await asyncio.to_thread(kafka_sh, "stop", "--dir", str(directory))
                    broker_stopped = True
                    held = await hold(3)
                    # The relay claims them and hands them to its producer, which waits for
                    # a broker that is not there.
                    waited = await watch.until_holding(held, timeout_s=HOLD_DEADLINE_S)
                    assert await pending() == 3
                    stopping_at = time.monotonic()
                stopped_in = time.monotonic() - stopping_at
            # The abandoned rows stay in the outbox for the next relay.
            left = await pending()
        finally:
            if broker_stopped:
                await asyncio.to_thread(
                    kafka_sh, "start-node", "--dir", str(directory), "--node", "1"
                )
            await db.owner.dispose()
            await db.runtime.dispose()

    assert (round(stopped_in, 1) <= SHUTDOWN_TIMEOUT_S + 1.0, left) == (True, 3), (
        f"stopped in {stopped_in:.1f} s"
    )
    logging.getLogger(__name__).warning(
        "audit stopped in %.1f s with the broker down, its relay holding the 3 rows %.2f s"
        " after they were committed",
        stopped_in,
        waited,
    )
