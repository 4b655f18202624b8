"""Settings of the intake service, composed from the kit's.

Built once at the wiring point (``main.create_app``) and passed down; nothing else reads
the environment. Personal-data keys are nested (``pii``) because the kit's ``PiiSettings``
reads its own ``DIBAO_PII_*`` variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from dibao_common.auth import AuthSettings
from dibao_common.crypto import PiiSettings
from dibao_common.settings import CommonSettings
from dibao_intake.domain.application import CompletenessPolicy
from dibao_intake.domain.codes import ApplicationKind

_DEFAULT_MEDIA_TYPES = (
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/tiff",
)
# The other services' topics: intake's own events enter the timeline as they are
# published (ADR 0012).
_TIMELINE_TOPICS = (
    "dibao.assessment.v1",
    "dibao.publicity.v1",
    "dibao.payments.v1",
    "dibao.audit.v1",
)


class IntakeSettings(CommonSettings, AuthSettings):
    """Everything the intake process needs (env prefix ``DIBAO_``)."""

    service_name: str = "intake"
    pii: PiiSettings = Field(
        default_factory=PiiSettings,  # reads DIBAO_PII_* when not given
        description="Keys of the personal-data encryption and lookup hash",
    )
    intake_document_dir: Path = Field(
        default=Path(".local/intake-documents"),
        description="Filesystem document store: contents under <dir>/<sha256[:2]>/<sha256>",
    )
    intake_document_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    intake_document_media_types: Annotated[tuple[str, ...], NoDecode] = Field(
        default=_DEFAULT_MEDIA_TYPES,
        description="Media types a document may have (comma-separated in the environment)",
    )
    intake_division_files: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description="A province's own division CSV files, added to the shipped Gansu table",
    )
    intake_adult_age: int = Field(default=16, ge=14, le=18)
    intake_applicant_min_age: int = Field(default=18, ge=16, le=18)
    intake_verification_authorisation_for: Annotated[tuple[ApplicationKind, ...], NoDecode] = Field(
        default=(
            ApplicationKind.DIBAO,
            ApplicationKind.TEMPORARY,
            ApplicationKind.MEDICAL,
            ApplicationKind.EDUCATION,
        )
    )
    intake_income_proof_for_wages: bool = True
    intake_no_pay_proof_for_employed: bool = Field(
        default=True,
        description="An employed member declaring a wage of zero shows a proof of it (an "
        "employer's statement, an unpaid-leave certificate), else the application is returned "
        "for it (CompletenessPolicy.no_pay_proof_for_employed, ADR 0007); off: not asked",
    )
    intake_page_size_max: int = Field(default=200, ge=1, le=1000)
    intake_relay_enabled: bool = Field(
        default=True, description="Publish the outbox from this process (off: run the relay alone)"
    )
    intake_timeline_enabled: bool = Field(
        default=True, description="Consume events about applications for their timelines"
    )
    intake_timeline_topics: Annotated[tuple[str, ...], NoDecode] = Field(default=_TIMELINE_TOPICS)
    intake_timeline_group: str = Field(
        default="intake.timeline",
        min_length=1,
        description="The timeline consumer's Kafka consumer group (every intake process of "
        "one deployment in it); another deployment on the same broker needs its own",
    )
    intake_timeline_fetch_wait_ms: int = Field(
        default=100,
        ge=0,
        le=5000,
        description="How long the broker may hold the timeline consumer's fetch to fill it: "
        "events arrive a batch at a time (one transaction each) instead of one by one, and "
        "a timeline entry lags its event by up to this much; 0 fetches each as it comes",
    )

    @field_validator(
        "intake_document_media_types",
        "intake_division_files",
        "intake_verification_authorisation_for",
        "intake_timeline_topics",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("intake_document_media_types")
    @classmethod
    def _lower_case(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Media types are case-insensitive; an upload's is compared in lower case.
        return tuple(t.lower() for t in value)

    def timeline_consumer_overrides(self) -> dict[str, int]:
        """The timeline consumer's fetch settings (see ``intake_timeline_fetch_wait_ms``)."""
        wait = self.intake_timeline_fetch_wait_ms
        if wait == 0:
            return {"fetch_min_bytes": 1}
        return {"fetch_min_bytes": 256 * 1024, "fetch_max_wait_ms": wait}

    def completeness_policy(self) -> CompletenessPolicy:
        return CompletenessPolicy(
            adult_age=self.intake_adult_age,
            applicant_min_age=self.intake_applicant_min_age,
            verification_authorisation_for=frozenset(self.intake_verification_authorisation_for),
            income_proof_for_wages=self.intake_income_proof_for_wages,
            no_pay_proof_for_employed=self.intake_no_pay_proof_for_employed,
        )
