"""The baseline of the intake benchmark: a bare FastAPI endpoint doing one asyncpg insert.

``uvicorn bench.intake_baseline:app`` with ``BENCH_BASELINE_DSN`` set. It takes the same
JSON body as ``POST /applications`` (parsed, not validated) and inserts it as one row:
no authentication, no rules, no idempotency, no outbox, no logging middleware.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Body, FastAPI
from fastapi.responses import Response

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS baseline_submission ("
    " id uuid PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(), body jsonb NOT NULL)"
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["BENCH_BASELINE_DSN"], min_size=10, max_size=10)
    async with pool.acquire() as conn:
        await conn.execute(TABLE_DDL)
    app.state.pool = pool
    yield
    await pool.close()


app = FastAPI(lifespan=_lifespan)


@app.post("/applications", status_code=201)
async def submit(body: dict[str, Any] = Body()) -> Response:  # noqa: B008 - FastAPI's idiom
    submission_id = uuid.uuid4()
    async with app.state.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO baseline_submission (id, body) VALUES ($1, $2::jsonb)",
            submission_id,
            json.dumps(body),
        )
    return Response(
        json.dumps({"id": str(submission_id)}), status_code=201, media_type="application/json"
    )
