"""Every read of personal data leaves an access record on ``dibao.access.v1``.

The record is written to the outbox in the read's own transaction, so a read whose
answer was produced is always recorded, and a failed one never is.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from dibao.access.v1 import events_pb2 as access
from dibao.common.v1 import types_pb2 as common
from dibao_intake.adapters import contracts
from dibao_intake.service_layer.events import publish
from dibao_intake.service_layer.runtime import SERVICE, Caller, Runtime

RecordType: TypeAlias = access.RecordType.ValueType
Action: TypeAlias = access.AccessAction.ValueType
Purpose: TypeAlias = access.Purpose.ValueType


async def record_access(
    session: AsyncSession,
    runtime: Runtime,
    caller: Caller,
    *,
    household_id: uuid.UUID | None,
    region_code: str,
    record_type: RecordType,
    record_id: str,
    persons: Sequence[common.PersonRef],
    fields: Sequence[str],
    action: Action = access.ACCESS_ACTION_VIEW,
    purpose: Purpose = access.PURPOSE_CASE_PROCESSING,
    purpose_note: str = "",
) -> None:
    access_id = uuid7()
    message = access.PersonalDataAccessed(
        household_id=str(household_id) if household_id else "",
        region=contracts.region(region_code),
        occurred_at=contracts.timestamp(runtime.clock.now()),
        actor=contracts.actor(caller.principal),
        access_id=str(access_id),
        service=SERVICE,
        record_type=record_type,
        record_id=record_id,
        persons=list(persons),
        fields=list(fields),
        action=action,
        outcome=access.ACCESS_OUTCOME_GRANTED,
        purpose=purpose,
        purpose_note=purpose_note,
        correlation_id=caller.correlation_id or "",
        operation=caller.operation,
    )
    # A read not tied to one household (a search) is keyed by its own id.
    key = str(household_id) if household_id else str(access_id)
    await publish(session, runtime, caller, message, key=key, subject=record_id)
