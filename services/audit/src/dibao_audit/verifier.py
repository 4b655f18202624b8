"""Offline verification of an audit-log export against its signed checkpoint.

Pure: it needs the export lines and the log's verifier key (``VerifierKey``), nothing of
the service. ``dibao_audit.verify_cli`` wraps it for files and for a running service.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dibao_audit.checkpoint import Checkpoint, CheckpointError, VerifierKey
from dibao_audit.entry import canonical_bytes, event_from_json
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
    roots = {h.tree_size: h.root_hash for h in history}
    last_good = 0
    expected = header.start
    for obj in entries:
        index = int(obj["index"])
        if index != expected:
            report.fail(f"expected entry {expected}, found {index}", expected)
            return report
        expected += 1
        stored = bytes.fromhex(obj["leaf_hash"]) if "leaf_hash" in obj else None
        if obj.get("redacted"):
            if stored is None:
                report.fail(f"redacted entry {index} has no leaf hash", index)
                return report
            leaf = stored
            report.redacted += 1
        else:
            try:
                leaf = leaf_hash(canonical_bytes(event_from_json(obj)))
            except (KeyError, ValueError, TypeError) as exc:
                report.fail(f"entry {index} is malformed: {exc}", index)
                leaf = b"\x00" * 32
            if stored is not None and stored != leaf:
                report.fail(f"entry {index}: content does not match its leaf hash", index)
            report.checked += 1
        if index in keep:
            report.recomputed_leaves[index] = leaf
        if from_zero:
            frontier.append(leaf)
            while checkpoints_due and checkpoints_due[0] == frontier.size:
                size = checkpoints_due.pop(0)
                if frontier.root() != roots[size]:
                    if report.suspect_range is None:
                        report.suspect_range = (last_good, size)
                        report.fail(f"the entries do not give the root of checkpoint {size}")
                else:
                    last_good = size
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
