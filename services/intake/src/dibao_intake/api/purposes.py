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
from dibao_intake.service_layer.access import PurposeNoteRequiredError


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


def purpose_value(value: Purpose) -> access.Purpose.ValueType:
    """The purpose as its access record names it."""
    return access.Purpose.Value(f"PURPOSE_{value.value.upper()}")


def note_missing(error: PurposeNoteRequiredError) -> RequestValidationError:
    """The 422 of a purpose (other, support) stated without its note: raised by the
    service once the caller is allowed the read, so that a caller who is not gets its
    refusal instead (403 or 404, recorded)."""
    name = access.Purpose.Name(error.purpose).removeprefix("PURPOSE_").lower()
    return RequestValidationError(
        [
            {
                "loc": ("query", "purpose_note"),
                "msg": f"required for purpose {name}: say what the number is for",
                "type": "missing",
            }
        ]
    )


PurposeQuery = Annotated[Purpose, Query(description="Why the number is needed (recorded)")]
NoteQuery = Annotated[
    str,
    Query(
        max_length=200,
        pattern=s.PLAIN_TEXT,
        json_schema_extra=s.NO_ID_NUMBER,
        description="Detail of the purpose (required for other and support)",
    ),
    AfterValidator(s.no_id_number),
]
