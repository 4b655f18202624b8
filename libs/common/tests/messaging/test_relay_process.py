"""The relay run as its own process (``python -m dibao_common.messaging.relay``) bounds
its stop by ``DIBAO_SHUTDOWN_TIMEOUT_S``, the setting the services read (ADR 0003), and
reads the relay settings the services read (``DIBAO_RELAY_METADATA_TIMEOUT_S``,
``DIBAO_RELAY_BACKOFF_MAX_S``)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.messaging.relay import (
    OutboxRelay,
    _parse_args,
    _relay_process,
    relay_options,
)
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


_RELAY_SETTINGS = ("DIBAO_RELAY_METADATA_TIMEOUT_S", "DIBAO_RELAY_BACKOFF_MAX_S")


def _service_settings() -> CommonSettings:
    return CommonSettings(
        service_name="kit",
        database_url=_ARGS[1],
        kafka_bootstrap="x:1",
        idempotency_fingerprint_keys=base64.b64encode(os.urandom(32)).decode(),
    )


async def test_a_relay_reads_its_topic_lookup_bound_and_backoff_cap_from_the_settings(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIBAO_RELAY_METADATA_TIMEOUT_S", "1.5")
    monkeypatch.setenv("DIBAO_RELAY_BACKOFF_MAX_S", "4")
    monkeypatch.setenv("DIBAO_SHUTDOWN_TIMEOUT_S", "3")
    own = _relay_process(_parse_args(_ARGS), RelayProcessSettings(), engine)
    # A service's: intake and audit build theirs with relay_options(settings).
    service = OutboxRelay(engine, "x:1", name="kit", **relay_options(_service_settings()))
    for relay in (own, service):
        assert (relay.metadata_timeout_s, relay.backoff_max_s, relay.stop_timeout_s) == (
            1.5,
            4.0,
            3.0,
        )


async def test_without_them_a_relay_has_the_kits_defaults(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _RELAY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    own = _relay_process(_parse_args(_ARGS), RelayProcessSettings(), engine)
    service = OutboxRelay(engine, "x:1", name="kit", **relay_options(_service_settings()))
    for relay in (own, service):
        assert (relay.metadata_timeout_s, relay.backoff_max_s) == (5.0, 30.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIBAO_RELAY_METADATA_TIMEOUT_S", "0"),
        ("DIBAO_RELAY_METADATA_TIMEOUT_S", "-1"),
        ("DIBAO_RELAY_METADATA_TIMEOUT_S", "five"),
        # Below the first pause (0.2 s): no backoff could have it as its cap.
        ("DIBAO_RELAY_BACKOFF_MAX_S", "0.1"),
        ("DIBAO_RELAY_BACKOFF_MAX_S", "thirty"),
    ],
)
def test_a_relay_setting_that_is_no_fit_number_stops_the_process_at_start(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    field = name.removeprefix("DIBAO_").lower()
    with pytest.raises(ValidationError, match=field):
        RelayProcessSettings()
    with pytest.raises(ValidationError, match=field):
        _service_settings()
