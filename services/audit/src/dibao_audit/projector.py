"""Projections made from the log after the append, in log order: the decoded JSON views.

This is where read models of the log belong (the decoded view today; cross-service
reconciliation and year-end reports later): each walks the entries in leaf order from
its own high-water mark, writes append-only rows, and can be rebuilt from the log.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dibao_audit import repository as repo
from dibao_audit.service import view_of
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging.envelope import EventRegistry

log = structlog.get_logger(__name__)


class EntryProjector:
    """Makes the decoded view of every entry, a batch per transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: EventRegistry | None = None,
        *,
        batch: int = 2000,
        poll_interval_s: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._registry = registry if registry is not None else EventRegistry.default()
        self._batch = batch
        self._poll_interval_s = poll_interval_s

    async def project_batch(self) -> int:
        """Views for the next batch of entries without one; how many were made."""
        async with self._sessions() as session, session.begin():
            await repo.lock_projector(session)
            start = await repo.views_made(session)
            entries = await repo.entries_from(session, start, self._batch)
            views = [(e.leaf_index, view_of(e, self._registry)) for e in entries]
            await repo.insert_views(session, views)
        return len(views)

    async def catch_up(self) -> int:
        """Project until every entry has its view."""
        total = 0
        while made := await self.project_batch():
            total += made
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                made = await self.catch_up()
            except Exception as exc:  # the next poll tries again
                log.error("audit_projection_failed", error=describe_exception(exc))
                made = 0
            if not made:
                await asyncio.sleep(self._poll_interval_s)
