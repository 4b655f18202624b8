"""Offline verification of an audit-log export against its signed checkpoint.

Pure: it needs the export lines and the verifier keys the auditor pinned (``VerifierKey``,
or several), nothing of the service. A checkpoint signed by a key the auditor did not pin
is accepted only when a hand-over the export carries introduces that key (``KeyTrust``,
docs/adr/0018). ``dibao_audit.verify_cli`` wraps it for files and for a running service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import os
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dibao_audit.checkpoint import Checkpoint, CheckpointError, KeyTrust, VerifierKey
from dibao_audit.cosignature import Quorum, WitnessKey, check_quorum, with_cosignatures
from dibao_audit.entry import ENTRY_DOMAIN
from dibao_audit.merkle import (
    Frontier,
    ProofError,
    Range,
    fold_subtrees,
    leaf_hash,
    perfect_subtrees,
    root_from_range,
    verify_consistency,
)

Keys = KeyTrust | VerifierKey | Sequence[VerifierKey]
"""The keys an auditor pinned (one or several), or a :class:`KeyTrust` already built."""

EXPORT_FORMAT = "dibao.audit.export.v3"
"""What the service writes: the covering checkpoint, the cover, and at most one earlier
checkpoint (the one the auditor names, ``from_size``) with the consistency proof from it:
a header of bounded size, whatever the log's age. The earlier checkpoint is named as the
request and ``GET /audit/proofs/consistency`` name it: ``from_size``, ``from_checkpoint``
and ``consistency_proof`` (all null when none was asked for)."""
EXPORT_FORMAT_V2 = "dibao.audit.export.v2"
"""1-2 Dec 2026: v3's content, the earlier checkpoint as one member ``from`` (``tree_size``,
``checkpoint``, ``proof``; null when none was asked for). Still read and verified."""
EXPORT_FORMAT_V1 = "dibao.audit.export.v1"
"""Until 1 Dec 2026: every earlier checkpoint and a consistency proof per consecutive pair
(a header that grew with the log's age). Still read and verified."""


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
    """Signed notes of earlier checkpoints, oldest first: in v2 at most one, the checkpoint
    the export was asked to prove itself consistent with (``from_size``)."""
    consistency: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)
    """Consistency proofs between consecutive checkpoints of ``history`` + the covering one."""
    format: str = EXPORT_FORMAT
    handovers: list[tuple[int, str, list[bytes]]] = field(default_factory=list)
    """The log's key hand-overs up to ``tree_size`` (docs/adr/0018), oldest first: each
    one's size, signed note and consistency proof to ``tree_size``. In v2 only, written
    when there is one (``handovers``); a verifier that predates them ignores the field."""
    cosignatures: list[str] = field(default_factory=list)
    """The witnesses' cosignature lines of ``checkpoint`` the log holds (docs/adr/0024),
    written when there are some (v2, v3): appended to ``checkpoint`` they make the cosigned
    note. A verifier that predates them ignores the field."""

    @property
    def cosigned_checkpoint(self) -> str:
        return with_cosignatures(self.checkpoint, self.cosignatures)

    def to_json(self) -> dict[str, Any]:
        head = {
            "format": self.format,
            "origin": self.origin,
            "start": self.start,
            "end": self.end,
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
            "cover": [[lo, hi, h.hex()] for (lo, hi), h in self.cover.items()],
        }
        if self.format == EXPORT_FORMAT_V1:
            return head | {
                "history": self.history,
                "consistency": [
                    [old, new, [p.hex() for p in proof]]
                    for (old, new), proof in self.consistency.items()
                ],
            }
        if len(self.history) > 1 or len(self.consistency) != len(self.history):
            raise ValueError(f"a {self.format} header names at most one earlier checkpoint")
        earlier: tuple[int, str, list[str]] | None = None
        if self.history:
            (((size, _), proof),) = self.consistency.items()
            earlier = (size, self.history[0], [p.hex() for p in proof])
        if self.cosignatures:
            head["cosignatures"] = list(self.cosignatures)
        if self.handovers:
            head["handovers"] = [
                {"tree_size": size, "checkpoint": note, "proof": [p.hex() for p in proof]}
                for size, note, proof in self.handovers
            ]
        if self.format == EXPORT_FORMAT_V2:
            start = None
            if earlier is not None:
                start = {"tree_size": earlier[0], "checkpoint": earlier[1], "proof": earlier[2]}
            return head | {"from": start}
        return head | {
            "from_size": None if earlier is None else earlier[0],
            "from_checkpoint": None if earlier is None else earlier[1],
            "consistency_proof": None if earlier is None else earlier[2],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ExportHeader:
        """The header of a parsed first line (v3, or v2 or v1 as older services wrote
        them); ValueError for anything else."""
        if not isinstance(obj, dict) or obj.get("format") not in _READ:
            raise ValueError(f"not a {EXPORT_FORMAT} (or v2, v1) export")
        try:
            return cls._from_json(obj)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"a damaged {obj['format']} header: {exc!r}") from exc

    @classmethod
    def _from_json(cls, obj: dict[str, Any]) -> ExportHeader:
        tree_size = int(obj["tree_size"])
        if obj["format"] == EXPORT_FORMAT_V1:
            history = [str(n) for n in obj.get("history", [])]
            consistency = {
                (int(a), int(b)): [bytes.fromhex(p) for p in proof]
                for a, b, proof in obj.get("consistency", [])
            }
            handovers = []
        else:
            handovers = [
                (int(h["tree_size"]), str(h["checkpoint"]), [bytes.fromhex(p) for p in h["proof"]])
                for h in obj.get("handovers", [])
            ]
            if obj["format"] == EXPORT_FORMAT_V2:
                start = obj["from"]
                earlier = None if start is None else (start["tree_size"], start["checkpoint"])
                proof = None if start is None else start["proof"]
            else:
                # Each member must be there: a header without them is damaged, not one
                # without an earlier checkpoint (which says null in all three).
                size, note = obj["from_size"], obj["from_checkpoint"]
                proof = obj["consistency_proof"]
                given = [v is not None for v in (size, note, proof)]
                if any(given) and not all(given):
                    raise ValueError(
                        "from_size, from_checkpoint and consistency_proof are all given or all null"
                    )
                earlier = None if size is None else (size, note)
            history, consistency = [], {}
            if earlier is not None and proof is not None:
                history = [str(earlier[1])]
                consistency = {(int(earlier[0]), tree_size): [bytes.fromhex(p) for p in proof]}
        return cls(
            origin=str(obj["origin"]),
            start=int(obj["start"]),
            end=int(obj["end"]),
            tree_size=tree_size,
            checkpoint=str(obj["checkpoint"]),
            cover={(int(lo), int(hi)): bytes.fromhex(h) for lo, hi, h in obj["cover"]},
            history=history,
            consistency=consistency,
            format=str(obj["format"]),
            handovers=handovers,
            cosignatures=[str(c) for c in obj.get("cosignatures", [])],
        )


_READ = (EXPORT_FORMAT, EXPORT_FORMAT_V2, EXPORT_FORMAT_V1)


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
    kept_checked: int = 0
    """Checkpoints the auditor kept (``kept``) found consistent with the export."""
    unrelated: list[Checkpoint] = field(default_factory=list)
    """Kept checkpoints, signature verified, that the export alone cannot relate to its own
    (larger than it, or inside a slice and not in its history): the caller must prove them
    consistent (a consistency proof from the service) or fail."""
    trust: KeyTrust | None = field(default=None, repr=False)
    """The keys pinned, used and handed over to (``keys`` in the summary)."""

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
            "kept_checkpoints_checked": self.kept_checked,
            "problems": self.problems[:20],
        } | ({"keys": self.trust.summary()} if self.trust is not None else {})


DEFAULT_WITNESS_MAX_LAG_S = 3600.0
"""The default bound on the unwitnessed tail's time (``--witness-max-lag-s``): an hour
of the log's own times between the newest checkpoint meeting the witnesses' quorum and
the checkpoint verified against (docs/adr/0024, 3 Dec 2026)."""


@dataclass(frozen=True, slots=True)
class WitnessBound:
    """How far the checkpoint verified against may lie past the newest one the witnesses'
    quorum cosigned: at most ``max_entries`` entries (None: any number) and ``max_s``
    seconds of the two checkpoints' signed times (None: any time). Both 0: the checkpoint
    verified against must be cosigned itself."""

    max_entries: int | None = None
    max_s: float | None = DEFAULT_WITNESS_MAX_LAG_S


def check_witnessed(
    report: Report,
    latest: Checkpoint | None,
    candidates: Sequence[str],
    witnesses: Sequence[WitnessKey],
    quorum: int | None,
    bound: WitnessBound | None = None,
) -> dict[str, Any]:
    """Hold the log to k (``quorum``; all when None) of the ``witnesses`` (docs/adr/0024):
    find the newest checkpoint up to ``latest`` (the one verified against) whose
    cosignatures meet the quorum, and require the tail from it to ``latest`` to be within
    ``bound``. The quorum's summary, with ``witnessed_size`` and the tail.

    ``candidates`` are cosigned notes (a checkpoint's note with the witnesses' lines the
    log holds appended), each already proved by the caller to be of the log verified
    (consistent with ``latest``: its root recomputed from the entries, or a consistency
    proof checked); a note that does not verify with the report's keys, or is larger than
    ``latest``, is not counted. They are examined newest first down to the first that
    meets the quorum; a trusted witness's line that does not verify on any examined one is
    a problem (a forged cosignature fails the verification, whatever an older one shows).
    """
    required = len(witnesses) if quorum is None else quorum
    limits = bound if bound is not None else WitnessBound()
    out: dict[str, Any] = {
        "required": required,
        "met": False,
        "witnessed_size": None,
        "tree_size": None if latest is None else latest.tree_size,
        "max_lag_entries": limits.max_entries,
        "max_lag_s": limits.max_s,
    }
    if latest is None:
        report.fail("no checkpoint to hold to the witnesses' quorum")
        return out | {"cosigned_by": [], "missing": [k.vkey() for k in witnesses]}
    trust = report.trust
    heads: dict[int, tuple[Checkpoint, str]] = {}
    for note in candidates:
        try:
            head = trust.verify(note) if trust is not None else None
        except CheckpointError:
            continue  # the verification itself names a checkpoint that does not verify
        if head is None or head.tree_size > latest.tree_size:
            continue
        if head.tree_size in heads:  # the same checkpoint again (kept, listed): its lines too
            note = _merged(heads[head.tree_size][1], note)
        heads[head.tree_size] = (head, note)
    first: Quorum | None = None
    found: tuple[Checkpoint, Quorum] | None = None
    for size in sorted(heads, reverse=True):
        head, note = heads[size]
        result = check_quorum(note, witnesses, required)
        for problem in result.problems:
            report.fail(f"checkpoint {size}: {problem}")
        if first is None and size == latest.tree_size:
            first = result
        if result.met:
            found = (head, result)
            break
    if found is None:
        shown = first if first is not None else Quorum(required, [], [], list(witnesses))
        report.fail(
            f"checkpoint {latest.tree_size} is cosigned by {len(shown.cosigned)} of the "
            f"witnesses given, fewer than the {required} required (missing: "
            f"{', '.join(k.name for k in shown.missing)}), and no earlier checkpoint of the "
            "log verified is"
        )
        return out | shown.summary() | {"met": False, "tail": "nothing of the log is witnessed"}
    head, result = found
    lag = latest.tree_size - head.tree_size
    lag_s = (latest.signed_at - head.signed_at).total_seconds()
    if lag == 0:
        tail = f"witnessed at its full size {latest.tree_size}"
    else:
        tail = (
            f"witnessed up to size {head.tree_size} of {latest.tree_size}; the "
            f"{head.tree_size}..{latest.tree_size} tail ({lag} entries, {lag_s:g} s of the "
            "log's times) is signed by the log's key alone"
        )
    over = []
    if limits.max_entries is not None and lag > limits.max_entries:
        over.append(f"{lag} entries, more than the {limits.max_entries} allowed")
    if limits.max_s is not None and lag_s > limits.max_s:
        over.append(f"{lag_s:g} s, more than the {limits.max_s:g} s allowed")
    if over:
        report.fail(f"{tail}: the unwitnessed tail is {' and '.join(over)}")
    return (
        out
        | result.summary()
        | {
            "met": not over,
            "witnessed_size": head.tree_size,
            "unwitnessed_entries": lag,
            "unwitnessed_s": lag_s,
            "tail": tail,
        }
    )


def _merged(note: str, other: str) -> str:
    """``note`` with the signature lines of ``other`` it lacks, when both are of one body
    (else ``note``: another body of the same size is a fork, which the verification names)."""
    body, _, lines = note.partition("\n\n")
    other_body, _, other_lines = other.partition("\n\n")
    if body != other_body:
        return note
    have = lines.splitlines()
    return with_cosignatures(note, [line for line in other_lines.splitlines() if line not in have])


def verified_kept(key: Keys, kept: Sequence[str], report: Report) -> list[Checkpoint]:
    """The checkpoints an auditor kept (signed notes) that verify with ``key`` (a key
    trusted at their size); each one that does not is a failure of ``report``."""
    trust = KeyTrust.of(key)
    heads: list[Checkpoint] = []
    for note in kept:
        try:
            heads.append(trust.verify(note))
        except CheckpointError as exc:
            report.fail(f"kept checkpoint: {exc}")
    return heads


def handover_notes(header: ExportHeader, kept: Sequence[str]) -> list[str]:
    """The notes whose hand-overs a verifier follows: the export's, and those among the
    checkpoints the auditor kept. A kept hand-over retires its old key where the log
    shown omits it (whoever holds the old seed after its hand-over cannot show a log
    without it that goes on under the old key)."""
    return [*(note for _, note, _ in header.handovers), *kept]


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
    try:
        index = int(obj["index"])
    except OverflowError as exc:  # 1e400 is a JSON number too
        raise ValueError(f"index {obj['index']} is not an entry's") from exc
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
    contradicted = obj.get("contradicted")
    if contradicted:
        names = ", ".join(sorted(contradicted)) if isinstance(contradicted, dict) else "?"
        return (
            index,
            leaf,
            False,
            f"entry {index}: stored {names} contradicted by its record, the export says "
            f"(stored {json.dumps(contradicted, ensure_ascii=False)})",
        )
    return index, leaf, False, None


def _scan_objects(entries: Iterable[dict[str, Any]], previous: int) -> Iterator[Scanned]:
    """:func:`scan_line` of each object; one that names no usable index is a problem named
    by the index before it (``previous``), as in a file."""
    for obj in entries:
        try:
            item = scan_line(obj)
        except (ValueError, KeyError, TypeError) as exc:
            item = (previous + 1, _ZERO, False, f"line after entry {previous} is malformed: {exc}")
        previous = item[0]
        yield item


Share = tuple[int, int, tuple[int, int] | None, bytes, list[Scanned]]
"""Consecutive lines scanned: first index, count, first gap, leaves concatenated, and the
lines that were redacted or had a problem (few, so they travel as they are)."""


def _share_of(items: Iterable[Scanned]) -> Share:
    leaves = bytearray()
    special: list[Scanned] = []
    first = following = -1
    gap: tuple[int, int] | None = None
    count = 0
    for item in items:
        index = item[0]
        if count == 0:
            first = following = index
        if index != following and gap is None:
            gap = (following, index)
        following = index + 1
        count += 1
        leaves += item[1]
        if item[2] or item[3] is not None:
            special.append(item)
    return first, count, gap, bytes(leaves), special


def verify_export(
    header: ExportHeader,
    entries: Iterable[dict[str, Any]],
    key: Keys,
    *,
    keep: Collection[int] = (),
    kept: Sequence[str] = (),
    listed: Sequence[Checkpoint] = (),
) -> Report:
    """Check signatures, recompute every leaf and the root, check the consistency chain.

    The recomputed leaves of the indices in ``keep`` are kept on the report (for
    inclusion proofs asked of a running service). ``kept`` are signed notes of checkpoints
    the auditor kept from earlier: each must verify and be consistent with the export's
    (see :func:`verify_shares`); ``listed`` are the service's own checkpoints, verified.
    """
    share = _share_of(_scan_objects(entries, header.start - 1))
    return verify_shares(header, [share], key, keep=keep, kept=kept, listed=listed)


def tree_levels(leaves: bytes) -> list[bytes]:
    """Every complete level of the tree over concatenated leaf hashes (level 0 first)."""
    sha256 = hashlib.sha256
    levels = [leaves]
    current = leaves
    while len(current) >= 64:
        end = len(current) - len(current) % 64
        current = b"".join(
            [sha256(b"\x01" + current[i : i + 64]).digest() for i in range(0, end, 64)]
        )
        levels.append(current)
    return levels


def verify_shares(
    header: ExportHeader,
    shares: Iterable[Share],
    key: Keys,
    *,
    keep: Collection[int] = (),
    build_levels: Callable[[bytes], list[bytes]] = tree_levels,
    kept: Sequence[str] = (),
    listed: Sequence[Checkpoint] = (),
) -> Report:
    """The tree part of :func:`verify_export`, over lines already scanned, share by share.

    Everything the export holds is the service's word, its history of checkpoints too: a
    service holding the key can sign a rewritten log from its first entry on. Only a
    checkpoint kept from before (``kept``, signed notes) shows that. Each must verify with
    ``key``; one whose size the export names (its history or its own) must have the same
    root, and one within a whole export must be the root of its first leaves. The others
    (larger than the export's, or inside a slice) go to ``report.unrelated``.

    ``listed`` are checkpoints the service lists (``GET /audit/checkpoints``), signature
    verified: one of a size the export names must have its root, and each the export's
    leaves reach must be the root of the first ones (two roots signed for one size are two
    logs under one key): within a whole export, and (since 1 Dec 2026) within a slice
    those larger than its start and not past its end, from the cover's hashes left of the
    slice and its leaves. Those a slice does not reach are not checked.

    Every signature is checked against the keys ``key`` pinned and those the export's
    hand-overs (and any among ``kept``) introduce from them (:class:`KeyTrust`); each
    hand-over the export carries must be consistent with the export's checkpoint (its
    proof), and within a whole export the root of the first leaves.
    """
    trust = KeyTrust.of(key)
    report = Report(trust=trust)
    for refused in trust.follow(handover_notes(header, kept)):
        report.fail(refused)
    kept_heads = verified_kept(trust, kept, report)
    try:
        cp = trust.verify(header.checkpoint)
    except CheckpointError as exc:
        report.fail(f"covering checkpoint: {exc}")
        return report
    report.checkpoint = cp
    if cp.tree_size != header.tree_size or not 0 <= header.start <= header.end <= cp.tree_size:
        report.fail("the export's range does not fit its checkpoint")
        return report
    history = _verify_history(header, trust, cp, report)
    history += _verify_handovers(header, trust, cp, report)
    signed = {h.tree_size: h.root_hash for h in history} | {cp.tree_size: cp.root_hash}
    unplaced: list[Checkpoint] = []
    for head in kept_heads:
        if head.tree_size not in signed:
            unplaced.append(head)
        elif signed[head.tree_size] != head.root_hash:
            report.fail(
                f"the log now signs another root for size {head.tree_size} than the "
                "checkpoint you kept: its history was rewritten"
            )
        else:
            report.kept_checked += 1
    for head in listed:
        if head.tree_size in signed and signed[head.tree_size] != head.root_hash:
            report.fail(
                f"the service lists checkpoint {head.tree_size} with another root than the "
                "export's: two logs are signed with its key"
            )

    expected = header.start
    parts: list[bytes] = []
    special: list[Scanned] = []
    for first, count, gap, leaves, odd in shares:
        if count == 0:
            continue
        if first != expected:
            report.fail(f"expected entry {expected}, found {first}", expected)
            return report
        if gap is not None:
            report.fail(f"expected entry {gap[0]}, found {gap[1]}", gap[0])
            return report
        expected += count
        parts.append(leaves)
        special.extend(odd)
    if expected != header.end:
        report.fail(f"the export stops at {expected}, before {header.end}", expected)
        return report
    buffer = b"".join(parts)
    redacted = set()
    for index, _, is_redacted, problem in special:
        if problem is not None:
            report.fail(problem, index)
        if is_redacted:
            redacted.add(index)
    report.redacted = len(redacted)
    report.checked = header.end - header.start - len(redacted)
    for index in keep:
        if header.start <= index < header.end and index not in redacted:
            at = 32 * (index - header.start)
            report.recomputed_leaves[index] = buffer[at : at + 32]

    if header.start == 0 and header.end == cp.tree_size:
        levels = build_levels(buffer)

        def root_of_size(size: int) -> bytes:
            return fold_subtrees(
                [levels[lv][32 * i : 32 * i + 32] for lv, i in perfect_subtrees(0, size)]
            )

        last_good = 0
        for earlier in sorted(history, key=lambda h: h.tree_size):
            if root_of_size(earlier.tree_size) == earlier.root_hash:
                last_good = earlier.tree_size
            elif report.suspect_range is None:
                report.suspect_range = (last_good, earlier.tree_size)
                report.fail(f"the entries do not give the root of checkpoint {earlier.tree_size}")
        root = root_of_size(cp.tree_size)
        suspect = (last_good, header.end)
        for head in unplaced:
            if head.tree_size > cp.tree_size:
                report.unrelated.append(head)
            elif root_of_size(head.tree_size) != head.root_hash:
                report.fail(
                    f"the entries do not give the root of the checkpoint you kept "
                    f"({head.tree_size}): the log was rewritten since"
                )
            else:
                report.kept_checked += 1
        for head in listed:
            if (
                head.tree_size not in signed
                and 0 < head.tree_size <= cp.tree_size
                and root_of_size(head.tree_size) != head.root_hash
            ):
                report.fail(_not_listed_root(head.tree_size))
    else:
        report.unrelated.extend(unplaced)
        leaves_list = [buffer[i : i + 32] for i in range(0, len(buffer), 32)]
        try:
            root = root_from_range(header.start, leaves_list, cp.tree_size, header.cover)
        except KeyError as exc:
            report.fail(f"the export lacks the hash of range {exc}")
            return report
        suspect = (header.start, header.end)
        inside = [
            h
            for h in listed
            if header.start < h.tree_size <= header.end and h.tree_size not in signed
        ]
        _check_listed_in_slice(report, header, buffer, inside)
    if root != cp.root_hash:
        if report.suspect_range is None:
            report.suspect_range = suspect
        report.fail("the entries do not give the checkpoint's root hash")
    return report


def _not_listed_root(size: int) -> str:
    return (
        f"the entries do not give the root of checkpoint {size} the service lists: two "
        "logs are signed with its key, or this one was rewritten since"
    )


def _check_listed_in_slice(
    report: Report, header: ExportHeader, leaves: bytes, inside: Sequence[Checkpoint]
) -> None:
    """Each checkpoint of ``inside`` (sizes in ``(start, end]``) must be the root of the
    first leaves: the complete subtrees left of the slice are in the cover (the tree's
    recursion tiles ``[0, start)`` with them, whatever its size), the rest are the slice's
    leaves, pushed onto a frontier up to each size in turn (about one hash a leaf, up to
    the largest)."""
    if not inside:
        return
    cover = header.cover
    try:
        frontier = Frontier.restore(
            header.start, lambda s: cover[(s[1] << s[0], (s[1] + 1) << s[0])]
        )
    except KeyError as exc:
        report.fail(f"the export lacks the hash of range {exc}")
        return
    push = frontier.push
    at = 0
    for head in sorted(inside, key=lambda h: h.tree_size):
        stop = 32 * (head.tree_size - header.start)
        for i in range(at, stop, 32):
            push(leaves[i : i + 32])
        at = stop
        if frontier.root() != head.root_hash:
            report.fail(_not_listed_root(head.tree_size))


_FAST_HEAD = b'{"index": '
_FAST_LEAF = b', "leaf_hash": "'
_FAST_ENTRY = b'", "entry": "'
_FAST_TAIL = b'"}'


def scan_raw_line(line: bytes) -> Scanned:
    """:func:`scan_line` of one JSON line, with a fast path for the layout exports use.

    ``{"index": N, "leaf_hash": "<64 hex>", "entry": "<base64>"}`` exactly (hex and base64
    need no JSON escapes, so the slices are the values); anything else is parsed as JSON.
    Written for speed: no copies of the line but the base64 it decodes.
    """
    end = len(line)
    while end and line[end - 1] in (10, 13):
        end -= 1
    head = len(_FAST_HEAD)
    if line.startswith(_FAST_HEAD) and line.startswith(_FAST_TAIL, end - 2):
        comma = line.find(b",", head, head + 24)
        leaf_at = comma + len(_FAST_LEAF)
        entry_at = leaf_at + 64 + len(_FAST_ENTRY)
        body_end = end - 2
        if (
            comma > head
            and line.startswith(_FAST_LEAF, comma)
            and line.startswith(_FAST_ENTRY, leaf_at + 64)
            and line.find(b'"', entry_at, body_end) == -1
            and line[head:comma].isdigit()
        ):
            index = int(line[head:comma])
            try:
                stored = bytes.fromhex(line[leaf_at : leaf_at + 64].decode("ascii"))
                data = binascii.a2b_base64(memoryview(line)[entry_at:body_end], strict_mode=True)
            except (ValueError, binascii.Error):
                return scan_line(json.loads(line))
            if not data.startswith(_DOMAIN_PREFIX):
                return index, _ZERO, False, f"entry {index} is not a canonical dibao.audit.entry.v1"
            leaf = leaf_hash(data)
            if stored != leaf:
                return index, leaf, False, f"entry {index}: content does not match its leaf hash"
            return index, leaf, False, None
    return scan_line(json.loads(line))


def _scan_raw_lines(lines: Iterable[bytes], previous: int) -> Iterator[Scanned]:
    """:func:`scan_raw_line` of each line; a line that is not even JSON is named by the
    index before it (``previous``)."""
    for line in lines:
        if line in (b"\n", b"\r\n", b""):
            continue
        try:
            item = scan_raw_line(line)
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"line after entry {previous} is malformed: {exc}"
            item = (previous + 1, _ZERO, False, problem)
        previous = item[0]
        yield item


_B64_PREFIX = base64.b64encode(_DOMAIN_PREFIX)  # 24 bytes: whole base64 quanta
_STRUCTURE = ((1, b"index"), (3, b"leaf_hash"), (4, b": "), (6, b", "), (7, b"entry"), (8, b": "))
_sha256 = hashlib.sha256
_a2b = binascii.a2b_base64


def _scan_block(block: bytes) -> Share | None:
    """Lines of the exact layout exports use, checked a block at a time; None when the
    block holds anything else (the caller then scans it line by line).

    Split at the quotes, every line ``{"index": N, "leaf_hash": "H", "entry": "B"}`` is
    the same ten pieces, so the layout, the consecutive indices and the stated leaves are
    checked with a few comparisons over the whole block (hex and base64 hold no quote or
    escape); only the base64 decoding and the hashing are done per line. A stated leaf
    that differs sends the block to the line-by-line path, which names the entry.
    """
    parts = block.split(b'"')
    n = (len(parts) - 1) // 10
    if n == 0 or len(parts) != 10 * n + 1 or parts[0] != b"{" or parts[-1] != b"}\n":
        return None
    if parts[10:-1:10].count(b"}\n{") != n - 1:
        return None
    for at, piece in _STRUCTURE:
        if parts[at::10].count(piece) != n:
            return None
    first_index = parts[2][2:-2]
    if not first_index.isdigit():
        return None
    first = int(first_index)
    if parts[2::10] != [b": %d, " % i for i in range(first, first + n)]:
        return None
    bodies = parts[9::10]
    try:
        entries = [_a2b(body, strict_mode=True) for body in bodies]
    except binascii.Error:
        return None
    if b'"'.join([b"", *bodies]).count(b'"' + _B64_PREFIX) != n:
        return None  # not every entry is a dibao.audit.entry.v1
    leaves = b"".join([_sha256(b"\x00" + entry).digest() for entry in entries])
    stated = parts[5::10]
    if set(map(len, stated)) != {64} or leaves.hex().encode() != b"".join(stated):
        return None
    return first, n, None, leaves, []


_BLOCK_BYTES = 4 << 20


def _line_start(fh: BinaryIO, end: int, floor: int) -> int:
    """Where the line ending before byte ``end`` begins (not before ``floor``)."""
    at = end - 1  # the line's own newline, or the file's last byte
    while at > floor:
        size = min(1 << 16, at - floor)
        fh.seek(at - size)
        cut = fh.read(size).rfind(b"\n")
        if cut != -1:
            return at - size + cut + 1
        at -= size
    return floor


def _index_before(fh: BinaryIO, position: int, body_start: int, first: int) -> int:
    """The index of the entry on the line before byte ``position`` (a share's first line):
    read back from the file, so that a malformed line opening a share is named by the
    entry it follows, as everywhere else. Blank lines are skipped; a line naming no index
    counts as the entry after the one before it; ``first - 1`` before the first line."""
    skipped = 0
    end = position
    while end > body_start:
        begin = _line_start(fh, end, body_start)
        fh.seek(begin)
        line = fh.read(end - begin)
        end = begin
        if not line.strip():
            continue
        try:
            return int(json.loads(line)["index"]) + skipped
        except (ValueError, KeyError, TypeError, OverflowError):
            skipped += 1
    return first - 1 + skipped


def _scan_chunk(path: str, start: int, stop: int, body_start: int, first: int) -> Share:
    """Scan the lines that begin in ``[start, stop)`` of an export file (a worker's share;
    its lines begin at ``body_start``, the first with entry ``first``)."""
    with open(path, "rb") as fh:
        fh.seek(start - 1)
        fh.readline()  # finish the line the previous share owns
        position = fh.tell()
        data = fh.read(max(0, stop - position)) if position < stop else b""
        if data and not data.endswith(b"\n"):
            data += fh.readline()  # the last line began in this share
        previous = _index_before(fh, position, body_start, first) if data else first - 1
    shares: list[Share] = []
    at = 0
    while at < len(data):
        cut = data.find(b"\n", at + _BLOCK_BYTES)
        end = len(data) if cut == -1 else cut + 1
        block = data[at:end]
        share = _scan_block(block)
        if share is None:
            share = _share_of(_scan_raw_lines(block.splitlines(keepends=True), previous))
        if share[1]:
            shares.append(share)
            previous = share[0] + share[1] - 1
        at = end
    return _joined(shares)


def _joined(shares: list[Share]) -> Share:
    """Consecutive shares as one (the first gap kept: inside one, or between two)."""
    if not shares:
        return -1, 0, None, b"", []
    first, count, gap, leaves, special = shares[0]
    parts = [leaves]
    special = list(special)
    for f, c, g, lv, sp in shares[1:]:
        if gap is None:
            gap = (first + count, f) if f != first + count else g
        count += c
        parts.append(lv)
        special.extend(sp)
    return first, count, gap, b"".join(parts), special


def verify_export_file(
    path: Path, key: Keys, *, workers: int | None = None, kept: Sequence[str] = ()
) -> Report:
    """Verify an export file, scanning its lines in parallel processes (one per CPU)."""
    with path.open("rb") as fh:
        header = ExportHeader.from_json(json.loads(fh.readline()))
        body_start = fh.tell()
    size = path.stat().st_size
    count = max(1, workers if workers is not None else (os.cpu_count() or 1))
    step = max(1, (size - body_start) // (count * 8))
    bounds = [*range(body_start, size, step), size]
    shares = [(str(path), a, b, body_start, header.start) for a, b in itertools.pairwise(bounds)]

    if count == 1:
        return verify_shares(header, [_scan_chunk(*share) for share in shares], key, kept=kept)
    with ProcessPoolExecutor(count) as pool:
        results = pool.map(_scan_chunk, *zip(*shares, strict=True))
        return verify_shares(
            header,
            results,
            key,
            build_levels=lambda leaves: _levels_in(pool, leaves),
            kept=kept,
        )


_BLOCK_LEVEL = 16  # blocks of 65,536 leaves: each worker builds the levels of whole blocks


def _levels_in(pool: ProcessPoolExecutor, leaves: bytes) -> list[bytes]:
    """:func:`tree_levels` with the aligned blocks' levels built in the pool."""
    size = 32 << _BLOCK_LEVEL
    if len(leaves) <= size:
        return tree_levels(leaves)
    blocks = list(
        pool.map(tree_levels, [leaves[i : i + size] for i in range(0, len(leaves), size)])
    )
    levels = [
        b"".join(block[level] for block in blocks if level < len(block))
        for level in range(_BLOCK_LEVEL + 1)
    ]
    return levels + tree_levels(levels[_BLOCK_LEVEL])[1:]


def _verify_handovers(
    header: ExportHeader, trust: KeyTrust, covering: Checkpoint, report: Report
) -> list[Checkpoint]:
    """The export's hand-over checkpoints that verify (their keys already followed), each
    proved consistent with ``covering``: trust moves only along the one log."""
    verified: list[Checkpoint] = []
    for size, note, proof in header.handovers:
        try:
            head = trust.verify(note)
        except CheckpointError as exc:
            report.fail(f"hand-over checkpoint {size}: {exc}")
            continue
        if head.tree_size != size or size > covering.tree_size:
            report.fail(f"hand-over checkpoint {size} is signed for {head.tree_size}")
            continue
        try:
            verify_consistency(size, covering.tree_size, head.root_hash, covering.root_hash, proof)
        except ProofError as exc:
            report.fail(
                f"the hand-over at {size} and checkpoint {covering.tree_size} disagree: {exc}"
            )
            continue
        verified.append(head)
    return verified


def _verify_history(
    header: ExportHeader, trust: KeyTrust, covering: Checkpoint, report: Report
) -> list[Checkpoint]:
    verified: list[Checkpoint] = []
    for note in header.history:
        try:
            verified.append(trust.verify(note))
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
