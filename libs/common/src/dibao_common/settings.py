"""Settings shared by every service, composed per service with pydantic-settings.

Nothing else in the code base reads the environment: a process builds its settings once
at its wiring point and passes them down.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "placeholder", "xxx", "todo"}
)


def _refuse_placeholder(value: SecretStr) -> SecretStr:
    if value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        raise ValueError("a real secret is required here, not a placeholder")
    return value


Secret = Annotated[SecretStr, AfterValidator(_refuse_placeholder)]
"""A secret setting: it has no default and refuses placeholder values."""


class CommonSettings(BaseSettings):
    """What every dibao process needs: its name, its database and the broker."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore", frozen=True)

    service_name: str
    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(
        description="SQLAlchemy URL of this service's own database (postgresql+asyncpg://...)",
    )
    kafka_bootstrap: str = Field(description="Comma-separated Kafka bootstrap servers")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    readiness_timeout_s: float = 2.0
