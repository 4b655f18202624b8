"""Offline verification of an audit-log export against its signed checkpoint.

Pure: it needs the export lines and the log's verifier key (``VerifierKey``), nothing of
the service. ``dibao_audit.verify_cli`` wraps it for files and for a running service.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import struct
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dibao_audit.checkpoint import Checkpoint, CheckpointError, VerifierKey
from dibao_audit.entry import ENTRY_DOMAIN
from dibao_audit.merkle import (
    Frontier,
    ProofError,
    Range,
    leaf_hash,
    root_from_range,
    verify_consistency,
)

EXPORT_FORMAT = "dibao.audit.export.v1"


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """First line of an export: the slice ``[start, end)`` and what proves it."""

    origin: str
    start: int
    end: int
    tree_size: int
    checkpoint: str
    """Signed note of the covering checkpoint (``tree_size`` leaves)."""
    cover: dict[Range, bytes]
    """Hashes of the ranges outside the slice (see ``merkle.range_cover``)."""
    history: list[str] = field(default_factory=list)
    """Signed notes of earlier checkpoints, oldest first."""
    consistency: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    """Consistency proofs between consecutive checkpoints of ``history`` + the covering one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "origin": self.origin,
            "start": self.start,
            "end": self.end,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
            "cover": [[lo, hi, h.hex()] for (lo, hi), h in self.cover.items()],
            "history": self.history,
            "consistency": [
                [old, new, [p.hex() for p in proof]]
                for (old, new), proof in self.consistency.items()
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ExportHeader:
        if obj.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a {EXPORT_FORMAT} export")
        return cls(
            origin=str(obj["origin"]),
            start=int(obj["start"]),
            end=int(obj["end"]),
            tree_size=int(obj["tree_size"]),
            checkpoint=str(obj["checkpoint"]),
            cover={(int(lo), int(hi)): bytes.fromhex(h) for lo, hi, h in obj["cover"]},
            history=[str(n) for n in obj.get("history", [])],
            consistency={
                (int(a), int(b)): [bytes.fromhex(p) for p in proof]
                for a, b, proof in obj.get("consistency", [])
            },
        )


@dataclass(slots=True)
class Report:
    """Outcome of a verification; ``ok`` only when nothing at all was wrong."""

    checked: int = 0
    redacted: int = 0
    first_bad_index: int | None = None
    suspect_range: Range | None = None
    problems: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    recomputed_leaves: dict[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, message: str, index: int | None = None) -> None:
        self.problems.append(message)
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "redacted": self.redacted,
            "tree_size": self.checkpoint.tree_size if self.checkpoint else None,
            "root_hash": self.checkpoint.root_hash.hex() if self.checkpoint else None,
            "first_bad_index": self.first_bad_index,
            "suspect_range": list(self.suspect_range) if self.suspect_range else None,
            "problems": self.problems[:20],
        }


def read_export(lines: Iterable[str]) -> tuple[ExportHeader, Iterator[dict[str, Any]]]:
    """Split an export into its header and its entry objects (parsed lazily)."""
    it = iter(lines)
    header = ExportHeader.from_json(json.loads(next(it)))
    return header, (json.loads(line) for line in it if line.strip())


Scanned = tuple[int, bytes, bool, str | None]
"""One export line checked on its own: index, leaf hash, redacted, problem (if any)."""

_ZERO = b"\x00" * 32
_DOMAIN_PREFIX = struct.pack(">I", len(ENTRY_DOMAIN)) + ENTRY_DOMAIN


def scan_line(obj: dict[str, Any]) -> Scanned:
    """Recompute one line's leaf from its canonical entry and compare the stated hash."""
    index = int(obj["index"])
    stated = obj.get("leaf_hash")
    try:
        stored = bytes.fromhex(stated) if stated is not None else None
    except ValueError:
        return index, _ZERO, False, f"entry {index}: leaf hash is not hex"
    if obj.get("redacted"):
        if stored is None or len(stored) != 32:
            return index, _ZERO, True, f"redacted entry {index} has no leaf hash"
        return index, stored, True, None
    try:
        data = base64.b64decode(obj["entry"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        return index, _ZERO, False, f"entry {index} has no base64 entry"
    if not data.startswith(_DOMAIN_PREFIX):
        return index, _ZERO, False, f"entry {index} is not a canonical dibao.audit.entry.v1"
    leaf = leaf_hash(data)
    if stored is not None and stored != leaf:
        return index, leaf, False, f"entry {index}: content does not match its leaf hash"
    return index, leaf, False, None


def verify_export(
    header: ExportHeader,
    entries: Iterable[dict[str, Any]],
    key: VerifierKey,
    *,
    keep: Collection[int] = (),
) -> Report:
    """Check signatures, recompute every leaf and the root, check the consistency chain.

    The recomputed leaves of the indices in ``keep`` are kept on the report (for
    inclusion proofs asked of a running service).
    """
    return verify_scanned(header, (scan_line(obj) for obj in entries), key, keep=keep)


def verify_scanned(
    header: ExportHeader,
    scanned: Iterable[Scanned],
    key: VerifierKey,
    *,
    keep: Collection[int] = (),
) -> Report:
    """The tree part of :func:`verify_export`, over lines already scanned."""
    report = Report()
    try:
        cp = key.verify(header.checkpoint)
    except CheckpointError as exc:
        report.fail(f"covering checkpoint: {exc}")
        return report
    report.checkpoint = cp
    if cp.tree_size != header.tree_size or not header.start <= header.end <= cp.tree_size:
        report.fail("the export's range does not fit its checkpoint")
        return report
    history = _verify_history(header, key, cp, report)

    from_zero = header.start == 0
    collect = not (from_zero and header.end == cp.tree_size)
    frontier = Frontier()
    leaves: list[bytes] = []
    checkpoints_due = sorted(h.tree_size for h in history if h.tree_size <= header.end)
    next_due = checkpoints_due.pop(0) if checkpoints_due else -1
    roots = {h.tree_size: h.root_hash for h in history}
    last_good = 0
    expected = header.start
    push = frontier.push
    for index, leaf, redacted, problem in scanned:
        if index != expected:
            report.fail(f"expected entry {expected}, found {index}", expected)
            return report
        expected += 1
        if problem is not None:
            report.fail(problem, index)
        if redacted:
            report.redacted += 1
        else:
            report.checked += 1
        if index in keep and not redacted:
            report.recomputed_leaves[index] = leaf
        if from_zero:
            push(leaf)
            if frontier.size == next_due:
                if frontier.root() != roots[next_due]:
                    if report.suspect_range is None:
                        report.suspect_range = (last_good, next_due)
                        report.fail(f"the entries do not give the root of checkpoint {next_due}")
                else:
                    last_good = next_due
                next_due = checkpoints_due.pop(0) if checkpoints_due else -1
        if collect:
            leaves.append(leaf)
    if expected != header.end:
        report.fail(f"the export stops at {expected}, before {header.end}", expected)
        return report
    if not collect:
        root = frontier.root()
    else:
        try:
            root = root_from_range(header.start, leaves, cp.tree_size, header.cover)
        except KeyError as exc:
            report.fail(f"the export lacks the hash of range {exc}")
            return report
    if root != cp.root_hash:
        if report.suspect_range is None:
            report.suspect_range = (last_good if from_zero else header.start, header.end)
        report.fail("the entries do not give the checkpoint's root hash")
    return report


_FAST_HEAD = b'{"index": '
_FAST_LEAF = b', "leaf_hash": "'
_FAST_ENTRY = b'", "entry": "'
_FAST_TAIL = b'"}'


def scan_raw_line(line: bytes) -> Scanned:
    """:func:`scan_line` of one JSON line, with a fast path for the layout exports use.

    ``{"index": N, "leaf_hash": "<64 hex>", "entry": "<base64>"}`` exactly (hex and base64
    need no JSON escapes, so the slices are the values); anything else is parsed as JSON.
    """
    line = line.rstrip(b"\r\n")
    if line.startswith(_FAST_HEAD) and line.endswith(_FAST_TAIL):
        comma = line.find(b",", len(_FAST_HEAD))
        leaf_at = comma + len(_FAST_LEAF)
        entry_at = leaf_at + 64 + len(_FAST_ENTRY)
        digits = line[len(_FAST_HEAD) : comma]
        if (
            comma > 0
            and digits.isdigit()
            and line[comma:leaf_at] == _FAST_LEAF
            and line[leaf_at + 64 : entry_at] == _FAST_ENTRY
            and b'"' not in line[entry_at:-2]
        ):
            index = int(digits)
            try:
                stored = bytes.fromhex(line[leaf_at : leaf_at + 64].decode("ascii"))
                data = binascii.a2b_base64(line[entry_at:-2], strict_mode=True)
            except (ValueError, binascii.Error):
                return scan_line(json.loads(line))
            if not data.startswith(_DOMAIN_PREFIX):
                return index, _ZERO, False, f"entry {index} is not a canonical dibao.audit.entry.v1"
            leaf = leaf_hash(data)
            if stored != leaf:
                return index, leaf, False, f"entry {index}: content does not match its leaf hash"
            return index, leaf, False, None
    return scan_line(json.loads(line))


def _scan_chunk(path: str, start: int, stop: int) -> tuple[list[int], bytes, list[Scanned]]:
    """Scan the lines that begin in ``[start, stop)`` of an export file (a worker's share).

    Returns the indices, their leaves concatenated, and the lines that were redacted or
    had a problem (few, so they travel back as they are).
    """
    indices: list[int] = []
    leaves = bytearray()
    special: list[Scanned] = []
    with open(path, "rb") as fh:
        fh.seek(start - 1)
        fh.readline()  # finish the line the previous share owns
        while fh.tell() < stop:
            line = fh.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                item = scan_raw_line(line)
            except (ValueError, KeyError, TypeError) as exc:
                index = indices[-1] + 1 if indices else -1
                item = (index, _ZERO, False, f"line after entry {index - 1} is malformed: {exc}")
            indices.append(item[0])
            leaves += item[1]
            if item[2] or item[3] is not None:
                special.append(item)
    return indices, bytes(leaves), special


def verify_export_file(path: Path, key: VerifierKey, *, workers: int | None = None) -> Report:
    """Verify an export file, scanning its lines in parallel processes (one per CPU)."""
    with path.open("rb") as fh:
        header = ExportHeader.from_json(json.loads(fh.readline()))
        body_start = fh.tell()
    size = path.stat().st_size
    count = max(1, workers if workers is not None else (os.cpu_count() or 1))
    step = max(1, (size - body_start) // (count * 8))
    bounds = [*range(body_start, size, step), size]
    shares = [(str(path), a, b) for a, b in itertools.pairwise(bounds)]

    def scanned(results: Iterable[tuple[list[int], bytes, list[Scanned]]]) -> Iterator[Scanned]:
        for indices, leaves, special in results:
            odd = {item[0]: item for item in special}
            for k, index in enumerate(indices):
                found = odd.get(index)
                yield (
                    found
                    if found is not None
                    else (index, leaves[32 * k : 32 * k + 32], False, None)
                )

    if count == 1:
        return verify_scanned(header, scanned(_scan_chunk(*s) for s in shares), key)
    with ProcessPoolExecutor(count) as pool:
        results = pool.map(_scan_chunk, *zip(*shares, strict=True))
        return verify_scanned(header, scanned(results), key)


def _verify_history(
    header: ExportHeader, key: VerifierKey, covering: Checkpoint, report: Report
) -> list[Checkpoint]:
    verified: list[Checkpoint] = []
    for note in header.history:
        try:
            verified.append(key.verify(note))
        except CheckpointError as exc:
            report.fail(f"historical checkpoint: {exc}")
    chain = [*verified, covering]
    for old, new in itertools.pairwise(chain):
        proof = header.consistency.get((old.tree_size, new.tree_size))
        if proof is None:
            report.fail(f"no consistency proof from {old.tree_size} to {new.tree_size}")
            continue
        try:
            verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
        except ProofError as exc:
            report.fail(f"checkpoints {old.tree_size} and {new.tree_size} disagree: {exc}")
    return verified
