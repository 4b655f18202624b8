"""Every 201 names where a GET reads what it created (Location), declared in the OpenAPI,
and a keyed request's replay answers the same Location (ADR 0010).

Until 3 Dec 2026 a household's change, an application's withdrawal and a roster entry
answered 201 without Location, unlike a registration, a submission and an upload. No route
reads a withdrawal alone: its Location is the application whose GET shows it. A change and
a roster entry are read alone since (GET /households/{id}/changes/{change_id}, GET
/townships/{code}/staff/{staff_id}), their Location (ADR 0010, 3 Dec 2026)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from dibao_common.auth import Role
from dibao_intake.synthetic import pdf_bytes
from dibao_intake.testing import IntakeClient

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

VILLAGE = "620123101203"
TOWNSHIP = "620123104000"

Send = Callable[[dict[str, str]], Awaitable[httpx.Response]]


async def _created_and_replayed(
    intake: IntakeClient, send: Send, role: Role, region: str
) -> tuple[httpx.Response, dict[str, str]]:
    """Send once with a key: 201 with a Location; again with the key: the same answer and
    the same Location, replayed. The first answer and the headers of a GET of it."""
    headers = intake.headers(role, [region], idempotency_key=str(uuid.uuid4()))
    first = await send(headers)
    assert first.status_code == 201, first.text
    assert "location" in first.headers, dict(first.headers)
    again = await send(headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    return first, intake.headers(role, [region])


async def test_a_change_answers_its_own_url(intake: IntakeClient) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="single_parent"))
    change = {"kind": "birth", "member": intake.newborn()}

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(
            f"/households/{household.id}/changes", json=change, headers=headers
        )

    first, reader = await _created_and_replayed(intake, send, Role.INTAKE_CLERK, VILLAGE)
    change_id = first.json()["change_id"]
    assert first.headers["location"] == f"/households/{household.id}/changes/{change_id}"
    shown = await intake.http.get(first.headers["location"], headers=reader)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["id"], shown.json()["kind"]) == (change_id, "birth")
    [entry] = [c for c in first.json()["household"]["changes"] if c["id"] == change_id]
    assert shown.json() == entry | {"view": "case"}


async def test_a_withdrawal_answers_the_applications_url(intake: IntakeClient) -> None:
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_alone"))
    submitted = await intake.submit(await intake.complete_application_body(household))
    assert submitted.status_code == 201, submitted.text
    application_id = submitted.json()["id"]

    async def send(headers: dict[str, str]) -> httpx.Response:
        return await intake.http.post(
            f"/applications/{application_id}/withdrawal",
            json={"reason": "家中情况好转"},
            headers=headers,
        )

    first, reader = await _created_and_replayed(intake, send, Role.INTAKE_CLERK, VILLAGE)
    assert first.headers["location"] == f"/applications/{application_id}"
    shown = await intake.http.get(first.headers["location"], headers=reader)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "withdrawn"


async def test_a_roster_entry_answers_its_own_url(
    intake: IntakeClient, intake_app: FastAPI
) -> None:
    """The entry's URL, as Location and, since its body is what a GET of it answers, as
    Content-Location (RFC 9110 8.7: the answer is that resource's representation), both
    replayed with the answer and declared in the OpenAPI (3 Dec 2026, helper hBD)."""
    staff = {"name": "何小军", "role": "dibao_staff"}
    replayed: list[httpx.Response] = []

    async def send(headers: dict[str, str]) -> httpx.Response:
        answer = await intake.http.post(f"/townships/{TOWNSHIP}/staff", json=staff, headers=headers)
        replayed.append(answer)
        return answer

    first, reader = await _created_and_replayed(intake, send, Role.POLICY_ADMIN, "620123")
    where = f"/townships/{TOWNSHIP}/staff/{first.json()['id']}"
    assert first.headers["location"] == where
    assert [a.headers.get("content-location") for a in replayed] == [where, where]
    shown = await intake.http.get(first.headers["location"], headers=reader)
    assert shown.status_code == 200, shown.text
    assert shown.json() == first.json()
    declared = intake_app.openapi()["paths"]["/townships/{township_code}/staff"]["post"]
    headers = declared["responses"]["201"]["headers"]
    assert headers["Content-Location"]["example"] == headers["Location"]["example"]


def test_every_201_declares_its_location(intake_app: FastAPI) -> None:
    """Each operation answering 201 declares the Location header it sends."""
    paths = intake_app.openapi()["paths"]
    created = {
        f"{method.upper()} {path}": operation["responses"]["201"]
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "201" in operation.get("responses", {})
    }
    assert sorted(created) == [
        "POST /applications",
        "POST /applications/{application_id}/withdrawal",
        "POST /documents",
        "POST /households",
        "POST /households/{household_id}/changes",
        "POST /townships/{township_code}/staff",
    ]
    for name, response in created.items():
        assert "Location" in response.get("headers", {}), name
        assert response["headers"]["Location"]["example"].startswith("/"), name
    # Each example is a URL of the GET that reads what was created.
    reads = {
        "POST /applications": "/applications/{application_id}",
        "POST /applications/{application_id}/withdrawal": "/applications/{application_id}",
        "POST /documents": "/documents/{document_id}",
        "POST /households": "/households/{household_id}",
        "POST /households/{household_id}/changes": "/households/{household_id}/changes/{change_id}",
        "POST /townships/{township_code}/staff": "/townships/{township_code}/staff/{staff_id}",
    }
    for name, path in reads.items():
        assert "get" in paths[path], path
        example = created[name]["headers"]["Location"]["example"]
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path))
        assert re.fullmatch(pattern, example), (name, example)


async def test_a_document_on_file_answers_its_url_again_when_replayed(
    intake: IntakeClient,
) -> None:
    """The same content handed in again answers the document on file, 200 with its URL as
    Content-Location (docs/adr/0015); a keyed retry of that answer replayed it without the
    header, since the kit kept only Location among the URLs of an answer. Now both."""
    household = await intake.register(intake.plan(VILLAGE, shape="elderly_couple"))
    content = pdf_bytes(f"disability certificate {uuid.uuid4()}")
    form = {
        "household_id": household.id,
        "document_type": "disability_certificate",
        "person_id": household.person_ids[1],
    }

    async def send(headers: dict[str, str]) -> httpx.Response:
        files = {"file": ("certificate.pdf", content, "application/pdf")}
        return await intake.http.post("/documents", data=form, files=files, headers=headers)

    first, _ = await _created_and_replayed(intake, send, Role.INTAKE_CLERK, VILLAGE)
    where = first.headers["location"]
    assert where == f"/documents/{first.json()['id']}"
    headers = intake.headers(Role.INTAKE_CLERK, [VILLAGE], idempotency_key=str(uuid.uuid4()))
    on_file = await send(headers)
    assert on_file.status_code == 200, on_file.text
    assert on_file.headers["content-location"] == where
    again = await send(headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == on_file.content
    assert again.headers.get("content-location") == where
