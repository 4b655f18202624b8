"""Settings shared by every service, composed per service with pydantic-settings.

Nothing else in the code base reads the environment: a process builds its settings once
at its wiring point and passes them down.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator
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

IDEMPOTENCY_PROMISE_S = 24 * 3600
"""How long clients are promised that a retry with their Idempotency-Key gets the answer."""

FINGERPRINT_KEY_BYTES = 32


def _fingerprint_keys(value: SecretStr) -> tuple[bytes, ...]:
    keys = []
    for item in (part.strip() for part in value.get_secret_value().split(",")):
        if not item:
            continue
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("each fingerprint key must be base64") from None
        if len(key) != FINGERPRINT_KEY_BYTES:
            raise ValueError(f"each fingerprint key must be {FINGERPRINT_KEY_BYTES} bytes")
        keys.append(key)
    if not keys:
        raise ValueError("at least one fingerprint key is required")
    return tuple(keys)


DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_DESCRIPTION = (
    "Seconds a service's outbox relay and consumers have, together, to stop"
    " at shutdown, whether or not the broker answers (an orchestrator kills a process"
    " that takes longer: Kubernetes after 30 s by default). A relay batch not"
    " acknowledged by then is abandoned: its rows stay in the outbox and are published"
    " again (ADR 0003)"
)

DEFAULT_RELAY_METADATA_TIMEOUT_S = 5.0
_RELAY_METADATA_TIMEOUT_DESCRIPTION = (
    "Seconds the outbox relay waits for the partitions of a topic its producer has no"
    " metadata for (one lookup, beside the batches: the topic's rows wait, the others go"
    " out; a failed lookup is recorded on the rows and tried again). Below the producer's"
    " 30 s request timeout (ADR 0003)"
)
DEFAULT_RELAY_BACKOFF_MAX_S = 30.0
_RELAY_BACKOFF_MAX_DESCRIPTION = (
    "The longest pause of the outbox relay after failures (0.2 s, doubling up to this);"
    " while it pauses it asks the broker and the database, then once a second the one that"
    " did not answer, and resumes as soon as it answers again (ADR 0003)"
)


class RelayProcessSettings(BaseSettings):
    """What a relay run as its own process (``python -m dibao_common.messaging.relay``)
    reads from the environment besides its arguments: the shutdown timeout the services
    read, ``DIBAO_SHUTDOWN_TIMEOUT_S``, so that one setting bounds the stop of every
    process of a deployment, and the relay settings the services read,
    ``DIBAO_RELAY_METADATA_TIMEOUT_S`` and ``DIBAO_RELAY_BACKOFF_MAX_S``; and how it logs,
    as the services do (JSON lines on stdout, ``observability.configure_logging``):
    ``DIBAO_LOG_LEVEL``, and ``DIBAO_SERVICE_NAME``, whose relay it is (its lines'
    ``service`` is ``<name>-relay``, ``relay`` without one)."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore", frozen=True)

    service_name: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    shutdown_timeout_s: float = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_S, gt=0, description=_SHUTDOWN_TIMEOUT_DESCRIPTION
    )
    relay_metadata_timeout_s: float = Field(
        default=DEFAULT_RELAY_METADATA_TIMEOUT_S,
        gt=0,
        description=_RELAY_METADATA_TIMEOUT_DESCRIPTION,
    )
    relay_backoff_max_s: float = Field(
        default=DEFAULT_RELAY_BACKOFF_MAX_S, ge=0.2, description=_RELAY_BACKOFF_MAX_DESCRIPTION
    )


class CommonSettings(BaseSettings):
    """What every dibao process needs: its name, its database, the broker and the key of
    its Idempotency-Key fingerprints."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore", frozen=True)

    service_name: str
    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = Field(
        description="SQLAlchemy URL of this service's own database (postgresql+asyncpg://...)",
    )
    kafka_bootstrap: str = Field(description="Comma-separated Kafka bootstrap servers")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    readiness_timeout_s: float = 2.0
    idempotency_retention_s: int = Field(
        default=7 * 24 * 3600,
        description="How long completed Idempotency-Key answers are kept (s); at least 24 h,"
        " what clients are promised",
    )
    idempotency_fingerprint_keys: Secret = Field(
        description="Base64 of 32-byte HMAC keys, comma-separated: the first keys the"
        " fingerprint of every new Idempotency-Key record; the others (keys being rotated"
        " out, kept for the retention) still match the records made under them (ADR 0010)",
    )
    max_request_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest request body accepted (bytes); a larger one is a 413 before any"
        " of it is parsed (an app with an upload route may raise it for that app)",
    )
    shutdown_timeout_s: float = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_S, gt=0, description=_SHUTDOWN_TIMEOUT_DESCRIPTION
    )
    relay_metadata_timeout_s: float = Field(
        default=DEFAULT_RELAY_METADATA_TIMEOUT_S,
        gt=0,
        description=_RELAY_METADATA_TIMEOUT_DESCRIPTION,
    )
    relay_backoff_max_s: float = Field(
        default=DEFAULT_RELAY_BACKOFF_MAX_S, ge=0.2, description=_RELAY_BACKOFF_MAX_DESCRIPTION
    )
    housekeeping_interval_s: float = Field(
        default=600.0,
        ge=0,
        description="Seconds between purges of expired idempotency answers and bank webhook"
        " ids; 0 disables them",
    )

    @field_validator("idempotency_fingerprint_keys")
    @classmethod
    def _are_keys(cls, value: SecretStr) -> SecretStr:
        _fingerprint_keys(value)
        return value

    def fingerprint_keys(self) -> tuple[bytes, ...]:
        """The fingerprint keys, the one that writes first."""
        return _fingerprint_keys(self.idempotency_fingerprint_keys)

    @field_validator("idempotency_retention_s")
    @classmethod
    def _keeps_the_promise(cls, value: int) -> int:
        if value < IDEMPOTENCY_PROMISE_S:
            raise ValueError(
                f"idempotency answers are promised to clients for {IDEMPOTENCY_PROMISE_S} s"
                " (24 h): the retention cannot be shorter"
            )
        return value
