"""Uploading documents (content-addressed) and reading them back."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.errors import NotFound, ProblemError
from dibao_common.observability import counter, get_logger, mask_card_and_id_numbers_in
from dibao_intake.adapters import contracts
from dibao_intake.adapters.document_store import ContentUnavailableError
from dibao_intake.adapters.records import DocumentRecord
from dibao_intake.adapters.repositories import documents as repo
from dibao_intake.adapters.repositories import households as household_repo
from dibao_intake.domain.codes import DocumentType
from dibao_intake.domain.errors import RulesViolatedError, Violation
from dibao_intake.service_layer.access import (
    AccessTarget,
    Purpose,
    record_access,
    refused,
    require_note,
)
from dibao_intake.service_layer.disclosure import IDENTITY_ROLES
from dibao_intake.service_layer.households import rules_failed
from dibao_intake.service_layer.runtime import NOT_FOUND, Caller, Runtime
from dibao_intake.service_layer.views import CASE_ROLES_LISTED, missing_role

log = get_logger(__name__)

CONTENT_UNAVAILABLE = counter(
    "dibao_document_content_unavailable_total",
    "Downloads refused because the store no longer holds the document's content as uploaded"
    " (reason: missing; damaged: it does not hash to its sha256; unreadable: an I/O or"
    " permission error); an operator should"
    " look (python -m dibao_intake.verify_documents)",
    ["reason"],
)
for _reason in ("missing", "damaged", "unreadable"):
    CONTENT_UNAVAILABLE.labels(reason=_reason)  # 0 on /metrics until one happens

CONTENT_REPAIRED = counter(
    "dibao_document_content_repaired_total",
    "Uploads whose content replaced a stored copy that did not hash to its sha256 (the same"
    " document handed in again): the documents naming it read again. A content put back"
    " where it was missing is not told apart from a new one",
)


def content_unavailable(document_id: uuid.UUID) -> ProblemError:
    return ProblemError(
        500,
        "document-content-unavailable",
        "Document content unavailable",
        "The stored content of this document is missing, cannot be read or is not what was"
        " uploaded;"
        " nothing was shown. It has been logged for an operator, who can restore it (or"
        " have it uploaded again).",
        document_id=str(document_id),
    )


def too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "document-too-large",
        "Document too large",
        f"A document may have at most {limit} bytes",
        max_bytes=limit,
    )


_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
"""A media type as RFC 6838 names one (lower-cased, without parameters), of a length a
problem may quote."""


def _quoted_type(media_type: str) -> str:
    """How a refusal names the type sent: as sent when it is a media type that holds no run
    the logs would mask (an ID or card number), else not at all. The part's Content-Type is
    the caller's text: a problem never echoes what may be an ID number (ADR 0004)."""
    if not media_type:
        return "no type"
    if _MEDIA_TYPE.fullmatch(media_type) and mask_card_and_id_numbers_in(media_type) == media_type:
        return media_type
    return "the file's media type"


def unsupported_media_type(
    media_type: str, allowed: frozenset[str], detail: str | None = None
) -> ProblemError:
    return ProblemError(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        detail
        or f"{_quoted_type(media_type)} is not accepted; send one of {', '.join(sorted(allowed))}",
        accepted=sorted(allowed),
    )


_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}
"""How the content of each accepted type begins; a type configured beyond these is taken
at its word."""


def content_matches(media_type: str, content: bytes) -> bool:
    """Whether ``content`` begins as a ``media_type`` file does (unknown types: True)."""
    if media_type == "application/pdf":
        # Readers accept a header anywhere in the first 1024 bytes (ISO 32000 practice).
        return b"%PDF-" in content[:1024]
    signatures = _SIGNATURES.get(media_type)
    return signatures is None or content.startswith(signatures)


@dataclass(frozen=True, slots=True)
class UploadDocument:
    household_id: uuid.UUID
    document_type: DocumentType
    media_type: str
    content: bytes
    person_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What an upload answers: the document, and whether this upload recorded it (else the
    household had it on file: the same content, type and member)."""

    document: DocumentRecord
    created: bool


async def upload_document(
    session: AsyncSession, runtime: Runtime, caller: Caller, command: UploadDocument
) -> Uploaded:
    """Store the content under its sha256 and record the document for the household.

    The same document handed in again (the same content of the same type, about the same
    member or about none, for the same household) is the one on file: no row is written,
    and the answer shows it as ``GET /documents/{id}`` would, recorded as that read is
    (docs/adr/0015, 3 Dec 2026). Its content is put all the same, so that a stored copy
    gone or damaged is repaired by the hand-in."""
    if len(command.content) > runtime.document_max_bytes:
        raise too_large(runtime.document_max_bytes)
    media_type = command.media_type.split(";")[0].strip().lower()
    if media_type not in runtime.media_types:
        raise unsupported_media_type(media_type, runtime.media_types)
    if command.content and not content_matches(media_type, command.content):
        raise unsupported_media_type(
            media_type,
            runtime.media_types,
            f"The content is not {media_type}: it does not begin as such a file does",
        )
    household = await household_repo.get_household(session, command.household_id)
    if household is None:
        raise NotFound(NOT_FOUND)
    if not caller.principal.can_see(household.region_code):
        # A probe of another region's household: refused as its read is (recorded DENIED).
        target = AccessTarget(
            command.household_id,
            household.region_code,
            access.RECORD_TYPE_HOUSEHOLD,
            str(command.household_id),
        )
        raise refused(NotFound(NOT_FOUND), runtime, caller, target)
    problems: list[Violation] = []
    if command.document_type is DocumentType.RETURN_NOTICE:
        # Intake writes a returned application's notice itself (ADR 0009, 3 Dec 2026): an
        # upload of that type would pass a file for what the applicant was told.
        problems.append(
            Violation(
                "/document_type",
                "return_notice is written by intake when it returns an application, not uploaded",
            )
        )
    if not command.content:
        problems.append(Violation("/file", "the document is empty"))
    if command.person_id is not None:
        members = await household_repo.load_members(session, command.household_id)
        if all(m.person_id != command.person_id for m in members):
            problems.append(Violation("/person_id", "not a member of the household"))
    if problems:
        raise rules_failed(RulesViolatedError(problems))
    sha256 = hashlib.sha256(command.content).hexdigest()
    # Held until the row commits: the sweep of orphans (verify_documents --sweep) takes
    # the same lock before it deletes unnamed content, so it never deletes what this
    # upload's put found or wrote (docs/adr/0015).
    await repo.lock_content(session, sha256)
    # Content first: a committed row must always find its content in the store.
    if await runtime.store.put(sha256, command.content) == "repaired":
        CONTENT_REPAIRED.inc()
    record = DocumentRecord(
        id=uuid7(),
        household_id=command.household_id,
        person_id=command.person_id,
        document_type=command.document_type,
        sha256=sha256,
        size_bytes=len(command.content),
        media_type=media_type,
        uploaded_by=caller.principal.subject,
        created_at=runtime.clock.now(),
    )
    on_file, created = await repo.insert_document(session, record)
    if not created:
        # The answer shows the document on file (its id, who handed it in and when): a
        # read of its description, recorded as GET /documents/{id} records one.
        target = AccessTarget(
            on_file.household_id,
            household.region_code,
            access.RECORD_TYPE_DOCUMENT,
            str(on_file.id),
            action=access.ACCESS_ACTION_VIEW,
        )
        await _record_read(session, runtime, caller, on_file, target, with_content=False)
    return Uploaded(on_file, created)


CONTENT_WITH_NUMBERS_ROLES = (*IDENTITY_ROLES, Role.INTAKE_CLERK)
"""Who downloads a document showing ID or account numbers: the roles that may have an ID
number disclosed, and the clerks who take documents in, each within their regions."""


CONTENT_ROLES = CASE_ROLES_LISTED
"""Who reads any other document, its description or its content: the roles that work or
audit cases (views.py). A document's type alone may tell health (a medical record, a
disability certificate); the limited view leaves documents out."""


def _holds(caller: Caller, roles: tuple[Role, ...]) -> bool:
    return any(caller.principal.has(r) for r in roles)


class PurposeRequiredError(Exception):
    """The content shows ID or account numbers: its download must state a purpose."""

    def __init__(self, document_type: DocumentType) -> None:
        super().__init__(document_type.value)
        self.document_type = document_type


async def read_document(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    document_id: uuid.UUID,
    *,
    with_content: bool,
    purpose: Purpose | None = None,
    purpose_note: str = "",
) -> tuple[DocumentRecord, bytes | None]:
    """The document's description and, when asked, its content (a recorded download).

    The content of a type that shows ID or account numbers is downloaded only by the roles
    of ``CONTENT_WITH_NUMBERS_ROLES`` (403 for others) and for a stated ``purpose``
    (:class:`PurposeRequiredError` without one; ``PurposeNoteRequiredError`` for other or
    support without a note, once the caller is allowed the read), recorded as a
    disclosure's is; anything
    else about a document is for ``CONTENT_ROLES``. Content the store no longer holds as
    uploaded is not served: :func:`content_unavailable`, recorded as a refused read."""
    record = await repo.get_document(session, document_id)
    if record is None:
        raise NotFound(NOT_FOUND)
    household = await household_repo.get_household(session, record.household_id)
    assert household is not None
    target = AccessTarget(
        record.household_id,
        household.region_code,
        access.RECORD_TYPE_DOCUMENT,
        str(record.id),
        action=access.ACCESS_ACTION_DOWNLOAD if with_content else access.ACCESS_ACTION_VIEW,
        purpose=access.PURPOSE_CASE_PROCESSING if purpose is None else purpose,
        purpose_note=purpose_note,
    )
    refusal: ProblemError | None = None
    if not caller.principal.can_see(household.region_code):
        refusal = NotFound(NOT_FOUND)
    elif not _holds(caller, CONTENT_ROLES):
        # A role without cases is not told even the document's type.
        refusal = missing_role(CONTENT_ROLES, "Documents are part of a case")
    elif with_content and record.document_type.shows_numbers:
        if not _holds(caller, CONTENT_WITH_NUMBERS_ROLES):
            refusal = missing_role(
                CONTENT_WITH_NUMBERS_ROLES,
                f"This document ({record.document_type.value}) shows ID or account numbers",
            )
        elif purpose is None:
            raise PurposeRequiredError(record.document_type)
    if refusal is not None:
        raise refused(refusal, runtime, caller, target)
    # Only now, for a caller allowed the read: a purpose needing a note (other, support).
    require_note(target)
    content: bytes | None = None
    if with_content:
        try:
            content = await runtime.store.get(record.sha256)
        except ContentUnavailableError as error:
            # Not the evidence that was uploaded (altered, cut short, gone): never served.
            # Nothing was shown, so the read is recorded as a refused one is.
            CONTENT_UNAVAILABLE.labels(reason=error.reason).inc()
            log.error(
                "document content unavailable",
                document_id=str(record.id),
                sha256=record.sha256,
                reason=error.reason,
            )
            raise refused(content_unavailable(record.id), runtime, caller, target) from None
    # Even without the content, a document's type says something personal (a disability
    # certificate, a diagnosis): both reads are recorded.
    await _record_read(session, runtime, caller, record, target, with_content=with_content)
    return record, content


async def _record_read(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    record: DocumentRecord,
    target: AccessTarget,
    *,
    with_content: bool,
) -> None:
    """The access record of a document's read: its people and what was shown.

    A document about one member shows that member's data; one about the household (its
    register, the application form) shows every member's, as a read of the household."""
    members = await household_repo.load_members(session, record.household_id)
    persons = list(
        {
            m.person_id: contracts.person_ref(m, runtime.pii.hash_key_id)
            for m in members
            if record.person_id is None or m.person_id == record.person_id
        }.values()
    )  # one ref per person, who may have left and rejoined
    await record_access(
        session,
        runtime,
        caller,
        target,
        persons=persons,
        fields=(f"document:{record.document_type.value}",) + (("content",) if with_content else ()),
    )
