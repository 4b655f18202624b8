"""The request middleware and /metrics: ids in and out, one latency sample per request."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException
from prometheus_client.parser import text_string_to_metric_families

from dibao_common.app import build_app
from dibao_common.observability import (
    REGISTRY,
    current_correlation_id,
    current_trace,
    install_observability,
)
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

from .conftest import LogLines

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HOUSEHOLD = "0192f0c8-7f2a-7b4e-9a43-5d7c2b8e1f00"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def make_app() -> FastAPI:
    router = APIRouter()

    @router.get("/households/{household_id}")
    async def household(household_id: str) -> dict[str, Any]:
        ctx = current_trace()
        assert ctx is not None
        return {
            "trace_id": ctx.trace_id,
            "span_id": ctx.span_id,
            "parent_span_id": ctx.parent_span_id,
            "correlation_id": current_correlation_id(),
        }

    @router.get("/gone")
    async def gone() -> None:
        raise HTTPException(status_code=410)

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app = FastAPI()
    app.include_router(router)
    install_observability(app)
    return app


def samples(route: str, status: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("dibao_http_request_duration_seconds_count", labels) or 0.0


def http_lines(log_lines: LogLines) -> list[dict[str, Any]]:
    # httpx, the client, logs its side too.
    return [line for line in log_lines() if line["logger"] == "dibao.http"]


def client(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_incoming_trace_is_continued_and_correlation_echoed() -> None:
    async with client(make_app()) as http:
        response = await http.get(
            f"/households/{HOUSEHOLD}",
            headers={"traceparent": INCOMING, "X-Correlation-ID": "portal-req-7"},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert body["parent_span_id"] == "00f067aa0ba902b7"
    assert re.fullmatch(r"[0-9a-f]{16}", body["span_id"])
    assert body["span_id"] != "00f067aa0ba902b7"
    assert body["correlation_id"] == "portal-req-7"
    assert response.headers["x-correlation-id"] == "portal-req-7"
    assert current_trace() is None  # nothing leaks out of the request


async def test_missing_or_invalid_ids_are_replaced() -> None:
    async with client(make_app()) as http:
        fresh = await http.get(f"/households/{HOUSEHOLD}")
        bad = await http.get(
            f"/households/{HOUSEHOLD}",
            headers={"traceparent": INCOMING.upper(), "X-Correlation-ID": "not ok; drop table"},
        )
    for response in (fresh, bad):
        body = response.json()
        assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
        assert body["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736"
        assert body["parent_span_id"] is None
        assert UUID_RE.fullmatch(response.headers["x-correlation-id"])
        assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert fresh.json()["trace_id"] != bad.json()["trace_id"]


async def test_latency_is_recorded_by_route_template_and_status() -> None:
    route = "/households/{household_id}"
    before_ok, before_gone = samples(route, "200"), samples("/gone", "410")
    before_unmatched = samples("<unmatched>", "404")
    async with client(make_app()) as http:
        for _ in range(3):
            assert (await http.get(f"/households/{uuid.uuid4()}")).status_code == 200
        assert (await http.get("/gone")).status_code == 410
        assert (await http.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
        metrics = await http.get("/metrics")
    assert samples(route, "200") == before_ok + 3
    assert samples("/gone", "410") == before_gone + 1
    assert samples("<unmatched>", "404") == before_unmatched + 1

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    histogram = families["dibao_http_request_duration_seconds"]
    assert histogram.type == "histogram"
    routes = {s.labels["route"] for s in histogram.samples}
    assert route in routes
    # One series per route, never per household.
    assert not any(UUID_RE.search(r) for r in routes)
    assert "process_cpu_seconds_total" in families or "python_gc_objects_collected" in families


async def test_an_unhandled_error_is_a_500_sample_and_a_log_line(log_lines: LogLines) -> None:
    before = samples("/boom", "500")
    async with client(make_app(), raise_app_exceptions=False) as http:
        response = await http.get("/boom", headers={"traceparent": INCOMING})
    assert response.status_code == 500
    assert samples("/boom", "500") == before + 1
    failed, access = http_lines(log_lines)
    assert failed["event"] == "http.request.failed"
    assert "RuntimeError: boom" in failed["exception"]
    assert failed["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert access["event"] == "http.request"
    assert access["status"] == 500


async def test_one_access_line_per_request_without_the_query(log_lines: LogLines) -> None:
    async with client(make_app()) as http:
        response = await http.get(
            f"/households/{HOUSEHOLD}?name=张三&id=62010219800101123X",
            headers={"traceparent": INCOMING, "X-Correlation-ID": "c-1"},
        )
        await http.get("/metrics")
    (line, scrape) = http_lines(log_lines)
    assert line["event"] == "http.request"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == f"/households/{HOUSEHOLD}"
    assert line["route"] == "/households/{household_id}"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["trace_id"] == response.json()["trace_id"]
    assert line["span_id"] == response.json()["span_id"]
    assert line["correlation_id"] == "c-1"
    assert "张三" not in str(line)
    # Scrapes and probes are logged at DEBUG only.
    assert scrape["path"] == "/metrics"
    assert scrape["level"] == "debug"


async def test_build_app_installs_it() -> None:
    settings = CommonSettings(
        service_name="obs-wiring",
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        kafka_bootstrap="127.0.0.1:1",
        **common_secret_values(),
    )
    app = build_app(settings, title="t", description="d")
    async with api_client(app) as http:
        health = await http.get("/healthz", headers={"X-Correlation-ID": "wired"})
        metrics = await http.get("/metrics")
    assert health.status_code == 200
    assert health.headers["x-correlation-id"] == "wired"
    assert metrics.status_code == 200
    assert 'route="/healthz"' in metrics.text
