"""Readiness probes: the service's database and the Kafka broker must both answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str


class DatabaseProbe:
    """Readiness's own connection to the service's database (the same URL as ``engine``).

    Not one of ``engine``'s: its pool is fixed (ADR 0014), and under a backlog every one
    of its connections is busy with requests, so a probe waiting its turn there would time
    out and report as unavailable a database that is answering. One connection, kept
    open and checked at checkout.
    """

    def __init__(self, engine: AsyncEngine, *, application_name: str = "dibao-readiness") -> None:
        self.engine = make_engine(
            engine.url.render_as_string(hide_password=False),
            pool_size=1,
            application_name=application_name,
        )

    async def __call__(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


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
