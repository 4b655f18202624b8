"""Intake's settings compose the kit's and read comma-separated lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from dibao_common.testing.auth_fixtures import auth_settings_values
from dibao_common.testing.service_env import common_secret_values
from dibao_intake.domain.codes import ApplicationKind
from dibao_intake.settings import IntakeSettings
from dibao_intake.testing import pii_settings_for_tests


def test_lists_come_from_comma_separated_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIBAO_INTAKE_DIVISION_FILES", "/a.csv, /b.csv")
    monkeypatch.setenv("DIBAO_INTAKE_VERIFICATION_AUTHORISATION_FOR", "dibao,medical")
    monkeypatch.setenv("DIBAO_INTAKE_DOCUMENT_MEDIA_TYPES", "application/pdf")
    settings = IntakeSettings(
        database_url="postgresql+asyncpg://x/y",
        kafka_bootstrap="k:1",
        pii=pii_settings_for_tests(),
        **auth_settings_values(),
        **common_secret_values(),
    )
    assert settings.intake_division_files == (Path("/a.csv"), Path("/b.csv"))
    assert settings.intake_document_media_types == ("application/pdf",)
    policy = settings.completeness_policy()
    assert policy.verification_authorisation_for == {ApplicationKind.DIBAO, ApplicationKind.MEDICAL}
    assert settings.service_name == "intake"


def test_personal_data_keys_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DIBAO_PII_KEYS", "DIBAO_PII_ACTIVE_KEY_ID", "DIBAO_PII_HASH_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="keys"):
        IntakeSettings(
            database_url="postgresql+asyncpg://x/y",
            kafka_bootstrap="k:1",
            **auth_settings_values(),
            **common_secret_values(),
        )


def test_the_timeline_consumer_reads_the_other_services_topics_only() -> None:
    """Intake's own events enter the timeline as they are published (ADR 0012)."""
    settings = IntakeSettings(
        database_url="postgresql+asyncpg://x/y",
        kafka_bootstrap="k:1",
        pii=pii_settings_for_tests(),
        **auth_settings_values(),
        **common_secret_values(),
    )
    assert "dibao.intake.v1" not in settings.intake_timeline_topics
    assert {"dibao.assessment.v1", "dibao.audit.v1"} <= set(settings.intake_timeline_topics)


def test_media_types_are_read_in_lower_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """Media types are case-insensitive (RFC 9110) and an upload's is compared in lower
    case: a type configured as ``image/JPEG`` must not refuse every JPEG."""
    monkeypatch.setenv("DIBAO_INTAKE_DOCUMENT_MEDIA_TYPES", "Application/PDF, image/JPEG")
    settings = IntakeSettings(
        database_url="postgresql+asyncpg://x/y",
        kafka_bootstrap="k:1",
        pii=pii_settings_for_tests(),
        **auth_settings_values(),
        **common_secret_values(),
    )
    assert settings.intake_document_media_types == ("application/pdf", "image/jpeg")
