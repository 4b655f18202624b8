"""Readiness probes: the service's database and the Kafka broker must both answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str


def database_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


def kafka_probe(bootstrap: str) -> Probe:
    async def probe() -> None:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await client.bootstrap()
        finally:
            await client.close()

    return probe


async def run_probes(probes: dict[str, Probe], timeout_s: float) -> list[ProbeResult]:
    async def one(name: str, probe: Probe) -> ProbeResult:
        try:
            await asyncio.wait_for(probe(), timeout_s)
        except Exception as exc:
            return ProbeResult(name, False, type(exc).__name__)
        return ProbeResult(name, True, "ok")

    return list(await asyncio.gather(*(one(n, p) for n, p in probes.items())))
