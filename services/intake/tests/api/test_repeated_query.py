"""A query parameter of one value given twice is refused (ADR 0005, 3 Dec 2026): the
purpose recorded on a disclosure's access record was the last of two, and a listing's
filter the last of two regions or states."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import Role
from dibao_common.testing.stack import TestStack
from dibao_intake.testing import IntakeClient, access_records, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


def _refused(response: Any, name: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "pointer": f"/query/{name}",
            "detail": "given more than once: this parameter takes one value",
            "code": "repeated_parameter",
        }
    ]


async def test_a_disclosure_with_two_purposes_is_refused_and_not_recorded(
    intake: IntakeClient, intake_engine: AsyncEngine, intake_stack: TestStack
) -> None:
    """GET /persons/{id}/identity?purpose=review&purpose=audit disclosed the number and
    recorded the purpose audit alone. Now 422 at /query/purpose: no number, no record."""
    household = await intake.register()
    person = household.person_ids[0]
    reader = "reader-two-purposes"
    headers = intake.headers(Role.INVESTIGATOR, ["620123"], subject=reader)
    before = await row_counts(intake_engine)
    response = await intake.http.get(
        f"/persons/{person}/identity?purpose=review&purpose=audit", headers=headers
    )
    _refused(response, "purpose")
    assert household.plan.members[0].id_number not in response.text
    noted = await intake.http.get(
        f"/persons/{person}/identity",
        params=[("purpose", "other"), ("purpose_note", "核对"), ("purpose_note", "发放")],
        headers=headers,
    )
    _refused(noted, "purpose_note")
    token = household.body["bank_account"]["token_id"]
    account = await intake.http.get(
        f"/bank-accounts/{token}?purpose=payment&purpose=payment",
        headers=intake.headers(Role.FINANCE_OFFICER, ["620123"], subject=reader),
    )
    _refused(account, "purpose")
    assert await row_counts(intake_engine) == before
    assert await access_records(intake_stack, person, reader, timeout_s=1.0) == []
    # Once, it is disclosed and recorded as before.
    once = await intake.http.get(f"/persons/{person}/identity?purpose=review", headers=headers)
    assert once.status_code == 200, once.text


@pytest.mark.parametrize(
    "query",
    [
        "region=620123&region=620102",
        "state=open&state=decided",
        "limit=1&limit=200",
        "kind=dibao&kind=heating",
    ],
)
async def test_a_listing_with_a_filter_given_twice_is_refused(
    intake: IntakeClient, query: str
) -> None:
    """A listing took the last of two regions, states, limits, kinds: a search recorded
    (and answered) for another filter than the first the caller gave."""
    response = await intake.http.get(f"/applications?{query}", headers=intake.headers())
    _refused(response, query.split("=", 1)[0])
    response = await intake.http.get(f"/households?{query}", headers=intake.headers())
    if query.startswith(("region", "limit")):
        _refused(response, query.split("=", 1)[0])
