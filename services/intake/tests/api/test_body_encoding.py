"""A JSON body in another encoding than UTF-8 is a malformed body, and is told so."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def test_a_json_body_in_gbk_is_a_malformed_body_that_says_utf_8(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A portal on a GBK system sent its JSON in GBK (charset=gbk): the answer was 400
    bad-request "There was an error parsing the body", not the malformed-body problem
    invalid JSON gets, and it did not say what to change."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    body = json.dumps({"reason": "家庭成员找到工作"}, ensure_ascii=False).encode("gbk")
    before = await row_counts(intake_engine)
    for content_type in ("application/json; charset=gbk", "application/json"):
        headers = intake.headers(idempotency_key=str(uuid.uuid4()))
        headers["Content-Type"] = content_type
        response = await intake.http.post(
            f"/applications/{accepted['id']}/withdrawal", content=body, headers=headers
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "https://dibao.gov.cn/problems/malformed-body"
        assert problem["detail"] == (
            "The request body is not valid JSON: JSON is sent in UTF-8 (RFC 8259 section"
            " 8.1), and byte 12 is not UTF-8"
        )
    assert await row_counts(intake_engine) == before
    # The same reason in UTF-8 is taken.
    done = await intake.http.post(
        f"/applications/{accepted['id']}/withdrawal",
        json={"reason": "家庭成员找到工作"},
        headers=intake.headers(idempotency_key=str(uuid.uuid4())),
    )
    assert done.status_code == 201, done.text
