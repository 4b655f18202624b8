"""A one-off application's requested amount has a cap no real one-off assistance reaches
(ADR 0007, 3 Dec 2026), as a monthly declaration's items have: above it, a typing error."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_intake.api.schemas import ONE_OFF_MAX_FEN
from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("temporary", 10**12),  # ten billion yuan: taken before
        ("medical", ONE_OFF_MAX_FEN + 1),
        ("festival", 500_000_000),  # a 500-yuan subsidy with four zeros too many
    ],
)
async def test_a_one_off_amount_above_the_cap_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, kind: str, amount: int
) -> None:
    """A temporary assistance application asking 10^12 fen was accepted (201), stored and
    published in ApplicationSubmitted. Now 422 at requested_amount_fen, nothing written."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body |= {"kind": kind, "requested_amount_fen": amount, "reason": "一次性救助"}
    before = await row_counts(intake_engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/requested_amount_fen"
    assert error["code"] == "less_than_equal"
    assert await row_counts(intake_engine) == before


async def test_a_one_off_amount_up_to_the_cap_is_taken(intake: IntakeClient) -> None:
    """The cap itself (1,000,000 yuan) is asked and shown as asked."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body |= {"kind": "medical", "requested_amount_fen": ONE_OFF_MAX_FEN, "reason": "重大疾病"}
    response = await intake.submit(body)
    assert response.status_code == 201, response.text
    assert response.json()["requested_amount_fen"] == ONE_OFF_MAX_FEN


@pytest.mark.parametrize("kind", ["temporary", "medical", "festival"])
async def test_a_one_off_asking_nothing_is_refused(
    intake: IntakeClient, intake_engine: AsyncEngine, kind: str
) -> None:
    """A one-off application asking 0 fen was taken (201), stored and published as
    returned for "the amount asked for", a notice sent to the applicant for what the clerk
    mistyped. A one-off assistance asking nothing is a typing error: 422 at the amount,
    code greater_than_equal, nothing written (ADR 0007, 3 Dec 2026)."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    body |= {"kind": kind, "requested_amount_fen": 0, "reason": "一次性救助"}
    before = await row_counts(intake_engine)
    response = await intake.submit(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/requested_amount_fen"
    assert error["code"] == "greater_than_equal"
    assert await row_counts(intake_engine) == before
    # One fen is an amount: the application is taken as asked.
    taken = await intake.submit(body | {"requested_amount_fen": 1})
    assert taken.status_code == 201, taken.text
    assert taken.json()["requested_amount_fen"] == 1


async def test_a_dibao_application_with_an_amount_of_0_is_refused_at_the_amount(
    intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """A dibao application has no amount asked (it is computed): 0 is refused at the
    field as any amount is (was: 'dibao amounts are computed, not requested')."""
    household = await intake.register()
    body = await intake.complete_application_body(household)
    before = await row_counts(intake_engine)
    response = await intake.submit(body | {"requested_amount_fen": 0})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["pointer"] == "/body/requested_amount_fen"
    assert await row_counts(intake_engine) == before
