"""The published OpenAPI: every operation declares its errors as problem+json, with examples."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import Role
from dibao_common.errors import BodyLimitMiddleware
from dibao_common.testing.openapi import problem_examples, problem_examples_wrong
from dibao_intake.api.schemas import NAME_PATTERN, ONE_OFF_MAX_FEN, DocumentOut
from dibao_intake.domain.codes import MissingItemCode
from dibao_intake.testing import IntakeClient, row_counts

pytestmark = [pytest.mark.postgres]

OPERATIONS_EXPECTED = {
    ("post", "/households"),
    ("get", "/households/{household_id}"),
    ("post", "/households/lookup"),
    ("get", "/households"),
    ("post", "/households/{household_id}/changes"),
    ("get", "/households/{household_id}/changes/{change_id}"),
    ("post", "/applications"),
    ("get", "/applications"),
    ("get", "/applications/{application_id}"),
    ("post", "/applications/{application_id}/withdrawal"),
    ("post", "/documents"),
    ("get", "/documents/{document_id}"),
    ("get", "/documents/{document_id}/content"),
    ("post", "/townships/{township_code}/staff"),
    ("get", "/townships/{township_code}/staff"),
    ("get", "/townships/{township_code}/staff/{staff_id}"),
    ("post", "/staff/{staff_id}/deactivation"),
    ("get", "/divisions/{code}"),
    ("get", "/persons/{person_id}/identity"),
    ("get", "/bank-accounts/{token_id}"),
}

READS_BY_POST = {("post", "/households/lookup")}
"""POSTs that only read (the body keeps an ID number out of the URL): no Idempotency-Key,
whose replay would skip the region check and the access record."""


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if (method, path) in OPERATIONS_EXPECTED
    }


def test_every_operation_declares_its_problems(intake_app: FastAPI) -> None:
    spec = intake_app.openapi()
    operations = _operations(spec)
    assert set(operations) == OPERATIONS_EXPECTED
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        for status in ("401", "403", "422"):
            assert status in responses, (method, path, status)
        if method == "post":
            assert "400" in responses, (method, path)
            keyed = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
            assert keyed is ((method, path) not in READS_BY_POST), path
        if "{" in path:
            assert "404" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (path, status)


IN_MEMORY = {("get", "/divisions/{code}")}
"""Operations that never reach the database (the division table is loaded at start)."""


def test_every_operation_reaching_the_database_declares_its_503(intake_app: FastAPI) -> None:
    """A client is told it may retry an outage (ADR 0022): 503 database-unavailable,
    with Retry-After, shown by the kit's own problem."""
    for (method, path), operation in _operations(intake_app.openapi()).items():
        responses = operation["responses"]
        if (method, path) in IN_MEMORY:
            assert "database-unavailable" not in str(responses.get("503")), (method, path)
            continue
        unavailable = responses["503"]
        assert "Retry-After" in unavailable["headers"], (method, path)
        examples = unavailable["content"]["application/problem+json"]["examples"]
        assert "https://dibao.gov.cn/problems/database-unavailable" in {
            e["value"]["type"] for e in examples.values()
        }, (method, path)


def test_every_operation_taking_a_token_declares_authentication_unavailable(
    intake_app: FastAPI,
) -> None:
    """The issuer's keys out of reach, no token can be checked: 503
    authentication-unavailable with Retry-After (ADR 0004, 0022), shown by the kit's own
    problem; the in-memory route, which reaches no database, declares only that one."""
    checked = 0
    for (method, path), operation in _operations(intake_app.openapi()).items():
        responses = operation["responses"]
        if "401" not in responses:
            continue
        checked += 1
        unavailable = responses["503"]
        assert "Retry-After" in unavailable["headers"], (method, path)
        examples = unavailable["content"]["application/problem+json"]["examples"]
        types = {e["value"]["type"] for e in examples.values()}
        expected = {"https://dibao.gov.cn/problems/authentication-unavailable"}
        if (method, path) not in IN_MEMORY:
            expected.add("https://dibao.gov.cn/problems/database-unavailable")
        assert types == expected, (method, path)
        assert "authentication-unavailable" in unavailable["description"], (method, path)
    assert checked > 10


def test_request_bodies_carry_examples(intake_app: FastAPI) -> None:
    schemas = intake_app.openapi()["components"]["schemas"]
    for name in (
        "HouseholdIn",
        "ApplicationIn",
        "StaffIn",
        "AddressChangeIn",
        "MemberChangeIn",
        "MarriageIn",
    ):
        assert schemas[name]["examples"], name
    assert schemas["MemberOut"]["properties"]["id_number_masked"]["examples"]


def test_output_schemas_have_no_defaults(intake_app: FastAPI) -> None:
    schemas = intake_app.openapi()["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Out"):
            assert set(schema.get("required", [])) == set(schema["properties"]), name


def test_an_upload_declares_the_document_on_file(intake_app: FastAPI) -> None:
    """The same document handed in again answers the one on file (docs/adr/0015): 200
    beside 201, each with its header and an example the answer's own mapping made."""
    operation = intake_app.openapi()["paths"]["/documents"]["post"]
    responses = operation["responses"]
    for status, header in (("201", "Location"), ("200", "Content-Location")):
        response = responses[status]
        assert header in response["headers"], status
        body = response["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/DocumentOut"}, status
        example = DocumentOut.model_validate(body["example"])
        assert example.household_id == uuid.UUID(
            operation["requestBody"]["content"]["multipart/form-data"]["example"]["household_id"]
        )
    assert "answers the document on file" in operation["description"]
    assert "Already on file" in responses["200"]["description"]


def test_the_download_says_who_reads_numbers_and_why(intake_app: FastAPI) -> None:
    """A document showing ID or account numbers is downloaded as a disclosure: the operation
    names those types, the roles, and the purpose it then needs."""
    operation = intake_app.openapi()["paths"]["/documents/{document_id}/content"]["get"]
    for words in ("id_card", "bank_card", "household_register", "intake_clerk", "investigator"):
        assert words in operation["description"], words
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["purpose"]["required"] is False
    assert "id_card" in parameters["purpose"]["description"]
    assert parameters["purpose_note"]["required"] is False
    assert "/query/purpose" in operation["responses"]["422"]["description"]
    assert "missing-role" in operation["responses"]["403"]["description"]
    # Content the store no longer holds as uploaded is a problem of its own.
    assert "document-content-unavailable" in operation["responses"]["500"]["description"]


def test_a_lists_cursor_and_region_say_what_they_continue_and_refuse(
    intake_app: FastAPI,
) -> None:
    """A cursor continues only the query that gave it (another list's or another search's
    is 400 invalid-cursor); a region outside the caller's is a 403 of its own."""
    paths = intake_app.openapi()["paths"]
    for path in ("/households", "/applications"):
        operation = paths[path]["get"]
        cursor = next(p for p in operation["parameters"] if p["name"] == "cursor")
        assert "continues only the query that gave it" in cursor["description"], path
        assert "invalid-cursor" in cursor["description"], path
        assert "region-out-of-scope" in operation["responses"]["403"]["description"], path
        assert "region-out-of-scope" in operation["description"], path


def test_a_decision_is_published_with_examples_and_the_list_filters_by_state(
    intake_app: FastAPI,
) -> None:
    """The read and each list item carry the decision (ADR 0023), its schema with
    examples holding every field (a grant's, each outcome's amount told); GET
    /applications takes state, open or decided, and says status stays submitted once
    decided."""
    spec = intake_app.openapi()
    schemas = spec["components"]["schemas"]
    decision = schemas["DecisionOut"]
    assert [e["outcome"] for e in decision["examples"]] == ["approved", "one_off_approved"]
    assert "Null when rejected" in decision["properties"]["amount_fen"]["description"]
    for example in decision["examples"]:
        assert set(example) == set(decision["required"]) == set(decision["properties"])
    assert "limited view" in decision["properties"]["amount_fen"]["description"]
    for name in ("ApplicationOut", "ApplicationSummaryOut"):
        field = schemas[name]["properties"]["decision"]
        assert {"$ref": "#/components/schemas/DecisionOut"} in field["anyOf"], name
        assert "decision" in schemas[name]["required"], name
    parameters = {p["name"]: p for p in spec["paths"]["/applications"]["get"]["parameters"]}
    state = parameters["state"]["schema"]["anyOf"][0]
    assert state["$ref"].endswith("/ApplicationState")
    assert schemas["ApplicationState"]["enum"] == ["open", "decided"]
    assert "422" in parameters["state"]["description"]
    assert "stays submitted" in parameters["status"]["description"]


def test_a_missing_item_says_its_code_with_the_vocabulary_and_examples(
    intake_app: FastAPI,
) -> None:
    """A missing item's code (ADR 0009, 3 Dec 2026) is in the document as its enum, with
    examples, and the returned application's example carries one per item."""
    spec = intake_app.openapi()
    schemas = spec["components"]["schemas"]
    item = schemas["MissingItemOut"]
    code = item["properties"]["code"]
    assert "code" in item["required"]
    assert {"$ref": "#/components/schemas/MissingItemCode"} in code["anyOf"]
    assert schemas["MissingItemCode"]["enum"] == [c.value for c in MissingItemCode]
    assert set(code["examples"]) <= set(schemas["MissingItemCode"]["enum"])
    assert code["examples"]
    assert "before 3 Dec 2026" in code["description"]
    created = spec["paths"]["/applications"]["post"]["responses"]["201"]
    example = created["content"]["application/json"]["example"]
    assert [m["code"] for m in example["missing_items"]] == [
        "household_register",
        "id_card",
        "disability_certificate",
    ]


def _free_text(
    schema: dict[str, Any], spec: dict[str, Any], where: str, pattern: str | None = None
) -> Iterator[tuple[str, str | None]]:
    """Each string of a schema that is not an enum, a format (uuid, date...) or a constant,
    with its pattern (one beside an ``anyOf`` holds for each string in it)."""
    pattern = schema.get("pattern", pattern)
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _free_text(spec["components"]["schemas"][name], spec, where, pattern)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            yield from _free_text(part, spec, where, pattern)
    if schema.get("type") == "string" and not {"enum", "const", "format"} & set(schema):
        yield where + ("" if schema.get("minLength", 0) < 1 else " (not blank)"), pattern
    for name, part in schema.get("properties", {}).items():
        yield from _free_text(part, spec, f"{where}/{name}")
    if "items" in schema:
        yield from _free_text(schema["items"], spec, f"{where}/*")


def test_no_string_a_request_may_carry_admits_a_nul(intake_app: FastAPI) -> None:
    """PostgreSQL text holds no NUL: every string of a request body or parameter says so
    in its pattern (the service answers a 422), as a NUL was a 500 from the database."""
    spec = intake_app.openapi()
    found: list[tuple[str, str | None]] = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            for parameter in operation.get("parameters", []):
                found += _free_text(parameter["schema"], spec, f"{where} {parameter['name']}")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                found += _free_text(content["schema"], spec, f"{where} body")
    assert len(found) > 20
    # A cursor is opaque: one the service did not give is its 400 invalid-cursor.
    admitting = [
        where
        for where, pattern in found
        if (not pattern or re.search(pattern, "a\x00b")) and not where.endswith(" cursor")
    ]
    assert admitting == [], "\n".join(admitting)


def test_no_text_a_request_needs_admits_only_spaces(intake_app: FastAPI) -> None:
    """Inputs are stripped of whitespace before minLength is checked: the pattern of a text
    that must not be empty says it needs more than whitespace (the service's 422)."""
    spec = intake_app.openapi()
    found: list[tuple[str, str | None]] = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                found += _free_text(content["schema"], spec, f"{method} {path} body")
    needed = [(where, pattern) for where, pattern in found if where.endswith("(not blank)")]
    assert len(needed) > 10
    admitting = [w for w, p in needed if not p or re.search(p, " \t\u3000\n")]
    assert admitting == [], "\n".join(admitting)


def test_no_free_text_a_request_may_carry_admits_a_control_or_an_override(
    intake_app: FastAPI,
) -> None:
    """Every free text of a request body or parameter (what takes words; names drop such
    characters by their own rule) says in its pattern what the service refuses (ADR 0005,
    3 Dec 2026): a control character but a tab or a line break, a direction embedding,
    override or isolate. A purpose_note (recorded on the access record) took them."""
    spec = intake_app.openapi()
    found: list[tuple[str, str | None]] = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            for parameter in operation.get("parameters", []):
                found += _free_text(parameter["schema"], spec, f"{where} {parameter['name']}")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                found += _free_text(content["schema"], spec, f"{where} body")
    words = [
        (where, pattern)
        for where, pattern in found
        if pattern != NAME_PATTERN
        and (not pattern or re.search(pattern, "低保 3 口"))
        and not where.endswith(" cursor")
    ]
    assert any(where.endswith(" purpose_note") for where, _ in words)
    assert len(words) > 20
    admitting = [
        f"{where} {text!r}"
        for where, pattern in words
        for text in ("低保\u202e保低", "低保\u2067", "\x1b[31m低保", "低保\x0c", "低保\x9b")
        if not pattern or re.search(pattern, text)
    ]
    assert admitting == [], "\n".join(admitting)


def test_a_purpose_note_says_it_holds_no_id_number(intake_app: FastAPI) -> None:
    """The service refuses a purpose_note with an ID or card number in it (a 422); the
    parameter's schema admitted it."""
    paths = intake_app.openapi()["paths"]
    for path in (
        "/persons/{person_id}/identity",
        "/bank-accounts/{token_id}",
        "/documents/{document_id}/content",
    ):
        note = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "purpose_note")
        refused = note["schema"]["not"]
        assert re.search(refused["pattern"], "户主620102197003151230"), path
        assert not re.search(refused["pattern"], "核对 2026 年 3 月的发放"), path


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_in_the_document_resolves(intake_app: FastAPI) -> None:
    """A client generator or a fuzzer follows each $ref from the document's root: the
    upload form's document_type pointed at #/$defs/DocumentType, which is not there, so
    schemathesis skipped that part of the body."""
    spec = intake_app.openapi()
    refs = set(_refs(spec))
    assert "#/components/schemas/DocumentType" in refs
    for ref in sorted(refs):
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict), ref
            assert part in node, ref
            node = node[part]


def _reachable(schemas: dict[str, Any], names: set[str]) -> set[str]:
    """The schemas ``names`` refer to, directly or through others, and ``names``."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [ref.rsplit("/", 1)[-1] for ref in _refs(schemas[name])]
    return seen


def test_only_a_response_that_says_its_view_has_fields_of_the_limited_view(
    intake_app: FastAPI,
) -> None:
    """A field said to be masked or left out "in the limited view" belongs to a response
    that says which view it is. The disclosure's holder_name was described as masked there,
    though the endpoint exists to give a finance officer (a limited-view role) the name in
    full with the number (ADR 0005), which it does."""
    schemas = intake_app.openapi()["components"]["schemas"]
    viewed = _reachable(
        schemas, {name for name, s in schemas.items() if "view" in s.get("properties", {})}
    )
    assert {"HouseholdOut", "ApplicationOut", "MemberOut", "BankAccountOut"} <= viewed
    described = {
        (name, field)
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if "limited view" in prop.get("description", "")
    }
    assert ("MemberOut", "name") in described
    assert [(name, field) for name, field in sorted(described) if name not in viewed] == []
    holder = schemas["BankAccountDisclosureOut"]["properties"]["holder_name"]
    assert "in full" in holder["description"].lower()


_PYDANTIC_ONLY = {"ge", "gt", "le", "lt"}
"""pydantic's names of numeric bounds: no JSON Schema keyword, so a client generator, a
form builder or a fuzzer reads a schema holding them as unbounded."""


def _schemas_in(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object under ``node`` (a ``properties`` map's keys are names, not
    keywords), with where it is."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, part in value.items():
                    yield from _schemas_in(part, f"{where}/{name}")
            elif key not in ("examples", "example", "default", "enum", "const"):
                yield from _schemas_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas_in(value, f"{where}/{i}")


def test_numeric_bounds_are_json_schema_keywords(intake_app: FastAPI) -> None:
    """An amount's bounds were published as ``ge``/``le`` (pydantic's names) where a
    constraint sat on a type with a validator before it: an income, an asset's value, the
    amount a one-off application asks for read as any integer, a negative one included,
    which the service refuses (422)."""
    spec = intake_app.openapi()
    wrong = [
        f"{where}: {sorted(_PYDANTIC_ONLY & set(schema))}"
        for where, schema in _schemas_in(spec, "#")
        if _PYDANTIC_ONLY & set(schema)
    ]
    assert wrong == [], "\n".join(wrong)
    schemas = spec["components"]["schemas"]
    wage = schemas["IncomeIn"]["properties"]["wage_fen"]
    assert (wage["minimum"], wage["maximum"]) == (0, 10**12)
    assert wage["description"] == "Amount in fen (0.01 yuan)"
    area = schemas["AssetIn"]["properties"]["floor_area_m2"]["anyOf"][0]
    assert (area["minimum"], area["maximum"]) == (1, 100_000)
    asked = schemas["ApplicationIn"]["properties"]["requested_amount_fen"]["anyOf"][0]
    assert (asked["minimum"], asked["maximum"]) == (1, ONE_OFF_MAX_FEN)
    holder = schemas["RegistrationBankAccountIn"]["properties"]["holder_member_index"]
    assert holder["anyOf"][0]["minimum"] == 0


def _people_in(node: Any, where: str) -> Iterator[tuple[str, str, str, bool]]:
    """(id_number, name, where, name_correction) of every person an example names."""
    if isinstance(node, dict):
        if isinstance(node.get("id_number"), str) and isinstance(node.get("name"), str):
            yield node["id_number"], node["name"], where, bool(node.get("name_correction"))
        for key, value in node.items():
            yield from _people_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _people_in(value, f"{where}/{i}")


def test_one_id_number_is_one_person_across_the_examples(intake_app: FastAPI) -> None:
    """A person is their ID number: the marriage example's bride had the registration
    example's wife's number under another name, so a portal trying both examples got a
    422 (a known number with another name) or 409 (active in another household). Only a
    name correction gives a known number another name."""
    schemas = intake_app.openapi()["components"]["schemas"]
    names: dict[str, set[str]] = {}
    for name, schema in schemas.items():
        for i, example in enumerate(schema.get("examples", [])):
            for number, person, where, correction in _people_in(example, f"{name}/{i}"):
                if not correction:
                    names.setdefault(number, set()).add(f"{person} ({where})")
    assert len(names) >= 5
    twice = {n: sorted(p) for n, p in names.items() if len({x.split(" (")[0] for x in p}) > 1}
    assert twice == {}


def test_every_error_response_shows_examples_its_schema_takes(intake_app: FastAPI) -> None:
    """Issue 4 (2 Dec 2026): no error response had an example, though the 422's errors[]
    and a 409's conflicts[] are what a portal must read. Each declared 4xx/5xx now shows
    the problems the operation sends, each valid against the response's schema; intake's
    own problems where it has them, made by the service layer that raises them."""
    spec = intake_app.openapi()
    assert problem_examples_wrong(spec) == []
    shown: dict[tuple[str, str], set[str]] = {}
    for operation, status, example, _ in problem_examples(spec):
        shown.setdefault((operation, status), set()).add(example["type"].rsplit("/", 1)[-1])
    for (method, path), _ in _operations(spec).items():
        for status in ("401", "403", "422", "500"):
            assert shown[(f"{method.upper()} {path}", status)], (method, path, status)
    expected = {
        ("POST /households", "409"): {"person-in-household", "idempotency-key-in-flight"},
        ("POST /households", "403"): {"region-out-of-scope", "missing-role"},
        ("POST /households", "400"): {"malformed-body", "idempotency-key-invalid"},
        ("POST /households", "422"): {"validation-failed", "idempotency-key-reused"},
        ("GET /households", "403"): {"region-out-of-scope", "missing-role"},
        ("GET /applications", "400"): {"invalid-cursor"},
        ("GET /persons/{person_id}/identity", "403"): {
            "identity-of-a-former-member",
            "missing-role",
        },
        ("POST /townships/{township_code}/staff", "409"): {
            "caseworker-of-another-township",
            "idempotency-key-in-flight",
        },
        ("POST /documents", "413"): {"document-too-large"},
        ("GET /documents/{document_id}/content", "500"): {
            "document-content-unavailable",
            "internal-error",
        },
        ("GET /households/{household_id}", "401"): {"missing-token", "invalid-token"},
    }
    for key, slugs in expected.items():
        assert slugs <= shown[key], (key, shown[key])
    responses = spec["paths"]["/households"]["post"]["responses"]
    examples = responses["409"]["content"]["application/problem+json"]["examples"]
    [conflict] = examples["person-in-household"]["value"]["conflicts"]
    assert conflict["pointer"] == "/body/members/1"
    assert re.fullmatch(r"[0-9]{6}-\*{4}-[0-9a-f]{4}", conflict["household_ref"])


def test_the_marriageable_age_rule_is_told_where_it_refuses(intake_app: FastAPI) -> None:
    """A registration, a move in as the head's spouse and a relationship corrected to
    the spouse are refused (422 at the relationship) when the spouse or the head is under
    the legal marriage age on the day (ADR 0016; 22 for a man, 20 for a woman since 3 Dec
    2026, helper hAX), a rule no schema shows: no description said so, and a portal
    learnt it from a refusal. Now the registration (operation and request body), MoveInIn
    and MemberChangeIn.relationship say it with its day and pointer, the changes'
    operation points to them, and the 422 examples show the refusals as sent. The
    registration's body names its other rules the schema cannot show too."""
    spec = intake_app.openapi()
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]
    register = paths["/households"]["post"]
    changes = paths["/households/{household_id}/changes"]["post"]
    correction = schemas["MemberChangeIn"]["properties"]["relationship"]["description"]
    told = {
        "POST /households": (register["description"], "the registration day"),
        "HouseholdIn": (schemas["HouseholdIn"]["description"], "the registration day"),
        "MoveInIn": (
            schemas["MoveInIn"]["description"],
            "under 20 (a woman) or 22 (a man) on moved_on",
        ),
        "MemberChangeIn.relationship": (correction, "the registration day"),
        "POST /households/{household_id}/changes": (changes["description"], "on moved_on"),
    }
    for where, (text, day) in told.items():
        flat = " ".join(text.split())
        for words in ("22", "Civil Code art. 1047", day):
            assert words in flat, (where, words)
    assert "members/<i>/relationship" in register["description"]
    assert "member/relationship" in schemas["MoveInIn"]["description"]
    assert "not effective_on" in correction
    assert "kind marriage with spouse_person_id" in correction
    body_rules = " ".join(schemas["HouseholdIn"]["description"].split())
    for rule in (
        "check digit",
        "the same person twice",
        "a second head or a second spouse",
        "the head's sex",
        "a child or grandchild not younger than the head",
        "under 16 employed",
        "without exclusion_reason",
        "provincial_other without exclusion_note",
        "name_correction",
        "division table",
        "holder_member_index",
        "another name",
        "deceased",
    ):
        assert rule in body_rules, rule
    # A member_change's own refusals (domain.changes.check_member_change, the employment
    # rule of ADR 0021, the relationship correction's rules): its description named none.
    change_rules = " ".join(schemas["MemberChangeIn"]["description"].split())
    for rule in (
        "not an active member of the household (at person_id)",
        "effective_on in the future",
        "before the member joined",
        "latest recorded change of details",
        "employment_status the member's age on effective_on rules out (ADR 0021",
        "under 16 employed",
        "retired under 45",
        "not_of_working_age from 16",
        "unemployed from the highest statutory retirement age",
        "breaks a status that held",
        "at employment_status",
        "without exclusion_reason",
        "provincial_other without exclusion_note",
        "head or the head's own",
        "of the head's sex",
        "a child or grandchild not younger than the head",
        "under 20 (a woman) or 22 (a man) on the day the code was first recorded, not effective_on",
        "Civil Code art. 1047",
        "MemberChangeIn.relationship",
        "note saying why (at note)",
        "what is recorded already (at that field)",
        "another member's disability certificate",
        "at document_ids/<i>",
        "nothing written",
    ):
        assert rule in change_rules, rule
    shown: dict[str, list[str]] = {}
    for operation, status, example, _ in problem_examples(spec):
        for error in example.get("errors", []) if status == "422" else []:
            if "under 20" in error["detail"]:
                shown.setdefault(operation, []).append(error["detail"].split(":")[0])
    assert shown == {
        "POST /households": ["the spouse is under 20 on 2026-03-02"],
        "POST /households/{household_id}/changes": [
            "the spouse is under 20 on 2026-03-02",
            "the member is under 20 on 2026-03-02, when the household was registered with the"
            " member",
        ],
    }, shown


IN_FLIGHT = "idempotency-key-in-flight"
"""The kit's 409 (dibao_common.idempotency), of every keyed write."""
CONFLICTS = {
    "POST /households": {"person-in-household"},
    "POST /households/{household_id}/changes": {
        "person-in-household",
        "household-dissolved",
        "open-application-in-township",
        "already-divorced",
        "marriage-ended",
        "concurrent-change",
    },
    "POST /applications": {"application-open", "household-dissolved", "concurrent-change"},
    "POST /applications/{application_id}/withdrawal": {
        "application-not-withdrawable",
        "application-decided",
    },
    "POST /townships/{township_code}/staff": {
        "caseworker-of-another-township",
        "caseworker-conflict",
    },
    "POST /staff/{staff_id}/deactivation": set(),
    "POST /documents": set(),
}
"""The 409s each operation answers besides the kit's (grep ``Conflict(`` in the service
layer and api/deps.py's in_one_statement)."""


def test_each_409_shows_every_conflict_its_operation_answers(intake_app: FastAPI) -> None:
    """The 409s the service layer raised inline (application-open, household-dissolved,
    concurrent-change, application-not-withdrawable, application-decided, open-application-
    in-township, already-divorced, marriage-ended, caseworker-conflict) had no example: the
    operations that answer them showed only the kit's idempotency-key-in-flight. Each is now
    made by the factory its raise site calls, shown on each operation that answers it, and
    named in the response's description; a type the description names has an example."""
    spec = intake_app.openapi()
    shown: dict[str, set[str]] = {}
    for operation, status, example, _ in problem_examples(spec):
        if status == "409":
            shown.setdefault(operation, set()).add(example["type"].rsplit("/", 1)[-1])
    assert set(shown) == set(CONFLICTS)
    every = set().union(*CONFLICTS.values())
    for name, expected in CONFLICTS.items():
        assert shown[name] == expected | {IN_FLIGHT}, name
        method, path = name.split(" ", 1)
        description = spec["paths"][path][method.lower()]["responses"]["409"]["description"]
        named = {s for s in every if re.search(rf"(?<![\w-]){s}(?![\w-])", description)}
        assert named == expected, (name, description)


def _body_limit(app: FastAPI) -> int:
    limits = []
    for middleware in app.user_middleware:
        cls: object = middleware.cls
        if cls is BodyLimitMiddleware:
            limits.append(int(str(middleware.kwargs["max_body_size"])))
    [limit] = limits
    return limit


@pytest.mark.kafka
async def test_every_post_declares_the_413_it_answers_a_body_too_large(
    intake_app: FastAPI, intake: IntakeClient, intake_engine: AsyncEngine
) -> None:
    """Issue 4 review (3 Dec 2026): a body past the app's limit is a 413 problem on every
    POST (the kit's BodyLimitMiddleware, before the token is read), but only POST
    /documents declared a 413: the others' OpenAPI lacked an error response they answer.
    Each POST now declares it, with the problem it sends as its example, and nothing is
    written."""
    spec = intake_app.openapi()
    limit = _body_limit(intake_app)
    body = b'{"address": "' + b"x" * limit + b'"}'
    headers = intake.tokens.bearer(
        roles=[Role.INTAKE_CLERK.value, Role.POLICY_ADMIN.value],
        regions=["62"],
        subject="test-clerk",
    )
    shown: dict[str, set[str]] = {}
    for operation, status, example, _ in problem_examples(spec):
        if status == "413":
            shown.setdefault(operation, set()).add(example["type"].rsplit("/", 1)[-1])
    before = await row_counts(intake_engine)
    posts = sorted(path for method, path in _operations(spec) if method == "post")
    assert len(posts) == 8
    for path in posts:
        url = re.sub(r"\{township_code\}", "620123101000", path)
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), url)
        answer = await intake.http.post(
            url,
            content=body,
            headers=headers
            | {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 413, (path, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"] == "application/problem+json", path
        declared = spec["paths"][path]["post"]["responses"]
        assert "413" in declared, path
        assert answer.json()["type"].rsplit("/", 1)[-1] in shown[f"POST {path}"], path
    assert await row_counts(intake_engine) == before
