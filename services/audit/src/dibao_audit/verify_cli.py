"""Offline verifier of the audit log: ``python -m dibao_audit.verify_cli``.

Given an export file (``GET /audit/export``) or the service's URL, it checks the covering
checkpoint's signature, recomputes every leaf and the root from the entries, checks the
consistency proofs between all earlier checkpoints and, with a URL, inclusion proofs of
sampled entries; it prints a JSON report with the first bad index and exits 1 when
anything is wrong. Pin the log's key with ``--vkey`` (a C2SP vkey, from
``GET /audit/public-key`` at a time you trust); without it the key the service publishes
now is used, which proves the log consistent but not that the key is the right one.

An export proves itself consistent, history included, but all of it is the service's
word: with its key it can sign a log rewritten from the first entry on. Give the
checkpoints you kept from earlier reads with ``--checkpoint FILE`` (repeatable): each must
verify with the key and be consistent with the export's checkpoint (from the export
itself, or with ``--url`` by a consistency proof the service must give).

Exit codes: 0 all is well; 1 a problem was found (the JSON report names it); 2 the
verification could not run (a file that cannot be read, a first line that is not an
export's header, no pinned key for a file, the service refusing or unreachable), with the
reason on stderr.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from dibao_audit.checkpoint import CheckpointError, VerifierKey
from dibao_audit.entry import RecordedEvent, canonical_bytes
from dibao_audit.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from dibao_audit.verifier import (
    ExportHeader,
    Report,
    read_export,
    verify_export,
    verify_export_file,
)


class CannotRunError(Exception):
    """The verification could not run (exit 2): nothing was found wrong, nothing checked."""


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_audit.verify_cli", description=__doc__.split("\n\n")[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path, help="an export file (JSON lines)")
    source.add_argument("--url", help="the audit service, e.g. http://127.0.0.1:8005")
    parser.add_argument("--vkey", help="the log's verifier key (C2SP vkey)")
    parser.add_argument("--vkey-file", type=Path, help="a file holding the verifier key")
    parser.add_argument(
        "--checkpoint",
        dest="kept",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint you kept: its signed note, or the JSON of GET "
        "/audit/checkpoints/latest; the log must be consistent with it (repeatable)",
    )
    parser.add_argument("--token", help="bearer token of an auditor (with --url)")
    parser.add_argument("--start", type=int, default=0, help="first index (with --url)")
    parser.add_argument("--end", type=int, help="end index, exclusive (with --url)")
    parser.add_argument("--tree-size", type=int, help="checkpoint to verify against (--url)")
    parser.add_argument(
        "--inclusion-samples", type=int, default=32, help="entries whose proofs to ask for"
    )
    parser.add_argument("--save", type=Path, help="also write the fetched export here")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--workers", type=int, help="processes scanning an export file")
    return parser.parse_args(argv)


def _key(args: argparse.Namespace, client: httpx.Client | None) -> tuple[VerifierKey, bool]:
    if args.vkey:
        return VerifierKey.parse(args.vkey), True
    if args.vkey_file:
        return VerifierKey.parse(args.vkey_file.read_text()), True
    if client is None:
        raise CannotRunError("an export is verified against a pinned key: give --vkey")
    response = client.get("/audit/public-key")
    response.raise_for_status()
    return VerifierKey.parse(response.json()["vkey"]), False


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
    entry = body["entry"]
    key = body["record_key"]
    event = RecordedEvent(
        topic=str(entry["topic"]),
        partition=int(entry["partition"]),
        offset=int(entry["offset"]),
        key=None if key is None else base64.b64decode(key, validate=True),
        headers=tuple(
            (str(name), base64.b64decode(value, validate=True)) for name, value in body["headers"]
        ),
        payload=base64.b64decode(body["payload"], validate=True),
    )
    return leaf_hash(canonical_bytes(event))


def _check_inclusion(client: httpx.Client, report: Report, indices: Sequence[int]) -> None:
    """Each sampled entry as the service serves it: its proof leads from the export's leaf to
    the checkpoint, and what it shows (the record) is what that leaf hashes."""
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


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Verify as asked; the JSON report goes to ``out``. 0 when all is well, 1 otherwise."""
    kept = _kept_notes(args.kept)
    if args.export is not None:
        key, pinned = _key(args, None)
        report = verify_export_file(args.export, key, workers=args.workers, kept=kept)
        for head in report.unrelated:
            report.fail(
                f"the checkpoint you kept ({head.tree_size}) cannot be checked against this "
                "export: it is larger, or inside a slice and not in its history (verify a "
                "whole export of a later checkpoint, or with --url)"
            )
        summary = report.summary()
    else:
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
                    # Unpredictable: a service that knew which entries are checked online
                    # could show the others otherwise.
                    rng = random.SystemRandom()
                    span = range(header.start, header.end)
                    sample = rng.sample(span, min(args.inclusion_samples, len(span)))
                    if header.end > header.start:
                        sample += [header.start, header.end - 1]
                    report = verify_export(header, entries, key, keep=set(sample), kept=kept)
            finally:
                if save is not None:
                    save.close()
            if report.checkpoint is not None:
                _check_answer(report, header, args, latest)
                _check_inclusion(client, report, sorted(set(sample)))
                _check_kept_online(client, report)
        summary = report.summary() | {"inclusion_proofs_checked": len(set(sample))}
    summary["key"] = key.vkey()
    summary["key_pinned"] = pinned
    out.write(json.dumps(summary, indent=2) + "\n")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return run(args, sys.stdout)
    except (CannotRunError, CheckpointError, ValueError, KeyError, OSError, httpx.HTTPError) as exc:
        sys.stderr.write(f"verification could not run: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
