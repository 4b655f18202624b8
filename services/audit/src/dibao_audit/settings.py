"""Settings of the audit service, composed from the common ones."""

from __future__ import annotations

from dibao_common.settings import CommonSettings


class AuditSettings(CommonSettings):
    service_name: str = "audit"
