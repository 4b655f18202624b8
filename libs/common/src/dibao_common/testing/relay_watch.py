"""Which outbox rows a relay holds: handed to its producer, not yet acknowledged.

A test that stops a service while its broker is down means to stop it with records in
the producer's hands: the stop must abort them and leave their rows pending for the next
relay. Sleeping a while after committing the rows does not make it so. The relay claims
them at its next poll, and then, with the broker down:

- a row of a topic whose partitions its producer never learnt keeps the whole batch from
  the producer for ``request_timeout_ms`` (30 s): ``_send`` asks the producer for the
  topic's partitions, which polls a broker that is not there, and the row then fails;
- once a batch is handed over, the relay waits for its acknowledgements (up to
  ``ack_timeout_s``, 30 s) before it claims again: rows committed after its claim stay
  in the table.

:func:`watch_relay` tells instead, through the seam the kit's own relay tests use
(``_send``, after which a batch's records are the producer's), and can keep the relay's
claims back while a test commits its rows one request after another
(:meth:`RelayWatch.claims_held`), so that its next claim takes them all at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from dibao_common.messaging.relay import OutboxRelay


class RelayWatch:
    """The outbox rows the relays named ``name`` handed to their producer, and when."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handed: dict[int, tuple[float, asyncio.Future[Any]]] = {}
        self._claims_open = asyncio.Event()
        self._claims_open.set()
        self._waiting_to_claim = 0

    def record(self, batch: Any) -> None:
        """Note the rows of a batch ``_send`` handed over (``batch.sent``: each row and
        its producer batch, whose future is the broker's acknowledgement)."""
        now = time.monotonic()
        for row, producer_batch in batch.sent:
            if producer_batch.future is not None:
                self._handed[int(row["id"])] = (now, producer_batch.future)

    def holding(self) -> set[int]:
        """Ids of the rows handed over whose acknowledgement has not come (nor failed)."""
        return {row_id for row_id, (_, ack) in self._handed.items() if not ack.done()}

    async def until_holding(self, ids: Collection[int], *, timeout_s: float) -> float:
        """Wait until the relay holds every row of ``ids`` (none of them may be missing);
        the seconds it took. Fails after ``timeout_s`` naming the rows it does not hold."""
        wanted = set(ids)
        if not wanted:
            raise ValueError("no rows to wait for")
        started = time.monotonic()
        while not wanted <= self.holding():
            if time.monotonic() - started > timeout_s:
                missing = sorted(wanted - self.holding())
                handed = sorted(wanted & self._handed.keys())
                raise AssertionError(
                    f"relay {self.name!r} does not hold outbox rows {missing} after"
                    f" {timeout_s} s (of those wanted, handed over at some time: {handed})"
                )
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    @asynccontextmanager
    async def claims_held(self, *, timeout_s: float) -> AsyncIterator[None]:
        """Keep the relay from claiming while the block runs: it waits before its next
        claim, as a relay whose poll came later would. Enters once the relay waits there
        (fails after ``timeout_s``): rows committed in the block are all claimed by the
        relay's first claim after it."""
        self._claims_open.clear()
        try:
            started = time.monotonic()
            while not self._waiting_to_claim:
                if time.monotonic() - started > timeout_s:
                    raise AssertionError(
                        f"relay {self.name!r} did not come to its next claim in {timeout_s} s"
                    )
                await asyncio.sleep(0.01)
            yield
        finally:
            self._claims_open.set()

    async def before_claim(self) -> None:
        """Where the watched relay waits while :meth:`claims_held` holds it."""
        if self._claims_open.is_set():
            return
        self._waiting_to_claim += 1
        try:
            await self._claims_open.wait()
        finally:
            self._waiting_to_claim -= 1


@contextmanager
def watch_relay(name: str) -> Iterator[RelayWatch]:
    """Watch what every :class:`OutboxRelay` named ``name`` hands to its producer while
    the block runs (the relay inside an app included). The relay runs its own code; it
    only waits before a claim while :meth:`RelayWatch.claims_held` says so."""
    watch = RelayWatch(name)
    send, claim = OutboxRelay._send, OutboxRelay._claim

    async def _send(self: OutboxRelay, batch: Any, blocked: set[tuple[str, str]]) -> None:
        await send(self, batch, blocked)
        if self.name == name:
            watch.record(batch)

    async def _claim(self: OutboxRelay, earlier: list[int], after: int | None) -> Any:
        if self.name == name:
            await watch.before_claim()
        return await claim(self, earlier, after)

    OutboxRelay._send = _send  # type: ignore[method-assign]
    OutboxRelay._claim = _claim  # type: ignore[method-assign]
    try:
        yield watch
    finally:
        OutboxRelay._send = send  # type: ignore[method-assign]
        OutboxRelay._claim = claim  # type: ignore[method-assign]
