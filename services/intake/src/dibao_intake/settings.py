"""Settings of the intake service, composed from the common ones."""

from __future__ import annotations

from dibao_common.settings import CommonSettings


class IntakeSettings(CommonSettings):
    service_name: str = "intake"
