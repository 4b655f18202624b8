"""The fuzzing harness's own check: an error is problem+json with type, title and status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis

from dibao_common.testing.fuzz import problem_json


def _checked(status: int, body: Any, content_type: str) -> bool | None:
    response = httpx.Response(
        status,
        json=body,
        headers={"content-type": content_type},
        request=httpx.Request("GET", "http://127.0.0.1/x"),
    )
    response.elapsed = timedelta(0)  # as a client sets it once the body is read
    # The check reads the response alone (no context, no case).
    return problem_json(None, schemathesis.Response.from_any(response), None)  # type: ignore[arg-type]


PROBLEM = {"type": "https://dibao.gov.cn/problems/not-found", "title": "Not found", "status": 404}


def test_a_problem_passes_and_a_success_is_not_judged() -> None:
    assert _checked(404, PROBLEM, "application/problem+json") is True
    assert _checked(404, PROBLEM, "application/problem+json; charset=utf-8") is True
    assert _checked(200, {"detail": "Not Found"}, "application/json") is None


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, {"detail": "Not Found"}, "application/json"),  # FastAPI's own error
        (404, PROBLEM, "application/json"),
        (404, {k: v for k, v in PROBLEM.items() if k != "title"}, "application/problem+json"),
        (422, PROBLEM, "application/problem+json"),  # another status than the answer's
        (500, ["not", "an", "object"], "application/problem+json"),
        (
            500,
            PROBLEM | {"status": 500, "detail": 'Traceback (most recent call last):\n  File "x"'},
            "application/problem+json",
        ),
    ],
)
def test_an_error_that_is_not_a_problem_fails(status: int, body: Any, content_type: str) -> None:
    with pytest.raises(AssertionError):
        _checked(status, body, content_type)
