"""The one serialized appender: batches of records in, leaves and checkpoints out.

A batch is one transaction: the entries not in the log yet (the log's unique ``ce_id``
is its inbox, so a record seen twice is appended once), the complete subtrees they
close, and a signed checkpoint when one is due. A record that comes with the ``ce_id`` of
an entry but other content (topic, key, headers or payload) is not the same event sent
again: it is appended too, under an id derived from its content (``reused_id``), and an
``AnomalyDetected`` (rule ``event_id_reused``) names both entries. It is about what the
first entry of the id (the one logged first, the trusted one) names: its application, with
that entry's household and region, so that the application's county and its timeline see
it, or, when it names none, the event (the log's region, no household: every auditor's).
The second content, which anyone writing to the topic can forge, decides no reader of that
anomaly; when it names another application, that one gets an anomaly of its own, in the
household and region of that application's earliest entry in the log (the second
content's only when the log has none); when it gives a region none of those anomalies is
in, that region's auditors, who read the second entry, get one about the event there,
which names no application, so an application's timeline shows one anomaly per record.
An ``ApplicationAccepted`` whose application's ``ApplicationSubmitted`` is not before it
in the log on the same topic and key raises an ``AnomalyDetected`` (rule
``accepted_without_submission``) about that application: intake publishes the two in one
transaction, in that order, with the household as key, so a log that has the acceptance
has the submission first unless one of them was lost, forged or never published (a
withdrawal is not checked: it comes in a later transaction, perhaps after the topic
gained partitions, which moves a key, and the log may then take it first; a returned
application has no submission). The frontier lives in memory between batches and is
rebuilt from ``merkle_node`` (O(log n) lookups) whenever the stored size is not the one it
knows, e.g. after a restart, a failed commit or another appender.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit.checkpoint import CheckpointError, CheckpointSigner
from dibao_audit.entry import MalformedEntryError, RecordedEvent, parse_header_block
from dibao_audit.merkle import (
    Frontier,
    ProofError,
    consistency_ranges,
    hash_ranges,
    perfect_subtrees,
    subtree_hashes_needed,
    verify_consistency,
)
from dibao_audit.models import Checkpoint
from dibao_audit.projection import (
    Content,
    EntryRow,
    KeyReader,
    columns_of,
    project_parts,
    project_records,
    reused_id,
)
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging.envelope import EventRegistry, ce_type_of
from dibao_common.messaging.outbox import enqueue

log = structlog.get_logger(__name__)

CHECKPOINT_TYPE = ce_type_of(audit_pb2.CheckpointPublished)
REUSED_ID_RULE = "event_id_reused"
UNSUBMITTED_RULE = "accepted_without_submission"
_ACCEPTED = ce_type_of(intake_pb2.ApplicationAccepted)
_SUBMITTED = ce_type_of(intake_pb2.ApplicationSubmitted)
Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: int
    duplicates: int
    tree_size: int
    checkpoint_size: int | None
    reused_ids: int = 0
    """Records appended although their ``ce_id`` was an entry's: other content (counted in
    ``appended`` too)."""


def _content(row: EntryRow) -> Content:
    return (row.topic, row.key, row.header_block, row.payload)


class Concerned(NamedTuple):
    """What an anomaly is about and who reads it: the application a record names (its
    payload's ``application_id``; None: the anomaly is about the event), with the household
    and region the same record gives (no region: the whole log's)."""

    application_id: str | None
    household_id: str | None
    region: str | None


_WHOLE_LOG = Concerned(None, None, None)


def _concerned_of_row(row: EntryRow) -> Concerned:
    return Concerned(row.application_id, row.household_id, row.region)


def _concerned_of_content(content: Content, keys: KeyReader) -> Concerned:
    """:func:`_concerned_of_row` of a logged record, read from what its leaf hashes (not
    from its stored columns, which no hash covers)."""
    topic, _, block, payload = content
    try:
        headers = parse_header_block(block)
    except MalformedEntryError:
        return _WHOLE_LOG
    made = columns_of(topic, 0, 0, headers, payload, keys)
    return Concerned(made.application_id, made.household_id, made.region)


def _about_reuse(
    first: Concerned, again: Concerned, named: Concerned | None = None
) -> tuple[Concerned, ...]:
    """The anomalies of one id reused: ``first`` what the id's first entry names (logged
    first: trusted), ``again`` what the record that reused it names (anyone writing to the
    topic may have forged it), ``named`` what the earliest entry about the other
    application ``again`` names gives it (None: the log has none). The first is about
    ``first``'s application, its household and region, or the event (the whole log's) when
    it names none; the record's county or household never replaces it. A second one when
    the record names another application: about that one, in the household and region of
    its own earliest entry, or, when the log has none, the record's (all the log knows of
    it). And one about the event in the record's region when it gives one that none of
    those anomalies is in (and none is the whole log's): the auditors who read the record
    learn it is contradicted, and no application's timeline has it twice."""
    about = first if first.application_id is not None else _WHOLE_LOG
    out = [about]
    if again.application_id is not None and again.application_id != about.application_id:
        out.append(named if named is not None else again)
    if again.region and all(c.region and c.region != again.region for c in out):
        out.append(Concerned(None, again.household_id, again.region))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Reused:
    """A record appended under ``reused_id``: the id it came with, the index of the first
    entry of that id and its own, and what each of its anomalies is about."""

    ce_id: str
    first: int
    again: int
    concerned: tuple[Concerned, ...]


_SUBMISSIONS = sa.text(
    "SELECT application_id, topic, record_key, ce_type FROM log_entry"
    " WHERE application_id = ANY(CAST(:ids AS text[]))"
)
_Place = tuple[str | None, str, bytes | None]
"""An application id, topic and record key."""


async def _accepted_unsubmitted(
    session: AsyncSession, size: int, fresh: Sequence[EntryRow]
) -> list[tuple[int, EntryRow]]:
    """The acceptances among ``fresh`` (to be entries ``size``, ``size + 1``, ...) whose
    application's submission is neither in the log nor earlier in ``fresh`` on the same
    topic and key. One indexed query, and only for a batch holding an acceptance."""
    accepted = [
        (size + i, row)
        for i, row in enumerate(fresh)
        if row.ce_type == _ACCEPTED and row.application_id is not None
    ]
    if not accepted:
        return []
    # By the application index alone (an application has a few entries): a condition on
    # the type too may have the planner walk every submission by the type's index. An
    # array parameter, not an IN list: one prepared statement whatever the batch holds.
    # Measured 1 Dec 2026 (40,000 entries, analyzed): 250 acceptances 1.2-1.4 ms a batch
    # (index scan 0.5 ms) in an append of 30 ms; an expanding IN with the type took 200 ms.
    found = await session.execute(
        _SUBMISSIONS, {"ids": list({row.application_id for _, row in accepted})}
    )
    logged: set[_Place] = {(r[0], r[1], r[2]) for r in found if r[3] == _SUBMITTED}
    first_in_batch: dict[_Place, int] = {}
    for i, row in enumerate(fresh):
        if row.ce_type == _SUBMITTED:
            first_in_batch.setdefault((row.application_id, row.topic, row.key), size + i)
    out = []
    for index, row in accepted:
        place = (row.application_id, row.topic, row.key)
        if place not in logged and first_in_batch.get(place, index) >= index:
            out.append((index, row))
    return out


class LogAppender:
    """Appends batches in one process; a database lock keeps other processes in line."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        signer: CheckpointSigner,
        *,
        registry: EventRegistry | None = None,
        checkpoint_every: int = 1000,
        region: str = "000000000000",
        now: Now = _utc_now,
        on_checkpoint: Callable[[int], None] | None = None,
    ) -> None:
        """``on_checkpoint`` is called with the size of each checkpoint this appender
        signs, once its transaction committed, whether the entry count
        (``checkpoint_every``) or the ticker (:meth:`checkpoint_if_grown`) signed it: the
        witness submitter's wake-up (docs/adr/0024). It must not block or raise."""
        self._sessionmaker = sessionmaker
        self._on_checkpoint = on_checkpoint
        self._signer = signer
        self._registry = registry if registry is not None else EventRegistry.default()
        self._keys = KeyReader(self._registry)
        self._every = checkpoint_every
        self._region = region
        self._now = now
        self._lock = asyncio.Lock()
        self._frontier: Frontier | None = None
        self._restore = False  # a checkpoint was refused: restore the frontier from the table
        self._last_checkpoint = 0

    @property
    def signer(self) -> CheckpointSigner:
        return self._signer

    def project(self, events: Sequence[RecordedEvent]) -> list[EntryRow]:
        """Decode and hash a batch (CPU only; done before taking the lock)."""
        keys = self._keys
        return [
            project_parts(e.topic, e.partition, e.offset, e.key, e.headers, e.payload, keys)
            for e in events
        ]

    def project_records(self, records: Sequence[Any]) -> list[EntryRow]:
        """:meth:`project` of consumed aiokafka records as they come (no copy between)."""
        return project_records(records, self._keys)

    async def append(self, events: Sequence[RecordedEvent]) -> AppendResult:
        """Append the records not seen before, in order, and commit."""
        return await self.append_rows(self.project(events))

    async def append_rows(self, rows: Sequence[EntryRow]) -> AppendResult:
        """:meth:`append` of records already projected."""
        async with self._lock:
            async with self._sessionmaker() as session, session.begin():
                work, result, cp = await self._append_in(session, rows)
            self._frontier = work
            if cp is not None:
                self._last_checkpoint = cp
                self._signed(cp)
            return result

    def _signed(self, size: int) -> None:
        """Tell ``on_checkpoint`` of a checkpoint committed."""
        if self._on_checkpoint is not None:
            self._on_checkpoint(size)

    async def _append_in(
        self, session: AsyncSession, rows: Sequence[EntryRow]
    ) -> tuple[Frontier, AppendResult, int | None]:
        await repo.lock_appender(session)
        size, seen = await repo.size_and_seen(session, [row.ce_id for row in rows])
        frontier = await self._current(session, size)
        if seen or len({row.ce_id for row in rows}) < len(rows):
            fresh, reused = await self._fresh_of_repeated(session, rows, seen, frontier.size)
        else:  # the common case: every id new
            fresh, reused = list(rows), []
        unsubmitted = await _accepted_unsubmitted(session, frontier.size, fresh)
        work = frontier.copy()
        nodes = work.extend([row.leaf_hash for row in fresh])
        await repo.insert_entries(session, frontier.size, fresh)
        await repo.insert_nodes(session, nodes)
        for found in reused:
            await self._report_reused_id(session, found)
        if unsubmitted:
            sent_as = {found.again: found.ce_id for found in reused}
            for index, row in unsubmitted:
                await self._report_unsubmitted(session, index, row, sent_as.get(index))
        cp = None
        if work.size - self._last_checkpoint >= self._every:
            await self._refresh_last_checkpoint(session)
            if work.size - self._last_checkpoint >= self._every:
                cp = await self._checkpoint(session, work)  # None if refused
        result = AppendResult(len(fresh), len(rows) - len(fresh), work.size, cp, len(reused))
        return work, result, cp

    async def _fresh_of_repeated(
        self, session: AsyncSession, rows: Sequence[EntryRow], seen: set[str], size: int
    ) -> tuple[list[EntryRow], list[_Reused]]:
        """The rows to append when some ids repeat (the log's or the batch's own): a row with
        an earlier row's id and content is that event again and skipped; one with other
        content is appended under ``reused_id``, unless that id is in the log already.
        Also a ``_Reused`` of each row so appended."""
        firsts: dict[str, tuple[int, Content]] = await repo.stored_contents(session, seen)
        order: list[tuple[EntryRow, str | None]] = []  # (row, its reused id if any)
        pending: dict[str, Content] = {}
        first_rows: dict[str, EntryRow] = {}  # the batch's first row of each id
        for row in rows:
            content = _content(row)
            first = firsts.get(row.ce_id) or (
                (-1, pending[row.ce_id]) if row.ce_id in pending else None
            )
            if first is None:
                pending[row.ce_id] = content
                first_rows[row.ce_id] = row
                order.append((row, None))
            elif first[1] != content:
                order.append((row, reused_id(row.ce_id, content)))
            # else: the same event again
        others = [other for _, other in order if other is not None]
        _, logged = await repo.size_and_seen(session, others) if others else (0, set())
        fresh: list[EntryRow] = []
        reused: list[_Reused] = []
        index_of = {ce_id: index for ce_id, (index, _) in firsts.items()}
        for row, other in order:
            if other is None:
                index_of[row.ce_id] = size + len(fresh)
                fresh.append(row)
            elif other not in logged:
                logged.add(other)
                stored = firsts.get(row.ce_id)
                original = (  # the log's entry of the id, or the batch's row before this one
                    _concerned_of_content(stored[1], self._keys)
                    if stored is not None
                    else _concerned_of_row(first_rows[row.ce_id])
                )
                again = _concerned_of_row(row)
                named = None
                if again.application_id not in (None, original.application_id):
                    named = await self._first_of_application(session, again, fresh)
                concerned = _about_reuse(original, again, named)
                reused.append(_Reused(row.ce_id, index_of[row.ce_id], size + len(fresh), concerned))
                fresh.append(row._replace(ce_id=other))
        return fresh, reused

    async def _first_of_application(
        self, session: AsyncSession, again: Concerned, earlier: Sequence[EntryRow]
    ) -> Concerned | None:
        """What the earliest entry about ``again``'s application names (read from what its
        leaf hashes), the log's or else one of ``earlier`` (the batch's rows before the
        record), or None when there is none (its anomaly then takes the record's household
        and region): one indexed lookup, made only when a reused id names another
        application than its first entry."""
        application = again.application_id
        assert application is not None
        stored = await repo.first_entry_of_application(session, application)
        if stored is not None:
            place = _concerned_of_content(stored[1], self._keys)
        else:
            row = next((r for r in earlier if r.application_id == application), None)
            if row is None:
                log.warning(
                    "audit_reused_id_application_not_logged",
                    application_id=application,
                    region=again.region,
                    reason="its anomaly takes the record's household and region",
                )
                return None
            place = _concerned_of_row(row)
        # Found by the stored column, which no hash covers: its content must name it too.
        return place if place.application_id == application else None

    async def _report_reused_id(self, session: AsyncSession, found: _Reused) -> None:
        """The ``AnomalyDetected`` of one event id with two contents: about what the first
        entry names, and, when the second names another application or region, about that
        too (:func:`_about_reuse`)."""
        at = self._now()
        ce_id, first, again = found.ce_id, found.first, found.again
        log.error(
            "audit_event_id_reused",
            ce_id=ce_id,
            first_index=first,
            index=again,
            applications=[c.application_id for c in found.concerned if c.application_id],
            regions=[c.region for c in found.concerned],
        )
        details = (
            f"a record came with the event id of log entry {first} but other content; "
            f"both are kept, the second as entry {again}"
        )
        for about in found.concerned:
            await self._publish_anomaly(
                session, REUSED_ID_RULE, about, ce_id, details, [first, again], at
            )

    async def _report_unsubmitted(
        self, session: AsyncSession, index: int, row: EntryRow, sent_as: str | None
    ) -> None:
        """The ``AnomalyDetected`` of an acceptance logged without its submission before it
        (``sent_as``: the ``ce_id`` it came with, when the log keeps it under another)."""
        ce_id = sent_as or row.ce_id
        log.error(
            "audit_accepted_without_submission",
            ce_id=ce_id,
            index=index,
            application_id=row.application_id,
        )
        details = (
            f"log entry {index} accepts an application whose submission is not before it "
            "in the log on the same topic and key"
        )
        await self._publish_anomaly(
            session, UNSUBMITTED_RULE, _concerned_of_row(row), ce_id, details, [index], self._now()
        )

    async def _publish_anomaly(
        self,
        session: AsyncSession,
        rule: str,
        about: Concerned,
        ce_id: str,
        details: str,
        log_indices: list[int],
        at: datetime,
    ) -> None:
        """One ``AnomalyDetected`` (warning) through the outbox: about ``about``'s
        application, or, when it names none, about the event ``ce_id``; in ``about``'s
        region with its household as the key, or, when it gives no region, the log's region
        and no household, keyed by the anomaly's id (every auditor reads it)."""
        anomaly_id = str(uuid7())
        message = audit_pb2.AnomalyDetected(
            actor=types_pb2.Actor(subject="audit", kind=enums_pb2.ACTOR_KIND_SYSTEM),
            anomaly_id=anomaly_id,
            rule=rule,
            severity=audit_pb2.SEVERITY_WARNING,
            details=details,
            event_ids=[ce_id],
            log_indices=log_indices,
        )
        # The record's region, so that its county's auditors read the anomaly; a record
        # that gives none leaves it the whole log's (no household either: an entry naming a
        # household and no region is no auditor's).
        region = about.region or self._region
        household = (about.household_id or "") if about.region else ""
        if about.application_id is None:
            message.subject.CopyFrom(audit_pb2.Subject(kind="event", id=ce_id))
            subject = f"event/{ce_id}"
        else:
            message.subject.CopyFrom(audit_pb2.Subject(kind="application", id=about.application_id))
            # Also top level: the log's application_id column, which auditors search by.
            message.application_id = about.application_id
            subject = f"application/{about.application_id}"
        message.region.code = region
        message.household_id = household
        message.occurred_at.FromDatetime(at)
        await enqueue(
            session,
            message,
            key=household or anomaly_id,
            source="dibao/audit",
            subject=subject,
            actor="audit",
            time=at,
        )

    async def _current(self, session: AsyncSession, size: int | None = None) -> Frontier:
        """The frontier of the stored tree (cached unless the stored size moved)."""
        if size is None:
            size = await repo.tree_size(session)
        if self._frontier is not None and self._frontier.size == size and not self._restore:
            return self._frontier
        self._restore = False
        hashes = await repo.subtree_hashes(session, set(perfect_subtrees(0, size)))
        frontier = Frontier.restore(size, hashes.__getitem__)
        latest = await repo.latest_checkpoint(session)
        self._last_checkpoint = latest.tree_size if latest is not None else 0
        self._frontier = frontier
        return frontier

    async def _refresh_last_checkpoint(self, session: AsyncSession) -> None:
        """The latest checkpoint's size as stored (under the lock): another process may
        have signed one without the tree growing, which the cached frontier cannot tell,
        and a second checkpoint of the same size would fail the batch on every retry."""
        latest = await repo.latest_checkpoint(session)
        self._last_checkpoint = latest.tree_size if latest is not None else 0

    async def checkpoint_if_grown(self) -> int | None:
        """Sign the current tree if it grew by more than its own checkpoint announcements."""
        async with self._lock:
            async with self._sessionmaker() as session, session.begin():
                await repo.lock_appender(session)
                frontier = await self._current(session)
                await self._refresh_last_checkpoint(session)
                if frontier.size <= self._last_checkpoint:
                    return None
                grown = await repo.grew_beyond_own_checkpoints(
                    session, self._last_checkpoint, CHECKPOINT_TYPE
                )
                if not grown:
                    return None
                size = await self._checkpoint(session, frontier)
            if size is not None:
                self._last_checkpoint = size
                self._signed(size)
            return size

    async def _consistent_with_last(self, session: AsyncSession, frontier: Frontier) -> bool:
        """Whether the tree as stored extends the last checkpoint: the consistency proof from
        it to ``frontier`` (read from ``merkle_node``, this batch's nodes included) verifies.

        The frontier and the proof come from stored nodes; one changed behind the log's back
        (only a superuser can) would otherwise have the log sign a root that contradicts
        its own last checkpoint: a fork, signed by the log itself."""
        latest = await repo.latest_checkpoint(session)
        if latest is None:
            return True
        old = latest.tree_size
        try:
            stored = await repo.subtree_hashes(
                session, subtree_hashes_needed(consistency_ranges(old, frontier.size))
            )
            proof = hash_ranges(consistency_ranges(old, frontier.size), stored.__getitem__)
            verify_consistency(old, frontier.size, bytes(latest.root_hash), frontier.root(), proof)
        except (ProofError, LookupError, ValueError) as exc:
            log.error(
                "audit_checkpoint_refused",
                reason="the stored tree does not extend the last checkpoint",
                last_checkpoint=old,
                tree_size=frontier.size,
                error=describe_exception(exc),
            )
            return False
        return True

    async def _checkpoint(self, session: AsyncSession, frontier: Frontier) -> int | None:
        """Sign the tree of ``frontier`` (its size), or None, logged, when the stored tree
        does not extend the last checkpoint (no fork is signed), or when the last one is
        signed by a key the signer neither holds nor hands over from (no key is introduced
        without a hand-over, docs/adr/0018): the entries are still appended."""
        if not await self._consistent_with_last(session, frontier):
            # Restored from the stored nodes at the next batch: once the tree is repaired
            # (``repair_tree``) the log signs again without a restart.
            self._restore = True
            return None
        at = self._now()
        root = frontier.root()
        latest = await repo.latest_checkpoint(session)
        try:
            last = (
                None
                if latest is None
                else self._signer.key_after(
                    latest.signed_note, latest.tree_size, bytes(latest.root_hash)
                )
            )
            note, key_id = self._signer.sign_after(last, frontier.size, root, at)
        except CheckpointError as exc:  # a key no hand-over introduced: sign nothing
            log.error(
                "audit_checkpoint_refused", reason=describe_exception(exc), tree_size=frontier.size
            )
            return None
        checkpoint_id: uuid.UUID = uuid7()
        previous = self._last_checkpoint or None
        await repo.add_checkpoint(
            session,
            Checkpoint(
                tree_size=frontier.size,
                checkpoint_id=checkpoint_id,
                root_hash=root,
                signed_note=note,
                key_id=key_id,
                signed_at=at.replace(microsecond=0),
                previous_tree_size=previous,
            ),
        )
        message = audit_pb2.CheckpointPublished(
            origin=self._signer.origin,
            region=types_pb2.RegionCode(code=self._region),
            actor=types_pb2.Actor(subject="audit", kind=enums_pb2.ACTOR_KIND_SYSTEM),
            checkpoint_id=str(checkpoint_id),
            tree_size=frontier.size,
            root_hash=root,
            signed_note=note,
            key_id=key_id,
            previous_tree_size=previous or 0,
        )
        message.occurred_at.FromDatetime(at)
        await enqueue(
            session,
            message,
            key=self._signer.origin,
            source="dibao/audit",
            subject=f"checkpoint/{frontier.size}",
            actor="audit",
            time=at,
        )
        return frontier.size
