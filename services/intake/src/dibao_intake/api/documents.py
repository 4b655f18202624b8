"""Documents: upload (multipart), describe, download."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response

from dibao_intake.adapters.records import DocumentRecord
from dibao_intake.api import replays
from dibao_intake.api import schemas as s
from dibao_intake.api.applications import example_notice_content
from dibao_intake.api.deps import (
    Clerk,
    Idempotency,
    Reader,
    RuntimeDep,
    in_transaction,
    json_response,
    problems,
)
from dibao_intake.api.mapping import document_out
from dibao_intake.api.purposes import NoteQuery, Purpose, note_missing, purpose_value
from dibao_intake.api.replays import replay
from dibao_intake.domain.codes import DocumentType
from dibao_intake.domain.return_notice import NOTICE_MEDIA_TYPE
from dibao_intake.service_layer import documents as service
from dibao_intake.service_layer.access import PurposeNoteRequiredError

router = APIRouter(tags=["documents"])

NOTICE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
"""A return notice's Content-Security-Policy: its inline CSS, nothing else."""


def _notice_example() -> str:
    """The notice of POST /applications' returned example, as the renderer writes it."""
    return example_notice_content().decode("utf-8")


_CHUNK = 256 * 1024
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The content, with the media type it was uploaded with; a return"
        " notice (document_type return_notice, written by intake when it returns an"
        " application: ADR 0009) is a printable UTF-8 HTML page",
        "content": {
            "application/pdf": {},
            "image/jpeg": {},
            "image/png": {},
            "image/tiff": {},
            "text/html": {"example": _notice_example()},
        },
    }
}


async def _read_limited(upload: StarletteUploadFile, limit: int) -> bytes:
    """The content, refusing (413) as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise service.too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


class DocumentForm(BaseModel):
    """The form fields of an upload, besides the file."""

    model_config = ConfigDict(extra="forbid")

    household_id: uuid.UUID
    document_type: DocumentType
    person_id: uuid.UUID | None = Field(None, description="The member it is about")


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["household_id", "document_type", "file"],
                    "properties": {
                        # Its enums are the document's shared schemas, not local $defs.
                        **DocumentForm.model_json_schema(
                            ref_template="#/components/schemas/{model}"
                        )["properties"],
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The content (PDF, JPEG, PNG or TIFF)",
                        },
                    },
                },
                "example": {
                    "household_id": "0193a4f2-7c1e-7000-8000-3f9c0000a7f2",
                    "document_type": "id_card",
                    "person_id": "0193a4f2-7c1e-7001-8000-3f9c0000b001",
                },
            }
        },
    }
}


@dataclass(frozen=True, slots=True)
class Upload:
    form: DocumentForm
    media_type: str
    content: bytes


async def upload_form(request: Request, runtime: RuntimeDep) -> AsyncIterator[Upload]:
    """The form fields, the file's media type and its content (413 past the limit).

    A dependency declared before the Idempotency-Key's: the form is parsed here, with this
    route's limits (one file, ten fields, the size refused from Content-Length first), and
    the key's fingerprint then reads the same parsed form. It stays open until the
    response is sent.
    """
    limit = runtime.document_max_bytes
    if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
        raise service.too_large(limit)
    try:
        form = await request.form(max_files=1, max_fields=10)
    except HTTPException as exc:
        # Sent without Content-Length, the body is measured as it arrives and the kit
        # refuses it past the app's limit (just above this route's): the route's answer.
        if exc.status_code == 413:
            raise service.too_large(limit) from None
        raise
    try:
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        errors: list[dict[str, Any]] = []
        parsed: DocumentForm | None = None
        try:
            parsed = DocumentForm.model_validate(fields)
        except ValidationError as exc:
            errors = [dict(e) | {"loc": ("body", *e["loc"])} for e in exc.errors()]
        if not isinstance(upload, StarletteUploadFile):
            errors.append({"loc": ("body", "file"), "msg": "Field required", "type": "missing"})
        if errors or parsed is None or not isinstance(upload, StarletteUploadFile):
            raise RequestValidationError(errors)
        content = await _read_limited(upload, limit)
        yield Upload(parsed, upload.content_type or "", content)
    finally:
        await form.close()


def _example_answer() -> dict[str, Any]:
    """The answer to the request body's example, made by the mapping that answers it."""
    content = b"%PDF-1.7 (a scan of the applicant's ID card)"
    record = DocumentRecord(
        id=uuid.UUID("0193a4f2-7c1e-7002-8000-3f9c0000d001"),
        household_id=uuid.UUID("0193a4f2-7c1e-7000-8000-3f9c0000a7f2"),
        person_id=uuid.UUID("0193a4f2-7c1e-7001-8000-3f9c0000b001"),
        document_type=DocumentType.ID_CARD,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        media_type="application/pdf",
        uploaded_by="clerk-620123101",
        created_at=datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
    )
    answer: dict[str, Any] = document_out(record).model_dump(mode="json")
    return answer


def _answers() -> dict[int | str, dict[str, Any]]:
    example = {"application/json": {"example": _example_answer()}}
    where = {"schema": {"type": "string"}, "example": "/documents/{document_id}"}
    return {
        201: {
            "description": "Recorded: the household had no such document on file",
            "headers": {"Location": {"description": "The document", **where}},
            "content": example,
        },
        200: {
            "model": s.DocumentOut,
            "description": "Already on file: the household has this content as this"
            " document_type about this member (or, without person_id, about none). The"
            " document on file is answered (its id, who handed it in and when), nothing is"
            " written but the access record of that read, as GET /documents/{document_id}"
            " records one. A second click, or a retry without an Idempotency-Key, gets"
            " this.",
            "headers": {"Content-Location": {"description": "The document", **where}},
            "content": example,
        },
    }


@router.post(
    "/documents",
    status_code=201,
    response_model=s.DocumentOut,
    summary="Upload a document of a household",
    description="multipart/form-data: household_id, document_type, person_id (optional) and"
    " file. Stored by its sha256 in the document store. Size and media type are limited"
    " (settings DIBAO_INTAKE_DOCUMENT_MAX_BYTES, DIBAO_INTAKE_DOCUMENT_MEDIA_TYPES). A"
    " household of another region is refused as GET /households/{household_id} refuses it"
    " (404, recorded DENIED on dibao.access.v1; nothing else written).\n\n"
    "One document per content, type and member: the same file handed in again for the"
    " same household, as the same document_type about the same person_id (or again"
    " without one), answers the document on file, 200 instead of 201, and writes no"
    " second document; two such uploads at once end in one document, the other answered"
    " 200. The same file as another document_type, or about another member, is a document"
    " of its own (201): one scan may hold several documents. A retry with the same"
    " Idempotency-Key replays the first answer, 201 or 200.",
    responses=_answers()
    | problems(
        400,
        401,
        403,
        404,
        409,
        413,
        415,
        422,
        too_large="The document is larger than allowed (document-too-large)",
    ),
    openapi_extra=_UPLOAD_BODY,
)
async def upload_document(
    request: Request,
    caller: Clerk,
    runtime: RuntimeDep,
    upload: Annotated[Upload, Depends(upload_form)],
    idempotency: Idempotency,
) -> Response:
    command = service.UploadDocument(
        household_id=upload.form.household_id,
        document_type=upload.form.document_type,
        media_type=upload.media_type,
        content=upload.content,
        person_id=upload.form.person_id,
    )

    async def work(session: AsyncSession) -> Response:
        uploaded = await service.upload_document(session, runtime, caller, command)
        where = f"/documents/{uploaded.document.id}"
        if uploaded.created:
            return json_response(document_out(uploaded.document), 201, {"Location": where})
        return json_response(document_out(uploaded.document), 200, {"Content-Location": where})

    return await in_transaction(
        request, work, idempotency, replay(runtime, caller, replays.document)
    )


_CASE_ROLES = ", ".join(r.value for r in service.CONTENT_ROLES)


def _description_responses() -> dict[int | str, dict[str, Any]]:
    declared = problems(401, 403, 404, 422)
    declared[403]["description"] = (
        "The token lacks the role: documents are for the roles that work or audit cases"
        " (missing-role, with required_roles)"
    )
    return declared


@router.get(
    "/documents/{document_id}",
    response_model=s.DocumentOut,
    summary="A document's description",
    description=f"For the roles that work or audit cases ({_CASE_ROLES}), within their"
    " regions: a document's type alone may tell health (a medical record, a disability"
    " certificate). The read is recorded.",
    responses=_description_responses(),
)
async def get_document(
    request: Request, document_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> Response:
    async def work(session: AsyncSession) -> Response:
        record, _ = await service.read_document(
            session, runtime, caller, document_id, with_content=False
        )
        return json_response(document_out(record))

    return await in_transaction(request, work)


_WITH_NUMBERS = ", ".join(t.value for t in DocumentType if t.shows_numbers)
_NUMBER_ROLES = ", ".join(r.value for r in service.CONTENT_WITH_NUMBERS_ROLES)


def _download_responses() -> dict[int | str, dict[str, Any]]:
    declared = problems(401, 403, 404, 422)
    declared[403]["description"] = (
        "The token lacks the role: the document shows ID or account numbers and the role"
        " may not see them, or the role works no cases (missing-role, with required_roles)"
    )
    declared[422]["description"] = (
        "Invalid parameters; or the document shows ID or account numbers and no purpose was"
        " stated (pointer /query/purpose); or purpose other or support came without"
        " purpose_note"
    )
    declared[500]["description"] = (
        "The store no longer holds the content as uploaded (gone, unreadable, or it does not"
        " hash to the document's sha256): document-content-unavailable, with document_id;"
        " nothing is shown, the read is recorded as refused, and an operator is alerted (log,"
        " /metrics). Or an unexpected error, logged with the correlation id"
    )
    return _CONTENT | declared


@router.get(
    "/documents/{document_id}/content",
    summary="Download a document (recorded on dibao.access.v1)",
    description="A document whose type shows resident ID or bank account numbers in full"
    f" ({_WITH_NUMBERS}) is a disclosure of them: its content is downloaded only by the"
    f" roles {_NUMBER_ROLES} (those who may have an ID number disclosed, and the clerks who"
    " take documents in), within their regions, and only for a stated purpose (with"
    " purpose_note for other and support), recorded on the access record as"
    " GET /persons/{person_id}/identity records it. Other types' content is downloaded by"
    f" the roles that work or audit cases ({_CASE_ROLES}) within their regions; a purpose"
    " given is recorded, case_processing otherwise.",
    response_class=Response,
    responses=_download_responses(),
)
async def download_document(
    request: Request,
    document_id: uuid.UUID,
    caller: Reader,
    runtime: RuntimeDep,
    purpose: Annotated[
        Purpose | None,
        Query(
            description="Why the content is read (recorded); required for a document that"
            f" shows ID or account numbers ({_WITH_NUMBERS})"
        ),
    ] = None,
    purpose_note: NoteQuery = "",
) -> Response:
    # A note's absence is checked by the service once the caller may read the document.
    recorded = purpose_value(purpose) if purpose is not None else None

    async def work(session: AsyncSession) -> Response:
        try:
            record, content = await service.read_document(
                session,
                runtime,
                caller,
                document_id,
                with_content=True,
                purpose=recorded,
                purpose_note=purpose_note,
            )
        except service.PurposeRequiredError as error:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "purpose"),
                        "msg": f"required for this document ({error.document_type.value}),"
                        " which shows ID or account numbers: say what it is read for",
                        "type": "missing",
                    }
                ]
            ) from None
        except PurposeNoteRequiredError as error:
            raise note_missing(error) from None
        assert content is not None
        # The content is the uploader's: checked only to begin as its type does (a PDF's
        # header may sit anywhere in its first KiB), so a browser must neither sniff it
        # as something else (HTML) nor render it in the API's origin.
        headers = {
            "ETag": f'"{record.sha256}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{record.id}"',
        }
        if record.media_type == NOTICE_MEDIA_TYPE:
            # Intake's own page (a return notice): saved as a page the browser opens and
            # prints, and should one render it in the API's origin, nothing in it runs
            # and nothing is fetched (its CSS is inside it).
            headers["Content-Disposition"] = f'attachment; filename="{record.id}.html"'
            headers["Content-Security-Policy"] = NOTICE_POLICY
        return Response(content, media_type=record.media_type, headers=headers)

    return await in_transaction(request, work)
