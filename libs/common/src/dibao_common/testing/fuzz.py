"""Property-based tests of a service's HTTP API with schemathesis, bounded and repeatable.

A service's test starts its app on a real uvicorn in a thread of its own (:func:`served`,
with its own event loop, so the generated requests, which schemathesis sends
synchronously, never wait on the test's loop), then :func:`fuzz` sends every operation of
the published OpenAPI a fixed number of generated requests, valid (positive) and invalid
(negative), and runs the checks on each answer:

- no 5xx (``not_a_server_error``);
- the status, content type, headers and body are the ones the OpenAPI declares for the
  operation (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- a request the schema says is invalid is refused (``negative_data_rejection``), and one
  without its token too (``ignored_auth``);
- every 4xx is RFC 9457 ``application/problem+json`` with ``type``, ``title`` and
  ``status`` (:func:`problem_json`);
- a method a path does not declare is 405 problem+json with ``Allow``;
- the caller's own ``after`` (e.g. that a refused request wrote nothing).

Not checked: ``positive_data_acceptance`` (that data valid by the schema is accepted):
the services refuse such data by their rules (an ID number's checksum, a date before a
birth, an id that names nothing: 422, 404, 409), as declared. No stateful run either:
the OpenAPI declares no links.

Hypothesis runs derandomized (the same examples every run, no example database), without
shrinking, so a run's cost is bounded by ``examples`` per operation and mode. Every
finding is collected (one per operation, check and status) rather than the first only.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hypothesis
import requests
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err
from schemathesis.openapi.checks import JsonSchemaError, UndefinedStatusCode
from schemathesis.specs.openapi import checks as openapi_checks

from dibao_common.observability import route_uvicorn_logs

T = TypeVar("T")
AnyCase = Case[Any]
"""A generated request of any operation."""

PROBLEM_JSON = "application/problem+json"


@dataclass
class Served:
    """An app answering on ``base_url``, its event loop running in a thread of its own."""

    app: FastAPI
    base_url: str
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run ``coroutine`` on the app's loop (where its engine's connections live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


@contextmanager
def served(make_app: Callable[[], FastAPI], *, timeout_s: float = 30.0) -> Iterator[Served]:
    """``make_app()`` served by uvicorn on a free port of 127.0.0.1, lifespan running,
    in a thread with its own event loop; stopped (lifespan ended) on exit. An app still
    running ``timeout_s`` after it was asked to stop (its relay or consumer not
    stopping) is an error, not a thread left running beside the next tests."""
    ready: Future[Served] = Future()
    holder: dict[str, uvicorn.Server] = {}

    async def main() -> None:
        app = make_app()
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        # uvicorn's config installs its plain-text handlers; the app, built first, has
        # configured the kit's, which take uvicorn's loggers over again (as they do after
        # the config under ``uvicorn --factory``).
        route_uvicorn_logs()
        server = uvicorn.Server(config)
        holder["server"] = server
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        ready.set_result(Served(app, f"http://127.0.0.1:{port}", asyncio.get_running_loop()))
        await task

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=thread_main, name="fuzz-uvicorn", daemon=True)
    thread.start()
    try:
        yield ready.result(timeout_s)
    finally:
        if "server" in holder:
            holder["server"].should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            raise RuntimeError(f"the served app had not stopped {timeout_s} s after its exit")


def problem_json(ctx: CheckContext, response: schemathesis.Response, case: AnyCase) -> bool | None:
    """Every 4xx and 5xx is RFC 9457 problem+json with ``type``, ``title`` and ``status``
    (the status the response has), and tells no stack trace."""
    if response.status_code < 400:
        return None
    assert "Traceback (most recent call last)" not in response.text, "a stack trace answered"
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media_type == PROBLEM_JSON, f"{response.status_code} answered as {media_type!r}"
    body = response.json()
    assert isinstance(body, dict), f"problem body is not an object: {body!r}"
    for name in ("type", "title", "status"):
        assert name in body, f"problem without {name}: {body!r}"
    assert body["status"] == response.status_code, f"problem status {body['status']!r}"
    return True


CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,
    problem_json,
]


@dataclass
class Findings:
    """What a run sent and found: one finding per operation, check and status."""

    examples: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)
    unsatisfiable: list[str] = field(default_factory=list)
    """The operations and modes of which no request could be generated."""

    def add(
        self,
        label: str,
        response: schemathesis.Response,
        failure: Failure | AssertionError,
        case: AnyCase,
    ) -> None:
        status = response.status_code
        name = type(failure).__name__
        if isinstance(failure, UndefinedStatusCode | JsonSchemaError):
            name = f"{name}: {failure.title}"
        key = (label, name, status)
        if key not in self.failures:
            detail = failure.message if isinstance(failure, Failure) else str(failure)
            self.failures[key] = (
                f"{detail[:300]}\n    request: {case.as_curl_command()[:600]}"
                f"\n    answer: {response.text[:400]}"
            )

    def summary(self, seconds: float) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.by_status.items()))
        none = f"; none generated for {self.unsatisfiable}" if self.unsatisfiable else ""
        return f"{self.examples} requests in {seconds:.1f} s ({statuses}){none}"

    def report(self) -> str:
        return "\n".join(
            f"{label} -> {status} {check}:\n    {detail}"
            for (label, check, status), detail in sorted(self.failures.items())
        )


@dataclass(frozen=True)
class Sent:
    """One generated request, as ``prepare`` rewrote it, and its answer."""

    case: AnyCase
    response: schemathesis.Response
    mode: GenerationMode


def fuzz(
    schema: schemathesis.BaseSchema,
    base_url: str,
    *,
    headers_for: Callable[[str, str], Mapping[str, str]],
    examples: int,
    prepare: Callable[[AnyCase], None] | None = None,
    after: Callable[[Sent], str | None] | None = None,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> Findings:
    """Send each operation of ``schema`` ``examples`` generated requests per mode.

    ``headers_for(method, path)`` gives the operation's token (the role it needs);
    ``prepare(case)`` may point a case at records that exist (a path's id, say);
    ``after(sent)`` returns what is wrong beyond the answer (None when nothing is).
    """
    findings = Findings()
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )

    def send(label: str, case: AnyCase, mode: GenerationMode) -> None:
        if prepare is not None:
            prepare(case)
        # The token is the caller's (explicit), not part of the generated case, so that
        # `ignored_auth` sends the request again without it and with a wrong one; unless
        # the case is one without it (a negative case whose headers lost Authorization,
        # which the securityScheme makes a required header): adding it back would make the
        # request valid, and `negative_data_rejection` then wrongly expect a refusal.
        lost_token = (
            case.meta is not None
            and case.meta.is_negative_at(ParameterLocation.HEADER)
            and "authorization" not in {name.lower() for name in case.headers or {}}
        )
        headers = {} if lost_token else dict(headers_for(case.method.lower(), case.path))
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        findings.examples += 1
        status = response.status_code
        findings.by_status[status] = findings.by_status.get(status, 0) + 1
        try:
            case.validate_response(
                response, checks=CHECKS, headers=headers, transport_kwargs={"base_url": base_url}
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                findings.add(label, response, failure, case)
        if after is not None:
            wrong = after(Sent(case, response, mode))
            if wrong is not None:
                findings.add(label, response, AssertionError(wrong), case)

    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        for mode in modes:
            label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
            strategy = operation.as_strategy(generation_mode=mode)
            try:
                with warnings.catch_warnings():
                    # Schemathesis 4.32 draws from `random` inside its strategies (a
                    # deprecation of Hypothesis's); the draws are seeded by Hypothesis all
                    # the same, and the suite turns warnings into errors.
                    warnings.filterwarnings(
                        "ignore",
                        "Do not use the `random` module inside strategies",
                        hypothesis.errors.HypothesisDeprecationWarning,
                    )
                    settings(given(case=strategy)(_bound(send, label, mode)))()
            except hypothesis.errors.Unsatisfiable:
                # Nothing of the operation can be invalid (no parameters, no body).
                findings.unsatisfiable.append(label)
    _undeclared_methods(schema, base_url, session, headers_for, findings)
    return findings


def _undeclared_methods(
    schema: schemathesis.BaseSchema,
    base_url: str,
    session: requests.Session,
    headers_for: Callable[[str, str], Mapping[str, str]],
    findings: Findings,
) -> None:
    """Each path once with a method it does not declare: 405 problem+json with ``Allow``
    (schemathesis checks this only in its coverage phase, which this run leaves out)."""
    for path, item in schema.raw_schema["paths"].items():
        declared = {m.upper() for m in item}
        method = next(m for m in ("DELETE", "PUT", "PATCH", "POST") if m not in declared)
        url = base_url + re.sub(r"\{[^}]+\}", "0", path)
        response = session.request(method, url, headers=dict(headers_for("get", path)))
        findings.examples += 1
        wrong = []
        if response.status_code != 405:
            wrong.append(f"status {response.status_code}")
        if not set(response.headers.get("allow", "").replace(" ", "").split(",")) >= declared:
            wrong.append(f"Allow {response.headers.get('allow')!r}")
        if response.headers.get("content-type", "").split(";")[0] != PROBLEM_JSON:
            wrong.append(f"content type {response.headers.get('content-type')!r}")
        if wrong:
            key = (f"{method} {path}", "undeclared method", response.status_code)
            findings.failures[key] = f"{', '.join(wrong)}: {response.text[:300]}"


def _bound(
    send: Callable[[str, AnyCase, GenerationMode], None], label: str, mode: GenerationMode
) -> Callable[[AnyCase], None]:
    """``send`` for one operation and mode, as a function of the case alone (what
    ``@given`` takes: no defaults, no partials)."""

    def run(case: AnyCase) -> None:
        send(label, case, mode)

    return run


def timed(function: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    value = function()
    return value, time.monotonic() - start
