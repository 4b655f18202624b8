"""Who may do what where: every role reads within its regions; only clerks write."""

from __future__ import annotations

import uuid

import pytest

from dibao_common.auth import Role
from dibao_intake.testing import IntakeClient, RegisteredHousehold

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OWN = ["620123101"]  # 夏官营镇: the households' township
FOREIGN = ["620102"]  # 城关区


@pytest.fixture
async def case(intake: IntakeClient) -> tuple[RegisteredHousehold, str]:
    household = await intake.register()
    body = await intake.complete_application_body(household)
    response = await intake.submit(body)
    assert response.status_code == 201
    return household, str(response.json()["id"])


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_reads_within_its_regions_only(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str], role: Role
) -> None:
    household, application_id = case
    for url in (f"/households/{household.id}", f"/applications/{application_id}"):
        own = await intake.http.get(url, headers=intake.headers(role, OWN))
        assert own.status_code == 200, (role, url, own.text)
        foreign = await intake.http.get(url, headers=intake.headers(role, FOREIGN))
        assert foreign.status_code == 404, (role, url)
        missing = await intake.http.get(
            url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}", headers=intake.headers(role, OWN)
        )
        assert missing.json()["detail"] == foreign.json()["detail"]  # indistinguishable
    listing = await intake.http.get("/applications", headers=intake.headers(role, FOREIGN))
    assert listing.status_code == 200
    assert application_id not in {item["id"] for item in listing.json()["items"]}


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.INTAKE_CLERK])
async def test_only_intake_clerks_write(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str], role: Role
) -> None:
    household, application_id = case
    headers = intake.headers(role, OWN)
    attempts = [
        await intake.http.post("/households", json=intake.plan().payload(), headers=headers),
        await intake.http.post(
            f"/households/{household.id}/changes",
            json={
                "kind": "death",
                "person_id": household.person_ids[-1],
                "date_of_death": "2026-01-01",
            },
            headers=headers,
        ),
        await intake.http.post(
            "/applications",
            json={"household_id": household.id, "applicant_person_id": household.person_ids[0]},
            headers=headers,
        ),
        await intake.http.post(
            f"/applications/{application_id}/withdrawal", json={"reason": "x"}, headers=headers
        ),
    ]
    for response in attempts:
        assert response.status_code == 403, (role, response.text)
        assert response.json()["type"].endswith("/missing-role")


async def test_a_clerk_of_another_region_cannot_touch_the_household(
    intake: IntakeClient, case: tuple[RegisteredHousehold, str]
) -> None:
    household, application_id = case
    headers = intake.headers(Role.INTAKE_CLERK, FOREIGN)
    change = await intake.http.post(
        f"/households/{household.id}/changes",
        json={
            "kind": "death",
            "person_id": household.person_ids[-1],
            "date_of_death": "2026-01-01",
        },
        headers=headers,
    )
    assert change.status_code == 404
    submit = await intake.http.post(
        "/applications",
        json={"household_id": household.id, "applicant_person_id": household.person_ids[0]},
        headers=headers,
    )
    assert submit.status_code == 404
    withdraw = await intake.http.post(
        f"/applications/{application_id}/withdrawal", json={"reason": "x"}, headers=headers
    )
    assert withdraw.status_code == 404


async def test_no_token_is_a_401_problem(intake: IntakeClient) -> None:
    response = await intake.http.get("/applications")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
