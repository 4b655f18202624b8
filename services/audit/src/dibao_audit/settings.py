"""Settings of the audit service, composed from the common ones."""

from __future__ import annotations

import base64
import binascii

from pydantic import Field, ValidationInfo, field_validator

from dibao_audit.cosignature import CosignatureError, WitnessKey
from dibao_common.settings import CommonSettings, Secret


def parse_witnesses(value: str) -> list[tuple[str, WitnessKey]]:
    """``DIBAO_AUDIT_WITNESSES``: the (URL, key) of each witness; ValueError naming the
    pair that is not ``<http(s) url> <vkey>`` (no URL echoed: it may hold a password)."""
    out: list[tuple[str, WitnessKey]] = []
    for n, pair in enumerate(p for p in value.split(",") if p.strip()):
        parts = pair.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise ValueError(f"DIBAO_AUDIT_WITNESSES: witness {n + 1} is not '<url> <vkey>'")
        try:
            key = WitnessKey.parse(parts[1])
        except CosignatureError as exc:
            raise ValueError(f"DIBAO_AUDIT_WITNESSES: witness {n + 1}: {exc}") from exc
        if any(k == key for _, k in out):
            raise ValueError(f"DIBAO_AUDIT_WITNESSES: witness {n + 1} is given twice")
        out.append((parts[0].rstrip("/"), key))
    return out


class AuditSettings(CommonSettings):
    service_name: str = "audit"
    audit_signing_key: Secret = Field(
        description="Base64 of the 32-byte Ed25519 seed that signs checkpoints"
    )
    audit_next_signing_key: Secret | None = Field(
        default=None,
        description="Base64 of the 32-byte Ed25519 seed the log hands over to (docs/adr/0018):"
        " the next checkpoint is signed by both keys and names both, every later one by this"
        " key alone; once that hand-over is signed, make it DIBAO_AUDIT_SIGNING_KEY and unset"
        " this",
    )
    audit_log_origin: str = Field(
        default="dibao.audit/local",
        description="Origin line of checkpoints and name of the signing key (C2SP)",
    )
    audit_log_region: str = Field(
        default="000000000000", description="Region the log covers (12 digits, zero-padded)"
    )
    audit_checkpoint_every: int = Field(default=1000, ge=1, description="Entries per checkpoint")
    audit_checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="A checkpoint at least this often while the log grows"
    )
    audit_runtime_role: str | None = Field(
        default=None,
        description="Role assumed on connect; default `<database>_app` (migration 0002)",
    )
    audit_runtime_database_url: str | None = Field(
        default=None,
        description="URL the running service connects with: its login must be the runtime role"
        " (migration 0005 lets `<database>_app` log in) or only a member of it, never the owner"
        " or a superuser (SET ROLE NONE would give that login back). Migrations use"
        " DIBAO_DATABASE_URL. Unset: DIBAO_DATABASE_URL's login, which then merely assumes"
        " the role",
    )
    audit_consumer_group: str = "dibao-audit"
    audit_topic_pattern: str = r"^dibao\.[a-z_]+\.v[0-9]+$"
    audit_batch_max: int = Field(default=2000, ge=1, description="Records per append batch")
    audit_personal_data_roles: tuple[str, ...] = Field(
        default=("county_approver",),
        description="Roles that see a household timeline's personal data unmasked",
    )
    audit_witnesses: str = Field(
        default="",
        description="Witnesses that cosign each checkpoint (docs/adr/0024): comma-separated"
        " `<url> <witness vkey>` pairs, the URL the witness's add-checkpoint is under"
        " (its submission prefix) and its C2SP cosignature/v1 vkey (which names it). Empty:"
        " no witness, checkpoints are signed by the log alone",
    )
    audit_witness_retry_s: float = Field(
        default=10.0, gt=0, description="Seconds between attempts to get a cosignature"
    )
    audit_consume: bool = Field(default=True, description="Run the log consumer in the app")
    audit_relay: bool = Field(default=True, description="Run the outbox relay in the app")

    @field_validator("audit_next_signing_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty next key is none: a deployment that passes the variable through
        always (docker-compose.yml: ``${DIBAO_AUDIT_NEXT_SIGNING_KEY:-}``) hands over only
        when it is given."""
        return None if value == "" else value

    @field_validator("audit_witnesses")
    @classmethod
    def _are_witnesses(cls, value: str) -> str:
        parse_witnesses(value)
        return value

    def witnesses(self) -> list[tuple[str, WitnessKey]]:
        return parse_witnesses(self.audit_witnesses)

    @field_validator("audit_signing_key", "audit_next_signing_key")
    @classmethod
    def _is_seed(cls, value: Secret | None, info: ValidationInfo) -> Secret | None:
        if value is None:
            return None
        name = f"DIBAO_{str(info.field_name).upper()}"
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{name} is not base64") from exc
        if len(raw) != 32:
            raise ValueError(f"{name} must decode to a 32-byte Ed25519 seed")
        return value

    def signing_seed(self) -> bytes:
        return base64.b64decode(self.audit_signing_key.get_secret_value())

    def next_signing_seed(self) -> bytes | None:
        key = self.audit_next_signing_key
        return None if key is None else base64.b64decode(key.get_secret_value())
