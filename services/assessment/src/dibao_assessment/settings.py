"""Settings of the assessment service, composed from the common ones."""

from __future__ import annotations

from dibao_common.settings import CommonSettings


class AssessmentSettings(CommonSettings):
    service_name: str = "assessment"
