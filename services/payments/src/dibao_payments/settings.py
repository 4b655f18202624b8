"""Settings of the payments service, composed from the common ones."""

from __future__ import annotations

from dibao_common.settings import CommonSettings


class PaymentsSettings(CommonSettings):
    service_name: str = "payments"
