"""Offline verifier of the audit log: ``python -m dibao_audit.verify_cli``.

Given an export file (``GET /audit/export``) or the service's URL, it checks the covering
checkpoint's signature, recomputes every leaf and the root from the entries, checks the
consistency proof from the earlier checkpoint the header carries (v3: the one asked for
with ``from_size``, as ``from_size``, ``from_checkpoint`` and ``consistency_proof``; v2
exports carried it as ``from``, v1 exports every earlier one, and both still verify) and,
with a
URL, inclusion proofs of sampled entries; it prints a JSON report with the first bad index
and exits 1 when anything is wrong. Every source is verified against a pinned key,
``--vkey`` or ``--vkey-file`` (a C2SP vkey, from ``GET /audit/public-key`` at a time you
trust). With ``--url`` only, ``--trust-published-key`` uses the key the service publishes
now instead: that proves the log consistent with itself, not that the key is the log's
(the service vouches for its own signatures), so it warns on stderr, the report says
``key_pinned: false`` and ``ok: false`` (``self_consistent`` says whether anything was
found wrong), and the exit code is 3, never 0.

Several keys may be pinned (``--vkey`` repeated). The log's key is rotated by a hand-over
checkpoint that names the old and the new key and is signed by both (docs/adr/0018): the
verifier follows it from a pinned key, in every mode (the export's header carries the
log's hand-overs, each with its consistency proof; the database holds them), so a
checkpoint signed by a key not pinned passes only once a hand-over signed by a trusted
key introduced it, and one signed by a key that handed over before its size fails. The
report's ``keys`` names the keys pinned, those that signed what was accepted and the
hand-overs followed.

An export proves itself consistent, history included, but all of it is the service's
word: with its key it can sign a log rewritten from the first entry on. Give the
checkpoints you kept from earlier reads with ``--checkpoint FILE`` (repeatable): each must
verify with the key and be consistent with the export's checkpoint (from the export
itself, or with ``--url`` by a consistency proof the service must give); with
``--database-url`` the database's entries must give its root (a log smaller than it was
rolled back or truncated).

What no hash covers is checked too. The query columns (``ce_id``, ``ce_type``, ``ce_time``,
household, application, case, region, actor, regions) are made again from each entry's
record: with
``--url`` for every entry the export shows, against what ``GET /audit/entries`` serves
(it must list exactly the entries the export shows, with the columns their records give,
no stored column contradicted, and an ``appended_at`` within the signed times of the
checkpoints around it, as ``GET /audit/checkpoints`` lists them), and the decoded view of
every sampled entry; with
``--database-url`` (an operator's, read-only) every entry's stored columns, decoded view
and ``appended_at`` in the database, whatever its region (``dibao_audit.dbcheck``): an
entry whose region was edited is hidden from its region's auditors, so only a check that
sees every region finds it. It also holds the stored checkpoints to the ones the log
announced in its own entries (``CheckpointPublished``), so checkpoints deleted from the
table are named without a kept one, and runs amcheck on every B-tree index of the log's
tables (an index missing entries hides them from listings; ``index_check`` in the report
says when amcheck is not created or the login may not execute it). A database whose
migrations are not all run (an upgrade under way) is checked as far as its schema goes:
the report's ``schema`` is its revision and ``not_checked`` names each check left out and
the migration that brings it; below 0009 the check does not run (exit 2, naming the
revision and saying to run the migrations). In both,
``appended_at`` may not go back along the log by more than ``--clock-skew``.

With ``--witness-vkey`` (repeatable) and ``--witness-quorum k`` the log is held to its
witnesses (docs/adr/0024): the newest checkpoint, up to the one verified against, that k of
them cosigned is the witnessed one (proved consistent with it: its root from the entries,
or the service's consistency proof; with ``--export``, the export's own checkpoint or one
kept with ``--checkpoint``), and the tail after it, signed by the log's key alone, may be
at most ``--witness-max-lag`` entries (no bound by default) and ``--witness-max-lag-s``
seconds of the log's times (3600 by default); the report's ``witnesses`` says how far the
witnessed part reaches. A witness's line that does not verify on any checkpoint examined
is a problem.

Exit codes: 0 all is well; 1 a problem was found (the JSON report names it); 2 the
verification could not run (a file that cannot be read, a first line that is not an
export's header, no pinned key, the service refusing or unreachable), with the reason on
stderr; 3 nothing was found wrong, but against the key the service publishes
(``--trust-published-key``), not a pinned one: not a verification a script may take for
success.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from dibao_audit.checkpoint import Checkpoint, CheckpointError, KeyTrust, VerifierKey
from dibao_audit.cosignature import CosignatureError, WitnessKey, check_quorum
from dibao_audit.dbcheck import AppendedAtBounds, SchemaTooOldError, check_database
from dibao_audit.entry import (
    MalformedEntryError,
    RecordedEvent,
    canonical_bytes,
    header_block,
    parse_canonical,
)
from dibao_audit.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from dibao_audit.projection import (
    QUERY_COLUMNS,
    KeyReader,
    columns_of,
    decoded_view,
    key_reader,
    reused_id,
)
from dibao_audit.service import mask_personal
from dibao_audit.verifier import (
    DEFAULT_WITNESS_MAX_LAG_S,
    ExportHeader,
    Report,
    WitnessBound,
    check_witnessed,
    handover_notes,
    read_export,
    verify_export,
    verify_export_file,
)
from dibao_common.logged_errors import describe_exception
from dibao_common.messaging.envelope import EventRegistry

UNPINNED = 3
"""The exit code when nothing was found wrong against the key the service publishes
(``--trust-published-key``): a script testing for 0 does not take it for success."""


class CannotRunError(Exception):
    """The verification could not run (exit 2): nothing was found wrong, nothing checked."""


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_audit.verify_cli", description=__doc__.split("\n\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, help="an export file (JSON lines)")
    source.add_argument("--url", help="the audit service, e.g. http://127.0.0.1:8005")
    source.add_argument(
        "--database-url",
        help="the audit database (read-only): check every entry's stored columns, decoded "
        "view, appended_at and leaf, and every checkpoint, against the ones the log "
        "announced in its own entries too (needs --vkey)",
    )
    parser.add_argument(
        "--clock-skew",
        type=float,
        default=5.0,
        help="seconds an appended_at may lie outside its checkpoints' signed times, or "
        "before an earlier entry's (with --database-url and --url)",
    )
    parser.add_argument(
        "--vkey",
        action="append",
        default=[],
        help="the log's verifier key (C2SP vkey), pinned; repeatable. A checkpoint signed by "
        "another key passes only when a hand-over signed by a pinned key (or one a "
        "hand-over already introduced) and by that key names it (docs/adr/0018)",
    )
    parser.add_argument(
        "--vkey-file", type=Path, help="a file holding the verifier key(s), one a line"
    )
    parser.add_argument(
        "--trust-published-key",
        action="store_true",
        help="with --url and no --vkey: verify against the key the service publishes now "
        "(GET /audit/public-key). The service then vouches for its own signatures: the log "
        "is proved consistent with itself only. Warns; the report says key_pinned: false "
        "and ok: false, and the exit code is 3 (1 if a problem is found), never 0",
    )
    parser.add_argument(
        "--checkpoint",
        dest="kept",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint you kept: its signed note, or the JSON of GET "
        "/audit/checkpoints/latest; the log must be consistent with it (repeatable). A kept "
        "hand-over is followed like the log's: its old key signs nothing past it",
    )
    parser.add_argument(
        "--witness-vkey",
        action="append",
        default=[],
        help="a witness's key (C2SP cosignature/v1 vkey), repeatable: the newest checkpoint "
        "up to the one verified against (the export's, or with --database-url the latest "
        "stored) that carries cosignatures of --witness-quorum of them is the witnessed one, "
        "and the tail after it must be within --witness-max-lag(-s) (docs/adr/0024)",
    )
    parser.add_argument(
        "--witness-quorum",
        type=int,
        help="how many of the --witness-vkey witnesses must have cosigned (default: all)",
    )
    parser.add_argument(
        "--witness-max-lag",
        type=int,
        metavar="ENTRIES",
        help="entries the checkpoint verified against may lie past the witnessed one "
        "(default: no bound by entries; 0 with --witness-max-lag-s 0: it must be cosigned "
        "itself)",
    )
    parser.add_argument(
        "--witness-max-lag-s",
        type=float,
        default=DEFAULT_WITNESS_MAX_LAG_S,
        metavar="SECONDS",
        help="seconds between the witnessed checkpoint's signed time and that of the one "
        f"verified against, at most (default {DEFAULT_WITNESS_MAX_LAG_S:g}; both are the "
        "log's times)",
    )
    parser.add_argument("--token", help="bearer token of an auditor (with --url)")
    parser.add_argument("--start", type=int, default=0, help="first index (with --url)")
    parser.add_argument("--end", type=int, help="end index, exclusive (with --url)")
    parser.add_argument("--tree-size", type=int, help="checkpoint to verify against (--url)")
    parser.add_argument(
        "--from-size",
        type=int,
        help="a checkpoint you kept, by size: the export's header carries it and the "
        "consistency proof from it, so a saved export (--save) proves itself consistent "
        "with it offline (--url)",
    )
    parser.add_argument(
        "--inclusion-samples", type=int, default=32, help="entries whose proofs to ask for"
    )
    parser.add_argument("--save", type=Path, help="also write the fetched export here")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--workers", type=int, help="processes scanning an export file")
    return parser.parse_args(argv)


def _key(args: argparse.Namespace, client: httpx.Client | None) -> tuple[KeyTrust, bool]:
    if args.vkey or args.vkey_file:
        lines = args.vkey_file.read_text().split() if args.vkey_file else []
        return KeyTrust([VerifierKey.parse(v) for v in [*args.vkey, *lines]]), True
    if client is None:
        raise CannotRunError("an export is verified against a pinned key: give --vkey")
    if not args.trust_published_key:
        raise CannotRunError(
            "the service is verified against a pinned key: give --vkey or --vkey-file (the "
            "vkey of GET /audit/public-key, kept from a time you trust), or "
            "--trust-published-key to verify against the key it publishes now"
        )
    response = client.get("/audit/public-key")
    response.raise_for_status()
    key = VerifierKey.parse(response.json()["vkey"])
    sys.stderr.write(
        f"WARNING: NO PINNED KEY. Verifying against the key the service publishes now "
        f"({key.vkey()}): the service vouches for its own signatures, so this proves the "
        "log consistent with itself, not that it is the log you trust. Pin the key with "
        "--vkey.\n"
    )
    return KeyTrust([key]), False


def _kept_notes(paths: Sequence[Path]) -> list[str]:
    """The signed notes in the files given with ``--checkpoint``."""
    notes = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            note = json.loads(text).get("signed_note")
            if not isinstance(note, str):
                raise ValueError(f"{path}: a JSON checkpoint has a signed_note")
            text = note
        notes.append(text)
    return notes


def _kept_cosigned(paths: Sequence[Path]) -> list[str]:
    """The notes in the ``--checkpoint`` files with the cosignature lines they carry (a
    note file as it is; of a JSON checkpoint its ``cosigned_note``, else its
    ``signed_note``): candidates of the witnessed checkpoint (docs/adr/0024)."""
    notes = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            body = json.loads(text)
            note = body.get("cosigned_note") or body.get("signed_note")
            if not isinstance(note, str):
                raise ValueError(f"{path}: a JSON checkpoint has a signed_note")
            text = note
        notes.append(text)
    return notes


def _witnessed_online(
    client: httpx.Client,
    report: Report,
    witnesses: Sequence[WitnessKey],
    quorum: int | None,
) -> list[str]:
    """The cosigned notes ``GET /audit/checkpoints`` lists below the export's checkpoint,
    newest first, down to the first whose lines meet the quorum; that one proved
    consistent with the export's checkpoint by the service's consistency proof (the
    others only count against the quorum by a line that does not verify). Empty when the
    proof does not verify (a problem of ``report``)."""
    cp = report.checkpoint
    assert cp is not None
    required = len(witnesses) if quorum is None else quorum
    cursor = base64.urlsafe_b64encode(f"i:{cp.tree_size}".encode()).decode()
    params: dict[str, Any] = {"limit": _Listing.PAGE, "cursor": cursor}
    notes: list[str] = []
    while True:
        response = client.get("/audit/checkpoints", params=params)
        if response.status_code != 200:
            raise CannotRunError(f"checkpoints refused: {response.status_code} {response.text}")
        body = response.json()
        for item in body["items"]:
            note = str(item.get("cosigned_note") or item["signed_note"])
            notes.append(note)
            if not check_quorum(note, witnesses, required).met:
                continue
            try:
                head = report.trust.verify(note) if report.trust is not None else None
            except CheckpointError:
                continue  # not the log's: it counts for nothing
            if head is None or head.tree_size >= cp.tree_size:
                continue
            proof = client.get(
                "/audit/proofs/consistency",
                params={"from_size": head.tree_size, "to_size": cp.tree_size},
            )
            if proof.status_code != 200:
                report.fail(
                    f"no consistency proof from the witnessed checkpoint {head.tree_size} to "
                    f"{cp.tree_size}: the service answered {proof.status_code}"
                )
                return []
            try:
                verify_consistency(
                    head.tree_size,
                    cp.tree_size,
                    head.root_hash,
                    cp.root_hash,
                    [bytes.fromhex(p) for p in proof.json()["path"]],
                )
            except (ProofError, ValueError, KeyError, TypeError) as exc:
                report.fail(
                    f"the witnessed checkpoint {head.tree_size} is not consistent with "
                    f"{cp.tree_size}: {exc}"
                )
                return []
            return notes
        if body["next_cursor"] is None:
            return notes
        params["cursor"] = body["next_cursor"]


def _check_kept_online(client: httpx.Client, report: Report) -> None:
    """Prove the kept checkpoints the export could not place consistent with its own, by a
    consistency proof the service gives (from the smaller tree to the larger)."""
    cp = report.checkpoint
    assert cp is not None
    for head in report.unrelated:
        old, new = sorted((head, cp), key=lambda c: c.tree_size)
        response = client.get(
            "/audit/proofs/consistency",
            params={"from_size": old.tree_size, "to_size": new.tree_size},
        )
        if response.status_code != 200:
            report.fail(
                f"no consistency proof from {old.tree_size} to {new.tree_size} for the "
                f"checkpoint you kept: the service answered {response.status_code}"
            )
            continue
        path = [bytes.fromhex(p) for p in response.json()["path"]]
        try:
            verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, path)
        except ProofError as exc:
            report.fail(f"the checkpoint you kept ({head.tree_size}) is not consistent: {exc}")
        else:
            report.kept_checked += 1


def _lines(response: httpx.Response, save: IO[str] | None) -> Iterator[str]:
    for line in response.iter_lines():
        if save is not None:
            save.write(line + "\n")
        yield line


def served_leaf(body: dict[str, Any]) -> bytes:
    """The leaf of the record ``GET /audit/entries/{index}`` shows (its topic, partition,
    offset, record key, headers and payload), recomputed by the auditor."""
    return leaf_hash(canonical_bytes(served_record(body)))


def served_record(body: dict[str, Any]) -> RecordedEvent:
    """The record ``GET /audit/entries/{index}`` shows."""
    entry = body["entry"]
    key = body["record_key"]
    return RecordedEvent(
        topic=str(entry["topic"]),
        partition=int(entry["partition"]),
        offset=int(entry["offset"]),
        key=None if key is None else base64.b64decode(key, validate=True),
        headers=tuple(
            (str(name), base64.b64decode(value, validate=True)) for name, value in body["headers"]
        ),
        payload=base64.b64decode(body["payload"], validate=True),
    )


def _served_problems(served: dict[str, Any], event: RecordedEvent, reader: KeyReader) -> list[str]:
    """What is wrong with the columns the service serves of an entry (``EntryOut``): any
    stored column it says is contradicted, and any it serves that the record does not give
    (the log's ``ce_id`` may be the ``reused_id`` of the record's)."""
    problems = []
    contradicted = served.get("contradicted") or {}
    if contradicted:
        problems.append(
            f"stored {', '.join(sorted(contradicted))} contradicted by its record "
            f"(stored {json.dumps(contradicted, ensure_ascii=False)})"
        )
    made = columns_of(
        event.topic, event.partition, event.offset, event.headers, event.payload, reader
    )
    content = (event.topic, event.key, header_block(event.headers), event.payload)
    for name, now in zip(QUERY_COLUMNS, made, strict=True):
        shown = served.get(name)
        if name == "ce_time" and isinstance(shown, str):
            with contextlib.suppress(ValueError):
                shown = datetime.fromisoformat(shown)
        elif name == "regions" and isinstance(shown, list):
            shown = tuple(shown)
        if shown == now or (name == "ce_id" and shown == reused_id(made.ce_id, content)):
            continue
        problems.append(f"served {name} {shown!r} is not its record's ({now!r})")
    return problems


def _check_inclusion(
    client: httpx.Client, report: Report, indices: Sequence[int], registry: EventRegistry
) -> None:
    """Each sampled entry as the service serves it: its proof leads from the export's leaf to
    the checkpoint, what it shows (the record) is what that leaf hashes, and its columns and
    decoded view are the ones that record gives."""
    cp = report.checkpoint
    assert cp is not None
    for index in sorted(indices):
        leaf = report.recomputed_leaves.get(index)
        if leaf is None:
            continue  # redacted for this caller
        response = client.get(f"/audit/entries/{index}", params={"tree_size": cp.tree_size})
        if response.status_code != 200:
            report.fail(f"entry {index}: the service answered {response.status_code}", index)
            continue
        body = response.json()
        path = [bytes.fromhex(p) for p in body["proof"]["path"]]
        try:
            verify_inclusion(index, cp.tree_size, leaf, path, cp.root_hash)
        except ProofError as exc:
            report.fail(f"entry {index}: inclusion proof: {exc}", index)
        try:
            shown = served_leaf(body)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            report.fail(f"entry {index}: the service shows no readable record: {exc!r}", index)
            continue
        if shown != leaf:
            report.fail(
                f"entry {index}: the service shows a record that is not the entry it proves",
                index,
            )
            continue
        event = served_record(body)
        for problem in _served_problems(body["entry"], event, key_reader(registry)):
            report.fail(f"entry {index}: {problem}", index)
        view = decoded_view(event, registry)
        if body.get("decoded") != (mask_personal(view) if body.get("masked") else view):
            report.fail(f"entry {index}: the served decoded view is not its payload's", index)


def _signed_checkpoints(
    client: httpx.Client, key: KeyTrust, start: int, tree_size: int
) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints ``GET /audit/checkpoints`` lists from ``tree_size`` down to the last
    that does not go past ``start`` (those around the entries of ``[start, tree_size)``),
    each as its note says once verified with the key; and the problems with any listed."""
    heads: list[Checkpoint] = []
    problems: list[str] = []
    cursor = base64.urlsafe_b64encode(f"i:{tree_size + 1}".encode()).decode()
    params: dict[str, Any] = {"limit": _Listing.PAGE, "cursor": cursor}
    while True:
        response = client.get("/audit/checkpoints", params=params)
        if response.status_code != 200:
            raise CannotRunError(f"checkpoints refused: {response.status_code} {response.text}")
        body = response.json()
        for item in body["items"]:
            try:
                head = key.verify(item["signed_note"])
            except CheckpointError as exc:
                problems.append(f"listed checkpoint {item.get('tree_size')}: {exc}")
                continue
            if head.tree_size != int(item["tree_size"]):
                problems.append(
                    f"listed checkpoint {item['tree_size']} is signed for {head.tree_size}"
                )
            heads.append(head)
            if head.tree_size <= start:
                return heads, problems
        if body["next_cursor"] is None:
            return heads, problems
        params["cursor"] = body["next_cursor"]


class _Listing:
    """The entries ``GET /audit/entries`` serves in ``[start, end)``, read page by page beside
    the export: it must list exactly the entries the export shows, each with the columns
    its record (the export's canonical bytes) gives, no stored column contradicted, and an
    ``appended_at`` within the signed times of the checkpoints around it (``bounds``, as
    ``dbcheck`` bounds the database's)."""

    PAGE = 500

    def __init__(
        self,
        client: httpx.Client,
        start: int,
        end: int,
        reader: KeyReader,
        bounds: AppendedAtBounds,
    ) -> None:
        self._client, self._start, self._end, self._reader = client, start, end, reader
        self._bounds = bounds
        self._items = self._pages()
        self._next: dict[str, Any] | None = None
        self._done = False
        self.compared = 0
        self._problems: list[tuple[str, int]] = []

    def _pages(self) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": self.PAGE}
        if self._start > 0:
            params["cursor"] = base64.urlsafe_b64encode(f"i:{self._start - 1}".encode()).decode()
        while True:
            response = self._client.get("/audit/entries", params=params)
            if response.status_code != 200:
                raise CannotRunError(f"entries refused: {response.status_code} {response.text}")
            body = response.json()
            for item in body["items"]:
                if int(item["index"]) >= self._end:
                    return
                yield item
            if body["next_cursor"] is None:
                return
            params["cursor"] = body["next_cursor"]

    def _peek(self) -> dict[str, Any] | None:
        if self._next is None and not self._done:
            self._next = next(self._items, None)
            self._done = self._next is None
        return self._next

    def _unshown_before(self, index: int) -> None:
        while (item := self._peek()) is not None and int(item["index"]) < index:
            self._problems.append(
                (
                    f"entry {item['index']} is listed, but the export does not show it",
                    int(item["index"]),
                )
            )
            self._next = None

    def check(self, entries: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for obj in entries:
            yield obj
            if obj.get("redacted") or "entry" not in obj:
                continue
            try:
                index = int(obj["index"])
                event = parse_canonical(base64.b64decode(obj["entry"], validate=True))
            except (ValueError, TypeError, KeyError, OverflowError, MalformedEntryError):
                continue  # the export's own check names it
            self._unshown_before(index)
            item = self._peek()
            if item is None or int(item["index"]) != index:
                self._problems.append((f"entry {index} is shown, but not listed", index))
                continue
            self._next = None
            self.compared += 1
            for problem in _served_problems(item, event, self._reader):
                self._problems.append((f"entry {index}: {problem}", index))
            try:
                appended_at = datetime.fromisoformat(str(item["appended_at"]))
            except (KeyError, ValueError):
                self._problems.append((f"entry {index}: no readable appended_at", index))
                continue
            if (bad := self._bounds.problem(index, appended_at)) is not None:
                self._problems.append((bad, index))

    def finish(self, report: Report) -> None:
        """Report what the listing showed wrong (and what it listed past the export)."""
        self._unshown_before(self._end)
        for problem, index in self._problems:
            report.fail(problem, index)


def _check_answer(
    report: Report, header: ExportHeader, args: argparse.Namespace, latest: int | None
) -> None:
    """The export is the one asked for: its range, and its checkpoint (the one named, else
    one at least as recent as the latest the service announced just before, and no older
    than any checkpoint the auditor kept). A service that answers a shorter slice or an
    older tree verifies as well, over less."""
    if header.start != args.start:
        report.fail(f"asked for entries from {args.start}, the export starts at {header.start}")
    end = args.end if args.end is not None else header.tree_size
    if header.end != end:
        report.fail(f"asked for entries up to {end}, the export stops at {header.end}")
    if args.tree_size is not None:
        if header.tree_size != args.tree_size:
            report.fail(
                f"asked for checkpoint {args.tree_size}, the export is of {header.tree_size}"
            )
        return
    newest = max([latest or 0, *(c.tree_size for c in report.unrelated)])
    if header.tree_size < newest:
        report.fail(
            f"asked for the latest checkpoint, the export is of {header.tree_size}, older "
            f"than checkpoint {newest} (announced by the service, or kept)"
        )


def _witnesses(args: argparse.Namespace) -> list[WitnessKey]:
    try:
        keys = [WitnessKey.parse(v) for v in args.witness_vkey]
    except CosignatureError as exc:
        raise CannotRunError(f"--witness-vkey: {exc}") from exc
    if args.witness_quorum is not None and not 1 <= args.witness_quorum <= len(keys):
        raise CannotRunError(
            f"--witness-quorum is 1 to the number of --witness-vkey given ({len(keys)})"
        )
    if args.witness_max_lag is not None and args.witness_max_lag < 0:
        raise CannotRunError("--witness-max-lag is a number of entries, 0 or more")
    if not args.witness_max_lag_s >= 0:  # NaN too
        raise CannotRunError("--witness-max-lag-s is a number of seconds, 0 or more")
    return keys


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Verify as asked; the JSON report goes to ``out``. 0 when all is well, 1 when a
    problem was found, :data:`UNPINNED` (3) when none was against an unpinned key."""
    kept = _kept_notes(args.kept)
    witnesses = _witnesses(args)
    # The cosigned notes of the log verified held to the quorum (docs/adr/0024).
    witnessed: list[str] = []
    quorum = len(witnesses) if args.witness_quorum is None else args.witness_quorum
    bound = WitnessBound(args.witness_max_lag, args.witness_max_lag_s)
    if args.trust_published_key and args.url is None:
        raise CannotRunError("--trust-published-key applies to --url only: give --vkey")
    if args.export is not None:
        key, pinned = _key(args, None)
        report = verify_export_file(args.export, key, workers=args.workers, kept=kept)
        if witnesses:
            with args.export.open(encoding="utf-8") as lines:
                witnessed = [read_export(lines)[0].cosigned_checkpoint]
        for head in report.unrelated:
            report.fail(
                f"the checkpoint you kept ({head.tree_size}) cannot be checked against this "
                "export: it is larger, or inside a slice and not in its history (verify a "
                "whole export of a later checkpoint, or with --url)"
            )
        summary = report.summary()
    elif args.database_url is not None:
        if not (args.vkey or args.vkey_file):
            raise CannotRunError("the database is checked against a pinned key: give --vkey")
        key, pinned = _key(args, None)
        try:
            report = asyncio.run(
                check_database(
                    args.database_url,
                    key,
                    skew_s=args.clock_skew,
                    kept=kept,
                    witnesses=witnesses,
                    quorum=args.witness_quorum,
                )
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # A login refused, a database missing, a database that is not the log's: the
            # check did not run, which is no problem found in the log (exit 2, not 1).
            raise CannotRunError(_database_failure(args.database_url, exc)) from exc
        except SchemaTooOldError as exc:
            # Migrations not run yet (an upgrade under way): say which, not a missing table.
            where = _where(args.database_url)
            raise CannotRunError(f"the database {where} cannot be checked: {exc}") from exc
        witnessed = list(report.cosigned_notes)
        summary = report.summary()
    else:
        registry = EventRegistry.default()
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
            key, pinned = _key(args, client)
            params: dict[str, Any] = {"start": args.start}
            if args.end is not None:
                params["end"] = args.end
            if args.tree_size is not None:
                params["tree_size"] = args.tree_size
            latest = None
            if args.tree_size is None:
                found = client.get("/audit/checkpoints/latest")
                if found.status_code == 200:
                    latest = int(found.json()["tree_size"])
            since = args.from_size
            if since is not None:
                params["from_size"] = since
            save = args.save.open("w") if args.save else None
            try:
                with client.stream("GET", "/audit/export", params=params) as response:
                    if response.status_code != 200:
                        response.read()
                        raise CannotRunError(
                            f"export refused: {response.status_code} {response.text}"
                        )
                    lines = _lines(response, save)
                    header, entries = read_export(lines)
                    witnessed = [header.cosigned_checkpoint]
                    # The hand-overs first: the listed checkpoints may be the new key's.
                    refused = key.follow(handover_notes(header, kept))
                    # Unpredictable: a service that knew which entries are checked online
                    # could show the others otherwise.
                    rng = random.SystemRandom()
                    span = range(header.start, header.end)
                    sample = rng.sample(span, min(args.inclusion_samples, len(span)))
                    if header.end > header.start:
                        sample += [header.start, header.end - 1]
                    heads, listed_problems = _signed_checkpoints(
                        client, key, header.start, header.tree_size
                    )
                    bounds = AppendedAtBounds(heads, args.clock_skew)
                    listed = _Listing(
                        client, header.start, header.end, key_reader(registry), bounds
                    )
                    report = verify_export(
                        header,
                        listed.check(entries),
                        key,
                        keep=set(sample),
                        kept=kept,
                        listed=heads,
                    )
                    for problem in refused:  # followed before verify_export
                        report.fail(problem)
            finally:
                if save is not None:
                    save.close()
            if report.checkpoint is not None:
                _check_answer(report, header, args, latest)
                asked = None if since is None else (since, header.tree_size)
                if (
                    asked is not None
                    and since < header.tree_size
                    and (asked not in header.consistency)
                ):
                    report.fail(
                        f"asked for the consistency proof from checkpoint {since}, the "
                        "export carries none"
                    )
                _check_inclusion(client, report, sorted(set(sample)), registry)
                listed.finish(report)
                for problem in listed_problems:
                    report.fail(problem)
                if header.tree_size > 0 and header.tree_size not in {h.tree_size for h in heads}:
                    report.fail(f"checkpoint {header.tree_size} is not listed")
                _check_kept_online(client, report)
                if witnesses and not check_quorum(witnessed[0], witnesses, quorum).met:
                    witnessed += _witnessed_online(client, report, witnesses, quorum)
        summary = report.summary() | {
            "inclusion_proofs_checked": len(set(sample)),
            "columns_checked": listed.compared,
            "appended_at_checked": listed.compared,
        }
    if witnesses:
        summary["witnesses"] = check_witnessed(
            report,
            report.checkpoint,
            [*witnessed, *_kept_cosigned(args.kept)],
            witnesses,
            quorum,
            bound,
        )
        summary["ok"] = report.ok
        summary["problems"] = report.problems[:20]
    summary["key"] = key.pinned[0].vkey()
    summary["key_pinned"] = pinned
    if not pinned:
        summary["ok"] = False
        summary["self_consistent"] = report.ok
        summary["warning"] = (
            "no pinned key: verified against the key the service publishes, which proves "
            "the log consistent with itself only"
        )
    out.write(json.dumps(summary, indent=2) + "\n")
    if not report.ok:
        return 1
    return 0 if pinned else UNPINNED


def _where(url: str) -> str:
    """A database URL without its password."""
    scheme, _, rest = url.partition("://")
    login, at, place = rest.rpartition("@")
    return f"{scheme}://{login.split(':')[0]}@{place}" if at else url


def _database_failure(url: str, exc: Exception) -> str:
    """Why ``--database-url`` could not be read, naming the server and database (never a
    password) and what to give instead."""
    where = _where(url)
    hint = ""
    if isinstance(exc, asyncpg.UndefinedTableError):
        hint = " (is it the audit log's database? its tables are missing)"
    elif isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        hint = " (give a login of that server that may read the audit database)"
    # describe_exception: the server's DETAIL (which may quote a row) is withheld (ADR 0005).
    return f"the database {where} could not be read: {describe_exception(exc)}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return run(args, sys.stdout)
    except (CannotRunError, CheckpointError, ValueError, KeyError, OSError, httpx.HTTPError) as exc:
        sys.stderr.write(f"verification could not run: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
