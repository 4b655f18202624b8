"""The audit log checked in its database: what no hash covers, made again from what does.

An export proves the entries' records (topic, position, key, headers, payload) against a
signed root, but ``log_entry`` also holds columns that queries filter on (``ce_id``,
``ce_type``, ``ce_time``, household, application, case, region, actor, regions), the
projector's
decoded views (``entry_view``) and ``appended_at``, and no hash covers them. An SQL edit
of an entry's region hides it from its region's auditors; the runtime role can write the
next decoded view with any content; every proof still verifies. So this check reads every
entry with its stored leaf, view and columns, and reports (``python -m
dibao_audit.verify_cli --database-url``):

- a record that does not hash to its stored leaf, or an index without one;
- a query column its record contradicts (``projection.contradictions``);
- a stored decoded view that is not the one its payload gives;
- an ``appended_at`` outside the signed times of the checkpoints around the entry (it
  cannot be made again, only bounded: not before the last checkpoint that does not cover
  it was signed, not after the first that covers it was, give or take ``skew_s`` and the
  note's whole seconds);
- a checkpoint whose signature fails, whose stored root, size or key id is not its
  note's (a hand-over's is its new key's), or whose root the recomputed leaves do not
  give (the suspect range is named);
- a checkpoint the auditor kept from earlier (``kept``, ``verify_cli --checkpoint``) that
  does not verify, is larger than the log (the database was rolled back or its tail
  deleted: a smaller log proves itself), or whose root the entries do not give;
- a checkpoint the log announced in its own entries (each signed checkpoint's
  ``CheckpointPublished``, on ``dibao.audit.v1``, is consumed and appended like any event)
  that is not stored as announced: its note must verify with the key, and the stored
  checkpoint of its size must be that note's, so checkpoints deleted from the table (the
  later ones above all: a smaller set proves itself) are named without a kept one. What
  this cannot show is a tail of the log deleted or rewritten from before the first
  deleted checkpoint's announcement on (no signed root covers it any more): there only a
  kept checkpoint, the topic or a witness tells (ADR 0006);
- an ``appended_at`` more than ``skew_s`` before that of an entry appended earlier
  (``AppendedAtBounds``);
- an entry's rows in ``entry_region_prefix`` (migration 0009: what finds a search for the
  auditors of its other regions) that are not every level prefix of its record's
  ``regions``, and rows naming no entry of the log (before it or beyond; ADR 0017);
- a row of ``entry_time_day`` (migration 0013: where a listing with ``time_from`` starts;
  0014: where one with ``time_to`` ends) that is not a day of the stored ``ce_time``s
  with its entries' first and last leaf, or a day missing (ADR 0011);
- a B-tree index of the log's tables that amcheck finds corrupt or missing a row of its
  table (``bt_index_check`` with ``heapallindexed``, in the check's snapshot: a listing
  through such an index silently misses entries; migration 0012, ADR 0006). When amcheck
  is not installed, or the login may not execute it, the report says so
  (``index_check``) and nothing else changes.

Entries appended after the latest checkpoint are checked like the others but are under
no signed root yet.

The check reads the schema's revision first (``alembic_version``). Below
:data:`MIN_SCHEMA` it does not run (``SchemaTooOldError``: its queries read what those
migrations add); from there up to :data:`SCHEMA` it checks what the schema has and names
each check left out, and the migration that brings it, in ``not_checked``: an operator
mid-upgrade (a database at 0012 while 0013's fill runs: its table is there, half
filled, and the version is 0012 until the fill ends) gets the log checked and no false
alarm. A revision newer than this check knows is checked as :data:`SCHEMA` and said so.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from google.protobuf.message import DecodeError

from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao_audit.appender import CHECKPOINT_TYPE
from dibao_audit.checkpoint import Checkpoint, CheckpointError, KeyTrust
from dibao_audit.cosignature import WitnessKey, check_quorum, with_cosignatures
from dibao_audit.entry import (
    MalformedEntryError,
    RecordedEvent,
    canonical_from_parts,
    parse_header_block,
)
from dibao_audit.merkle import fold_subtrees, leaf_hash, perfect_subtrees
from dibao_audit.projection import Columns, contradictions, decoded_view, key_reader
from dibao_audit.repository import level_prefixes_of
from dibao_audit.verifier import Keys, Report, tree_levels, verified_kept
from dibao_common.messaging.envelope import EventRegistry, topic_of

_ROWS_SQL = """
    SELECT e.leaf_index, e.ce_id::text, e.ce_type, e.ce_time, e.topic, e.partition,
           e."offset", e.record_key, e.header_block, e.payload, e.household_id,
           e.application_id, e.case_id, e.region, e.actor, e.appended_at, n.hash,
           v.leaf_index IS NOT NULL, v.decoded::text, e.regions,
           ARRAY(SELECT p.prefix FROM entry_region_prefix p WHERE p.leaf_index = e.leaf_index)
    FROM log_entry e
    LEFT JOIN merkle_node n ON n.level = 0 AND n.index = e.leaf_index
    LEFT JOIN entry_view v ON v.leaf_index = e.leaf_index
    WHERE e.leaf_index >= $1 AND e.leaf_index < $2
    ORDER BY e.leaf_index
"""


MIN_SCHEMA = 9
"""The oldest revision this check reads (``log_entry.regions``, 0008; ``entry_region_prefix``,
0009)."""
SCHEMA = 15
"""The revision whose every table this check reads (``checkpoint_cosignature``, 0015)."""


class SchemaTooOldError(Exception):
    """The database's schema is older than :data:`MIN_SCHEMA`: the check cannot run."""


_BY_TABLES = """
    SELECT to_regclass('entry_region_prefix') IS NOT NULL,
           to_regclass('entry_time_day') IS NOT NULL,
           EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('entry_time_day')
                   AND attname = 'last_leaf' AND NOT attisdropped),
           to_regclass('checkpoint_cosignature') IS NOT NULL
"""


async def schema_revision(conn: asyncpg.Connection) -> tuple[int, str, str | None]:
    """The audit schema's revision: its number, as the report states it, and a note when
    it could only be judged by the tables (``alembic_version`` the login may not read:
    the runtime role's). A database without ``alembic_version`` is not a migrated log."""
    readable = await conn.fetchval(
        "SELECT has_table_privilege(to_regclass('alembic_version'), 'SELECT')"
    )
    if readable is None:
        raise SchemaTooOldError(
            "the database has no alembic_version: its migrations have not run (or it is not "
            "the audit log's database); run the audit service's migrations first"
        )
    if not readable:
        found = await conn.fetchrow(_BY_TABLES)
        assert found is not None  # one row, always
        prefixes, days, last, cosigned = found
        number = 15 if cosigned else 14 if last else 13 if days else 9 if prefixes else 8
        return (
            number,
            f"{number:04d} (judged by its tables)",
            "this login may not read alembic_version, so the schema was judged by its tables: "
            "a migration still filling one (0013, 0014) would show as problems of that table "
            "(check with the owner's login, or GRANT SELECT ON alembic_version to this one)",
        )
    rows = await conn.fetch("SELECT version_num FROM alembic_version")
    if len(rows) != 1 or not str(rows[0][0]).isdigit():
        raise SchemaTooOldError(
            f"the database's alembic_version holds {[str(r[0]) for r in rows]}, not one of "
            f"the audit service's revisions (0001 ... {SCHEMA:04d}): is it the audit log's "
            "database? its migrations may not have run"
        )
    return int(rows[0][0]), str(rows[0][0]), None


@dataclass(slots=True)
class DatabaseReport(Report):
    """A :class:`Report` with what the database check also counted."""

    columns_checked: int = 0
    views_checked: int = 0
    appended_at_checked: int = 0
    announcements_checked: int = 0
    log_size: int = 0
    contradicted: dict[str, int] = field(default_factory=dict)
    indexes_checked: list[str] = field(default_factory=list)
    index_check: str = "not run"
    """How the indexes were checked, or why they could not be."""
    indexes_not_checked: dict[str, str] = field(default_factory=dict)
    """Indexes of the log's tables amcheck was not run on, with the reason."""
    cosigned_notes: list[str] = field(default_factory=list)
    """With ``witnesses`` given: the stored checkpoints' signed notes with the cosignature
    lines the log holds for each appended (docs/adr/0024), newest first, down to the first
    whose lines meet the quorum (all of them when none does): what ``verify_cli`` holds to
    the witnesses' quorum (``check_witnessed``)."""
    schema: str = ""
    """The schema's revision as the database states it."""
    not_checked: dict[str, str] = field(default_factory=dict)
    """What the schema lacks and this check therefore left out, with the migration that
    brings it (an operator mid-upgrade)."""

    def summary(self) -> dict[str, Any]:
        return Report.summary(self) | {
            "schema": self.schema,
            "not_checked": dict(sorted(self.not_checked.items())),
            "log_size": self.log_size,
            "columns_checked": self.columns_checked,
            "views_checked": self.views_checked,
            "appended_at_checked": self.appended_at_checked,
            "checkpoint_announcements_checked": self.announcements_checked,
            "contradicted_columns": dict(sorted(self.contradicted.items())),
            "index_check": self.index_check,
            "indexes_checked": len(self.indexes_checked),
            "indexes_not_checked": dict(sorted(self.indexes_not_checked.items())),
        }


def asyncpg_dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+asyncpg://`` -> ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


class AppendedAtBounds:
    """When an entry may have been appended, from the signed times of the checkpoints (of
    the database here; of ``GET /audit/checkpoints`` in ``verify_cli --url``), and from
    the entries appended before it.

    ``appended_at`` is the append transaction's ``now()``: its start, taken before the
    appender's advisory lock is granted. One appender process stamps its batches in log
    order (an asyncio lock, then the transaction), so the time never decreases along the
    log but for the database server's clock stepping back; with several appender
    processes, one that waited for the lock appends after entries stamped later than its
    own start, by up to its wait. So an entry may lie up to ``skew_s`` before the latest
    ``appended_at`` of the entries before it (``--clock-skew``, as around checkpoints),
    not more; after a decrease that is reported, the entry's own time is the one later
    entries are held to, and no entry is held to a time outside its checkpoints' (that
    one is reported as such). :meth:`problem` is called in log order (of the entries a
    caller sees: the bound holds against every earlier entry, so against any subset)."""

    def __init__(self, heads: Iterable[Checkpoint], skew_s: float) -> None:
        ordered = sorted(heads, key=lambda h: h.tree_size)
        self._sizes = [h.tree_size for h in ordered]
        self._times = [h.signed_at for h in ordered]
        self._skew = timedelta(seconds=skew_s)
        self._latest: tuple[int, datetime] | None = None  # the latest appended_at so far

    def problem(self, index: int, appended_at: datetime) -> str | None:
        at = bisect.bisect_right(self._sizes, index)  # the first checkpoint covering it
        if at > 0 and appended_at < self._times[at - 1] - self._skew:
            return (
                f"entry {index}: appended_at {appended_at.isoformat()} is before checkpoint "
                f"{self._sizes[at - 1]} was signed, which does not cover it"
            )
        # The note's time is whole seconds, rounded down.
        if at < len(self._sizes) and appended_at > self._times[at] + self._skew + timedelta(
            seconds=1
        ):
            return (
                f"entry {index}: appended_at {appended_at.isoformat()} is after checkpoint "
                f"{self._sizes[at]} was signed, which covers it"
            )
        # Within its checkpoints' times (a time outside them is known false, and is not
        # one later entries are held to): not far before an earlier entry's.
        latest = self._latest
        if latest is None or appended_at > latest[1]:
            self._latest = (index, appended_at)
        elif appended_at < latest[1] - self._skew:
            # Said once, naming both; measured from this one on, so that one entry moved
            # ahead is not blamed on every entry after it.
            self._latest = (index, appended_at)
            return (
                f"entry {index}: appended_at {appended_at.isoformat()} is more than "
                f"{self._skew.total_seconds():g} s before entry {latest[0]}'s "
                f"({latest[1].isoformat()}), appended earlier"
            )
        return None


def _check_row(
    report: DatabaseReport,
    row: Any,
    registry: EventRegistry,
    bounds: AppendedAtBounds,
    announced: list[tuple[int, bytes]],
) -> bytes:
    """Check one stored entry; its recomputed leaf. A checkpoint announcement (by its
    record's type) goes to ``announced`` as (index, payload)."""
    index = int(row[0])
    topic, partition, offset = row[4], int(row[5]), int(row[6])
    key = None if row[7] is None else bytes(row[7])
    block, payload = bytes(row[8]), bytes(row[9])
    leaf = leaf_hash(canonical_from_parts(topic, partition, offset, key, block, payload))
    if row[16] is None:
        report.fail(f"entry {index} has no leaf in merkle_node", index)
    elif bytes(row[16]) != leaf:
        report.fail(f"entry {index}: content does not match its leaf hash", index)
    stored = Columns(
        row[1],
        row[2],
        row[3],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        None if row[19] is None else tuple(row[19]),
    )
    columns, differ = contradictions(
        stored, topic, partition, offset, key, block, payload, key_reader(registry)
    )
    if columns is not None and columns.ce_type == CHECKPOINT_TYPE and topic == _ANNOUNCED_ON:
        announced.append((index, payload))
    report.columns_checked += 1
    for name, (was, now) in differ.items():
        report.contradicted[name] = report.contradicted.get(name, 0) + 1
        report.fail(f"entry {index}: stored {name} {was!r} is not its record's ({now!r})", index)
    prefixes = level_prefixes_of(None if columns is None else columns.regions)
    if frozenset(row[20]) != prefixes:
        report.fail(
            f"entry {index}: stored region prefixes {sorted(row[20])} are not those of its "
            f"record's regions ({sorted(prefixes)})",
            index,
        )
    if row[17]:
        report.views_checked += 1
        stored_view = None if row[18] is None else json.loads(row[18])
        try:
            event = RecordedEvent(topic, partition, offset, key, parse_header_block(block), payload)
            made = decoded_view(event, registry)
        except MalformedEntryError:
            made = None
        if stored_view != made:
            report.fail(f"entry {index}: the stored decoded view is not its payload's", index)
    problem = bounds.problem(index, row[15])
    report.appended_at_checked += 1
    if problem is not None:
        report.fail(problem, index)
    return leaf


async def check_database(
    dsn: str,
    key: Keys,
    *,
    registry: EventRegistry | None = None,
    chunk: int = 5000,
    skew_s: float = 5.0,
    kept: Sequence[str] = (),
    witnesses: Sequence[WitnessKey] = (),
    quorum: int | None = None,
) -> DatabaseReport:
    """Check every entry of the log in the database at ``dsn`` (see the module); ``kept``
    are the signed notes of checkpoints the auditor kept from earlier reads. ``key`` is the
    key (or keys) pinned: the stored hand-overs are followed from it (docs/adr/0018).
    With ``witnesses`` (and ``quorum``, all of them when None), the cosigned notes to hold
    to their quorum are read too (``cosigned_notes``)."""
    registry = registry if registry is not None else EventRegistry.default()
    trust = KeyTrust.of(key)
    report = DatabaseReport(trust=trust)
    conn = await asyncpg.connect(asyncpg_dsn(dsn))
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            schema, report.schema, judged = await schema_revision(conn)
            if judged is not None:
                report.not_checked["schema"] = judged
            if schema < MIN_SCHEMA:
                raise SchemaTooOldError(
                    f"the audit database's schema is at {report.schema}; this check needs "
                    f"at least {MIN_SCHEMA:04d} (and checks all of it at {SCHEMA:04d}): run "
                    "the audit service's migrations first (as the database owner, "
                    "DIBAO_DATABASE_URL)"
                )
            if schema > SCHEMA:
                report.not_checked["schema"] = (
                    f"the schema is at {report.schema}, newer than this check knows "
                    f"({SCHEMA:04d}): what later migrations added is not checked (a newer "
                    "verify_cli checks it)"
                )
            heads = await _checkpoints(conn, trust, report, kept)
            bounds = AppendedAtBounds(heads, skew_s)
            size = await conn.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM log_entry")
            report.log_size = int(size)
            leaves = bytearray()
            announced: list[tuple[int, bytes]] = []
            days: dict[date, list[int]] = {}  # each UTC day of ce_time: first, last leaf
            expected = 0
            gap = False
            for lo in range(0, report.log_size, chunk):
                for row in await conn.fetch(_ROWS_SQL, lo, lo + chunk):
                    index = int(row[0])
                    if index != expected and not gap:
                        report.fail(f"expected entry {expected}, found {index}", expected)
                        gap = True
                    expected = index + 1
                    leaves += _check_row(report, row, registry, bounds, announced)
                    if row[3] is not None:  # in leaf order: the first least, the last most
                        ends = days.setdefault(row[3].astimezone(UTC).date(), [index, index])
                        ends[1] = index
            # Before the log or beyond it: a candidate of no entry (ADR 0017).
            stray = await conn.fetchval(
                "SELECT count(*) FROM entry_region_prefix WHERE leaf_index < 0 OR leaf_index >= $1",
                report.log_size,
            )
            if stray:
                report.fail(f"{stray} stored region prefixes name no entry of the log")
            await _check_days(conn, report, days, schema)
            if schema < 15:
                # Said with or without witnesses asked for: the table is not there to read.
                _cosignatures_not_checked(report)
            if witnesses:
                required = len(witnesses) if quorum is None else quorum
                report.cosigned_notes = await _cosigned_from_latest(
                    conn, report, schema, witnesses, required
                )
            await check_indexes(conn, report)
    finally:
        await conn.close()
    kept_heads = verified_kept(trust, kept, report)
    _check_announced(report, trust, announced, heads)
    report.checked = report.columns_checked
    if heads:
        report.checkpoint = heads[-1]
    for head in kept_heads:
        if head.tree_size > report.log_size:
            report.fail(
                f"the log holds {report.log_size} entries, fewer than the checkpoint you kept "
                f"({head.tree_size}): it was rolled back or truncated"
            )
    if not gap:
        _check_roots(report, bytes(leaves), heads)
        _check_kept(report, bytes(leaves), kept_heads)
    return report


def _cosignatures_not_checked(report: DatabaseReport) -> None:
    report.not_checked["checkpoint_cosignature"] = (
        f"the schema is at {report.schema}: migration 0015 adds the witnesses' "
        "cosignatures; run the migrations to have them read"
    )


async def _cosigned_from_latest(
    conn: asyncpg.Connection,
    report: DatabaseReport,
    schema: int,
    witnesses: Sequence[WitnessKey],
    required: int,
) -> list[str]:
    """The stored checkpoints' notes with the witnesses' lines the log holds appended,
    newest first, down to the first whose lines meet ``required`` of ``witnesses`` (read
    with a cursor: a log witnessed lately reads a few rows, whatever its age)."""
    if schema < 15:
        _cosignatures_not_checked(report)
        row = await conn.fetchrow(
            "SELECT signed_note FROM checkpoint ORDER BY tree_size DESC LIMIT 1"
        )
        return [] if row is None else [str(row[0])]
    notes: list[str] = []
    query = (
        "SELECT c.signed_note, coalesce(array_agg(s.signature_line ORDER BY s.witness) "
        "FILTER (WHERE s.signature_line IS NOT NULL), '{}') "
        "FROM checkpoint c LEFT JOIN checkpoint_cosignature s ON s.tree_size = c.tree_size "
        "GROUP BY c.tree_size ORDER BY c.tree_size DESC"
    )
    async for row in conn.cursor(query, prefetch=100):
        note = with_cosignatures(str(row[0]), [str(line) for line in row[1]])
        notes.append(note)
        if check_quorum(note, witnesses, required).met:
            break
    return notes


async def _check_days(
    conn: asyncpg.Connection,
    report: DatabaseReport,
    days: dict[date, list[int]],
    schema: int,
) -> None:
    """``entry_time_day`` (migration 0013: where a listing with ``time_from`` starts its
    walk; 0014: where one with ``time_to`` ends it) against the days and first and last
    leaves of the stored ``ce_time``s: a day's first leaf stored too late, or its last too
    early, hides the entries beyond it from every time window from (up to) that day
    (too wide a range, or a day of no entry, only makes such a listing read more; a last
    leaf missing, no upper bound). Left out (``not_checked``) below the migration that
    adds it."""
    if schema < 13:
        report.not_checked["entry_time_day"] = (
            f"the schema is at {report.schema}: migration 0013 adds the table of each day's "
            "first leaf (0014 its last); run the migrations to have it checked"
        )
        return
    with_last = schema >= 14
    if not with_last:
        report.not_checked["entry_time_day.last_leaf"] = (
            f"the schema is at {report.schema}: migration 0014 adds each day's last leaf; "
            "run the migrations to have it checked (the first leaves were)"
        )
    query = (
        "SELECT day, first_leaf, last_leaf FROM entry_time_day ORDER BY day"
        if with_last
        else "SELECT day, first_leaf, NULL FROM entry_time_day ORDER BY day"
    )
    stored = {
        row[0]: (int(row[1]), None if row[2] is None else int(row[2]))
        for row in await conn.fetch(query)
    }
    for day in sorted(days.keys() | stored.keys()):
        was, now = stored.get(day), days.get(day)
        if was is None and now is not None:
            report.fail(
                f"day {day}: its entries' first leaf {now[0]} is not in entry_time_day", now[0]
            )
        elif now is None and was is not None:
            report.fail(
                f"day {day}: entry_time_day names leaf {was[0]}, but no entry is of that day"
            )
        elif was is not None and now is not None:
            if was[0] != now[0]:
                report.fail(
                    f"day {day}: entry_time_day names leaf {was[0]} as its first, its "
                    f"entries' first is {now[0]}",
                    now[0],
                )
            if with_last and was[1] is None:
                report.fail(
                    f"day {day}: entry_time_day has no last leaf, its entries' last is "
                    f"{now[1]} (a window up to that day is read to the log's end)"
                )
            elif with_last and was[1] != now[1]:
                report.fail(
                    f"day {day}: entry_time_day names leaf {was[1]} as its last, its "
                    f"entries' last is {now[1]}",
                    now[1],
                )


LOG_TABLES = (
    "log_entry",
    "merkle_node",
    "checkpoint",
    "entry_region_prefix",
    "entry_view",
    "entry_time_day",
)
"""The tables of the log whose indexes the check verifies (every listing, lookup, proof
and export reads through them)."""

_INDEXES_SQL = """
    SELECT c.oid::regclass::text, t.relname, a.amname, i.indisvalid AND i.indisready
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_am a ON a.oid = c.relam
    WHERE t.oid IN (SELECT to_regclass(quote_ident(name)) FROM unnest($1::text[]) AS name)
    ORDER BY t.relname, c.relname
"""

_AMCHECK_SQL = """
    SELECT p.oid::regprocedure::text, has_function_privilege(p.oid, 'EXECUTE')
    FROM pg_extension x
    JOIN pg_proc p ON p.pronamespace = x.extnamespace
    WHERE x.extname = 'amcheck' AND p.proname = 'bt_index_check'
      AND p.proargtypes = '2205 16'::oidvector
"""
"""amcheck's ``bt_index_check(regclass, boolean)`` wherever the extension was created,
and whether this login may execute it."""


async def check_indexes(conn: asyncpg.Connection, report: DatabaseReport) -> None:
    """amcheck's ``bt_index_check(index, heapallindexed => true)`` on every valid B-tree
    index of :data:`LOG_TABLES`, in the caller's transaction (its snapshot: every row it
    sees must be in each index). A corruption amcheck finds (SQLSTATE class XX) is a
    failure; an index it cannot check (not a B-tree, an invalid one a failed concurrent
    build left, which no query uses, or another error) is named in
    ``indexes_not_checked``. Without the extension or the right to execute it, the check
    does not run and ``index_check`` says why.

    Not ``bt_index_parent_check``: it holds a SHARE lock on the table until the check's
    transaction ends, which would hold up every append for the rest of the check.
    ``bt_index_check`` takes ACCESS SHARE, as any read does."""
    found = await conn.fetchrow(_AMCHECK_SQL)
    if found is None:
        report.index_check = (
            "unavailable: the amcheck extension is not created in this database (migration "
            "0012 creates it where the server has it and the login may; a superuser may "
            "CREATE EXTENSION amcheck): the indexes were not checked"
        )
        return
    function, allowed = found
    if not allowed:
        report.index_check = (
            f"unavailable: this login may not execute {function} (GRANT EXECUTE ON "
            "FUNCTION to it, or run the check as a superuser): the indexes were not checked"
        )
        return
    report.index_check = "bt_index_check, heapallindexed"
    for index, table, method, usable in await conn.fetch(_INDEXES_SQL, list(LOG_TABLES)):
        if method != "btree":
            report.indexes_not_checked[index] = f"a {method} index: amcheck checks B-trees"
            continue
        if not usable:
            report.indexes_not_checked[index] = "invalid (no query uses it)"
            continue
        try:
            async with conn.transaction():  # a savepoint: an error ends only this one
                await conn.execute(f"SELECT {function.split('(')[0]}($1::regclass, true)", index)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate.startswith("XX"):
                report.fail(f"index {index} of {table} is corrupt: {exc}")
                report.indexes_checked.append(index)
            else:
                report.indexes_not_checked[index] = f"{type(exc).__name__}: {exc}"
            continue
        report.indexes_checked.append(index)


async def _checkpoints(
    conn: asyncpg.Connection, trust: KeyTrust, report: DatabaseReport, kept: Sequence[str]
) -> list[Checkpoint]:
    """The stored checkpoints whose notes verify, oldest first (the hand-overs among them
    and among the ``kept`` notes followed first: a kept one retires its old key where the
    table lost it); their columns checked."""
    heads = []
    rows = await conn.fetch(
        "SELECT tree_size, root_hash, signed_note, key_id FROM checkpoint ORDER BY tree_size"
    )
    for problem in trust.follow([*(row[2] for row in rows), *kept]):
        report.fail(problem)
    for size, root, note, key_id in rows:
        try:
            head, key = trust.verify_by(note)
        except CheckpointError as exc:
            report.fail(f"checkpoint {size}: {exc}")
            continue
        if head.tree_size != size or head.root_hash != bytes(root):
            report.fail(f"checkpoint {size}: the stored size or root is not its signed note's")
        if key_id != key.key_id:
            report.fail(
                f"checkpoint {size}: stored key_id {key_id} is not its note's ({key.key_id})"
            )
        heads.append(head)
    return heads


_ANNOUNCED_ON = topic_of(audit_pb2.CheckpointPublished())


def _check_announced(
    report: DatabaseReport,
    trust: KeyTrust,
    announced: list[tuple[int, bytes]],
    heads: list[Checkpoint],
) -> None:
    """The checkpoints the log announced in its own entries against the stored ones.

    Each ``CheckpointPublished`` of this log (its origin the key's name; another log's on
    the same topic is not this one's business) must carry a note that verifies with the
    key, for the size and root it states, of a tree smaller than the entry announcing it
    (a checkpoint is announced after it is signed), and the stored checkpoint of its size
    must be that note's. One missing from the table was deleted; if the newest announced
    is missing, the stored ones stop short of what the log itself says it signed."""
    stored = {head.tree_size: head for head in heads}
    latest = heads[-1].tree_size if heads else 0
    missing_newer: list[tuple[int, int]] = []  # (size, index) past the latest stored
    for index, payload in announced:
        try:
            message = audit_pb2.CheckpointPublished.FromString(payload)
        except DecodeError:
            report.fail(f"entry {index}: a CheckpointPublished that does not decode", index)
            continue
        if message.origin not in trust.names:
            continue
        size = message.tree_size
        try:
            head = trust.verify(message.signed_note)
        except CheckpointError as exc:
            report.fail(f"entry {index} announces checkpoint {size}: {exc}", index)
            continue
        if head.tree_size != size or head.root_hash != message.root_hash:
            report.fail(
                f"entry {index} announces checkpoint {size}, but its note signs "
                f"{head.tree_size} with another root",
                index,
            )
        elif size > index:
            report.fail(
                f"entry {index} announces checkpoint {size}, which covers the announcement "
                "itself: a checkpoint is announced after it is signed",
                index,
            )
        elif size not in stored:
            if size > latest:
                missing_newer.append((size, index))
            else:
                report.fail(
                    f"entry {index} announces checkpoint {size}, which is not stored: "
                    "it was deleted"
                )
        elif stored[size] != head:
            report.fail(
                f"entry {index} announces checkpoint {size}, stored with another note", index
            )
        else:
            report.announcements_checked += 1
    if missing_newer:
        size, index = max(missing_newer)
        report.fail(
            f"the latest stored checkpoint ({latest}) is older than checkpoint {size}, "
            f"which the log announced at entry {index}: {len(missing_newer)} announced "
            "checkpoint(s) after it were deleted"
        )


def _check_roots(report: DatabaseReport, leaves: bytes, heads: list[Checkpoint]) -> None:
    """Each checkpoint's root from the recomputed leaves; the first that differs names the
    range between it and the last good one."""
    levels = tree_levels(leaves)
    last_good = 0
    for head in heads:
        if head.tree_size == 0:
            continue
        if 32 * head.tree_size > len(leaves):
            report.fail(f"checkpoint {head.tree_size} is larger than the log")
            continue
        root = fold_subtrees(
            [levels[lv][32 * i : 32 * i + 32] for lv, i in perfect_subtrees(0, head.tree_size)]
        )
        if root == head.root_hash:
            last_good = head.tree_size
        elif report.suspect_range is None:
            report.suspect_range = (last_good, head.tree_size)
            report.fail(f"the entries do not give the root of checkpoint {head.tree_size}")


def _check_kept(report: DatabaseReport, leaves: bytes, kept: list[Checkpoint]) -> None:
    """Each kept checkpoint the log is large enough for: its root from the recomputed
    leaves (one the log is too small for is reported by the caller)."""
    levels = tree_levels(leaves)
    for head in kept:
        if 32 * head.tree_size > len(leaves):
            continue
        root = fold_subtrees(
            [levels[lv][32 * i : 32 * i + 32] for lv, i in perfect_subtrees(0, head.tree_size)]
        )
        if root != head.root_hash:
            report.fail(
                f"the entries do not give the root of the checkpoint you kept "
                f"({head.tree_size}): the log was rewritten since"
            )
        else:
            report.kept_checked += 1
