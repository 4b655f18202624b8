"""What the auditor interface does: proofs, exports and masked timelines."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from dibao_audit import repository as repo
from dibao_audit.entry import (
    MalformedEntryError,
    RecordedEvent,
    canonical_from_parts,
    parse_header_block,
    split_canonical,
)
from dibao_audit.merkle import (
    Range,
    consistency_ranges,
    fold_subtrees,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    perfect_subtrees,
    range_cover,
    subtree_hashes_needed,
)
from dibao_audit.models import Checkpoint, LogEntry
from dibao_audit.projection import (
    UNKNOWN_TYPE,
    Columns,
    KeyReader,
    columns_agree,
    contradictions,
    decoded_view,
    key_reader,
)
from dibao_audit.repository import EntryFilter, StoredRecord, WholeLog
from dibao_audit.verifier import ExportHeader
from dibao_common.messaging.envelope import EventRegistry

log = structlog.get_logger(__name__)

MASK = "***"
# Personal data inside decoded payloads (events carry masked identities already; these
# are still personal: health, income, identity hints and free text).
PERSONAL_FIELDS = frozenset(
    {
        "keyed_hash",
        "masked_id",
        "masked_name",
        "holder_masked_name",
        "masked_number",
        "birth_date",
        "sex",
        "disability_grade",
        "seriously_ill",
        "exclusion_note",
        "description",
        "note",
        "purpose_note",
        "monthly_amount",
        "value",
        "custodian_subject",
    }
)


async def _range_hashes(session: AsyncSession, ranges: list[Range]) -> list[bytes]:
    """Hashes of proof ranges: the complete subtrees tiling them, read in one statement."""
    tiles = [perfect_subtrees(lo, hi) for lo, hi in ranges]
    if len({s for tile in tiles for s in tile}) != sum(map(len, tiles)):
        found = await repo.subtree_hashes(session, subtree_hashes_needed(ranges))
        return hash_ranges(ranges, found.__getitem__)
    hashes = await repo.subtree_hash_list(session, [s for tile in tiles for s in tile])
    out: list[bytes] = []
    at = 0
    for tile in tiles:
        out.append(hashes[at] if len(tile) == 1 else fold_subtrees(hashes[at : at + len(tile)]))
        at += len(tile)
    return out


async def inclusion_proof(session: AsyncSession, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size`` (one round trip per level kind)."""
    return await _range_hashes(session, inclusion_ranges(index, size))


async def consistency_proof(session: AsyncSession, old_size: int, new_size: int) -> list[bytes]:
    return await _range_hashes(session, consistency_ranges(old_size, new_size))


def in_regions(region: str | None, prefixes: Collection[str]) -> bool:
    """Whether an entry of ``region`` lies under one of the caller's prefixes."""
    return region is not None and region.startswith(tuple(prefixes))


def in_scope(region: str | None, regions: Sequence[str] | None, prefixes: Collection[str]) -> bool:
    """Whether an entry lies under one of the caller's prefixes: its region or any of the
    other regions it names (a search's access record names each region it could show rows
    of, ``PersonalDataAccessed.regions``)."""
    if in_regions(region, prefixes):
        return True
    if not regions:
        return False
    under = tuple(prefixes)
    return any(r.startswith(under) for r in regions)


def export_shows(
    made: Columns,
    stored: Columns,
    prefixes: Collection[str],
    canonical: bytes = b"",
    leaf: bytes | None = None,
) -> bool:
    """Whether an export shows an entry to a caller of ``prefixes`` in full (besides the
    whole log's): by the regions its record names (``made``). A record changed behind the
    log's back stays where the stored columns put it too, as before they were checked, so
    that the region's auditor sees the change (the leaf no longer matches) rather than a
    leaf hash alone: one that names no region (it no longer reads), and one that is not
    what its leaf hashes (the tree's ``leaf`` is not that of the ``canonical`` bytes;
    hashed only for an entry whose stored regions are the caller's and its record's are
    not, i.e. a contradicted region), such as a payload rewritten to name another region,
    which would otherwise be redacted for its region, with the true leaf, and verify
    there. A stored region edited alone (the record is its leaf's) is not shown."""
    if in_scope(made.region, made.regions, prefixes):
        return True
    if not in_scope(stored.region, stored.regions, prefixes):
        return False
    if made.region is None and not made.regions:
        return True
    return leaf is not None and leaf_hash(canonical) != leaf


def recorded_of(entry: LogEntry | StoredRecord) -> RecordedEvent:
    """The consumed record a stored entry keeps (what its leaf hashed)."""
    return RecordedEvent(
        topic=entry.topic,
        partition=entry.partition,
        offset=entry.offset,
        key=None if entry.record_key is None else bytes(entry.record_key),
        headers=parse_header_block(bytes(entry.header_block)),
        payload=bytes(entry.payload),
    )


def view_of(entry: LogEntry | StoredRecord, registry: EventRegistry) -> dict[str, Any] | None:
    """The decoded JSON view of a stored entry, made now; None for one that does not read,
    a header block that is not one included (an edit behind the log's back: it must not
    end a decoded export for every auditor)."""
    try:
        return decoded_view(recorded_of(entry), registry)
    except MalformedEntryError:
        return None


def decoded_views(
    entries: Sequence[LogEntry], registry: EventRegistry
) -> dict[int, dict[str, Any] | None]:
    """The decoded views of entries as served: made now from the payload their leaf hashes.

    The projector's stored views (``entry_view``) are not served: they are not hashed, and
    the runtime role, which writes them, could write the next one with any content. The
    verifier compares them with the payload (``dbcheck``)."""
    return {e.leaf_index: view_of(e, registry) for e in entries}


def stored_columns(entry: LogEntry) -> Columns:
    """The query columns as ``log_entry`` holds them (not hashed)."""
    return Columns(
        str(entry.ce_id),
        entry.ce_type,
        entry.ce_time,
        entry.household_id,
        entry.application_id,
        entry.case_id,
        entry.region,
        entry.actor,
        None if entry.regions is None else tuple(entry.regions),
    )


@dataclass(frozen=True, slots=True)
class Served:
    """An entry as the API serves it: its query columns made from the record its leaf
    hashes (``columns``), and the stored columns that record contradicts (``contradicted``:
    column -> stored value), which the API says rather than serves."""

    entry: LogEntry
    leaf: bytes
    columns: Columns
    contradicted: dict[str, Any]

    @property
    def index(self) -> int:
        return self.entry.leaf_index


def check_columns(
    index: int,
    stored: Columns,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    block: bytes,
    payload: bytes,
    reader: KeyReader,
) -> tuple[Columns, dict[str, Any]]:
    """An entry's query columns made from its record, and the stored ones the record
    contradicts (column -> stored value; logged as ``audit_stored_columns_contradicted``).
    The made ``ce_id`` is the log's (the record's, or its ``reused_id``) unless that is
    contradicted; a header block that is not one gives nothing but an unknown type."""
    made, differ = contradictions(stored, topic, partition, offset, key, block, payload, reader)
    if made is None:  # a header block that is not one: nothing of it can be read
        made = Columns(stored.ce_id, UNKNOWN_TYPE, None, None, None, None, None, None, None)
    elif "ce_id" not in differ and made.ce_id != stored.ce_id:  # the log's: its reused_id
        made = made._replace(ce_id=stored.ce_id)
    if not differ:
        return made, {}
    log.warning("audit_stored_columns_contradicted", index=index, columns=sorted(differ))
    return made, {name: was for name, (was, _) in differ.items()}


def contradicted_json(contradicted: dict[str, Any]) -> dict[str, str | list[str] | None]:
    """Contradicted stored columns as JSON gives them (times ISO 8601, regions a list)."""
    return {
        name: value.isoformat()
        if isinstance(value, datetime)
        else list(value)
        if isinstance(value, tuple | list)
        else value
        for name, value in contradicted.items()
    }


def served(entry: LogEntry, leaf: bytes, registry: EventRegistry) -> Served:
    """Check an entry's stored query columns against its record (verify on read)."""
    made, differ = check_columns(
        entry.leaf_index,
        stored_columns(entry),
        entry.topic,
        entry.partition,
        entry.offset,
        None if entry.record_key is None else bytes(entry.record_key),
        bytes(entry.header_block),
        bytes(entry.payload),
        key_reader(registry),
    )
    return Served(entry, leaf, made, differ)


def whole_log_indices(entries: Sequence[Served], whole_log: WholeLog) -> set[int]:
    """Which of ``entries`` concern the whole log: the rule admits their columns (made from
    the record) and their payload is readable (the same test as the exports')."""
    return {
        s.index
        for s in entries
        if whole_log.admits(s.columns.household_id, s.columns.region, s.columns.ce_type)
        and view_of(s.entry, whole_log.registry) is not None
    }


def visible(s: Served, prefixes: Collection[str], whole_log: WholeLog | None) -> bool:
    """Whether a caller of ``prefixes`` may read an entry: as an export shows it
    (``export_shows``), by its region or one of its regions as its record says; an entry
    whose record contradicts its stored region also where the stored columns put it when
    the record no longer reads or is not what its leaf hashes (rewritten behind the log's
    back: its region's auditors read it, ``contradicted``; a stored region edited alone
    shows no other region's record); or the whole log's. Until 1 Dec 2026 the stored
    columns were not consulted, so such an entry answered 404 to its own region while its
    exports showed it."""
    if in_scope(s.columns.region, s.columns.regions, prefixes):
        return True
    if s.contradicted:  # else the stored columns are the record's: nothing more to see
        e = s.entry
        canonical = canonical_from_parts(
            e.topic,
            e.partition,
            e.offset,
            None if e.record_key is None else bytes(e.record_key),
            bytes(e.header_block),
            bytes(e.payload),
        )
        if export_shows(s.columns, stored_columns(e), prefixes, canonical, s.leaf):
            return True
    return whole_log is not None and s.index in whole_log_indices([s], whole_log)


PAGE_SCAN = 5_000
"""Entries a page examines at most (``find_visible``): ten of the largest pages (the API's
``MAX_PAGE``, 500), so a run of entries the caller may not see costs a bounded read."""


@dataclass(frozen=True, slots=True)
class VisiblePage:
    """A page of entries the caller may read (``find_visible``)."""

    items: list[Served]
    next_after: int | None
    """Where the next page starts (its cursor's leaf index): the last item when a visible
    entry follows it; the last entry examined when the scan bound stopped the page, which
    may then be short or empty; None when nothing of the filter follows."""
    stopped_at: LogEntry | None = None
    """The last entry examined when the scan bound stopped the page, else None."""


async def find_visible(
    session: AsyncSession,
    flt: EntryFilter,
    registry: EventRegistry,
    *,
    after: int | None,
    limit: int,
    scan: int = PAGE_SCAN,
) -> VisiblePage:
    """Up to ``limit`` entries of ``flt`` the caller may read, in log order, after
    ``after``; the listing and the household timeline page with it.

    The query selects by the stored columns; each entry found is then checked against its
    record (``served``) and kept only when its record's regions are the caller's, or when
    ``visible`` would show it as the whole log's; the page is filled past those dropped
    (rare: a known type the log could not read, a stored column contradicted), up to
    ``limit`` + 1 visible entries (the one more says a next page exists), examining at
    most ``scan`` entries (at least ``limit`` + 1): past that the page stops where it is,
    short or empty, and its cursor is the last entry examined, so the next page goes on
    from there and no entry is skipped or shown twice.
    """
    scan = max(scan, limit + 1)
    out: list[Served] = []
    scanned = 0
    while True:
        want = min(limit + 1 - len(out), scan - scanned)
        found = await repo.find_entries(session, flt, after=after, limit=want)
        scanned += len(found)
        out += [
            s
            for s in (served(e, leaf, registry) for e, leaf in found)
            if visible(s, flt.region_prefixes, flt.whole_log)
        ]
        if len(out) > limit:
            return VisiblePage(out[:limit], out[limit - 1].index)
        if len(found) < want:
            return VisiblePage(out, None)
        after = found[-1][0].leaf_index
        if scanned >= scan:
            return VisiblePage(out, after, found[-1][0])


def export_line(
    entry: StoredRecord,
    visible: bool,
    *,
    decoded: dict[str, Any] | None = None,
    with_decoded: bool = False,
    ce_type: str | None = None,
    contradicted: dict[str, Any] | None = None,
) -> str:
    """One export line; an entry the caller may not read is given by its leaf only.

    ``leaf_hash`` is the tree's own leaf (``merkle_node``), not one derived from the
    content, so content changed behind the log's back shows as a mismatch. ``entry`` is
    the canonical bytes (base64), which a verifier hashes as they are; ``decoded`` (and
    ``ce_type``, the record's) is a convenience for readers and is not verified. A shown
    entry whose stored query columns its record contradicts says which
    (``contradicted``: column -> stored value), as the API does. Hex and base64 need no
    JSON escaping, so the common line is formatted directly (the layout the verifier's
    fast path reads).
    """
    leaf = entry.leaf.hex()
    if not visible:
        return json.dumps({"index": entry.leaf_index, "leaf_hash": leaf, "redacted": True})
    body = base64.b64encode(
        canonical_from_parts(
            entry.topic,
            entry.partition,
            entry.offset,
            entry.record_key,
            entry.header_block,
            entry.payload,
        )
    ).decode()
    if not with_decoded and not contradicted:
        return f'{{"index": {entry.leaf_index}, "leaf_hash": "{leaf}", "entry": "{body}"}}'
    line: dict[str, Any] = {"index": entry.leaf_index, "leaf_hash": leaf, "entry": body}
    if with_decoded:
        line |= {"ce_type": ce_type or entry.ce_type, "decoded": decoded}
    if contradicted:
        line["contradicted"] = contradicted_json(contradicted)
    return json.dumps(line)


async def export_header(
    session: AsyncSession,
    start: int,
    end: int,
    covering: Checkpoint,
    origin: str,
    since: Checkpoint | None = None,
) -> ExportHeader:
    """The first line of an export: the checkpoint, the cover hashes and, when ``since``
    (an earlier checkpoint the auditor names) is given, it and the consistency proof from
    it to ``covering``; and the log's key hand-overs up to ``covering``, each with the
    consistency proof from it (docs/adr/0018). Bounded: one note and O(log n) hashes,
    whatever the log's age, and as many more as the log's key was rotated."""
    cover_ranges = range_cover(start, end, covering.tree_size)
    cover = dict(zip(cover_ranges, await _range_hashes(session, cover_ranges), strict=True))
    size = covering.tree_size
    handovers = [
        (h.tree_size, h.signed_note, await consistency_proof(session, h.tree_size, size))
        for h in await repo.handovers(session, size)
    ]
    history, consistency = [], {}
    if since is not None and since.tree_size < covering.tree_size:
        history = [since.signed_note]
        consistency = {
            (since.tree_size, covering.tree_size): await consistency_proof(
                session, since.tree_size, covering.tree_size
            )
        }
    return ExportHeader(
        origin=origin,
        start=start,
        end=end,
        tree_size=covering.tree_size,
        checkpoint=covering.signed_note,
        cover=cover,
        history=history,
        consistency=consistency,
        handovers=handovers,
        cosignatures=[
            c.signature_line for c in (await repo.cosignatures_of(session, [size])).get(size, [])
        ],
    )


HouseholdsShown = Callable[[list[tuple[str, str]]], Awaitable[None]]
"""Told the ``(household_id, region)`` pairs of the entries a chunk shows in full, before
the chunk is yielded (the export's access records are written there)."""


async def _no_one(_: list[tuple[str, str]]) -> None:
    return None


def _pairs(shown: list[tuple[str | None, str | None]]) -> list[tuple[str, str]]:
    """The distinct (household, region) pairs of shown entries, in first-seen order."""
    return [(h, r) for h, r in dict.fromkeys(shown) if h is not None and r is not None]


async def export_lines(
    session: AsyncSession,
    start: int,
    end: int,
    covering: Checkpoint,
    origin: str,
    region_prefixes: Collection[str],
    *,
    registry: EventRegistry | None = None,
    whole_log: WholeLog | None = None,
    chunk: int = 5000,
    households_shown: HouseholdsShown = _no_one,
    since: Checkpoint | None = None,
) -> AsyncIterator[bytes]:
    """JSON lines (UTF-8): the header, then every entry of ``[start, end)`` (or its hash only).

    Every entry's stored query columns are checked against its record, as the API checks
    what it serves (``check_columns``): an entry is shown when the caller may read it by
    its record's columns (``visible``: under ``region_prefixes``, or the whole log's when
    ``whole_log`` is given), else given by its leaf only; a shown entry whose stored
    columns the record contradicts says which (``contradicted``). Without decoded views
    (``registry`` None), entries are read ``chunk`` at a time as the canonical bytes the
    database assembles. Before each chunk is yielded, ``households_shown`` is awaited
    with the households (as the records name them) whose entries it shows in full (an
    error there ends the export before those lines leave).
    """
    header = await export_header(session, start, end, covering, origin, since)
    yield json.dumps(header.to_json()).encode() + b"\n"
    prefixes = tuple(region_prefixes)
    columns_registry = (
        registry
        if registry is not None
        else whole_log.registry
        if whole_log is not None
        else EventRegistry.default()
    )
    reader = key_reader(columns_registry)
    if registry is None:
        fast = _export_entry_lines(
            session, start, end, prefixes, chunk, whole_log, households_shown, reader
        )
        async for text in fast:
            yield text
        return
    async for records in repo.stream_records(session, start, end, chunk=chunk):
        lines = []
        seen: list[tuple[str | None, str | None]] = []
        for e in records:
            made, differ = check_columns(
                e.leaf_index,
                e.stored_columns(),
                e.topic,
                e.partition,
                e.offset,
                e.record_key,
                e.header_block,
                e.payload,
                reader,
            )
            view = view_of(e, registry)
            shown = export_shows(
                made,
                e.stored_columns(),
                prefixes,
                canonical_from_parts(
                    e.topic, e.partition, e.offset, e.record_key, e.header_block, e.payload
                ),
                e.leaf,
            ) or (
                whole_log is not None
                and whole_log.admits(made.household_id, made.region, made.ce_type)
                and (view if registry is whole_log.registry else view_of(e, whole_log.registry))
                is not None
            )
            if shown:
                seen.append((made.household_id, made.region))
            lines.append(
                export_line(
                    e,
                    shown,
                    decoded=view,
                    with_decoded=True,
                    ce_type=made.ce_type,
                    contradicted=differ,
                )
            )
        await households_shown(_pairs(seen))
        yield ("\n".join(lines) + "\n").encode()


_LINE = b'{"index": %d, "leaf_hash": "%s", "entry": "%s"}'
_REDACTED = b'{"index": %d, "leaf_hash": "%s", "redacted": true}'


def _made_columns(
    chunk: repo.CanonicalRange, reader: KeyReader
) -> tuple[list[Columns], dict[int, dict[str, Any]]]:
    """Each entry's query columns made from its record (the canonical bytes), and the
    stored ones each record contradicts (by index; most entries: none).

    Most records give exactly the stored columns, which ``columns_agree`` confirms from
    the header block and payload sliced off the bytes' end (``CanonicalRange.parts``); any
    other is checked as the API checks it (``check_columns``, on the split bytes)."""
    made: list[Columns] = []
    differ: dict[int, dict[str, Any]] = {}
    parts_of = chunk.parts
    for at, (i, data, stored) in enumerate(
        zip(chunk.indices, chunk.canonical, chunk.stored, strict=True)
    ):
        if columns_agree(stored, *parts_of(at), reader):
            made.append(stored)
            continue
        try:
            parts = split_canonical(data)
        except MalformedEntryError:
            parts = ("", 0, 0, None, b"\xff", b"")  # a block that is not one: nothing read
        columns, contradicted = check_columns(i, stored, *parts, reader)
        made.append(columns)
        if contradicted:
            differ[i] = contradicted
    return made, differ


_Chunk = tuple[repo.CanonicalRange, list[Columns], dict[int, dict[str, Any]], set[int]]


async def _export_entry_lines(
    session: AsyncSession,
    start: int,
    end: int,
    prefixes: tuple[str, ...],
    size: int,
    whole_log: WholeLog | None,
    households_shown: HouseholdsShown,
    reader: KeyReader,
) -> AsyncIterator[bytes]:
    """The entry lines of an export without decoded views (the layout ``export_line``
    writes), from the canonical bytes the server assembles; the next chunk is read while
    one is formatted. Visibility is decided by the columns each record gives (checked
    against the stored ones, ``_made_columns``). Entries outside ``prefixes`` that may be
    the whole log's (no region or the log's) are read again as rows to decide (few:
    checkpoints, system events)."""
    b64, hexlify = binascii.b2a_base64, binascii.hexlify
    bounds = list(range(start, end, size))

    async def read(lo: int) -> _Chunk:
        chunk = await repo.canonical_range(session, lo, min(end, lo + size))
        made, differ = _made_columns(chunk, reader)
        if whole_log is None:
            return chunk, made, differ, set()
        maybe = [
            i
            for i, c in zip(chunk.indices, made, strict=True)
            if c.region is None
            or (c.region == whole_log.region and not c.region.startswith(prefixes))
        ]
        if not maybe:
            return chunk, made, differ, set()
        rows = await repo.entries_at(session, maybe)
        return (
            chunk,
            made,
            differ,
            whole_log_indices([served(e, b"", whole_log.registry) for e in rows], whole_log),
        )

    ahead: asyncio.Task[_Chunk] | None = None
    try:
        for n, lo in enumerate(bounds):
            chunk, made, differ, shown = await ahead if ahead is not None else await read(lo)
            ahead = asyncio.create_task(read(bounds[n + 1])) if n + 1 < len(bounds) else None
            lines = []
            seen: list[tuple[str | None, str | None]] = []
            for i, data, leaf, columns, stored in zip(
                chunk.indices, chunk.canonical, chunk.leaves, made, chunk.stored, strict=True
            ):
                region = columns.region
                if (
                    (region is not None and region.startswith(prefixes))
                    or i in shown
                    or export_shows(columns, stored, prefixes, data, leaf)
                ):
                    if i in differ:
                        line = {
                            "index": i,
                            "leaf_hash": leaf.hex(),
                            "entry": b64(data, newline=False).decode(),
                            "contradicted": contradicted_json(differ[i]),
                        }
                        lines.append(json.dumps(line).encode())
                    else:
                        lines.append(_LINE % (i, hexlify(leaf), b64(data, newline=False)))
                    if columns.household_id is not None:
                        seen.append((columns.household_id, columns.region))
                else:
                    lines.append(_REDACTED % (i, hexlify(leaf)))
            if lines:
                await households_shown(_pairs(seen))
                lines.append(b"")
                yield b"\n".join(lines)
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ahead


def mask_personal(view: Any) -> Any:
    """The decoded view with every personal field's value replaced by a mask."""
    if isinstance(view, dict):
        return {k: (MASK if k in PERSONAL_FIELDS else mask_personal(v)) for k, v in view.items()}
    if isinstance(view, list):
        return [mask_personal(v) for v in view]
    return view
