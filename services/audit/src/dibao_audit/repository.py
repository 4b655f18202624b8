"""All SQL of the audit log. Bulk writes go through the session's asyncpg connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from dibao_audit.entry import ENTRY_DOMAIN
from dibao_audit.merkle import Subtree
from dibao_audit.models import (
    HANDOVER_NOTE,
    REGION_LEVELS,
    Checkpoint,
    CheckpointCosignature,
    EntryRegionPrefix,
    EntryTimeDay,
    EntryView,
    LogEntry,
    MerkleNode,
)
from dibao_audit.projection import Columns, EntryRow
from dibao_common.messaging.envelope import EventRegistry

# One appender at a time across processes (pg_advisory_xact_lock key: "dibao-audit").
APPEND_LOCK = 0x646962616F_61756469 & 0x7FFFFFFFFFFFFFFF


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session.

    SQLAlchemy opens the transaction at its first statement, so writers take their lock
    through SQLAlchemy first (``lock_appender``, ``lock_projector``) and their bulk
    statements then run inside it; a read issued first runs on its own, which is safe for
    immutable rows.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def lock_appender(session: AsyncSession) -> None:
    """Serialize appenders; also opens the transaction the bulk statements join."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})


async def tree_size(session: AsyncSession) -> int:
    value = await session.scalar(sa.select(sa.func.max(LogEntry.leaf_index)))
    return 0 if value is None else int(value) + 1


async def subtree_hashes(session: AsyncSession, keys: set[Subtree]) -> dict[Subtree, bytes]:
    """Hashes of complete subtrees (leaves are level 0), in one prepared, indexed query."""
    if not keys:
        return {}
    wanted = sorted(keys)
    driver = await _driver(session)
    rows = await driver.fetch(
        """
        SELECT n.level, n.index, n.hash
        FROM unnest($1::smallint[], $2::bigint[]) AS k(level, index)
        JOIN merkle_node n ON n.level = k.level AND n.index = k.index
        """,
        [lv for lv, _ in wanted],
        [i for _, i in wanted],
    )
    found = {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}
    missing = keys - found.keys()
    if missing:
        raise LookupError(f"the log lacks subtrees {sorted(missing)[:5]}")
    return found


async def subtree_hash_list(session: AsyncSession, keys: Sequence[Subtree]) -> list[bytes]:
    """Hashes of complete subtrees in the order asked (distinct keys), in one statement."""
    if not keys:
        return []
    driver = await _driver(session)
    rows = await driver.fetch(
        """
        SELECT n.hash
        FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY AS k(level, index, at)
        JOIN merkle_node n ON n.level = k.level AND n.index = k.index
        ORDER BY k.at
        """,
        [lv for lv, _ in keys],
        [i for _, i in keys],
    )
    if len(rows) != len(keys):
        raise LookupError(f"the log lacks some of the subtrees {list(keys)[:5]}")
    return [r[0] for r in rows]


async def size_and_seen(session: AsyncSession, ce_ids: Sequence[str]) -> tuple[int, set[str]]:
    """The stored tree size and which of ``ce_ids`` the log already holds, in one statement.

    The log's own unique ``ce_id`` is its inbox: under the appender's lock, an id found
    here was appended before (the unique index refuses a second one regardless).
    """
    driver = await _driver(session)
    row = await driver.fetchrow(
        """
        SELECT (SELECT max(leaf_index) FROM log_entry),
               ARRAY(SELECT ce_id::text FROM log_entry WHERE ce_id = ANY($1::uuid[]))
        """,
        ce_ids,
    )
    size = 0 if row[0] is None else int(row[0]) + 1
    return size, set(row[1])


async def stored_contents(
    session: AsyncSession, ce_ids: Collection[str]
) -> dict[str, tuple[int, tuple[str, bytes | None, bytes, bytes]]]:
    """The index and content (topic, record key, header block, payload) of the entries of
    some ``ce_id``s (those the log holds), to tell an event sent again from another event
    under the same id (rare: read only when a batch repeats an id)."""
    if not ce_ids:
        return {}
    driver = await _driver(session)
    rows = await driver.fetch(
        """
        SELECT ce_id::text, leaf_index, topic, record_key, header_block, payload
        FROM log_entry WHERE ce_id = ANY($1::uuid[])
        """,
        list(ce_ids),
    )
    return {
        r[0]: (
            int(r[1]),
            (r[2], None if r[3] is None else bytes(r[3]), bytes(r[4]), bytes(r[5])),
        )
        for r in rows
    }


async def first_entry_of_application(
    session: AsyncSession, application_id: str
) -> tuple[int, tuple[str, bytes | None, bytes, bytes]] | None:
    """The index and content (topic, record key, header block, payload) of the earliest
    entry the log holds about an application (by its ``application_id`` column), or None.
    One lookup on ``ix_log_entry_application`` (application, leaf index): read only when a
    reused id names another application than its first entry (rare)."""
    driver = await _driver(session)
    row = await driver.fetchrow(
        """
        SELECT leaf_index, topic, record_key, header_block, payload FROM log_entry
        WHERE application_id = $1 ORDER BY leaf_index LIMIT 1
        """,
        application_id,
    )
    if row is None:
        return None
    key = None if row[2] is None else bytes(row[2])
    return int(row[0]), (row[1], key, bytes(row[3]), bytes(row[4]))


ROW_COLUMNS = (
    "ce_id",
    "ce_type",
    "ce_time",
    "topic",
    "partition",
    "offset",
    "record_key",
    "header_block",
    "payload",
    "household_id",
    "application_id",
    "case_id",
    "region",
    "actor",
    "regions",
    "leaf_index",
)
"""The columns a COPY of entries writes: an ``EntryRow``'s first fifteen, then the index."""


def entry_records(first_index: int, rows: Sequence[EntryRow]) -> list[tuple[Any, ...]]:
    """The COPY records (``ROW_COLUMNS``) of rows numbered from ``first_index``."""
    return [(*row[:15], index) for index, row in enumerate(rows, first_index)]


async def insert_entries(
    session: AsyncSession, first_index: int, rows: Sequence[EntryRow], *, table: str = "log_entry"
) -> None:
    """Append rows as leaves ``first_index ...``, one binary COPY per batch."""
    if not rows:
        return
    driver = await _driver(session)
    await driver.copy_records_to_table(
        table, records=entry_records(first_index, rows), columns=ROW_COLUMNS
    )


async def insert_nodes(session: AsyncSession, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Persist the complete subtrees a batch created, its leaves included."""
    if not nodes:
        return
    driver = await _driver(session)
    await driver.copy_records_to_table(
        "merkle_node", records=nodes, columns=("level", "index", "hash")
    )


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    return await session.scalar(
        sa.select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1)
    )


async def checkpoint_at(session: AsyncSession, size: int) -> Checkpoint | None:
    return await session.get(Checkpoint, size)


async def checkpoints(
    session: AsyncSession, *, before_size: int | None, limit: int
) -> list[Checkpoint]:
    """Checkpoints newest first, below ``before_size`` when given."""
    query = sa.select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(limit)
    if before_size is not None:
        query = query.where(Checkpoint.tree_size < before_size)
    return list(await session.scalars(query))


async def checkpoints_up_to(session: AsyncSession, size: int) -> list[Checkpoint]:
    """Every checkpoint with ``tree_size <= size``, oldest first."""
    query = sa.select(Checkpoint).where(Checkpoint.tree_size <= size).order_by(Checkpoint.tree_size)
    return list(await session.scalars(query))


async def handovers(session: AsyncSession, up_to: int | None = None) -> list[Checkpoint]:
    """The checkpoints that hand the log over to a new key (their note names both keys,
    docs/adr/0018), oldest first; those with ``tree_size <= up_to`` when given.

    Every export's header asks (``service.export_header``), and a province's log holds
    hundreds of thousands of checkpoints (one per 1,000 entries), which each export read:
    now read through ``ix_checkpoint_handover`` (migration 0010), the partial index of the
    checkpoints whose note holds the hand-over line, a few rows (one per rotation).
    PostgreSQL computes its predicate from the signed note itself, so no column a hash
    does not cover decides which rows are hand-overs; without the index the same rows are
    found by reading the table. The condition is the index's predicate as a constant in
    the SQL text (``models.HANDOVER_NOTE``), so that every plan of the statement uses it:
    ``signed_note.contains(HANDOVER_LINE)`` sent the line as a bind parameter, which
    matches a partial index in a plan for its value but not in a generic plan."""
    query = sa.select(Checkpoint).where(sa.text(HANDOVER_NOTE)).order_by(Checkpoint.tree_size)
    if up_to is not None:
        query = query.where(Checkpoint.tree_size <= up_to)
    return list(await session.scalars(query))


async def cosignatures_of(
    session: AsyncSession, sizes: Sequence[int]
) -> dict[int, list[CheckpointCosignature]]:
    """The stored cosignatures of the checkpoints of ``sizes``, by size, by witness."""
    if not sizes:
        return {}
    rows = await session.scalars(
        sa.select(CheckpointCosignature)
        .where(CheckpointCosignature.tree_size.in_(sizes))
        .order_by(CheckpointCosignature.tree_size, CheckpointCosignature.witness)
    )
    out: dict[int, list[CheckpointCosignature]] = {}
    for row in rows:
        out.setdefault(row.tree_size, []).append(row)
    return out


async def add_checkpoint(session: AsyncSession, checkpoint: Checkpoint) -> None:
    session.add(checkpoint)
    await session.flush()


async def grew_beyond_own_checkpoints(session: AsyncSession, since: int, own_type: str) -> bool:
    """Whether entries after ``since`` include anything but the log's own announcements."""
    query = sa.select(sa.exists().where(LogEntry.leaf_index >= since, LogEntry.ce_type != own_type))
    return bool(await session.scalar(query))


# The log's own alerts name a household only when they are about one.
_ALERTS = "dibao.audit.AnomalyDetected.v1"


def whole_log_types(registry: EventRegistry) -> frozenset[str]:
    """The event types that may concern the whole log: events (their message has an
    ``occurred_at``) with no ``household_id`` (checkpoints, standards, payroll runs,
    bank files, notices), and the log's own alerts.

    Any other type is a household's event: one recorded without its household id (a
    faulty producer) must not pass for the whole log's and be shown to every auditor. Nor
    is a message the contracts nest in events (a member, an income) an event of its own."""
    types = set()
    for ce_type in registry.types():
        cls = registry.message_class(ce_type)
        if cls is None:
            continue
        fields = cls.DESCRIPTOR.fields_by_name
        if "occurred_at" in fields and (ce_type == _ALERTS or "household_id" not in fields):
            types.add(ce_type)
    return frozenset(types)


@dataclass(frozen=True, slots=True)
class WholeLog:
    """The entries that concern the whole log, not a region: every auditor reads them.

    Such an entry names no household, its region is none or the log's own (``region``,
    ``DIBAO_AUDIT_LOG_REGION``: what ``CheckpointPublished`` carries), its type is one
    ``registry`` knows and not a household's (``whole_log_types``), and its payload is
    readable (``service.whole_log_indices`` checks that last part): an entry without keys
    because the log could not read it may hold anything, so it stays with no region's
    auditors. ``condition`` is the SQL of the first three parts, ``admits`` the same in
    Python.
    """

    region: str
    registry: EventRegistry
    types: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", whole_log_types(self.registry))

    def admits(self, household_id: str | None, region: str | None, ce_type: str) -> bool:
        return (
            household_id is None
            and (region is None or region == self.region)
            and ce_type in self.types
        )

    def condition(self) -> sa.ColumnElement[bool]:
        return sa.or_(*self.branches())

    def branches(self) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """``condition`` as two parts an index gives in leaf order: the log's region (the
        village level's ``left(region, 12)``, which equals a code of at most 12 characters
        only when the region is that code) and no region (``ix_log_entry_no_region``)."""
        # A longer one (the setting says 12 digits) no index holds: still exact.
        own = _left(12) == self.region if len(self.region) <= 12 else LogEntry.region == self.region
        rest = sa.and_(
            LogEntry.household_id.is_(None),
            LogEntry.ce_type == sa.any_(sa.literal(sorted(self.types), sa.ARRAY(sa.Text))),
        )
        return sa.and_(own, rest), sa.and_(LogEntry.region.is_(None), rest)


def _left(n: int) -> sa.ColumnElement[str]:
    """``left(region, n)`` as the scope indexes hold it (the length a literal, so the
    planner matches the index expression)."""
    return sa.func.left(LogEntry.region, sa.literal_column(str(n)), type_=sa.Text)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What an auditor may ask for; ``region_prefixes`` scopes every query.

    With ``whole_log``, the query also returns that rule's candidates outside the regions
    (whose payloads ``service.find_visible`` still confirms readable).
    """

    region_prefixes: tuple[str, ...]
    household_id: str | None = None
    application_id: str | None = None
    case_id: str | None = None
    ce_type: str | None = None
    actor: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None
    whole_log: WholeLog | None = None


def _in_regions(prefixes: Sequence[str]) -> sa.ColumnElement[bool]:
    """An entry whose region, or one of its ``regions``, lies under one of ``prefixes``."""
    if not prefixes:
        return sa.false()
    # Region codes are digits: a LIKE pattern needs no escaping once that is checked.
    patterns = [f"{p}%" for p in prefixes if p.isdigit() or p == ""]
    listed = sa.func.unnest(LogEntry.regions).table_valued("code").render_derived()
    return sa.or_(
        LogEntry.region.like(sa.any_(sa.literal(patterns, sa.ARRAY(sa.Text)))),
        sa.and_(
            LogEntry.regions.is_not(None),
            sa.exists()
            .select_from(listed)
            .where(listed.c.code.like(sa.any_(sa.literal(patterns, sa.ARRAY(sa.Text))))),
        ),
    )


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """What an export line needs of an entry (read without the ORM, for speed): the record,
    its leaf and its stored query columns (checked against the record)."""

    leaf_index: int
    topic: str
    partition: int
    offset: int
    record_key: bytes | None
    header_block: bytes
    payload: bytes
    region: str | None
    ce_type: str
    leaf: bytes
    household_id: str | None
    regions: list[str] | None
    ce_id: str
    ce_time: datetime | None
    application_id: str | None
    case_id: str | None
    actor: str | None

    def stored_columns(self) -> Columns:
        """The query columns as ``log_entry`` holds them (not hashed)."""
        return Columns(
            self.ce_id,
            self.ce_type,
            self.ce_time,
            self.household_id,
            self.application_id,
            self.case_id,
            self.region,
            self.actor,
            None if self.regions is None else tuple(self.regions),
        )


async def stream_records(
    session: AsyncSession, start: int, end: int, *, chunk: int = 10_000
) -> AsyncIterator[list[StoredRecord]]:
    """Entries ``[start, end)`` with their tree leaves, in order, a chunk at a time."""
    driver = await _driver(session)
    pos = start
    while pos < end:
        rows = await driver.fetch(
            """
            SELECT e.leaf_index, e.topic, e.partition, e."offset", e.record_key, e.header_block,
                   e.payload, e.region, e.ce_type, n.hash, e.household_id, e.regions,
                   e.ce_id::text, e.ce_time, e.application_id, e.case_id, e.actor
            FROM log_entry e JOIN merkle_node n ON n.level = 0 AND n.index = e.leaf_index
            WHERE e.leaf_index >= $1 AND e.leaf_index < $2
            ORDER BY e.leaf_index
            """,
            pos,
            min(end, pos + chunk),
        )
        if not rows:
            return
        yield [StoredRecord(*r) for r in rows]
        pos = rows[-1][0] + 1


_CANONICAL_RANGE_SQL = r"""
    SELECT array_agg(leaf_index), array_agg(canonical), array_agg(ce_id), array_agg(ce_type),
           array_agg(ce_time), array_agg(household_id), array_agg(application_id),
           array_agg(case_id), array_agg(region), array_agg(actor), array_agg(regions),
           array_agg(block_size), array_agg(payload_size) FROM (
        SELECT leaf_index, ce_id::text AS ce_id, ce_type, ce_time, household_id,
            application_id, case_id, region, actor, to_json(regions)::text AS regions,
            octet_length(header_block) AS block_size, octet_length(payload) AS payload_size,
            $1::bytea
            || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')
            || int4send(partition) || int8send("offset")
            || CASE WHEN record_key IS NULL THEN '\x00'::bytea
                    ELSE '\x01'::bytea || int4send(octet_length(record_key)) || record_key END
            || header_block
            || int4send(octet_length(payload)) || payload AS canonical
        FROM log_entry WHERE leaf_index >= $2 AND leaf_index < $3 ORDER BY leaf_index
    ) AS e
"""
_LEAF_RANGE_SQL = """
    SELECT array_agg(index), array_agg(hash) FROM (
        SELECT index, hash FROM merkle_node
        WHERE level = 0 AND index >= $1 AND index < $2 ORDER BY index
    ) AS n
"""
_DOMAIN_FIELD = len(ENTRY_DOMAIN).to_bytes(4, "big") + ENTRY_DOMAIN


@dataclass(frozen=True, slots=True)
class CanonicalRange:
    """Entries of a range as export lines need them: parallel lists, in leaf order."""

    indices: list[int]
    canonical: list[bytes]
    leaves: list[bytes]
    stored: list[Columns]
    """Each entry's query columns as stored (not hashed; checked against the record)."""
    block_sizes: list[int]
    payload_sizes: list[int]
    """The sizes of each entry's header block and payload: the canonical bytes end with
    ``header block, u32(payload size), payload`` (as the server assembles them), so both
    are sliced from them without walking what comes before."""

    def parts(self, at: int) -> tuple[bytes, bytes]:
        """The header block and payload of the ``at``-th entry, sliced from its bytes."""
        data = self.canonical[at]
        end = len(data) - self.payload_sizes[at]
        return data[end - 4 - self.block_sizes[at] : end - 4], data[end:]


_columns_of_row: Callable[[tuple[Any, ...]], Columns] = partial(tuple.__new__, Columns)
"""``Columns._make`` without its Python frame (a row per entry of every export)."""


async def canonical_range(session: AsyncSession, start: int, end: int) -> CanonicalRange:
    """Entries ``[start, end)`` as the canonical bytes their leaves hash, beside the leaves.

    The server assembles the bytes (``entry.canonical_from_parts``: ``$1`` is
    ``field(ENTRY_DOMAIN)``, ``int4send``/``int8send`` the big-endian u32/u64 of the
    non-negative partition and offset) and sends each column as one array: two index
    range scans, no join. An index only one of the tables holds (a log edited behind its
    back) is left out, as a join would, and the verifier names the gap.
    """
    driver = await _driver(session)
    indices, canonical, *columns, listed, block_sizes, payload_sizes = await driver.fetchrow(
        _CANONICAL_RANGE_SQL, _DOMAIN_FIELD, start, end
    )
    leaf_indices, leaves = await driver.fetchrow(_LEAF_RANGE_SQL, start, end)
    if indices is None or leaf_indices is None:
        return CanonicalRange([], [], [], [], [], [])
    # regions travel as JSON arrays (arrays of different lengths do not aggregate into one
    # PostgreSQL array), None when the entry names none.
    regions = [None if x is None else tuple(json.loads(x)) for x in listed]
    stored: list[Columns] = list(map(_columns_of_row, zip(*columns, regions, strict=True)))
    if indices != leaf_indices or indices != sorted(indices):
        hashes = dict(zip(leaf_indices, leaves, strict=True))
        kept = sorted(
            (
                row
                for row in zip(indices, canonical, stored, block_sizes, payload_sizes, strict=True)
                if row[0] in hashes
            ),
            key=lambda row: row[0],
        )
        return CanonicalRange(
            [row[0] for row in kept],
            [row[1] for row in kept],
            [hashes[row[0]] for row in kept],
            [row[2] for row in kept],
            [row[3] for row in kept],
            [row[4] for row in kept],
        )
    return CanonicalRange(indices, canonical, leaves, stored, block_sizes, payload_sizes)


EntryWithLeaf = tuple[LogEntry, bytes]
"""An entry and its leaf hash as the tree holds it."""

_LEAF = aliased(MerkleNode)


def _with_leaf() -> sa.Select[LogEntry, bytes]:
    return sa.select(LogEntry, _LEAF.hash).join(
        _LEAF, sa.and_(_LEAF.level == 0, _LEAF.index == LogEntry.leaf_index)
    )


def _pairs(rows: sa.Result[LogEntry, bytes]) -> list[EntryWithLeaf]:
    return [(e, bytes(h)) for e, h in rows]


def _filters(flt: EntryFilter) -> list[sa.ColumnElement[bool]]:
    """The conditions of ``flt`` besides its scope."""
    out: list[sa.ColumnElement[bool]] = [
        column == value
        for column, value in (
            (LogEntry.household_id, flt.household_id),
            (LogEntry.application_id, flt.application_id),
            (LogEntry.case_id, flt.case_id),
            (LogEntry.ce_type, flt.ce_type),
            (LogEntry.actor, flt.actor),
        )
        if value is not None
    ]
    if flt.time_from is not None:
        out.append(LogEntry.ce_time >= flt.time_from)
    if flt.time_to is not None:
        out.append(LogEntry.ce_time < flt.time_to)
    return out


def _time_floor(flt: EntryFilter) -> sa.ScalarSelect[Any] | None:
    """With ``time_from``, a lower bound of the first leaf that can match: the smallest
    ``first_leaf`` in ``entry_time_day`` of the UTC days on or after ``time_from``'s,
    NULL when there are none (ADR 0011, 2 Dec 2026). Every entry the time filter admits
    has its day there and a leaf at or after that day's first, whatever the clocks
    (``ce_time`` need not grow with the leaf index), so a walk in leaf order starts there
    instead of at the log's first entry: "since Monday" reads the scope's entries logged
    since Monday's first (``ce_time`` is in no scope index, so each entry skipped cost a
    heap fetch). A NULL bound admits nothing: each index scan of the walk ends at once.

    It reads one row per day since ``time_from``, whatever the number of entries (before,
    the minimum over every entry since ``time_from`` through ``ix_log_entry_time``: the
    whole log's entries since then, and no bound past 100,000 of them, ADR 0017). The
    bound is exact up to the entries of ``time_from``'s own day logged before its first
    match.

    A materialized CTE read by a scalar subquery per part: computed once per statement
    (each reference an InitPlan reading its one row)."""
    if flt.time_from is None:
        return None
    since = sa.cast(
        sa.func.timezone("UTC", sa.cast(sa.literal(flt.time_from), sa.DateTime(timezone=True))),
        sa.Date,
    )
    floor = (
        sa.select(sa.func.min(EntryTimeDay.first_leaf).label("leaf_index"))
        .where(EntryTimeDay.day >= since)
        .cte("time_floor")
        .prefix_with("MATERIALIZED")
    )
    return sa.select(floor.c.leaf_index).scalar_subquery()


BIGINT_MAX = 2**63 - 1


def _time_ceiling(flt: EntryFilter) -> sa.ScalarSelect[Any] | None:
    """With ``time_to``, an upper bound of the last leaf that can match: the largest
    ``last_leaf`` in ``entry_time_day`` of the UTC days up to the last instant before
    ``time_to`` (its own day; the day before when it is midnight), -1 when there are none
    (nothing matches), and no bound (``BIGINT_MAX``) while one of those days has no last
    leaf yet (logged before migration 0014 and not filled yet) (ADR 0011, 3 Dec 2026).

    Exact whatever the clocks: an entry with ``ce_time < time_to`` is of one of those
    days, and its leaf is at most that day's last. An entry logged late with an old time
    raises its old day's last leaf, and the bound of every window ending on or after
    that day with it (the walk then reads as far as that entry: more rows, none missed);
    an entry with a time ahead of later leaves' is of a later day, which no window
    ending before it counts. So a walk in leaf order (``time_to`` a month long past) ends
    at the window's last leaf instead of reading the scope's entries to the end of the
    log to find it has no more. One row a day up to ``time_to``, as the floor reads one a
    day since ``time_from``.

    A materialized CTE read by a scalar subquery per part, as ``_time_floor``."""
    if flt.time_to is None:
        return None
    last_instant = sa.cast(sa.literal(flt.time_to), sa.DateTime(timezone=True)) - sa.text(
        "interval '1 microsecond'"
    )
    until = sa.cast(sa.func.timezone("UTC", last_instant), sa.Date)
    last = EntryTimeDay.last_leaf
    ceiling = (
        sa.select(
            sa.case(
                (sa.func.count() > sa.func.count(last), sa.literal(BIGINT_MAX, sa.BigInteger)),
                else_=sa.func.coalesce(sa.func.max(last), -1),
            ).label("leaf_index")
        )
        .where(EntryTimeDay.day <= until)
        .cte("time_ceiling")
        .prefix_with("MATERIALIZED")
    )
    return sa.select(ceiling.c.leaf_index).scalar_subquery()


LeafBounds = Callable[[InstrumentedAttribute[int]], list[sa.ColumnElement[bool]]]


def _leaf_bounds(flt: EntryFilter) -> LeafBounds:
    """The time window's bounds from ``entry_time_day`` on a leaf index column: at or
    after ``_time_floor``, at or before ``_time_ceiling`` (each when asked), the two CTEs
    made once for every part of a statement."""
    floor, ceiling = _time_floor(flt), _time_ceiling(flt)

    def on(column: InstrumentedAttribute[int]) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if floor is not None:
            out.append(column >= floor)
        if ceiling is not None:
            out.append(column <= ceiling)
        return out

    return on


def level_prefixes(prefixes: Collection[str]) -> tuple[str, ...] | None:
    """The caller's prefixes as the scope indexes take them (migration 0009): digits down
    to a division level, none under another (its entries are that one's), shortest first;
    None when one is not such a prefix (then the scope is a filter on leaf order)."""
    out: list[str] = []
    for p in sorted(set(prefixes), key=len):
        if not (p.isdigit() and p.isascii() and len(p) in REGION_LEVELS):
            return None
        if not p.startswith(tuple(out)):
            out.append(p)
    return tuple(out)


def level_prefixes_of(codes: Collection[str] | None) -> frozenset[str]:
    """Every division-level prefix of each code: what ``entry_region_prefix`` holds for an
    entry's ``regions`` (migration 0009's trigger, in Python for the database check)."""
    if not codes:
        return frozenset()
    return frozenset(c[:n] for c in codes for n in REGION_LEVELS if len(c) >= n)


def _scope_candidates(
    flt: EntryFilter, prefixes: Sequence[str], *, after: int | None, limit: int
) -> sa.Subquery:
    """The leaf indices of the first ``limit`` entries after ``after`` in ``flt``'s scope,
    each part of the scope an index range scan in leaf order stopped at ``limit`` rows
    (ADR 0017): per prefix, entries whose region lies under it (``left(region, n)``) and
    those of a search naming it among its other regions (``entry_region_prefix``); the
    whole log's (its region, no region). So the cost is that of the rows returned times
    the parts, whatever the log's size, an empty scope included."""
    filters = _filters(flt)
    if after is not None:
        filters.append(LogEntry.leaf_index > after)
    index = LogEntry.leaf_index
    leaf_bounds = _leaf_bounds(flt)
    bounds = leaf_bounds(index)
    filters += bounds

    def part(condition: sa.ColumnElement[bool]) -> sa.Select[int]:
        return sa.select(index).where(condition, *filters).order_by(index).limit(limit)

    parts = [part(_left(len(p)) == p) for p in prefixes]
    side = EntryRegionPrefix.leaf_index
    for p in prefixes:
        query = sa.select(side).where(EntryRegionPrefix.prefix == p)
        if after is not None:
            query = query.where(side > after)
        # The key's range, not a filter on the entry joined.
        query = query.where(*leaf_bounds(side))
        if len(filters) > (after is not None) + len(bounds):  # others: off the entry
            query = query.join(LogEntry, index == side).where(*filters)
        parts.append(query.order_by(side).limit(limit))
    if flt.whole_log is not None and flt.household_id is None:  # whole-log entries name none
        parts += [part(b) for b in flt.whole_log.branches()]
    found = sa.union_all(*parts).subquery("found")
    return (
        sa.select(found.c[0].label("leaf_index"))
        .distinct()
        .order_by(found.c[0])
        .limit(limit)
        .subquery("scoped")
    )


async def find_entries(
    session: AsyncSession,
    flt: EntryFilter,
    *,
    after: int | None,
    limit: int,
    by_scope: bool = True,
) -> list[EntryWithLeaf]:
    """Entries matching ``flt`` in log order, after the cursor ``after`` (a leaf index).

    Without a household, application or case (each its own index, a few entries), the
    scope's indexes find them (``_scope_candidates``); else, or for a prefix that is not
    a division level's, or with ``by_scope`` False (the only way before migration 0009,
    kept as the benchmark's baseline), the scope is a filter on leaf order."""
    prefixes = level_prefixes(flt.region_prefixes)
    if (
        by_scope
        and prefixes is not None
        and (prefixes or flt.whole_log is not None)  # else nothing: the filter says so
        and flt.household_id is None
        and flt.application_id is None
        and flt.case_id is None
    ):
        return await _find_scoped(session, flt, prefixes, after=after, limit=limit)
    scope = _in_regions(flt.region_prefixes)
    if flt.whole_log is not None and flt.household_id is None:
        scope = sa.or_(scope, flt.whole_log.condition())
    query = _with_leaf().where(scope, *_filters(flt))
    if after is not None:
        query = query.where(LogEntry.leaf_index > after)
    query = query.where(*_leaf_bounds(flt)(LogEntry.leaf_index))
    rows = await session.execute(query.limit(limit).order_by(LogEntry.leaf_index))
    return _pairs(rows)


async def _find_scoped(
    session: AsyncSession,
    flt: EntryFilter,
    prefixes: Sequence[str],
    *,
    after: int | None,
    limit: int,
) -> list[EntryWithLeaf]:
    """``find_entries`` through the scope's indexes: a page of candidates, each joined to
    its entry and leaf. A candidate naming none (a prefix row no entry has, an entry whose
    leaf was deleted: both only by a superuser, and named by the database check) is
    skipped and the page filled past it, as the filter on leaf order skips it; a short
    page would end the caller's listing there (``service.find_visible``)."""
    out: list[EntryWithLeaf] = []
    while True:
        want = limit - len(out)
        scoped = _scope_candidates(flt, prefixes, after=after, limit=want)
        query = (
            sa.select(scoped.c.leaf_index, LogEntry, _LEAF.hash)
            .select_from(scoped)
            .outerjoin(LogEntry, LogEntry.leaf_index == scoped.c.leaf_index)
            .outerjoin(_LEAF, sa.and_(_LEAF.level == 0, _LEAF.index == scoped.c.leaf_index))
            .order_by(scoped.c.leaf_index)
        )
        rows = (await session.execute(query)).all()
        out += [(e, bytes(h)) for _, e, h in rows if e is not None and h is not None]
        if len(rows) < want or len(out) >= limit:
            return out
        after = int(rows[-1][0])


async def entry_at(session: AsyncSession, index: int) -> EntryWithLeaf | None:
    found = _pairs(await session.execute(_with_leaf().where(LogEntry.leaf_index == index)))
    return found[0] if found else None


async def entries_at(session: AsyncSession, indices: Sequence[int]) -> list[LogEntry]:
    """The entries of some leaf indices, in log order (absent ones left out)."""
    if not indices:
        return []
    query = (
        sa.select(LogEntry)
        .where(LogEntry.leaf_index == sa.any_(sa.literal(list(indices), sa.ARRAY(sa.BigInteger))))
        .order_by(LogEntry.leaf_index)
    )
    return list(await session.scalars(query))


# One projector at a time across processes (pg_advisory_xact_lock key: "dibao-view").
PROJECT_LOCK = 0x646962616F_76696577 & 0x7FFFFFFFFFFFFFFF


async def lock_projector(session: AsyncSession) -> None:
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PROJECT_LOCK})


async def views_made(session: AsyncSession) -> int:
    """How many entries have their decoded view (views are made in log order)."""
    value = await session.scalar(sa.select(sa.func.max(EntryView.leaf_index)))
    return 0 if value is None else int(value) + 1


async def entries_from(session: AsyncSession, start: int, limit: int) -> list[LogEntry]:
    query = (
        sa.select(LogEntry)
        .where(LogEntry.leaf_index >= start)
        .order_by(LogEntry.leaf_index)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def insert_views(
    session: AsyncSession, views: Sequence[tuple[int, dict[str, Any] | None]]
) -> None:
    if not views:
        return
    driver = await _driver(session)
    await driver.execute(
        """
        INSERT INTO entry_view (leaf_index, decoded)
        SELECT * FROM unnest($1::bigint[], $2::jsonb[])
        ON CONFLICT DO NOTHING
        """,
        [i for i, _ in views],
        [None if v is None else json.dumps(v) for _, v in views],
    )


async def views_of(
    session: AsyncSession, indices: Sequence[int]
) -> dict[int, dict[str, Any] | None]:
    """The stored decoded views of some entries (those not made yet are absent)."""
    if not indices:
        return {}
    rows = await session.execute(
        sa.select(EntryView.leaf_index, EntryView.decoded).where(
            EntryView.leaf_index.in_(list(indices))
        )
    )
    return {int(i): d for i, d in rows}


async def region_prefixes_named(session: AsyncSession, prefixes: Sequence[str]) -> frozenset[str]:
    """The ``prefixes`` (each a whole division level's) under which the log holds an entry:
    the entry's region (``left(region, n)``, the scope indexes) or one of a search's other
    regions (``entry_region_prefix``). What the log itself knows of regions: audit has no
    division table (ADR 0004, 3 Dec 2026)."""
    parts: list[sa.Select[str]] = []
    for p in dict.fromkeys(prefixes):
        literal = sa.literal(p, type_=sa.Text)
        parts.append(
            sa.select(literal).where(sa.exists().where(_left(len(p)) == p).correlate(None))
        )
        parts.append(
            sa.select(literal).where(
                sa.exists().where(EntryRegionPrefix.prefix == p).correlate(None)
            )
        )
    if not parts:
        return frozenset()
    found = await session.scalars(sa.union(*parts))
    return frozenset(found)
