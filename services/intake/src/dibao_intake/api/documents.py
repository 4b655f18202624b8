"""Documents: upload (multipart), describe, download."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from dibao_intake.api import schemas as s
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
from dibao_intake.domain.codes import DocumentType
from dibao_intake.service_layer import documents as service

router = APIRouter(tags=["documents"])

_CHUNK = 256 * 1024
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The content, with the media type it was uploaded with",
        "content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}, "image/tiff": {}},
    }
}


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    """The content, refusing (413) as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise service.too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


@router.post(
    "/documents",
    status_code=201,
    response_model=s.DocumentOut,
    summary="Upload a document of a household",
    description="Stored by its sha256 in the document store. Size and media type are limited"
    " (settings DIBAO_INTAKE_DOCUMENT_MAX_BYTES, DIBAO_INTAKE_DOCUMENT_MEDIA_TYPES).",
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422),
)
async def upload_document(
    request: Request,
    household_id: Annotated[uuid.UUID, Form()],
    document_type: Annotated[DocumentType, Form()],
    file: Annotated[UploadFile, File(description="The content (PDF, JPEG, PNG or TIFF)")],
    caller: Clerk,
    runtime: RuntimeDep,
    idempotency: Idempotency,
    person_id: Annotated[uuid.UUID | None, Form(description="The member it is about")] = None,
) -> Response:
    content = await _read_limited(file, runtime.document_max_bytes)
    command = service.UploadDocument(
        household_id=household_id,
        document_type=document_type,
        media_type=file.content_type or "",
        content=content,
        person_id=person_id,
    )

    async def work(session: AsyncSession) -> Response:
        record = await service.upload_document(session, runtime, caller, command)
        return json_response(document_out(record), 201, {"Location": f"/documents/{record.id}"})

    return await in_transaction(request, work, idempotency)


@router.get(
    "/documents/{document_id}",
    response_model=s.DocumentOut,
    summary="A document's description",
    responses=problems(401, 403, 404, 422),
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


@router.get(
    "/documents/{document_id}/content",
    summary="Download a document (recorded on dibao.access.v1)",
    response_class=Response,
    responses=_CONTENT | problems(401, 403, 404, 422),
)
async def download_document(
    request: Request, document_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> Response:
    async def work(session: AsyncSession) -> Response:
        record, content = await service.read_document(
            session, runtime, caller, document_id, with_content=True
        )
        assert content is not None
        return Response(
            content,
            media_type=record.media_type,
            headers={"ETag": f'"{record.sha256}"', "Cache-Control": "private, no-store"},
        )

    return await in_transaction(request, work)
