"""Every error a kit-built app returns is an RFC 9457 problem, and none leaks internals."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Query
from httpx import AsyncClient
from pydantic import BaseModel, Field, field_validator

from dibao_common.app import build_app
from dibao_common.errors import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    NotFound,
    add_problem_examples,
    json_pointer,
    problem_responses,
)
from dibao_common.settings import CommonSettings
from dibao_common.testing.openapi import problem_examples, problem_examples_wrong
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

ID_NUMBER = "62010219800101123X"


class Member(BaseModel):
    name: str = Field(min_length=1)
    id_number: str = Field(pattern=r"^[0-9]{17}[0-9X]$")


class HouseholdIn(BaseModel):
    region_code: str
    members: list[Member] = Field(min_length=1)


class Birth(BaseModel):
    kind: Literal["birth"]
    name: str = Field(min_length=1)


class Death(BaseModel):
    kind: Literal["death"]
    died_on: date


Change = Annotated[Birth | Death, Field(discriminator="kind")]


class Declaration(BaseModel):
    incomes_fen: dict[str, int] = Field(description="Per member's ID number")
    guardian_id_number: str | None = None

    @field_validator("guardian_id_number")
    @classmethod
    def _check_digit(cls, value: str | None) -> str | None:
        # A validator that names the value it refuses, as a careless one might.
        if value is not None and not value.endswith("0"):
            raise ValueError(f"{value} has a wrong check digit")
        return value


router = APIRouter()


@router.post("/declarations", status_code=201)
async def declare(body: Declaration) -> dict[str, int]:
    return {"members": len(body.incomes_fen)}


@router.get("/declarations")
async def declarations() -> dict[str, int]:
    return {"count": 0}


@router.post("/changes", status_code=201)
async def change(body: Change) -> dict[str, str]:
    return {"kind": body.kind}


@router.post(
    "/households",
    status_code=201,
    responses=problem_responses(
        400,
        409,
        422,
        examples={
            409: Conflict(
                "A person is already an active member of another household",
                type_slug="person-in-household",
                household_ref=None,  # a null member, which FastAPI's document would drop
            )
        },
    ),
)
async def register(body: HouseholdIn) -> dict[str, int]:
    return {"members": len(body.members)}


@router.get("/households/{household_id}", responses=problem_responses(404))
async def get_household(household_id: int) -> dict[str, int]:
    raise NotFound("no household with this id")


@router.get("/search")
async def search(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, int]:
    return {"limit": limit}


@router.post("/conflict")
async def conflicting() -> None:
    raise Conflict(
        "the person is already in an active household",
        type_slug="person-in-household",
        title="Person already registered",
        household_id=uuid.UUID(int=1),
        since=date(2026, 3, 2),
        headers={"X-Extra": "1"},
    )


@router.get("/teapot")
async def teapot() -> None:
    raise HTTPException(status_code=418, detail="short and stout")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError(f"database password is hunter2 for {ID_NUMBER}")


def _app() -> FastAPI:
    # Nothing here reaches the database or the broker; the URLs are never dialled.
    settings = CommonSettings(
        service_name="kit-errors",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
    )
    return build_app(settings, title="kit errors", description="test app", routers=[router])


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with api_client(_app()) as c:
        yield c


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://dibao.gov.cn/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    return body


async def test_validation_errors_point_at_each_bad_field(client: AsyncClient) -> None:
    response = await client.post(
        "/households",
        json={"members": [{"name": "张三", "id_number": "12345"}, {"id_number": ID_NUMBER}]},
    )
    body = _problem(response, 422, "validation-failed")
    pointers = {e["pointer"]: e["code"] for e in body["errors"]}
    assert pointers == {
        "/body/region_code": "missing",
        "/body/members/0/id_number": "string_pattern_mismatch",
        "/body/members/1/name": "missing",
    }
    assert all(e["detail"] for e in body["errors"])
    assert body["instance"] == "/households"


async def test_pointers_into_a_tagged_union_skip_the_tag(client: AsyncClient) -> None:
    # pydantic locates the error at ("body", "death", "died_on"); the body sent has no
    # "death" member: the pointer is where the bad value is in the document.
    response = await client.post("/changes", json={"kind": "death", "died_on": "soon"})
    body = _problem(response, 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == ["/body/died_on"]
    response = await client.post("/changes", json={"kind": "birth"})
    body = _problem(response, 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == ["/body/name"]
    response = await client.post("/changes", json={"kind": "marriage"})
    body = _problem(response, 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == ["/body"]


async def test_a_missing_member_is_pointed_at_even_when_a_value_is_its_name(
    client: AsyncClient,
) -> None:
    # Only a location part followed by more is taken for a union's tag: a missing member
    # is the last part, whatever values the object holds.
    members = [{"name": "x", "id_number": "620102198001011230"}, {"name": "id_number"}]
    body = _problem(
        await client.post("/households", json={"members": members, "remark": "region_code"}),
        422,
        "validation-failed",
    )
    assert sorted(e["pointer"] for e in body["errors"]) == [
        "/body/members/1/id_number",
        "/body/region_code",
    ]


async def test_validation_never_echoes_the_input(client: AsyncClient) -> None:
    response = await client.post(
        "/households",
        json={"region_code": 620102, "members": [{"name": "", "id_number": ID_NUMBER + "9"}]},
    )
    _problem(response, 422, "validation-failed")
    assert ID_NUMBER not in response.text


async def test_an_unknown_tag_is_not_echoed(client: AsyncClient) -> None:
    # pydantic's message for an unknown tag quotes the tag sent.
    response = await client.post("/changes", json={"kind": ID_NUMBER, "name": "x"})
    body = _problem(response, 422, "validation-failed")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [("/body", "union_tag_invalid")]
    assert "'birth', 'death'" in body["errors"][0]["detail"]
    assert ID_NUMBER not in response.text
    assert "620102" not in response.text


async def test_id_numbers_in_messages_and_member_names_are_masked(client: AsyncClient) -> None:
    response = await client.post(
        "/declarations",
        json={"incomes_fen": {ID_NUMBER: "a lot"}, "guardian_id_number": ID_NUMBER},
    )
    body = _problem(response, 422, "validation-failed")
    assert ID_NUMBER not in response.text
    assert [e["pointer"] for e in body["errors"]] == [
        "/body/incomes_fen/620102********123X",
        "/body/guardian_id_number",
    ]
    assert body["errors"][1]["detail"] == "Value error, 620102********123X has a wrong check digit"


async def test_card_numbers_in_messages_member_names_and_paths_are_masked(
    client: AsyncClient,
) -> None:
    """A bank card number (16 to 19 digits) is echoed no more than an ID number is: in a
    mapping's member name, a validator's message, a path."""
    card = "6222021234567890123"
    response = await client.post(
        "/declarations", json={"incomes_fen": {card: "a lot"}, "guardian_id_number": card}
    )
    body = _problem(response, 422, "validation-failed")
    assert card not in response.text
    assert card[:6] in body["errors"][0]["pointer"]
    response = await client.get(f"/households/{card[:16]}x")
    assert card[:16] not in response.text
    assert response.json()["instance"].startswith("/households/622202")


async def test_a_digest_in_a_path_is_echoed_as_sent_and_an_id_number_beside_it_is_not(
    client: AsyncClient,
) -> None:
    """A sha256 holding 18 digits in a row (one in ~100) was echoed with them masked, as
    an ID number: the instance named a document that does not exist. An ID number after
    it is masked still."""
    digest = ("abcdef0123" + "620102198001011234" + "abcdef" * 7)[:64]
    for path in (f"/households/{digest}", f"/documents/{digest}/content"):
        response = await client.get(path)
        assert response.status_code in (404, 422)
        assert response.json()["instance"] == path
    assert response.json()["detail"] == f"Nothing is found at {path}"
    response = await client.get(f"/documents/{digest}/{ID_NUMBER}")
    assert response.json()["instance"] == f"/documents/{digest}/620102********123X"
    assert response.json()["detail"].endswith(f"{digest}/620102********123X")
    response = await client.get(f"/documents/sha256=620102198001011234,{digest}")
    assert response.json()["instance"] == f"/documents/sha256=620102********1234,{digest}"


@pytest.mark.parametrize("path", [f"/households/{ID_NUMBER}", f"/persons/{ID_NUMBER}/identity"])
async def test_a_path_holding_an_id_number_is_not_echoed(client: AsyncClient, path: str) -> None:
    # A 422 (the path parameter is no integer) and a 404 (no such route): both name the
    # path, in instance and in the 404's detail.
    response = await client.get(path)
    assert response.status_code in (404, 422)
    assert ID_NUMBER not in response.text
    assert response.json()["instance"] == path.replace(ID_NUMBER, "620102********123X")


async def test_a_number_with_invisible_characters_inside_is_not_echoed(
    client: AsyncClient,
) -> None:
    """An ID or card number with a zero width space or a soft hyphen between its fields
    shows as the number: it was echoed in clear in a validator's message, a mapping's
    member name and the instance (ADR 0005, 3 Dec 2026). Masked as the number alone is."""
    hidden_id = "620102\u200b19800101\u00ad123X"
    hidden_card = "6222\u20600212\u20603456\u20607890\u2060123"
    response = await client.post(
        "/declarations",
        json={"incomes_fen": {hidden_card: "a lot"}, "guardian_id_number": hidden_id},
    )
    body = _problem(response, 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == [
        "/body/incomes_fen/622202*********0123",
        "/body/guardian_id_number",
    ]
    assert body["errors"][1]["detail"] == "Value error, 620102********123X has a wrong check digit"
    response = await client.get("/households/6201\u200d0219\u200d8001\u200d0112\u200d34")
    assert response.json()["instance"] == "/households/620102********1234"
    for digits in ("0212", "19800101", "80010112"):
        assert digits not in response.text
        assert digits not in str(body)


async def test_a_control_character_or_direction_override_sent_is_echoed_escaped(
    client: AsyncClient,
) -> None:
    """A path holding a right-to-left override (U+202E) or a control character (a bell,
    an escape sequence), or a body's member name holding one, was named in the problem as
    itself: the client showed the rest of the problem reversed, a terminal ran the escape.
    Each is echoed percent-encoded, as a URI writes it (3 Dec 2026)."""
    shown: list[str] = []
    # As a client sends them: percent-encoded (the server decodes the path).
    response = await client.get("/households/%E2%80%AE42%07x")  # a 422 of its route
    body = _problem(response, 422, "validation-failed")
    assert body["instance"] == "/households/%E2%80%AE42%07x"
    shown.append(response.text)
    response = await client.get("/no/such/%E2%80%AEevil%1B[31m")  # a 404 of no route
    body = _problem(response, 404, "not-found")
    assert body["instance"] == "/no/such/%E2%80%AEevil%1B[31m"
    assert body["detail"] == "Nothing is found at /no/such/%E2%80%AEevil%1B[31m"
    shown.append(response.text)
    response = await client.post(
        "/declarations",
        json={"incomes_fen": {"\u202eabc\u2066\t\n\u0085": "a lot"}},
    )
    body = _problem(response, 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == [
        "/body/incomes_fen/%E2%80%AEabc%E2%81%A6%09%0A%C2%85"
    ]
    shown.append(response.text)
    for text in shown:
        for character in ("\u202e", "\u2066", "\u0007", "\u001b", "\t", "\n", "\u0085"):
            assert character not in text


async def test_query_and_path_errors_have_pointers_too(client: AsyncClient) -> None:
    body = _problem(await client.get("/search", params={"limit": "0"}), 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == ["/query/limit"]
    body = _problem(await client.get("/households/abc"), 422, "validation-failed")
    assert [e["pointer"] for e in body["errors"]] == ["/path/household_id"]


def test_json_pointer_escapes_slash_and_tilde() -> None:
    assert json_pointer(("body", "a/b", "~c", 0)) == "/body/a~1b/~0c/0"
    assert json_pointer(()) == ""


async def test_malformed_json_is_400_not_422(client: AsyncClient) -> None:
    response = await client.post(
        "/households",
        content=b'{"region_code": "620102", "members": [',
        headers={"content-type": "application/json"},
    )
    body = _problem(response, 400, "malformed-body")
    assert "not valid JSON" in body["detail"]
    assert "errors" not in body


@pytest.mark.parametrize(
    "content",
    [b'{"region_code": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000, b"\x00"],
    ids=["invalid-utf8", "deeply-nested", "nul"],
)
async def test_unreadable_bodies_are_400_never_500(client: AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/households", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["arrays", "objects"],
)
async def test_json_nested_too_deeply_is_a_malformed_body(
    client: AsyncClient, content: bytes
) -> None:
    """Found in the security review of 3 Dec 2026: JSON nested past the parser's recursion
    was 400 bad-request 'There was an error parsing the body', where any other invalid
    JSON is malformed-body saying what is wrong."""
    response = await client.post(
        "/households", content=content, headers={"content-type": "application/json"}
    )
    body = _problem(response, 400, "malformed-body")
    assert body["detail"].endswith("are nested too deeply")


async def test_a_body_past_the_limit_is_a_413_problem_before_it_is_parsed(
    client: AsyncClient,
) -> None:
    # FastAPI reads and parses a JSON body before any dependency (the bearer token's
    # among them) runs: without a limit, anyone could make a service hold and parse
    # gigabytes. The default is 1 MiB (DIBAO_MAX_REQUEST_BODY_BYTES).
    member = {"name": "张三", "id_number": "620102198001011230"}
    members = [member] * (1024 * 1024 // len(str(member)) + 1)
    huge = await client.post("/households", json={"region_code": "620102", "members": members})
    body = _problem(huge, 413, "content-too-large")
    assert body["instance"] == "/households"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"region_code": "620102", "members": ['
        for _ in range(64):
            yield ((str(member).replace("'", '"') + ",") * 400).encode()
        yield b"]}"

    streamed = await client.post(
        "/households", content=chunks(), headers={"content-type": "application/json"}
    )
    _problem(streamed, 413, "content-too-large")
    # Just under the limit is read as usual.
    fits = members[: len(members) // 2]
    ok = await client.post("/households", json={"region_code": "620102", "members": fits})
    assert ok.status_code == 201, ok.text


async def test_an_app_may_take_larger_bodies() -> None:
    settings = CommonSettings(
        service_name="kit-errors",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
        max_request_body_bytes=4 * 1024 * 1024,
    )
    app = build_app(settings, title="kit errors", description="test app", routers=[router])
    member = {"name": "张三", "id_number": "620102198001011230"}
    members = [member] * (2 * 1024 * 1024 // len(str(member)))
    async with api_client(app) as client:
        response = await client.post(
            "/households", json={"region_code": "620102", "members": members}
        )
    assert response.status_code == 201, response.text


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    body = _problem(await client.get("/no/such/thing"), 404, "not-found")
    assert body["instance"] == "/no/such/thing"


async def test_wrong_method_is_a_405_problem_with_allow(client: AsyncClient) -> None:
    response = await client.delete("/households")
    _problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"


async def test_a_405_allows_every_method_the_path_answers(client: AsyncClient) -> None:
    """Starlette names only the first route matching the path; /declarations answers GET
    (and so HEAD) as well as POST, and Allow must say so (RFC 9110 15.5.6)."""
    response = await client.request("OPTIONS", "/declarations")
    _problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD, POST"
    response = await client.delete("/households/7")
    _problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD"


async def test_problem_errors_keep_their_slug_extensions_and_headers(client: AsyncClient) -> None:
    response = await client.post("/conflict")
    body = _problem(response, 409, "person-in-household")
    assert body["title"] == "Person already registered"
    assert body["detail"] == "the person is already in an active household"
    assert body["household_id"] == "00000000-0000-0000-0000-000000000001"
    assert body["since"] == "2026-03-02"
    assert response.headers["x-extra"] == "1"
    body = _problem(await client.get("/households/7"), 404, "not-found")
    assert body["detail"] == "no household with this id"


async def test_framework_http_exceptions_become_problems(client: AsyncClient) -> None:
    body = _problem(await client.get("/teapot"), 418, "im-a-teapot")
    assert body["detail"] == "short and stout"


async def test_unexpected_exception_is_a_bare_500_problem_and_is_logged(
    client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await client.get("/boom")
    body = _problem(response, 500, "internal-error")
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    for leaked in ("hunter2", "RuntimeError", "Traceback", ID_NUMBER, "test_problem_details"):
        assert leaked not in response.text
    logged = [r for r in caplog.records if r.name == "dibao_common.errors"]
    assert logged, "the unexpected exception was not logged"
    # structlog hands the event, traceback included, to the stdlib handlers.
    assert "unhandled exception" in str(logged[0].msg)
    assert "RuntimeError" in str(logged[0].msg)
    # The app stays up after it.
    assert (await client.get("/healthz")).status_code == 200


async def test_openapi_declares_problems_as_problem_json(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/households"]["post"]["responses"]
    assert list(post["409"]["content"]) == [PROBLEM_MEDIA_TYPE]
    assert post["409"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert list(post["422"]["content"]) == [PROBLEM_MEDIA_TYPE]
    assert post["422"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    # A route that declares nothing still documents its 422 in our shape, not FastAPI's.
    search = spec["paths"]["/search"]["get"]["responses"]
    assert list(search["422"]["content"]) == [PROBLEM_MEDIA_TYPE]
    assert search["422"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"Problem", "ValidationProblem", "FieldError"} <= set(schemas)
    errors = schemas["ValidationProblem"]["properties"]["errors"]
    assert errors["items"] == {"$ref": "#/components/schemas/FieldError"}


def _examples(spec: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = spec["paths"][path][method]["responses"][status]["content"][PROBLEM_MEDIA_TYPE]
    return {name: example["value"] for name, example in content["examples"].items()}


async def test_every_problem_response_has_examples_its_schema_takes(client: AsyncClient) -> None:
    """2 Dec 2026: moving a problem response to problem+json dropped its examples, and
    the kit gave none: a client's engineer saw no sample body of any error."""
    spec = (await client.get("/openapi.json")).json()
    assert problem_examples_wrong(spec) == []
    assert len(list(problem_examples(spec))) >= 5
    # A route's own example, whole (its null member kept), with the operation's path.
    [conflict] = _examples(spec, "/households", "post", "409").values()
    assert conflict == {
        "type": "https://dibao.gov.cn/problems/person-in-household",
        "title": "Conflict",
        "status": 409,
        "detail": "A person is already an active member of another household",
        "instance": "/households",
        "household_ref": None,
    }
    # A path parameter has an example value in the instance.
    [missing] = _examples(spec, "/households/{household_id}", "get", "404").values()
    assert missing["instance"] == "/households/1"


async def test_the_kits_examples_are_what_it_answers(client: AsyncClient) -> None:
    """The 422 and 400 examples are made by the code that answers: the same request
    gets the example's body."""
    spec = (await client.get("/openapi.json")).json()
    invalid = _examples(spec, "/households", "post", "422")["validation-failed"]
    assert [e["pointer"] for e in invalid["errors"]] == ["/body/region_code", "/body/members"]
    response = await client.post("/households", json={})
    assert _problem(response, 422, "validation-failed") == invalid
    malformed = _examples(spec, "/households", "post", "400")["malformed-body"]
    response = await client.post(
        "/households",
        content=b'{"region_code": "620102001001" "members": []}',
        headers={"content-type": "application/json"},
    )
    assert _problem(response, 400, "malformed-body") == malformed
    search = _examples(spec, "/search", "get", "422")["validation-failed"]
    assert search["errors"][0]["pointer"] == "/query/limit"
    response = await client.get("/search", params={"limit": "x"})
    assert response.json()["errors"] == search["errors"]


def test_a_services_examples_come_first_and_must_name_a_declared_response() -> None:
    """``add_problem_examples``: a service's problems of an operation are shown before the
    kit's; one keyed to a response no operation declares fails the document, so a
    renamed route cannot leave its examples behind unseen."""
    app = _app()
    reused = Conflict("The number is already in use", type_slug="number-in-use")
    add_problem_examples(app, {("POST", "/households", 409): [reused]})
    spec = app.openapi()
    assert list(_examples(spec, "/households", "post", "409")) == [
        "person-in-household",
        "number-in-use",
    ]
    assert problem_examples_wrong(spec) == []
    stale = _app()
    add_problem_examples(stale, {("POST", "/households", 404): [NotFound("gone")]})
    with pytest.raises(ValueError, match="no declared response"):
        stale.openapi()
