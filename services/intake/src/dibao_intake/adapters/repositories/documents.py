"""SQL for documents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_intake.adapters.records import DocumentRecord
from dibao_intake.domain.codes import DocumentType
from dibao_intake.models import Document, table_of

document_t = table_of(Document)
_COLUMNS = (
    document_t.c.id,
    document_t.c.household_id,
    document_t.c.person_id,
    document_t.c.document_type,
    document_t.c.sha256,
    document_t.c.size_bytes,
    document_t.c.media_type,
    document_t.c.uploaded_by,
    document_t.c.created_at,
)


def _record(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        id=row[0],
        household_id=row[1],
        person_id=row[2],
        document_type=DocumentType(row[3]),
        sha256=row[4],
        size_bytes=row[5],
        media_type=row[6],
        uploaded_by=row[7],
        created_at=row[8],
    )


async def insert_document(session: AsyncSession, document: DocumentRecord) -> None:
    await session.execute(
        sa.insert(document_t).values(
            id=document.id,
            household_id=document.household_id,
            person_id=document.person_id,
            document_type=document.document_type.value,
            sha256=document.sha256,
            size_bytes=document.size_bytes,
            media_type=document.media_type,
            uploaded_by=document.uploaded_by,
            created_at=document.created_at,
        )
    )


async def get_document(session: AsyncSession, document_id: uuid.UUID) -> DocumentRecord | None:
    row = (
        await session.execute(sa.select(*_COLUMNS).where(document_t.c.id == document_id))
    ).first()
    return _record(row) if row is not None else None


async def get_documents(
    session: AsyncSession, document_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DocumentRecord]:
    if not document_ids:
        return {}
    rows = await session.execute(sa.select(*_COLUMNS).where(document_t.c.id.in_(document_ids)))
    return {r[0]: _record(r) for r in rows}
