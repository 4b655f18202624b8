"""Why personal numbers are read: the purpose a disclosure or a download states, recorded
on its access record (dibao.access.v1 ``purpose``, ``purpose_note``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator

from dibao.access.v1 import events_pb2 as access
from dibao_intake.api import schemas as s


class Purpose(StrEnum):
    CASE_PROCESSING = "case_processing"
    INVESTIGATION = "investigation"
    REVIEW = "review"
    PAYMENT = "payment"
    AUDIT = "audit"
    DATA_SUBJECT_REQUEST = "data_subject_request"
    OBJECTION_HANDLING = "objection_handling"
    SUPPORT = "support"
    OTHER = "other"


_NOTE_REQUIRED = frozenset({Purpose.OTHER, Purpose.SUPPORT})
"""Purposes whose access record must say what they were (dibao.access.v1 purpose_note)."""


def recorded_purpose(value: Purpose, note: str) -> access.Purpose.ValueType:
    """The purpose as recorded; 422 for one that needs a note given without one."""
    if value in _NOTE_REQUIRED and not note.strip():
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "purpose_note"),
                    "msg": f"required for purpose {value.value}: say what the number is for",
                    "type": "missing",
                }
            ]
        )
    return access.Purpose.Value(f"PURPOSE_{value.value.upper()}")


PurposeQuery = Annotated[Purpose, Query(description="Why the number is needed (recorded)")]
NoteQuery = Annotated[
    str,
    Query(
        max_length=200,
        pattern=s.NO_NUL,
        json_schema_extra=s.NO_ID_NUMBER,
        description="Detail of the purpose (required for other and support)",
    ),
    AfterValidator(s.no_id_number),
]
