"""Settings of the publicity service, composed from the common ones."""

from __future__ import annotations

from dibao_common.settings import CommonSettings


class PublicitySettings(CommonSettings):
    service_name: str = "publicity"
