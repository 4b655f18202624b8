"""Checks of a service's OpenAPI document shared by the services' tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs

from dibao_common.errors import PROBLEM_MEDIA_TYPE


def problem_examples(spec: dict[str, Any]) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """(operation, status, example, schema) of each example of each problem response."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get(PROBLEM_MEDIA_TYPE)
                if content is None:
                    continue
                values = [content["example"]] if "example" in content else []
                values += [e.get("value") for e in content.get("examples", {}).values()]
                for value in values:
                    yield f"{method.upper()} {path}", status, value, content["schema"]


def problem_examples_wrong(spec: dict[str, Any]) -> list[str]:
    """Each problem response (4xx, 5xx) without an example, and each example its schema
    refuses or whose ``status`` is not the response's: empty when all are right."""
    wrong: list[str] = []
    shown: set[tuple[str, str]] = set()
    for name, status, value, schema in problem_examples(spec):
        shown.add((name, status))
        validator = jsonschema_rs.validator_for({**schema, "components": spec["components"]})
        errors = [e.message for e in validator.iter_errors(value)]
        if errors:
            wrong.append(f"{name} {status}: {errors}")
        elif str(value.get("status")) != status:
            wrong.append(f"{name} {status}: example of status {value.get('status')}")
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                name = f"{method.upper()} {path}"
                problem = PROBLEM_MEDIA_TYPE in response.get("content", {})
                if status.startswith(("4", "5")) and problem and (name, status) not in shown:
                    wrong.append(f"{name} {status}: no example")
    return wrong
