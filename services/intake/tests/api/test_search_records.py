"""A search's access record names every region whose rows it could show."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI

from dibao.access.v1 import events_pb2 as access
from dibao_common.auth import Role
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.openapi import problem_examples, problem_examples_wrong
from dibao_common.testing.stack import TestStack
from dibao_intake.service_layer.runtime import NOT_FOUND
from dibao_intake.testing import IntakeClient, events

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]


async def _searches_by(
    stack: TestStack, reader: str, count: int
) -> list[access.PersonalDataAccessed]:
    for _ in range(60):
        decoded = [
            EventRegistry.default().decode(e) for e in await events(stack, "dibao.access.v1")
        ]
        mine = [
            r
            for r in decoded
            if isinstance(r, access.PersonalDataAccessed)
            and r.actor.subject == reader
            and r.action == access.ACCESS_ACTION_SEARCH
        ]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.2)
    return mine


async def test_a_search_over_several_regions_names_each_of_them(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A caller of two counties searching without a region filter could be shown either
    county's rows: the record names both (regions), so that "reads in the second county"
    finds it; region is still the first. With a filter that holds both, both again; with
    one inside a county, that filter alone."""
    reader = "searcher-two-counties"
    headers = intake.headers(Role.INTAKE_CLERK, ["620102", "620123"], subject=reader)
    for url in (
        "/households",
        "/applications",
        "/households?region=6201",
        "/households?region=620123101",
    ):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
    records = await _searches_by(intake_stack, reader, 4)
    # Each record has a key of its own (its access id), so the topic's order is not the
    # requests': compare by what each names.
    assert sorted((r.record_id, r.region.code, [c.code for c in r.regions]) for r in records) == [
        ("applications?", "620102000000", ["620102000000", "620123000000"]),
        ("households?", "620102000000", ["620102000000", "620123000000"]),
        ("households?region_prefix=6201", "620100000000", ["620102000000", "620123000000"]),
        ("households?region_prefix=620123101", "620123101000", ["620123101000"]),
    ]


async def test_a_region_between_division_levels_is_refused_and_not_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A search's region is a prefix down to a division level, as a token's regions are:
    62012 or 62012310 would be recorded as a search of no division (620120000000). 422 in
    words, and no access record (nothing was searched); a level's prefix is searched."""
    reader = f"searcher-between-levels-{uuid.uuid4()}"  # its records alone, run after run
    headers = intake.headers(Role.INTAKE_CLERK, ["620123"], subject=reader)
    for url in ("/households?region=62012", "/applications?region=62012310"):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "2 digits (province), 4 (city), 6 (county)" in response.text, response.text
    response = await intake.http.get("/households?region=620123101", headers=headers)
    assert response.status_code == 200, response.text
    [record] = await _searches_by(intake_stack, reader, 1)
    assert record.record_id == "households?region_prefix=620123101"
    # A refused search's record would have been committed before that one, so published
    # by the time it is (the relay claims in outbox order and awaits each batch's acks).
    await asyncio.sleep(1.0)
    decoded = [
        EventRegistry.default().decode(e) for e in await events(intake_stack, "dibao.access.v1")
    ]
    assert [
        r.record_id
        for r in decoded
        if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == reader
    ] == ["households?region_prefix=620123101"]


async def test_a_search_of_a_region_outside_the_callers_is_refused_and_recorded(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A region filter outside every one of the caller's regions answered 200 with an
    empty page, read as "no households there" while a read of a record there is refused.
    403 region-out-of-scope, saying so; recorded as a refused read is (outcome DENIED, the
    search and its region named, no person, no field): an auditor of that county finds the
    probe. The refusal comes before the cursor is looked at, as a role's does. A filter
    that overlaps one of the caller's regions is searched within it."""
    await intake.register(intake.plan("620123101203"))
    reader = "searcher-outside-regions"
    headers = intake.headers(Role.INTAKE_CLERK, ["620102", "620103"], subject=reader)
    for url in (
        "/households?region=620123",
        "/applications?region=620123101&status=submitted",
        # Refused before the cursor is read: what came in its place is not recorded (an
        # ID number, a NUL the audit log's JSON cannot hold).
        "/applications?region=63&cursor=620102197003151230",
        "/households?region=620123101&cursor=a%00b",
    ):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 403, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/region-out-of-scope"), problem
        assert "outside your regions (620102, 620103)" in problem["detail"], problem
        assert "items" not in problem
    for url in ("/households?region=62", "/applications?region=620102001"):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
    records = await _searches_by(intake_stack, reader, 6)
    assert sorted(
        (r.record_id, r.outcome, r.region.code, [c.code for c in r.regions]) for r in records
    ) == [
        (
            "applications?region_prefix=620102001",
            access.ACCESS_OUTCOME_GRANTED,
            "620102001000",
            ["620102001000"],
        ),
        (
            "applications?region_prefix=620123101&status=submitted",
            access.ACCESS_OUTCOME_DENIED,
            "620123101000",
            ["620123101000"],
        ),
        (
            "applications?region_prefix=63",
            access.ACCESS_OUTCOME_DENIED,
            "630000000000",
            ["630000000000"],
        ),
        (
            "households?region_prefix=62",
            access.ACCESS_OUTCOME_GRANTED,
            "620000000000",
            ["620102000000", "620103000000"],
        ),
        (
            "households?region_prefix=620123",
            access.ACCESS_OUTCOME_DENIED,
            "620123000000",
            ["620123000000"],
        ),
        (
            "households?region_prefix=620123101",
            access.ACCESS_OUTCOME_DENIED,
            "620123101000",
            ["620123101000"],
        ),
    ]
    for r in records:
        if r.outcome == access.ACCESS_OUTCOME_DENIED:
            assert list(r.persons) == list(r.fields) == [], r


async def test_a_caller_without_regions_is_refused_a_search_as_one_outside_them(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """A token that carries no regions passes authentication (a role that needs none
    may hold it); searching households or applications without a region answered 200
    with an empty page, read as "none there", while a search with a region was refused
    403. Both are now the same 403 region-out-of-scope, recorded as refused (outcome
    DENIED, no person, no field)."""
    await intake.register(intake.plan("620123101203"))
    reader = "searcher-without-regions"
    headers = intake.headers(Role.INTAKE_CLERK, [], subject=reader)
    for url in ("/households", "/applications?status=submitted", "/households?region=620123"):
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 403, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/region-out-of-scope"), problem
        assert "no regions" in problem["detail"], problem
        assert "items" not in problem
    records = await _searches_by(intake_stack, reader, 3)
    assert sorted((r.record_id, r.outcome) for r in records) == [
        ("applications?status=submitted", access.ACCESS_OUTCOME_DENIED),
        ("households?", access.ACCESS_OUTCOME_DENIED),
        ("households?region_prefix=620123", access.ACCESS_OUTCOME_DENIED),
    ]
    for r in records:
        assert list(r.persons) == list(r.fields) == [], r


async def test_a_search_by_a_household_outside_the_callers_is_refused_as_a_read_of_it(
    intake: IntakeClient, intake_stack: TestStack
) -> None:
    """GET /applications?household_id= of another region's household answered 200 with an
    empty page, recorded as a granted search in the caller's region naming no household:
    the auditor of that household's county could not find the probe, whereas GET
    /households/{id} answers it 404, recorded DENIED naming the household. The filter
    names one record, so it is now checked as that read is: the same 404 as a household
    that does not exist (the answer tells nothing), recorded as a refused search (DENIED)
    naming the household, in its region, no person, no field, and nothing else recorded
    for it; refused before the cursor is read. A household that does not exist leaves no
    record. One within the caller's regions is searched, and its record names it."""
    household = await intake.register(intake.plan("620123101203"))
    accepted = await intake.submit(await intake.complete_application_body(household))
    assert accepted.status_code == 201, accepted.text
    prober = f"searcher-of-a-foreign-household-{uuid.uuid4()}"  # its records alone
    headers = intake.headers(Role.INTAKE_CLERK, ["620102"], subject=prober)
    nobody = str(uuid.uuid4())
    missing = await intake.http.get(f"/households/{nobody}", headers=headers)
    assert missing.status_code == 404, missing.text
    urls = (
        f"/applications?household_id={household.id}",
        f"/applications?household_id={household.id}&status=submitted&cursor=620102197003151230",
        f"/applications?household_id={nobody}",
    )
    for url in urls:
        response = await intake.http.get(url, headers=headers)
        assert response.status_code == 404, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert {k: problem.get(k) for k in ("status", "type", "title", "detail")} == {
            k: missing.json().get(k) for k in ("status", "type", "title", "detail")
        }, url
        assert "items" not in problem
    owner = f"searcher-of-an-own-household-{uuid.uuid4()}"
    page = await intake.http.get(
        urls[0], headers=intake.headers(Role.INTAKE_CLERK, ["620123"], subject=owner)
    )
    assert page.status_code == 200, page.text
    assert [i["id"] for i in page.json()["items"]] == [accepted.json()["id"]]
    [granted] = await _searches_by(intake_stack, owner, 1)
    assert (granted.outcome, granted.household_id, granted.record_id) == (
        access.ACCESS_OUTCOME_GRANTED,
        household.id,
        f"applications?household_id={household.id}",
    )
    # The prober's records were committed before the owner's search, so published by the
    # time it is (the relay claims in outbox order and awaits each batch's acks): the two
    # refusals, and nothing else (the household that does not exist left none).
    decoded = [
        EventRegistry.default().decode(e) for e in await events(intake_stack, "dibao.access.v1")
    ]
    records = [
        r
        for r in decoded
        if isinstance(r, access.PersonalDataAccessed) and r.actor.subject == prober
    ]
    denied = (access.ACCESS_OUTCOME_DENIED, access.ACCESS_ACTION_SEARCH, household.id)
    assert sorted(
        (
            r.record_id,
            (r.outcome, r.action, r.household_id),
            r.region.code,
            [c.code for c in r.regions],
            list(r.persons),
            list(r.fields),
        )
        for r in records
    ) == [
        (f"applications?household_id={household.id}", denied, "620123101203", [], [], []),
        (
            f"applications?status=submitted&household_id={household.id}",
            denied,
            "620123101203",
            [],
            [],
            [],
        ),
    ]


def test_a_search_by_household_declares_the_404_of_a_read_of_it(intake_app: FastAPI) -> None:
    """The operation says what a household_id of another region answers and how it is
    recorded, and declares that 404 with the body the service sends (ADR 0020)."""
    spec = intake_app.openapi()
    operation = spec["paths"]["/applications"]["get"]
    described = " ".join(operation["description"].split())
    assert "answer the same 404" in described
    assert "recorded as a refused search (outcome DENIED) naming that household" in described
    household_id = next(p for p in operation["parameters"] if p["name"] == "household_id")
    assert "404" in household_id["description"]
    assert "not in the caller's regions" in operation["responses"]["404"]["description"]
    shown = [
        example
        for name, status, example, _ in problem_examples(spec)
        if (name, status) == ("GET /applications", "404")
    ]
    assert [(e["type"].rsplit("/", 1)[-1], e["detail"]) for e in shown] == [
        ("not-found", NOT_FOUND)
    ]
    assert problem_examples_wrong(spec) == []
