"""A token naming a region no division of the table has (ADR 0004, 3 Dec 2026): 403
token-region-unknown on every operation, nothing read or written, rather than a caller
who silently sees nothing there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import Role
from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

UNKNOWN_TYPE = "https://dibao.gov.cn/problems/token-region-unknown"


def _refused(response: httpx.Response, unknown: list[str]) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == UNKNOWN_TYPE
    assert problem["unknown_regions"] == unknown
    for region in unknown:
        assert region in problem["detail"]
    return problem


@pytest.mark.parametrize(
    "unknown",
    [
        ["620199"],  # a county code Lanzhou does not have
        ["63"],  # Qinghai: a province this table does not hold
        ["620102099"],  # a township Chengguan does not have
        ["620102001999", "6299"],
    ],
)
async def test_a_token_naming_an_unknown_region_is_refused_on_reads_and_writes(
    intake: IntakeClient, intake_engine: AsyncEngine, unknown: list[str]
) -> None:
    """Until 3 Dec 2026 the unknown region matched nothing and the rest of the token
    worked: the household read answered 200, the registration 201, the list 200 (a
    misissued token went unnoticed). Now each is 403 naming the unknown codes, and
    nothing is written."""
    household = await intake.register()
    region = household.plan.region_code
    before = await row_counts(intake_engine)
    regions = [region[:6], *unknown]
    read = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(regions=regions)
    )
    _refused(read, unknown)
    listed = await intake.http.get(
        f"/households?region={region}", headers=intake.headers(regions=regions)
    )
    _refused(listed, unknown)
    plan = intake.plan(region)
    written = await intake.http.post(
        "/households", json=plan.payload(), headers=intake.headers(regions=regions)
    )
    _refused(written, unknown)
    staff = await intake.http.get(
        f"/townships/{region[:9]}000/staff",
        headers=intake.headers(Role.TOWNSHIP_REVIEWER, regions),
    )
    _refused(staff, unknown)
    assert await row_counts(intake_engine) == before
    # The same token without the unknown codes reads the household.
    known = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(regions=[region[:6]])
    )
    assert known.status_code == 200, known.text


async def test_every_level_of_a_known_division_is_taken(intake: IntakeClient) -> None:
    household = await intake.register()
    region = household.plan.region_code
    levels = [region[:2], region[:4], region[:6], region[:9], region]
    response = await intake.http.get(
        f"/households/{household.id}", headers=intake.headers(regions=levels)
    )
    assert response.status_code == 200, response.text


async def test_a_role_missing_is_answered_before_the_unknown_region(
    intake: IntakeClient,
) -> None:
    """The role is the kit's check, made first: 403 missing-role, as for any token."""
    headers = intake.headers(Role.FINANCE_OFFICER, ["620199"])
    response = await intake.http.get("/townships/620123101000/staff", headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "https://dibao.gov.cn/problems/missing-role"


async def test_the_openapi_document_shows_the_refusal_the_service_sends(
    intake: IntakeClient,
) -> None:
    """ADR 0020: the example is made by the code that answers; it is the body served for
    the same token, on every operation that authenticates, and on no other."""
    document = (await intake.http.get("/openapi.json")).json()
    served = await intake.http.get(
        "/households/00000000-0000-7000-8000-000000000000",
        headers=intake.headers(regions=["620102", "620199"]),
    )
    body = _refused(served, ["620199"])
    shown = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = bool(operation.get("security"))
            forbidden = operation.get("responses", {}).get("403", {})
            examples = (
                forbidden.get("content", {}).get("application/problem+json", {}).get("examples", {})
            )
            values = [e["value"] for e in examples.values() if e["value"]["type"] == UNKNOWN_TYPE]
            assert bool(values) == secured, (method, path)
            for value in values:
                assert {k: v for k, v in value.items() if k != "instance"} == {
                    k: v for k, v in body.items() if k != "instance"
                }
                shown += 1
    assert shown > 10
