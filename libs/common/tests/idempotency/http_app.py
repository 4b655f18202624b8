"""A small service app for the bank and idempotency tests: a real database, real effects.

Each request runs in one transaction committed at the boundary (before the response is
sent), as a service's own session dependency does; the effect is a row in a table of
the test's own schema in the intake database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.datastructures import UploadFile as FormFile
from starlette.responses import Response

from dibao.intake.v1.events_pb2 import ApplicationAccepted
from dibao_common.app import build_app
from dibao_common.auth import AuthSettings, CurrentPrincipal
from dibao_common.bank import BankSettings, BankWebhook, respond_to_bank
from dibao_common.clock import FrozenClock
from dibao_common.db import DriverStatement, driver_session, make_sessionmaker
from dibao_common.db.held import write
from dibao_common.errors import Conflict, problem_responses
from dibao_common.idempotency import Idempotent, IdempotentRequest
from dibao_common.messaging.outbox import OutgoingEvent, enqueue_many
from dibao_common.settings import CommonSettings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import TestStack

SCHEMA = "kit_http_test"


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with make_sessionmaker(request.app.state.engine)() as session, session.begin():
        yield session


# scope="function": the commit happens before the response leaves, as a service's does.
Session = Annotated[AsyncSession, Depends(request_session, scope="function")]


class PaymentIn(BaseModel):
    reference: str = Field(min_length=1)
    amount_fen: int = Field(ge=0)
    fail_with: str | None = None


router = APIRouter()


async def _create(request: Request, session: AsyncSession, body: PaymentIn, who: str) -> Response:
    gate: asyncio.Event | None = request.app.state.gate
    request.app.state.entered.set()
    if gate is not None:
        await gate.wait()
    row = await session.execute(
        sa.text(
            "INSERT INTO kit_http_test.effect (reference, amount_fen, who)"
            " VALUES (:r, :a, :w) RETURNING id"
        ),
        {"r": body.reference, "a": body.amount_fen, "w": who},
    )
    effect_id = row.scalar_one()
    if body.reference.startswith("EV-"):
        # Two events about the payment, as a service's use case enqueues them.
        await enqueue_many(
            session,
            [
                OutgoingEvent(
                    ApplicationAccepted(application_id=f"{body.reference}/{n}"),
                    key=body.reference,
                )
                for n in (1, 2)
            ],
            source="test",
        )
    if body.fail_with == "conflict":
        raise Conflict("the payment is already settled", type_slug="payment-settled")
    if body.fail_with == "crash":
        raise RuntimeError("the handler broke")
    return JSONResponse(
        {"id": effect_id, "reference": body.reference},
        status_code=201,
        headers={"Location": f"/effects/{effect_id}", "X-Not-Stored": "1"},
    )


@router.post(
    "/bank/confirmations", status_code=201, responses=problem_responses(400, 401, 409, 422)
)
async def bank_confirmation(
    request: Request,
    body: PaymentIn,
    session: Session,
    webhook: BankWebhook,
    idempotency: Idempotent,
) -> Response:
    async def handle() -> Response:
        return await _create(request, session, body, "bank")

    return await respond_to_bank(session, webhook, idempotency, handle)


@router.post("/payments", status_code=201, responses=problem_responses(400, 409, 422))
async def create_payment(
    request: Request, body: PaymentIn, session: Session, idempotency: Idempotent
) -> Response:
    async def handle() -> Response:
        return await _create(request, session, body, "anonymous")

    return await idempotency.respond(session, handle)


@router.post("/other-payments", status_code=201, responses=problem_responses(400, 409, 422))
async def create_other_payment(
    request: Request, body: PaymentIn, session: Session, idempotency: Idempotent
) -> Response:
    async def handle() -> Response:
        return await _create(request, session, body, "anonymous")

    return await idempotency.respond(session, handle)


@router.post("/my/payments", status_code=201, responses=problem_responses(400, 401, 409, 422))
async def create_my_payment(
    request: Request,
    body: PaymentIn,
    session: Session,
    principal: CurrentPrincipal,
    idempotency: Idempotent,
) -> Response:
    async def handle() -> Response:
        return await _create(request, session, body, principal.subject)

    return await idempotency.respond(session, handle)


async def _upload_effect(
    request: Request,
    session: AsyncSession,
    idempotency: IdempotentRequest,
    reference: str,
    content: bytes,
) -> Response:
    async def handle() -> Response:
        return await _create(
            request, session, PaymentIn(reference=reference, amount_fen=len(content)), "upload"
        )

    return await idempotency.respond(session, handle)


@router.post("/uploads", status_code=201, responses=problem_responses(400, 409, 422))
async def upload(
    request: Request,
    file: UploadFile,
    reference: Annotated[str, Form(min_length=1)],
    session: Session,
    idempotency: Idempotent,
) -> Response:
    """A multipart route whose form FastAPI parses (an UploadFile and a Form field)."""
    content = await file.read()
    return await _upload_effect(request, session, idempotency, reference, content)


@router.post("/uploads/parsed-here", status_code=201, responses=problem_responses(400, 409, 422))
async def upload_parsed_here(
    request: Request, session: Session, idempotency: Idempotent
) -> Response:
    """A multipart route that reads the form itself (no form parameters)."""
    async with request.form() as form:
        file, reference = form["file"], form["reference"]
        assert isinstance(file, FormFile)
        assert isinstance(reference, str)
        content = await file.read()
    return await _upload_effect(request, session, idempotency, reference, content)


@router.post("/form-payments", status_code=201, responses=problem_responses(400, 409, 422))
async def create_form_payment(
    request: Request,
    reference: Annotated[str, Form(min_length=1)],
    amount_fen: Annotated[int, Form(ge=0)],
    session: Session,
    idempotency: Idempotent,
) -> Response:
    """A urlencoded form route."""

    async def handle() -> Response:
        body = PaymentIn(reference=reference, amount_fen=amount_fen)
        return await _create(request, session, body, "form")

    return await idempotency.respond(session, handle)


_EFFECT = DriverStatement(
    "INSERT INTO kit_http_test.effect (reference, amount_fen, who) VALUES (:r, :a, :w)"
)
_BROKEN = DriverStatement(
    "INSERT INTO kit_http_test.effect (reference, amount_fen, who) VALUES (:r, NULL, 'broken')"
)


@router.post("/one-statement/payments", status_code=201, responses=problem_responses(409, 422))
async def create_payment_in_one_statement(
    request: Request, body: PaymentIn, idempotency: Idempotent
) -> Response:
    """The same effect and events, its writes held and sent with the answer (ADR 0013)."""
    async with driver_session(request.app.state.engine) as session:

        async def handle() -> Response:
            request.app.state.inside += 1
            gate: asyncio.Event | None = request.app.state.gate
            if gate is not None:
                await gate.wait()
            params = {"r": body.reference, "a": body.amount_fen, "w": "one-statement"}
            await write(session, (_EFFECT, params))
            await enqueue_many(
                session,
                [OutgoingEvent(ApplicationAccepted(application_id=body.reference), key="k")],
                source="test",
            )
            if body.fail_with == "conflict":
                raise Conflict("the payment is already settled", type_slug="payment-settled")
            if body.fail_with == "broken-write":
                await write(session, (_BROKEN, params))
            return JSONResponse({"reference": body.reference}, status_code=201)

        return await idempotency.respond_in_one_statement(session, handle)


def http_app(
    stack: TestStack,
    clock: FrozenClock,
    *,
    auth: AuthSettings,
    bank: BankSettings,
    fingerprint_keys: str | None = None,
) -> FastAPI:
    """The test app; ``fingerprint_keys`` replaces the tests' fingerprint key."""
    secrets = common_secret_values()
    if fingerprint_keys is not None:
        secrets["idempotency_fingerprint_keys"] = fingerprint_keys
    settings = CommonSettings(
        service_name="kit-http",
        database_url=stack.database_url("intake"),
        kafka_bootstrap=stack.kafka_bootstrap,
        **secrets,
    )
    app = build_app(
        settings,
        title="kit http",
        description="test app",
        routers=[router],
        auth=auth,
        bank=bank,
        clock=clock,
    )
    app.state.gate = None
    app.state.entered = asyncio.Event()
    app.state.inside = 0
    return app


async def create_effect_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        await conn.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.effect (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " reference text NOT NULL, amount_fen bigint NOT NULL, who text NOT NULL)"
            )
        )


async def drop_effect_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


async def count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text(sql), params)).scalar_one())
