"""The fuzzing harness's own check: an error is problem+json with type, title and status."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI

from dibao_common.testing.fuzz import problem_json, served


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


def _slow_to_stop(stop_s: float) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.sleep(stop_s)  # a relay that takes this long to stop

    return FastAPI(lifespan=lifespan)


def _served_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "fuzz-uvicorn"}


def test_a_served_app_that_does_not_stop_in_time_is_an_error() -> None:
    """served() joined its thread for ``timeout_s`` and returned whether it had ended or
    not: an app whose shutdown hung ran on, unseen, beside the next tests."""
    before = _served_threads()
    with (
        pytest.raises(RuntimeError, match=r"had not stopped 1\.0 s after its exit"),
        served(lambda: _slow_to_stop(3.0), timeout_s=1.0) as app,
    ):
        assert httpx.get(f"{app.base_url}/openapi.json", timeout=5).status_code == 200
    [slow] = _served_threads() - before
    slow.join(10)  # this test's own, stopped before the next test
    assert not slow.is_alive()
    with served(lambda: _slow_to_stop(0.1), timeout_s=5.0):
        [quick] = _served_threads() - before
    assert not quick.is_alive()
