"""The published OpenAPI: every operation declares its errors as problem+json, with examples."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

pytestmark = [pytest.mark.postgres]

OPERATIONS_EXPECTED = {
    ("post", "/households"),
    ("get", "/households/{household_id}"),
    ("post", "/households/{household_id}/changes"),
    ("post", "/applications"),
    ("get", "/applications"),
    ("get", "/applications/{application_id}"),
    ("post", "/applications/{application_id}/withdrawal"),
    ("post", "/documents"),
    ("get", "/documents/{document_id}"),
    ("get", "/documents/{document_id}/content"),
    ("post", "/townships/{township_code}/staff"),
    ("get", "/townships/{township_code}/staff"),
    ("post", "/staff/{staff_id}/deactivation"),
    ("get", "/divisions/{code}"),
    ("get", "/persons/{person_id}/identity"),
    ("get", "/bank-accounts/{token_id}"),
}


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
            assert any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])), (
                path
            )
        if "{" in path:
            assert "404" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (path, status)


def test_request_bodies_carry_examples(intake_app: FastAPI) -> None:
    schemas = intake_app.openapi()["components"]["schemas"]
    for name in ("HouseholdIn", "ApplicationIn", "StaffIn"):
        assert schemas[name]["examples"], name
    assert schemas["MemberOut"]["properties"]["id_number_masked"]["examples"]


def test_output_schemas_have_no_defaults(intake_app: FastAPI) -> None:
    schemas = intake_app.openapi()["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Out"):
            assert set(schema.get("required", [])) == set(schema["properties"]), name


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
