"""The security review of 3 Dec 2026 (helper hK), by experiment on the served intake:
what a browser, a shared proxy or a crafted token may do with its answers."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


def _not_kept_nor_sniffed(response: httpx.Response) -> None:
    headers = response.headers
    assert "no-store" in headers["cache-control"], headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in headers


async def test_answers_with_personal_data_are_not_kept_by_a_shared_cache(
    intake: IntakeClient,
) -> None:
    """A household (names, masked ID numbers, address), its registration, its keyed
    replay, its list, a refusal, and a document's content: each says no-store and nosniff.
    Before 3 Dec 2026 only the document download did; a proxy between a township office
    and the bureau could keep a household's answer and give it to the next caller."""
    key = str(uuid.uuid4())
    plan = intake.plan()
    registered = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(idempotency_key=key)
    )
    assert registered.status_code == 201, registered.text
    replayed = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(idempotency_key=key)
    )
    assert replayed.headers.get("idempotent-replayed") == "true", replayed.text
    household_id = registered.json()["id"]
    read = await intake.http.get(f"/households/{household_id}", headers=intake.headers())
    listed = await intake.http.get(
        f"/households?region={plan.region_code}", headers=intake.headers()
    )
    foreign = await intake.http.get(
        f"/households/{household_id}", headers=intake.headers(regions=["620102"])
    )
    assert (read.status_code, listed.status_code, foreign.status_code) == (200, 200, 404)
    for response in (registered, replayed, read, listed, foreign):
        _not_kept_nor_sniffed(response)
    person = registered.json()["members"][0]["person_id"]
    upload = await intake.upload(household_id, "id_card", person)
    assert upload.status_code == 201, upload.text
    _not_kept_nor_sniffed(upload)
    content = await intake.http.get(
        f"/documents/{upload.json()['id']}/content?purpose=case_processing",
        headers=intake.headers(),
    )
    assert content.status_code == 200, content.text
    _not_kept_nor_sniffed(content)
    assert content.headers["cache-control"] == "private, no-store"
    assert content.headers["content-disposition"].startswith("attachment;")


async def test_a_pdf_header_on_an_html_body_is_served_as_a_download_only(
    intake: IntakeClient,
) -> None:
    """Content that begins as a PDF may hold HTML after its header: it is served with the
    type it was uploaded with, as an attachment, never sniffed (a browser runs none of it)."""
    household = await intake.register()
    body = b"%PDF-1.4\n<html><script>alert(document.cookie)</script></html>"
    upload = await intake.upload(
        household.id, "income_proof", household.person_ids[0], content=body
    )
    assert upload.status_code == 201, upload.text
    content = await intake.http.get(
        f"/documents/{upload.json()['id']}/content", headers=intake.headers()
    )
    assert content.status_code == 200, content.text
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["content-disposition"] == (
        f'attachment; filename="{upload.json()["id"]}"'
    )
    _not_kept_nor_sniffed(content)


async def test_a_token_whose_subject_no_row_can_hold_writes_nothing(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A subject with a NUL made the registration's INSERT fail in PostgreSQL (text holds
    no NUL): a 500 'internal-error'. Since 3 Dec 2026 the token is refused (401) before
    anything runs, and nothing is written."""
    before = await row_counts(intake_engine)
    for subject in ("clerk\x00-7", "c" * 100_000):
        headers = intake.tokens.bearer(roles=["intake_clerk"], regions=["62"], subject=subject)
        response = await intake.http.post(
            "/households", json=intake.plan().payload(), headers=headers
        )
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "https://dibao.gov.cn/problems/invalid-token"
    assert await row_counts(intake_engine) == before


async def test_a_townships_padded_code_in_a_token_reads_no_roster(intake: IntakeClient) -> None:
    """620123101000 is the township 夏官营镇 padded to 12 digits, no village: as a token's
    region it read the township's staff roster (200) as the township's own token does,
    while every village's token gets 404. Since 3 Dec 2026 it is an invalid token."""
    headers = intake.tokens.bearer(roles=["township_reviewer"], regions=["620123101000"])
    response = await intake.http.get("/townships/620123101000/staff", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["detail"].endswith("regions must be a list of division-code prefixes")
    township = intake.tokens.bearer(roles=["township_reviewer"], regions=["620123101"])
    assert (
        await intake.http.get("/townships/620123101000/staff", headers=township)
    ).status_code == 200


async def test_a_refused_media_type_is_not_echoed_when_it_may_be_an_id_number(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """The part's Content-Type is the caller's text: '620102198001011230/x' was quoted in
    the 415's detail as sent, an ID number echoed in a problem (ADR 0004: never). A media
    type that is one, with no such run, is still named."""
    household = await intake.register()
    before = await row_counts(intake_engine)
    number = "620102198001011230"
    for sent in (f"{number}/x", f"application/{number}", f"application/x-{number}0"):
        response = await intake.upload(
            household.id, "income_proof", content=b"%PDF-1.4 x", media_type=sent
        )
        assert response.status_code == 415, response.text
        assert number not in response.text
        assert response.json()["detail"].startswith("the file's media type is not accepted")
    gif = await intake.upload(
        household.id, "income_proof", content=b"GIF89a", media_type="image/gif"
    )
    assert gif.status_code == 415
    assert gif.json()["detail"].startswith("image/gif is not accepted; send one of")
    assert await row_counts(intake_engine) == before
