"""Every value of intake's vocabularies has its protobuf enum constant (and no other does)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pytest

from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao.intake.v1 import types_pb2 as intake
from dibao_intake.adapters import contracts
from dibao_intake.domain import codes

MAPPINGS: list[tuple[type[StrEnum], Mapping[Any, int], Any]] = [
    (codes.AreaType, contracts.AREA_TYPES, enums.AreaType),
    (codes.Sex, contracts.SEXES, enums.Sex),
    (codes.Relationship, contracts.RELATIONSHIPS, enums.Relationship),
    (codes.DisabilityGrade, contracts.DISABILITY_GRADES, enums.DisabilityGrade),
    (codes.EmploymentStatus, contracts.EMPLOYMENT_STATUSES, enums.EmploymentStatus),
    (codes.ExclusionReason, contracts.EXCLUSION_REASONS, enums.ExclusionReason),
    (codes.IncomeCategory, contracts.INCOME_CATEGORIES, enums.IncomeCategory),
    (codes.NotCountedKind, contracts.NOT_COUNTED_KINDS, enums.NotCountedKind),
    (codes.DeductionKind, contracts.DEDUCTION_KINDS, enums.DeductionKind),
    (codes.AssetKind, contracts.ASSET_KINDS, enums.AssetKind),
    (codes.ApplicationKind, contracts.APPLICATION_KINDS, enums.ApplicationKind),
    (codes.SubmissionChannel, contracts.CHANNELS, enums.SubmissionChannel),
    (codes.DocumentType, contracts.DOCUMENT_TYPES, enums.DocumentType),
    (codes.UnassignedReason, contracts.UNASSIGNED_REASONS, ev.UnassignedReason),
    (codes.MissingItemCode, contracts.MISSING_ITEM_CODES, intake.MissingItemCode),
    (codes.MarriageAgeBasis, contracts.MARRIAGE_AGE_BASES, intake.MarriageAgeBasis),
]


@pytest.mark.parametrize(("codes_type", "mapping", "wrapper"), MAPPINGS)
def test_the_mapping_is_one_to_one_onto_the_specified_constants(
    codes_type: type[StrEnum], mapping: Mapping[Any, int], wrapper: Any
) -> None:
    assert set(mapping) == set(codes_type)
    specified = {v.number for v in wrapper.DESCRIPTOR.values if v.number != 0}
    assert sorted(mapping.values()) == sorted(specified)


def test_every_withdrawal_cause_is_one_of_the_contracts() -> None:
    """The one vocabulary not named after its constants: UNSPECIFIED is the applicant's
    withdrawal (events.proto), so every constant, 0 too, has exactly one stored cause."""
    assert set(contracts.WITHDRAWAL_CAUSES) == set(codes.WithdrawalCause)
    assert sorted(contracts.WITHDRAWAL_CAUSES.values()) == sorted(
        v.number for v in ev.WithdrawalCause.DESCRIPTOR.values
    )
    assert contracts.WITHDRAWAL_CAUSES[codes.WithdrawalCause.APPLICANT_REQUEST] == 0
