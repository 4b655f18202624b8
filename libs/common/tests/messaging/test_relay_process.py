"""The relay run as its own process (``python -m dibao_common.messaging.relay``) bounds
its stop by ``DIBAO_SHUTDOWN_TIMEOUT_S``, the setting the services read (ADR 0003)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.messaging.relay import _parse_args, _relay_process
from dibao_common.settings import CommonSettings, RelayProcessSettings

# The engine connects only when used: nothing listens here, nothing is needed.
_ARGS = ["--database-url", "postgresql+asyncpg://nobody@127.0.0.1:1/none", "--bootstrap", "x:1"]


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = make_engine(_ARGS[1], pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_the_relay_process_reads_its_stop_bound_from_the_shutdown_timeout_setting(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIBAO_SHUTDOWN_TIMEOUT_S", "2.5")
    relay = _relay_process(_parse_args(_ARGS), RelayProcessSettings(), engine)
    assert relay.stop_timeout_s == 2.5


async def test_without_it_the_relay_process_has_the_services_default(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIBAO_SHUTDOWN_TIMEOUT_S", raising=False)
    relay = _relay_process(_parse_args(_ARGS), RelayProcessSettings(), engine)
    assert relay.stop_timeout_s == CommonSettings.model_fields["shutdown_timeout_s"].default
    assert relay.stop_timeout_s == 10.0


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_a_shutdown_timeout_that_is_not_a_positive_number_stops_the_process_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIBAO_SHUTDOWN_TIMEOUT_S", value)
    with pytest.raises(ValidationError, match="shutdown_timeout_s"):
        RelayProcessSettings()
