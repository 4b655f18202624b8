"""A submission is two round trips to PostgreSQL: the read and the write (ADR 0013).

The count is the design's main performance property, so it is pinned here: an app of its
own, with no relay, no timeline consumer and no housekeeping (nothing else uses its
pool), logs every statement its connections send (asyncpg's query logger, attached at
checkout) while one submission runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.clock import FrozenClock
from dibao_common.testing.auth_fixtures import TokenFactory
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake.main import create_app
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import ISSUED_ID_NUMBERS, IntakeClient, intake_settings_for

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


# asyncpg learns a type it has no codec for (an enum, a domain) once per connection, the
# first time a statement uses it: JIT off, the typeinfo query, JIT back. A pooled
# connection the warm-up did not use pays that on its first submission (the pool hands out
# its connections in turn, and an upload or an access record may have opened a second
# one): a connection's cost, once, not the submission's round trips, so not counted.
INTROSPECTION = (
    "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false)",
    "WITH RECURSIVE typeinfo_tree(",
    "SELECT set_config('jit', $1, false)",
)


class Statements:
    """The statements sent on the app's pooled connections while ``recording``."""

    def __init__(self) -> None:
        self.recording = False
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        if self.recording:
            self.sent.append(" ".join(str(record.query).split()))


@pytest.fixture
async def quiet_intake(
    intake_stack: TestStack, intake_clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[tuple[IntakeClient, Statements]]:
    settings = intake_settings_for(
        intake_stack,
        tmp_path / "documents",
        intake_relay_enabled=False,
        intake_timeline_enabled=False,
        housekeeping_interval_s=0,
    )
    app = create_app(settings, clock=intake_clock)
    statements = Statements()
    async with api_client(app) as http:
        engine = app.state.sessionmaker.kw["bind"]
        assert isinstance(engine, AsyncEngine)

        @event.listens_for(engine.sync_engine, "checkout")
        def _log(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            driver = dbapi_connection.driver_connection
            assert isinstance(driver, asyncpg.Connection)
            if statements not in getattr(driver, "_query_loggers", ()):
                driver.add_query_logger(statements)

        tokens = TokenFactory().with_clock(intake_clock.now)
        synthesizer = Synthesizer(
            f"round-trips-{uuid.uuid4()}", intake_clock.today(), used=ISSUED_ID_NUMBERS
        )
        yield IntakeClient(http, tokens, synthesizer), statements


async def _settled(statements: Statements) -> None:
    """Until no statement has been logged for 0.2 s (at most 5 s)."""
    seen = -1
    for _ in range(25):
        if len(statements.sent) == seen:
            return
        seen = len(statements.sent)
        await asyncio.sleep(0.2)


async def _submitted_with(
    intake: IntakeClient, statements: Statements, *, key: str | None
) -> list[str]:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    # What the setup sent is logged late on a busy machine (asyncpg calls the loggers on a
    # later turn of the loop; a session is closed after its answer went out): let it land
    # before recording, or a loaded run counts the registration's last statements too.
    statements.recording = True
    await _settled(statements)
    statements.sent.clear()
    try:
        response = await intake.submit(body, idempotency_key=key)
        await _settled(statements)
    finally:
        statements.recording = False
    assert response.status_code == 201, response.text
    return [s for s in statements.sent if not s.startswith(INTROSPECTION)]


async def test_a_submission_is_one_read_and_one_write(
    quiet_intake: tuple[IntakeClient, Statements],
) -> None:
    intake, statements = quiet_intake
    await _submitted_with(intake, statements, key=None)  # connections set up, statements prepared
    for key in (str(uuid.uuid4()), None):
        sent = await _submitted_with(intake, statements, key=key)
        assert len(sent) == 2, [statement[:120] for statement in sent]
        read, write = sent
        assert read.startswith("WITH h AS ( SELECT id, region_code")
        assert "BEGIN" not in write
        assert "INSERT INTO application (" in write
        assert "INSERT INTO outbox_message" in write
        assert "INSERT INTO timeline_entry" in write
        assert ("INSERT INTO idempotency_record" in write) is (key is not None)
