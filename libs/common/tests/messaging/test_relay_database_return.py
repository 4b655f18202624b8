"""The database away long enough for the relay's backoff to reach its cap, then back.

The relay reaches the suite's PostgreSQL through a TCP proxy of the test's own, which is
taken down (it cuts every connection through it and every new one, as a server stopping
or a lost network does) and brought up again. While it is down every
round of the relay fails at its first statement, and the relay waits longer after each,
up to ``backoff_max_s``. The database comes back just as the relay begins a pause of that
length; what is measured is how long the rows committed meanwhile (straight to the
database, as a service's requests would) then take to be published.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.messaging.dlq import read_topic
from dibao_common.messaging.relay import Backoff, OutboxRelay
from dibao_common.testing.kafka_fixtures import applied_order, create_topic, eventually
from dibao_common.testing.stack import TestStack

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

CommitEvents = Callable[..., Awaitable[dict[str, list[str]]]]
Pending = Callable[[], Awaitable[int]]

# Below the production cap (30 s) so that it is reached in 15 s of outage (1, 2, 4, 8,
# then 10), and far above the relay's probe interval (1 s).
CAP_S = 10.0


class Proxy:
    """A TCP proxy to PostgreSQL that can be taken down: :meth:`down` cuts every connection
    through it and cuts each new one as soon as it is accepted (a connect then fails as a
    reset, an outage to the kit's classifier); :meth:`up` passes them on again. It listens
    all along on the one port the system gave it: closing the socket and listening again
    on that port could find it taken meanwhile by another process's outgoing connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._open = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.refused = asyncio.Event()
        """Set on each connection cut as soon as it is accepted (while down)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._open = True

    async def up(self) -> None:
        self._open = True

    async def down(self) -> None:
        self._open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        await self.down()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if not self._open:
            client_w.transport.abort()
            self.refused.set()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(engine: AsyncEngine) -> AsyncIterator[Proxy]:
    url = engine.url
    gate = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await gate.start()
    try:
        yield gate
    finally:
        await gate.close()


class WatchedBackoff(Backoff):
    """The relay's own backoff, telling when it hands out its cap."""

    def __init__(self, initial: float, maximum: float) -> None:
        super().__init__(initial, maximum)
        self.maximum = maximum
        self.delays: list[float] = []
        self.capped = asyncio.Event()

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        if delay >= self.maximum:
            self.capped.set()
        return delay


async def test_rows_are_published_soon_after_a_long_database_outage_ends(
    engine: AsyncEngine,
    stack: TestStack,
    proxy: Proxy,
    commit_events: CommitEvents,
    pending: Pending,
) -> None:
    bootstrap = stack.kafka_bootstrap
    topic = f"test.db-returning.{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic, partitions=3)
    through_proxy = make_url(engine.url.render_as_string(hide_password=False)).set(
        host="127.0.0.1", port=proxy.port
    )
    relay_engine = make_engine(through_proxy.render_as_string(hide_password=False), pool_size=4)
    relay = OutboxRelay(
        relay_engine,
        bootstrap,
        name="test-db-returning",
        batch_size=100,
        backoff_initial_s=1.0,
        backoff_max_s=CAP_S,
    )
    backoff = relay._backoff = WatchedBackoff(1.0, CAP_S)

    async def drained() -> bool:
        return await pending() == 0

    try:
        await relay.start()
        first = await commit_events(topic, events=20, keys=5)
        await eventually(drained, what="the relay to publish before the outage")
        await proxy.down()
        second = await commit_events(topic, events=200, keys=5)
        await asyncio.wait_for(backoff.capped.wait(), 120)
        # Back once the relay has found it away as its pause of the cap began (its probe
        # refused; a relay that does not probe asks nothing for the cap's 10 s: then back
        # after 2 s), not before: a connection accepted just before up() is passed on.
        proxy.refused.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proxy.refused.wait(), 2.0)
        await proxy.up()
        back = time.monotonic()
        await eventually(drained, timeout_s=60, what="the rows after the database's return")
        took = time.monotonic() - back
        records = await read_topic(bootstrap, topic)
    finally:
        await relay.stop()
        await relay_engine.dispose()

    assert applied_order(records) == {
        key: first.get(key, []) + ids for key, ids in second.items()
    }, "each event once, in its key's order"
    assert backoff.delays[-1] == CAP_S
    assert took < 3.0, f"{took:.1f} s after the database's return"
