"""The log's side of witnessing: submit each checkpoint to the configured witnesses and
keep their cosignatures (docs/adr/0024).

Off the request path: a task of the process that signs (``main``), woken after each
checkpoint it signs (the appender's ``on_checkpoint``: the ticker's and those of the
entry count) and every ``DIBAO_AUDIT_WITNESS_RETRY_S`` seconds, takes the latest
checkpoint and, for each witness that has not cosigned it yet, sends C2SP tlog-witness's
add-checkpoint: the size the witness is known to hold (0 until learned), the consistency
proof from it (read from the stored tree), a blank line and the signed note. A 409 with
``text/x.tlog.size`` teaches the size it holds, and the request is sent again from there.
A 200's cosignature is verified with the witness's key over that note before it is kept
(``checkpoint_cosignature``, append-only). Whatever fails is logged and tried again at the
next round; a witness down never holds up an append or a checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import structlog
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dibao_audit import repository as repo
from dibao_audit.cosignature import CosignatureError, WitnessKey, with_cosignatures
from dibao_audit.models import Checkpoint, CheckpointCosignature
from dibao_audit.service import consistency_proof
from dibao_common.logged_errors import describe_exception

log = structlog.get_logger(__name__)
SIZE_MEDIA_TYPE = "text/x.tlog.size"


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
    return f"old {old_size}\n{lines}\n{note}".encode()


def cosigned_note(cp: Checkpoint, rows: Sequence[CheckpointCosignature]) -> str:
    """The checkpoint's note with its witnesses' cosignature lines appended."""
    return with_cosignatures(cp.signed_note, [r.signature_line for r in rows])


class WitnessSubmitter:
    """Gets the latest checkpoint cosigned by each witness (see the module)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        witnesses: Sequence[tuple[str, WitnessKey]],
        *,
        retry_s: float = 10.0,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._witnesses = list(witnesses)
        self._retry_s = retry_s
        self._timeout_s = timeout_s
        self._transport = transport
        self._known: dict[WitnessKey, int] = {}
        self._wake = asyncio.Event()

    def wake(self, tree_size: int | None = None) -> None:
        """A checkpoint (of ``tree_size``) was signed: submit it now rather than at the
        next round (``LogAppender``'s ``on_checkpoint``)."""
        self._wake.set()

    async def run_forever(self) -> None:
        async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as client:
            while True:
                self._wake.clear()
                try:
                    await self.submit_latest(client)
                except Exception as exc:  # the next round tries again
                    log.error("audit_witnessing_failed", error=describe_exception(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._retry_s)

    async def submit_latest(self, client: httpx.AsyncClient) -> int:
        """Submit the latest checkpoint to each witness that has not cosigned it; the
        number of cosignatures kept."""
        async with self._sessionmaker() as session:
            cp = await repo.latest_checkpoint(session)
            if cp is None:
                return 0
            have = {
                r.witness
                for r in (await repo.cosignatures_of(session, [cp.tree_size])).get(cp.tree_size, [])
            }
        kept = 0
        for url, key in self._witnesses:
            if key.vkey() in have:
                continue
            line = await self._cosignature(client, url, key, cp)
            if line is None:
                continue
            async with self._sessionmaker() as session, session.begin():
                await session.execute(
                    insert(CheckpointCosignature)
                    .values(
                        tree_size=cp.tree_size,
                        witness=key.vkey(),
                        signature_line=line[0],
                        cosigned_at=line[1],
                    )
                    .on_conflict_do_nothing()
                )
            kept += 1
            log.info("audit_checkpoint_cosigned", tree_size=cp.tree_size, witness=key.name)
        return kept

    async def _cosignature(
        self, client: httpx.AsyncClient, url: str, key: WitnessKey, cp: Checkpoint
    ) -> tuple[str, datetime] | None:
        """The witness's verified cosignature line of ``cp`` and its time, or None (logged)."""
        for _ in range(2):  # once more after a 409 taught the size the witness holds
            old = self._known.get(key, 0)
            if old > cp.tree_size:
                log.error(
                    "audit_witness_ahead",
                    witness=key.name,
                    witness_size=old,
                    tree_size=cp.tree_size,
                    reason="the witness holds a larger tree than the log's latest checkpoint",
                )
                self._known.pop(key, None)  # ask again next round
                return None
            async with self._sessionmaker() as session:
                proof = await consistency_proof(session, old, cp.tree_size) if old else []
            try:
                answer = await client.post(
                    f"{url}/add-checkpoint", content=add_checkpoint_body(old, proof, cp.signed_note)
                )
            except httpx.HTTPError as exc:
                log.warning(
                    "audit_witness_unreachable", witness=key.name, error=describe_exception(exc)
                )
                return None
            if answer.status_code == 409 and answer.headers.get("content-type", "").startswith(
                SIZE_MEDIA_TYPE
            ):
                try:
                    self._known[key] = int(answer.text.strip())
                except ValueError:
                    break
                continue
            if answer.status_code != 200:
                log.error(
                    "audit_witness_refused",
                    witness=key.name,
                    status=answer.status_code,
                    tree_size=cp.tree_size,
                    old_size=old,
                )
                return None
            try:
                found = key.verify(with_cosignatures(cp.signed_note, answer.text.splitlines()))
            except CosignatureError as exc:
                log.error(
                    "audit_witness_bad_cosignature", witness=key.name, error=describe_exception(exc)
                )
                return None
            self._known[key] = cp.tree_size
            return found.line, datetime.fromtimestamp(found.timestamp, UTC)
        log.error("audit_witness_refused", witness=key.name, status=409, tree_size=cp.tree_size)
        return None
