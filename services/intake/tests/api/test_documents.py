"""Documents: content-addressed upload with size and type limits, recorded downloads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.observability import REGISTRY
from dibao_common.testing.stack import TestStack
from dibao_intake.adapters.document_store import FilesystemDocumentStore
from dibao_intake.synthetic import multipart_upload, pdf_bytes
from dibao_intake.testing import (
    IntakeClient,
    access_records,
    assert_probe_refused_as_read,
    row_counts,
    wait_for_events,
    waiting_on_a_lock,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def test_upload_is_stored_by_sha256_and_downloads_are_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    household = await intake.register()
    content = pdf_bytes("household register")
    response = await intake.upload(
        household.id, "id_card", household.person_ids[0], content=content
    )
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["size_bytes"] == len(content)
    assert document["media_type"] == "application/pdf"
    reader = intake.headers(Role.INVESTIGATOR, ["620123"])
    meta = await intake.http.get(f"/documents/{document['id']}", headers=reader)
    assert meta.json() == document
    download = await intake.http.get(
        f"/documents/{document['id']}/content",
        params={"purpose": "investigation"},
        headers=reader,
    )
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "application/pdf"
    # Never sniffed as another type, never rendered in the API's origin.
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == f'attachment; filename="{document["id"]}"'
    found = await wait_for_events(intake_stack, "dibao.access.v1", 2, subject=document["id"])
    assert len(found) == 2  # the description and the content: two recorded reads
    records = [EventRegistry.default().decode(e) for e in found]
    assert all(isinstance(r, access.PersonalDataAccessed) for r in records)
    assert [(r.action, r.purpose) for r in records] == [  # type: ignore[attr-defined]
        (access.ACCESS_ACTION_VIEW, access.PURPOSE_CASE_PROCESSING),
        (access.ACCESS_ACTION_DOWNLOAD, access.PURPOSE_INVESTIGATION),
    ]


async def test_a_download_of_numbers_records_its_purpose_as_a_disclosure_does(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """An ID card, a bank card or a register shows the numbers that /persons/{id}/identity
    and /bank-accounts/{id} give only for a stated purpose: its download states one too,
    with a note where theirs needs one (other, support), and records both."""
    household = await intake.register()
    card = (await intake.upload(household.id, "bank_card", household.person_ids[0])).json()
    url = f"/documents/{card['id']}/content"
    auditor = intake.headers(Role.AUDITOR, ["620123"])
    before = await row_counts(intake_engine)
    for params in ({}, {"purpose": "other"}, {"purpose": "support", "purpose_note": " "}):
        refused = await intake.http.get(url, params=params, headers=auditor)
        assert refused.status_code == 422, (params, refused.text)
        pointer = "/query/purpose_note" if params else "/query/purpose"
        assert [e["pointer"] for e in refused.json()["errors"]] == [pointer]
    unknown = await intake.http.get(url, params={"purpose": "curiosity"}, headers=auditor)
    assert unknown.status_code == 422
    assert await row_counts(intake_engine) == before  # nothing recorded, nothing read
    note = "complaint 2026-17: the card shown at the counter"
    given = await intake.http.get(
        url, params={"purpose": "other", "purpose_note": note}, headers=auditor
    )
    assert given.status_code == 200, given.text
    [found] = await wait_for_events(intake_stack, "dibao.access.v1", 1, subject=card["id"])
    record = EventRegistry.default().decode(found)
    assert isinstance(record, access.PersonalDataAccessed)
    assert (record.action, record.purpose, record.purpose_note) == (
        access.ACCESS_ACTION_DOWNLOAD,
        access.PURPOSE_OTHER,
        note,
    )
    assert record.fields == ["document:bank_card", "content"]


@pytest.mark.parametrize(
    "params",
    [{"purpose": "other"}, {"purpose": "support", "purpose_note": " "}],
    ids=["other", "support-blank"],
)
async def test_a_download_is_authorized_before_its_purpose_note_is_checked(
    intake: IntakeClient, intake_stack: TestStack, params: dict[str, str]
) -> None:
    """A purpose that needs a note (other, support) sent without one is a 422 only for a
    caller who may read the document at all: a role without cases gets its 403, one of
    another region its 404, each recorded as refused, as without the purpose; the
    validation tells an unauthorized caller nothing."""
    household = await intake.register()
    card = (await intake.upload(household.id, "bank_card", household.person_ids[0])).json()
    photo = (await intake.upload(household.id, "photo")).json()
    expected = {
        (Role.PUBLICITY_OFFICER, "620123"): 403,
        (Role.FINANCE_OFFICER, "620123"): 403,
        (Role.POLICY_ADMIN, "620123"): 403,
        (Role.VILLAGE_COMMITTEE, "620123"): 403,  # a case role, but not for the card's numbers
        (Role.AUDITOR, "620102"): 404,
    }
    for document in (card, photo):
        for (role, region), status in expected.items():
            if document is photo and role is Role.VILLAGE_COMMITTEE:
                continue  # it reads a photo: its note is checked (below)
            subject = f"{role.value}-{region}-{document['id']}"
            response = await intake.http.get(
                f"/documents/{document['id']}/content",
                params=params,
                headers=intake.headers(role, [region], subject=subject),
            )
            assert response.status_code == status, (role, document["document_type"], response.text)
            if status == 403:
                assert response.json()["type"].endswith("/missing-role")
            [record] = await access_records(intake_stack, document["id"], subject)
            assert record.outcome == access.ACCESS_OUTCOME_DENIED
    # Whoever may read it is told what is missing.
    for role in (Role.AUDITOR, Role.VILLAGE_COMMITTEE):
        allowed = await intake.http.get(
            f"/documents/{photo['id']}/content",
            params=params,
            headers=intake.headers(role, ["620123"]),
        )
        assert allowed.status_code == 422, allowed.text
        assert [e["pointer"] for e in allowed.json()["errors"]] == ["/query/purpose_note"]


async def test_an_oversize_document_is_a_413_and_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    before = await row_counts(intake_engine)
    response = await intake.upload(
        household.id, "photo", content=b"%PDF-" + b"0" * (10 * 1024 * 1024)
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/document-too-large")
    assert await row_counts(intake_engine) == before


async def test_an_unaccepted_media_type_is_a_415(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    before = await row_counts(intake_engine)
    response = await intake.upload(
        household.id, "photo", content=b"MZ\x90\x00", media_type="application/x-msdownload"
    )
    assert response.status_code == 415
    assert await row_counts(intake_engine) == before


async def test_a_document_about_a_stranger_is_refused(intake: IntakeClient) -> None:
    household = await intake.register()
    other = await intake.register()
    response = await intake.upload(household.id, "id_card", other.person_ids[0])
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/person_id"]


async def test_documents_of_another_region_do_not_exist_for_the_caller(
    intake: IntakeClient,
) -> None:
    household = await intake.register()
    document = (await intake.upload(household.id, "application_form")).json()
    foreign = intake.headers(Role.INVESTIGATOR, ["620102"])
    for url in (f"/documents/{document['id']}", f"/documents/{document['id']}/content"):
        assert (await intake.http.get(url, headers=foreign)).status_code == 404
    upload = await intake.upload(household.id, "photo", regions=["620102"])
    assert upload.status_code == 404


async def test_an_upload_for_another_regions_household_is_refused_as_its_read_is(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A clerk of another region uploading a document for a household probes its id as a
    GET does: answered the same 404 (the same detail) and recorded DENIED as a GET is;
    nothing else is written (no document row, no content's row)."""
    household = await intake.register()
    prober = f"prober-{uuid.uuid4()}"
    body, content_type = multipart_upload(
        {"household_id": household.id, "document_type": "photo"},
        pdf_bytes(f"probe {prober}"),
        filename="p.pdf",
    )
    before = await row_counts(intake_engine)
    response = await intake.http.post(
        "/documents",
        content=body,
        headers=intake.headers(regions=["620102"], subject=prober) | {"content-type": content_type},
    )
    await assert_probe_refused_as_read(
        intake,
        intake_stack,
        intake_engine,
        before,
        response,
        household_id=household.id,
        prober=prober,
        operation="POST /documents",
    )


async def test_a_retried_upload_stores_one_document(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    body, content_type = multipart_upload(
        {"household_id": household.id, "document_type": "photo"},
        pdf_bytes("retried upload"),
        filename="p.pdf",
    )
    headers = intake.headers(idempotency_key=f"up-{household.id}") | {"content-type": content_type}
    first = await intake.http.post("/documents", content=body, headers=headers)
    assert first.status_code == 201, first.text
    before = await row_counts(intake_engine)
    again = await intake.http.post("/documents", content=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Nothing written twice: the one outbox row is the replay's access record.
    assert await row_counts(intake_engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
    }


async def test_the_same_document_handed_in_again_is_the_one_on_file(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    """A clerk's second click on "upload", or a portal retrying after a timeout without an
    Idempotency-Key, sent the same file again and made a second document: the applicant's
    ID card twice in the case. The same content of the same type about the same member (or
    about none) of the same household is now the document on file: 200 with its
    description (who handed it in, and when), Content-Location, and nothing written but
    the access record of that read, as GET /documents/{id} records it. With a new
    Idempotency-Key it is the same 200, replayed as such. The same file as another type, or
    about another member, is a document of its own (one scan may hold several)."""
    household = await intake.register(intake.plan(shape="elderly_couple"))
    head, spouse = household.person_ids[:2]
    card = pdf_bytes(f"ID card {uuid.uuid4()}")
    first = await intake.upload(household.id, "id_card", head, content=card)
    assert first.status_code == 201, first.text
    document = first.json()
    assert first.headers["location"] == f"/documents/{document['id']}"

    clerk = f"clerk-{uuid.uuid4()}"  # another clerk clicks again
    before = await row_counts(intake_engine)
    again = await intake.upload(household.id, "id_card", head, content=card, subject=clerk)
    assert again.status_code == 200, again.text
    assert again.json() == document  # uploaded_by and created_at: the first hand-in's
    assert again.headers["content-location"] == f"/documents/{document['id']}"
    assert "location" not in again.headers
    # No document, only the outbox row of the read's access record.
    assert await row_counts(intake_engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
    }
    [record] = await access_records(intake_stack, document["id"], clerk)
    assert (record.outcome, record.action, record.record_type, record.purpose) == (
        access.ACCESS_OUTCOME_GRANTED,
        access.ACCESS_ACTION_VIEW,
        access.RECORD_TYPE_DOCUMENT,
        access.PURPOSE_CASE_PROCESSING,
    )
    assert [p.person_id for p in record.persons] == [head]
    assert list(record.fields) == ["document:id_card"]

    # A new Idempotency-Key: the same answer, stored and replayed as 200.
    key = f"again-{uuid.uuid4()}"
    keyed = await intake.upload(household.id, "id_card", head, content=card, idempotency_key=key)
    assert (keyed.status_code, keyed.json()) == (200, document)
    replayed = await intake.upload(household.id, "id_card", head, content=card, idempotency_key=key)
    assert (replayed.status_code, replayed.json()) == (200, document)
    assert replayed.headers["idempotent-replayed"] == "true"

    # About none of the members (the household's register): the same, again.
    register = pdf_bytes(f"household register {uuid.uuid4()}")
    whole = await intake.upload(household.id, "household_register", content=register)
    assert whole.status_code == 201, whole.text
    twice = await intake.upload(household.id, "household_register", content=register)
    assert (twice.status_code, twice.json()) == (200, whole.json())

    # The same bytes about another member, or as another type: documents of their own.
    before = await row_counts(intake_engine)
    spouses = await intake.upload(household.id, "id_card", spouse, content=card)
    as_form = await intake.upload(household.id, "application_form", content=card)
    about_head = await intake.upload(household.id, "income_proof", head, content=card)
    for answer in (spouses, as_form, about_head):
        assert answer.status_code == 201, answer.text
    ids = {document["id"], spouses.json()["id"], as_form.json()["id"], about_head.json()["id"]}
    assert len(ids) == 4
    assert (await row_counts(intake_engine))["document"] == before["document"] + 3
    # Another household handing in the same file has its own document.
    other = await intake.register()
    theirs = await intake.upload(other.id, "household_register", content=register)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != whole.json()["id"]


async def test_an_upload_racing_a_writer_without_the_content_lock_answers_its_document(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Uploads of the same content take turns on its lock (docs/adr/0015), but a writer
    that does not take it (an older intake during a rolling deploy) may be inserting the
    same document as an upload runs. The database decides, not a read before the write:
    the upload's insert waits for that row, then answers it (200), where a read-then-write
    would have found nothing, then failed on the unique index."""
    household = await intake.register()
    content = pdf_bytes(f"racing an older writer {uuid.uuid4()}")
    digest = hashlib.sha256(content).hexdigest()
    theirs = uuid.uuid4()
    async with intake_engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            text(
                "INSERT INTO document (id, household_id, person_id, document_type, sha256,"
                " size_bytes, media_type, uploaded_by, created_at)"
                " VALUES (:id, :household, NULL, 'photo', :sha256, :size, 'application/pdf',"
                " 'older-intake', now())"
            ),
            {"id": theirs, "household": household.id, "sha256": digest, "size": len(content)},
        )
        upload = asyncio.create_task(intake.upload(household.id, "photo", content=content))
        for _ in range(200):
            if await waiting_on_a_lock(intake_engine):
                break
            assert not upload.done(), upload.result().text
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the upload never waited on the uncommitted document")
        await holder.commit()
    answer = await upload
    assert answer.status_code == 200, answer.text
    assert (answer.json()["id"], answer.json()["uploaded_by"]) == (str(theirs), "older-intake")


async def test_a_form_without_its_fields_is_a_422(intake: IntakeClient) -> None:
    response = await intake.http.post(
        "/documents",
        data={"document_type": "passport"},
        headers=intake.headers(),
    )
    assert response.status_code == 422
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"/body/household_id", "/body/document_type", "/body/file"}


async def test_a_keyed_upload_keeps_the_routes_limits(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    # With an Idempotency-Key the kit fingerprints the parsed form: the route parses it
    # first, with its own limits, so a key changes nothing of what is refused.
    household = await intake.register()
    before = await row_counts(intake_engine)
    fields = {"household_id": household.id, "document_type": "photo"}
    body, content_type = multipart_upload(
        fields, b"%PDF-" + b"0" * (10 * 1024 * 1024), filename="big.pdf"
    )
    headers = intake.headers(idempotency_key=f"big-{household.id}") | {"content-type": content_type}
    big = await intake.http.post("/documents", content=body, headers=headers)
    assert big.status_code == 413
    assert big.json()["type"].endswith("/document-too-large")
    two = await intake.http.post(
        "/documents",
        data={k: str(v) for k, v in fields.items()},
        files=[
            ("file", ("a.pdf", pdf_bytes("a"), "application/pdf")),
            ("file", ("b.pdf", pdf_bytes("b"), "application/pdf")),
        ],
        headers=intake.headers(idempotency_key=f"two-{household.id}"),
    )
    assert two.status_code == 400
    assert two.headers["content-type"] == "application/problem+json"
    assert await row_counts(intake_engine) == before


async def test_content_that_is_not_its_declared_type_is_a_415(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    before = await row_counts(intake_engine)
    for media_type in ("application/pdf", "image/png", "image/jpeg", "image/tiff"):
        response = await intake.upload(
            household.id, "photo", content=b"MZ\x90\x00" + b"\0" * 64, media_type=media_type
        )
        assert response.status_code == 415, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/unsupported-media-type")
    assert await row_counts(intake_engine) == before
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    assert (
        await intake.upload(household.id, "photo", content=png, media_type="image/png")
    ).status_code == 201


async def test_an_upload_of_unstated_length_is_refused_as_soon_as_it_passes_the_limit(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Without Content-Length (chunked) the body is measured as it arrives: reading
    stops just past the limit (the kit's body limit), and the answer is the route's own
    413, as for a stated length, not the kit's generic one."""
    household = await intake.register()
    before = await row_counts(intake_engine)
    limit = 10 * 1024 * 1024  # the settings' default
    body, content_type = multipart_upload(
        {"household_id": household.id, "document_type": "photo"},
        b"%PDF-" + b"0" * (4 * limit),
        filename="endless.pdf",
    )
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), 64 * 1024):
            chunk = body[start : start + 64 * 1024]
            sent += len(chunk)
            yield chunk

    response = await intake.http.post(
        "/documents", content=chunks(), headers=intake.headers() | {"content-type": content_type}
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/document-too-large")
    assert response.json()["max_bytes"] == limit
    assert sent <= limit + 256 * 1024, f"read {sent} bytes of a body refused at {limit}"
    assert await row_counts(intake_engine) == before


async def test_a_household_documents_reads_name_every_member(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A document about the whole household (its register, the application form, the
    signed authorisation) shows every member's data: its reads name them all, as a read
    of the household does, so that "who read this person's data" finds them."""
    household = await intake.register(intake.plan(shape="elderly_couple"))
    document = (await intake.upload(household.id, "household_register")).json()
    reader = intake.headers(Role.INVESTIGATOR, ["620123"])
    described = await intake.http.get(f"/documents/{document['id']}", headers=reader)
    assert described.status_code == 200
    downloaded = await intake.http.get(
        f"/documents/{document['id']}/content", params={"purpose": "review"}, headers=reader
    )
    assert downloaded.status_code == 200
    found = await wait_for_events(intake_stack, "dibao.access.v1", 2, subject=document["id"])
    assert len(found) == 2
    for envelope in found:
        record = EventRegistry.default().decode(envelope)
        assert isinstance(record, access.PersonalDataAccessed)
        assert sorted(p.person_id for p in record.persons) == sorted(household.person_ids)
        assert all(p.keyed_hash for p in record.persons)
    # A document about one member names that member only.
    person = household.person_ids[1]
    card = (await intake.upload(household.id, "id_card", person)).json()
    assert (await intake.http.get(f"/documents/{card['id']}", headers=reader)).status_code == 200
    [one] = await wait_for_events(intake_stack, "dibao.access.v1", 1, subject=card["id"])
    record = EventRegistry.default().decode(one)
    assert isinstance(record, access.PersonalDataAccessed)
    assert [p.person_id for p in record.persons] == [person]


async def test_the_same_content_uploaded_at_once_is_stored_once_and_read_by_each(
    intake: IntakeClient, intake_app: FastAPI, intake_engine: AsyncEngine
) -> None:
    """Four uploads of one document at once (a portal retrying while the first is still
    in flight) end in one document: one answered 201, the others 200 with it, never a
    unique violation's 409 or 500. The same content as another type is another document."""
    household = await intake.register()
    content = pdf_bytes(f"uploaded four times at once {household.id}")
    responses = await asyncio.gather(
        *(intake.upload(household.id, "photo", content=content) for _ in range(4)),
        intake.upload(household.id, "other", content=content),
    )
    *photos, form = responses
    assert sorted(r.status_code for r in photos) == [200, 200, 200, 201], [r.text for r in photos]
    assert form.status_code == 201, form.text
    documents = [r.json() for r in responses]
    digest = hashlib.sha256(content).hexdigest()
    assert {d["sha256"] for d in documents} == {digest}
    assert len({d["id"] for d in documents[:4]}) == 1  # four hand-ins, one document
    assert form.json()["id"] != documents[0]["id"]
    async with intake_engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM document WHERE household_id = :h AND sha256 = :s"),
            {"h": household.id, "s": digest},
        )
    assert rows == 2
    store = intake_app.state.runtime.store
    assert isinstance(store, FilesystemDocumentStore)
    names = await asyncio.to_thread(os.listdir, store.root / digest[:2])
    assert digest in names
    assert not [n for n in names if n.startswith(".upload-")]  # no temporary file left
    reader = intake.headers(Role.INVESTIGATOR, ["620123"])
    for document in documents:
        download = await intake.http.get(f"/documents/{document['id']}/content", headers=reader)
        assert download.content == content


def _stored_file(app: FastAPI, digest: str) -> Path:
    store = app.state.runtime.store
    assert isinstance(store, FilesystemDocumentStore)
    return store.root / digest[:2] / digest


def _unavailable(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("dibao_document_content_unavailable_total", {"reason": reason})
        or 0
    )


def _repaired() -> float:
    return REGISTRY.get_sample_value("dibao_document_content_repaired_total") or 0


@pytest.mark.parametrize(
    ("reason", "spoil"),
    [
        ("damaged", lambda path: path.write_bytes(path.read_bytes()[:-1] + b"X")),
        ("damaged", lambda path: path.write_bytes(path.read_bytes()[:100])),  # truncated
        ("missing", lambda path: path.unlink()),
        # Not readable (here a directory where the file was: IsADirectoryError; permissions
        # or an I/O error alike): verify_documents reports it unreadable, and the download
        # was a bare 500 internal-error, neither recorded nor counted.
        ("unreadable", lambda path: (path.unlink(), path.mkdir())),
    ],
    ids=["altered", "truncated", "missing", "unreadable"],
)
async def test_content_that_is_not_what_was_uploaded_is_not_served(
    intake: IntakeClient,
    intake_app: FastAPI,
    intake_stack: TestStack,
    reason: str,
    spoil: Callable[[Path], object],
) -> None:
    """A file altered on disk (bit rot, an operator, tampering), cut short or gone is not
    the evidence that was uploaded: its download answers a problem of its own instead of
    the bytes (or a bare internal error), logged with the document's id and sha256 and
    counted on /metrics. Nothing was shown, so its access record is a refused read's:
    DENIED, the document named, no person and no field."""
    household = await intake.register()
    content = pdf_bytes(f"register scan {household.id}")
    document = (await intake.upload(household.id, "household_register", content=content)).json()
    digest = document["sha256"]
    await asyncio.to_thread(spoil, _stored_file(intake_app, digest))
    before = _unavailable(reason)
    reader = intake.headers(Role.INVESTIGATOR, ["620123"], subject=f"reader-{reason}")
    with capture_logs() as logs:
        response = await intake.http.get(
            f"/documents/{document['id']}/content",
            params={"purpose": "investigation"},
            headers=reader,
        )
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/document-content-unavailable")
    assert problem["document_id"] == document["id"]
    assert _unavailable(reason) - before == 1
    [logged] = [e for e in logs if e["event"] == "document content unavailable"]
    assert logged["log_level"] == "error"
    assert (logged["document_id"], logged["sha256"], logged["reason"]) == (
        document["id"],
        digest,
        reason,
    )
    assert not [e for e in logs if e["event"] == "unhandled exception"]
    # The description still reads (its own record), the content never.
    assert (await intake.http.get(f"/documents/{document['id']}", headers=reader)).is_success
    found = await wait_for_events(intake_stack, "dibao.access.v1", 2, subject=document["id"])
    records = [EventRegistry.default().decode(e) for e in found]
    assert all(isinstance(r, access.PersonalDataAccessed) for r in records)
    download = [r for r in records if r.action == access.ACCESS_ACTION_DOWNLOAD]  # type: ignore[attr-defined]
    assert len(download) == 1
    assert download[0].outcome == access.ACCESS_OUTCOME_DENIED  # type: ignore[attr-defined]
    assert list(download[0].persons) == []  # type: ignore[attr-defined]
    assert list(download[0].fields) == []  # type: ignore[attr-defined]
    assert download[0].purpose == access.PURPOSE_INVESTIGATION  # type: ignore[attr-defined]


async def test_uploading_the_same_content_again_repairs_a_damaged_file(
    intake: IntakeClient, intake_app: FastAPI
) -> None:
    """A put of content whose file exists kept whatever was there: a damaged file stayed
    damaged however often the document was handed in again. The existing file is now
    checked, and replaced (atomically) by the upload, which hashes right."""
    household = await intake.register()
    content = pdf_bytes(f"medical record {household.id}")
    first = (await intake.upload(household.id, "photo", content=content)).json()
    path = _stored_file(intake_app, first["sha256"])
    await asyncio.to_thread(path.write_bytes, content[:-3] + b"rot")
    before = _repaired()
    with capture_logs() as logs:
        again = await intake.upload(household.id, "photo", content=content)
    # The document on file (the same document handed in again), its content put back.
    assert again.status_code == 200, again.text
    assert again.json() == first
    assert await asyncio.to_thread(path.read_bytes) == content
    [repaired] = [e for e in logs if e["event"] == "document content repaired"]
    assert repaired["sha256"] == first["sha256"]
    # Counted on /metrics, where an operator sees the store being mended (once: another
    # upload of the now sound content is no repair).
    assert _repaired() - before == 1
    assert (await intake.upload(household.id, "photo", content=content)).status_code == 200
    assert _repaired() - before == 1
    metrics = (await intake.http.get("/metrics")).text
    assert f"dibao_document_content_repaired_total {_repaired()}" in metrics.splitlines()
    names = await asyncio.to_thread(os.listdir, path.parent)
    assert not [n for n in names if n.startswith(".upload-")]
    reader = intake.headers(Role.INVESTIGATOR, ["620123"])
    # Every document naming the content reads again: this one and another type's.
    other = (await intake.upload(household.id, "other", content=content)).json()
    for document in (first, other):
        download = await intake.http.get(f"/documents/{document['id']}/content", headers=reader)
        assert download.status_code == 200, download.text
        assert download.content == content
    # A file gone is put back the same way.
    await asyncio.to_thread(path.unlink)
    assert (await intake.upload(household.id, "photo", content=content)).status_code == 200
    assert await asyncio.to_thread(path.read_bytes) == content
