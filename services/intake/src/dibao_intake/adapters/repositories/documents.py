"""SQL for documents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


CONTENT_LOCK_CLASS = 0x646F6373
"""The first key of a content's advisory lock (``b"docs"``): the two-key form keeps these
locks apart from the one-key 64-bit locks of idempotency keys and the audit appender."""

_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(CAST(:lock_class AS integer), CAST(:lock_key AS integer))"
)
_TRY_LOCK = sa.text(
    "SELECT pg_try_advisory_xact_lock(CAST(:lock_class AS integer), CAST(:lock_key AS integer))"
)


def content_lock(sha256: str) -> tuple[int, int]:
    """The advisory lock of a content: ``CONTENT_LOCK_CLASS`` and the sha256's first 32
    bits, signed. Two contents sharing a lock (odds 2**-32 a pair) only wait for each
    other."""
    return CONTENT_LOCK_CLASS, int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)


def _lock_params(sha256: str) -> dict[str, int]:
    lock_class, lock_key = content_lock(sha256)
    return {"lock_class": lock_class, "lock_key": lock_key}


async def lock_content(session: AsyncSession, sha256: str) -> None:
    """Hold the content's lock until the transaction ends: an upload takes it before it
    puts the content, so the sweep of orphans never deletes content whose row is about to
    commit (docs/adr/0015)."""
    await session.execute(_LOCK, _lock_params(sha256))


async def try_lock_content(conn: AsyncConnection, sha256: str) -> bool:
    """The content's lock for the rest of ``conn``'s transaction, if no upload holds it."""
    return bool(await conn.scalar(_TRY_LOCK, _lock_params(sha256)))


async def content_named(conn: AsyncConnection, sha256: str) -> bool:
    """Whether a committed row names the content (a statement of its own: after the lock,
    so that it sees the row of an upload that held it)."""
    found = await conn.scalar(sa.select(sa.exists().where(document_t.c.sha256 == sha256)))
    return bool(found)


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


HANDED_IN_INDEX = "uq_document_handed_in"
"""One document per content, type and member (or none) of a household (migration 0014)."""

_HANDED_IN = (
    document_t.c.household_id,
    document_t.c.person_id,
    document_t.c.document_type,
    document_t.c.sha256,
)
_CURRENT = document_t.c.duplicate_of.is_(None)


async def insert_document(
    session: AsyncSession, document: DocumentRecord
) -> tuple[DocumentRecord, bool]:
    """Record ``document``, unless the household has it on file already (the same content
    of the same type about the same member, or about none): then the one on file. Whether
    it was inserted comes with it.

    ``ON CONFLICT DO NOTHING`` on ``uq_document_handed_in``: an upload of the same document
    committed first (or in flight: the insert waits for it) makes this one write nothing,
    never a unique violation. The row on file is then read by a statement of its own, whose
    snapshot (READ COMMITTED) sees that upload's commit."""
    inserted = await session.scalar(
        pg_insert(document_t)
        .values(
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
        .on_conflict_do_nothing(index_elements=list(_HANDED_IN), index_where=_CURRENT)
        .returning(document_t.c.id)
    )
    if inserted is not None:
        return document, True
    row = (
        await session.execute(
            sa.select(*_COLUMNS).where(
                document_t.c.household_id == document.household_id,
                document_t.c.person_id.is_not_distinct_from(document.person_id),
                document_t.c.document_type == document.document_type.value,
                document_t.c.sha256 == document.sha256,
                _CURRENT,
            )
        )
    ).one()
    return _record(row), False


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
