"""A returned application's notice (一次性告知书, ADR 0009, 3 Dec 2026): written with the
return, named by the application and by ApplicationReturned, served and recorded as a
document, stored once however often the request is retried."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import enums_pb2 as enums
from dibao.intake.v1 import events_pb2 as ev
from dibao_common.auth import Role
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.stack import TestStack
from dibao_intake.adapters.document_store import FilesystemDocumentStore
from dibao_intake.testing import (
    IntakeClient,
    RegisteredHousehold,
    access_records,
    refused_change,
    row_counts,
    wait_for_events,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _notices(engine: AsyncEngine, household_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM document WHERE household_id = :h"
                " AND document_type = 'return_notice' ORDER BY id"
            ),
            {"h": household_id},
        )
        return [str(r[0]) for r in rows]


def _stored(app: FastAPI) -> set[str]:
    store = app.state.runtime.store
    assert isinstance(store, FilesystemDocumentStore)
    return {
        name
        for directory in store.root.iterdir()
        if directory.is_dir()
        for name in os.listdir(directory)
    }


async def _returned(
    intake: IntakeClient, key: str | None = None
) -> tuple[RegisteredHousehold, dict[str, Any], dict[str, Any]]:
    """A household whose application is sent with no document and no income declaration:
    returned. The household, the answer and the body sent."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body |= {"document_ids": [], "incomes": []}
    response = await intake.submit(body, idempotency_key=key)
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    assert out["status"] == "returned"
    return household, out, body


async def test_a_returned_application_has_its_notice_served_and_recorded(
    intake: IntakeClient, intake_stack: TestStack, intake_engine: AsyncEngine
) -> None:
    household, out, _ = await _returned(intake)
    notice = out["notice"]
    assert notice is not None
    assert (notice["document_type"], notice["media_type"], notice["person_id"]) == (
        "return_notice",
        "text/html",
        None,
    )
    assert notice["household_id"] == household.id
    assert await _notices(intake_engine, household.id) == [notice["id"]]
    # The read names it as the return's answer does.
    assert (await intake.read_application(out["id"]))["notice"] == notice

    reader = intake.headers(Role.INVESTIGATOR, ["620123"], subject="notice-reader")
    download = await intake.http.get(f"/documents/{notice['id']}/content", headers=reader)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "text/html; charset=utf-8"
    assert download.headers["content-disposition"] == (
        f'attachment; filename="{notice["id"]}.html"'
    )
    assert "script-src" not in download.headers["content-security-policy"]
    assert "default-src 'none'" in download.headers["content-security-policy"]
    content = download.content
    assert hashlib.sha256(content).hexdigest() == notice["sha256"]
    assert len(content) == notice["size_bytes"]
    page = content.decode("utf-8")
    applicant = household.plan.members[household.person_ids.index(out["applicant_person_id"])]
    assert f"<p>{applicant.name}：</p>" in page
    assert out["id"] in page
    assert "榆中县夏官营镇人民政府" in page  # the test households' township
    assert "2026年3月2日" in page  # the frozen clock's day in China
    items = re.findall(r"<li>(.*?)</li>", page)
    assert len(items) == len(out["missing_items"])
    assert items[:2] == ["申请人签字的申请书", "户口簿"]
    for member in household.plan.members:
        assert member.id_number not in page
    assert not re.search(r"\d{15,}", page)

    # Recorded as a download of a document about the household: every member named.
    [record] = await access_records(intake_stack, notice["id"], "notice-reader")
    assert (record.action, record.record_type, record.outcome) == (
        access.ACCESS_ACTION_DOWNLOAD,
        access.RECORD_TYPE_DOCUMENT,
        access.ACCESS_OUTCOME_GRANTED,
    )
    assert list(record.fields) == ["document:return_notice", "content"]
    assert {p.person_id for p in record.persons} == set(household.person_ids)
    # A role without cases reads it no more than any other document.
    officer = intake.headers(Role.PUBLICITY_OFFICER, ["620123"])
    refused = await intake.http.get(f"/documents/{notice['id']}/content", headers=officer)
    assert refused.status_code == 403
    limited = await intake.http.get(f"/applications/{out['id']}", headers=officer)
    assert limited.json()["notice"] is None

    # ApplicationReturned, decoded from the broker, names the same document.
    [published] = await wait_for_events(intake_stack, "dibao.intake.v1", 1, subject=out["id"])
    message = EventRegistry.default().decode(published)
    assert isinstance(message, ev.ApplicationReturned)
    assert (
        message.notice.document_id,
        message.notice.sha256,
        message.notice.document_type,
        message.notice.size_bytes,
        message.notice.media_type,
        message.notice.person_id,
    ) == (
        notice["id"],
        notice["sha256"],
        enums.DOCUMENT_TYPE_RETURN_NOTICE,
        notice["size_bytes"],
        "text/html",
        "",
    )


async def test_a_retried_return_stores_one_notice(
    intake: IntakeClient, intake_app: FastAPI, intake_engine: AsyncEngine
) -> None:
    """The retry runs the work again (ADR 0013), which renders a notice of its own run; the
    stored answer is sent, and that run's content is removed: one document, one content."""
    key = str(uuid.uuid4())
    household, first, body = await _returned(intake, key)
    before = await row_counts(intake_engine)
    stored = _stored(intake_app)
    again = await intake.submit(body, idempotency_key=key)
    assert again.status_code == 201, again.text
    assert again.json() == first
    assert await _notices(intake_engine, household.id) == [first["notice"]["id"]]
    # Nothing written but the replay's access record (an outbox row).
    assert await row_counts(intake_engine) == before | {
        "outbox_message_ids_issued": before["outbox_message_ids_issued"] + 1
    }
    assert _stored(intake_app) == stored


async def test_a_complete_application_has_no_notice(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    out = response.json()
    assert (out["status"], out["notice"]) == ("submitted", None)
    assert (await intake.read_application(out["id"]))["notice"] is None
    assert await _notices(intake_engine, household.id) == []


async def test_a_return_notice_is_not_uploaded(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household = await intake.register()
    before = await row_counts(intake_engine)
    response = await intake.upload(household.id, "return_notice")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == ["/body/document_type"]
    assert await row_counts(intake_engine) == before


async def test_a_return_notice_is_no_document_of_a_later_application(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The notice is a document of the household, but intake wrote it: listed among a later
    application's documents it would stand for one the household handed in (ADR 0009,
    3 Dec 2026). Refused at its pointer, nothing written."""
    household, returned, _ = await _returned(intake)
    body = await intake.complete_application_body(household)
    body |= {"completes_application_id": returned["id"]}
    listed = {**body, "document_ids": [*body["document_ids"], returned["notice"]["id"]]}
    before = await row_counts(intake_engine)
    response = await intake.submit(listed)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == f"/body/document_ids/{len(body['document_ids'])}"
    assert "return_notice" in error["detail"]
    assert await row_counts(intake_engine) == before
    # The same application without it is accepted.
    accepted = await intake.submit(body)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "submitted"


async def test_a_return_notice_is_no_document_of_a_household_change(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    household, returned, _ = await _returned(intake)
    certificate = (await intake.upload(household.id, "birth_certificate")).json()["id"]
    birth = {
        "kind": "birth",
        "member": intake.newborn(),
        "document_ids": [certificate, returned["notice"]["id"]],
    }
    problem = await refused_change(intake, intake_engine, household, birth)
    [error] = problem["errors"]
    assert error["pointer"] == "/body/document_ids/1"
    assert "return_notice" in error["detail"]
    # With its certificate alone the birth is recorded.
    await intake.change(household, birth | {"document_ids": [certificate]})
