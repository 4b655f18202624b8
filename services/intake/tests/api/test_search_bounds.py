"""An application search's day bounds: given the wrong way round they are bad input."""

from __future__ import annotations

import pytest

from dibao_common.auth import Role
from dibao_intake.testing import IntakeClient

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def test_a_search_whose_last_day_is_before_its_first_is_refused(
    intake: IntakeClient,
) -> None:
    """submitted_from=2026-03-05&submitted_to=2026-03-01 answered an empty page (200), read
    as "no applications in those days" by a clerk who swapped the two; one day, or the
    bounds the right way round, still find the application."""
    household = await intake.register()
    accepted = (await intake.submit(await intake.complete_application_body(household))).json()
    headers = intake.headers(Role.AUDITOR, ["62"])
    swapped = await intake.http.get(
        "/applications",
        params={"submitted_from": "2026-03-05", "submitted_to": "2026-03-01"},
        headers=headers,
    )
    assert swapped.status_code == 422, swapped.text
    assert swapped.headers["content-type"] == "application/problem+json"
    assert swapped.json()["errors"] == [
        {
            "pointer": "/query/submitted_to",
            "detail": "is before submitted_from (2026-03-05): the last day of the search"
            " comes after its first",
            "code": "value_error",
        }
    ]
    for bounds in (
        {"submitted_from": "2026-03-02", "submitted_to": "2026-03-02"},
        {"submitted_from": "2026-03-01", "submitted_to": "2026-03-05"},
    ):
        page = await intake.http.get(
            "/applications", params=bounds | {"household_id": household.id}, headers=headers
        )
        assert page.status_code == 200, page.text
        assert [item["id"] for item in page.json()["items"]] == [accepted["id"]]
