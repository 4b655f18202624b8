"""The housekeeping settings: env names, defaults, and the 24 h floor of the retention."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import TEST_FINGERPRINT_KEYS

REQUIRED = {
    "DIBAO_SERVICE_NAME": "kit",
    "DIBAO_DATABASE_URL": "postgresql+asyncpg://u@localhost/db",
    "DIBAO_KAFKA_BOOTSTRAP": "localhost:9092",
    "DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": TEST_FINGERPRINT_KEYS,
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DIBAO_IDEMPOTENCY_RETENTION_S", raising=False)
    monkeypatch.delenv("DIBAO_HOUSEKEEPING_INTERVAL_S", raising=False)
    return monkeypatch


def test_defaults_are_seven_days_and_ten_minutes(env: pytest.MonkeyPatch) -> None:
    settings = CommonSettings()  # from the environment
    assert settings.idempotency_retention_s == 7 * 24 * 3600
    assert settings.housekeeping_interval_s == 600


def test_read_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("DIBAO_IDEMPOTENCY_RETENTION_S", "86400")
    env.setenv("DIBAO_HOUSEKEEPING_INTERVAL_S", "0")
    settings = CommonSettings()
    assert settings.idempotency_retention_s == 86400
    assert settings.housekeeping_interval_s == 0


@pytest.mark.parametrize("retention", ["86399", "3600", "0"])
def test_a_retention_under_24_hours_is_refused(env: pytest.MonkeyPatch, retention: str) -> None:
    env.setenv("DIBAO_IDEMPOTENCY_RETENTION_S", retention)
    with pytest.raises(ValidationError, match="promised to clients"):
        CommonSettings()


def test_a_negative_interval_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("DIBAO_HOUSEKEEPING_INTERVAL_S", "-1")
    with pytest.raises(ValidationError, match="housekeeping_interval_s"):
        CommonSettings()
