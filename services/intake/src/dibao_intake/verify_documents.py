"""Check the document store against the database: ``python -m dibao_intake.verify_documents``.

The documents are the evidence of a case, and the store holds them by sha256 (the name a
``document`` row and the audit log's DocumentRef carry). A file can still be altered on
disk (bit rot, a careless operator, tampering), cut short or lost; a download then refuses
it, but nobody would know before someone asked for it. This job, run nightly with the
service's own environment (``DIBAO_DATABASE_URL``, ``DIBAO_INTAKE_DOCUMENT_DIR``...), reads
the distinct sha256s of the ``document`` rows in keyset batches (``--batch-size`` contents,
each batch a short read of its own), checks that each one's file is there and hashes to
its name, and lists the ids of the documents whose content is missing or damaged. It then
lists the files no row names (orphans: an upload whose transaction failed, or one in
flight), and deletes nothing.

Exit 0 when every document's content is sound (orphans alone included), 1 when any is
missing, damaged or unreadable. ``--json`` prints the report as one JSON object. Nothing
here reads a document's other columns: contents are named by sha256, documents by id.
A damaged or missing content is put back by restoring the file from a backup, or by
uploading the same document again (the store replaces a damaged file with content that
hashes right).
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.observability import get_logger
from dibao_intake.adapters.document_store import DocumentStore, FilesystemDocumentStore
from dibao_intake.jobs import batch_size, run_job
from dibao_intake.settings import IntakeSettings

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 500
APPLICATION_NAME = "dibao-intake-verify-documents"
"""The job's connection's ``application_name``: an operator sees it in pg_stat_activity."""


@dataclass(frozen=True, slots=True)
class Affected:
    """A content the store does not hold as uploaded, and the documents that name it."""

    sha256: str
    document_ids: list[uuid.UUID]


@dataclass
class VerifyReport:
    store: str
    documents: int = 0
    """Rows read."""
    checked: int = 0
    """Distinct contents checked."""
    missing: list[Affected] = field(default_factory=list)
    damaged: list[Affected] = field(default_factory=list)
    unreadable: list[Affected] = field(default_factory=list)
    """Contents whose file could not be read (permissions, an I/O error): not known sound."""
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.unreadable)

    def affected_documents(self) -> int:
        return sum(len(a.document_ids) for a in (*self.missing, *self.damaged, *self.unreadable))

    def to_json(self) -> dict[str, Any]:
        def listed(affected: list[Affected]) -> list[dict[str, Any]]:
            return [
                {"sha256": a.sha256, "document_ids": [str(i) for i in a.document_ids]}
                for a in affected
            ]

        return {
            "store": self.store,
            "documents": self.documents,
            "checked": self.checked,
            "missing": listed(self.missing),
            "damaged": listed(self.damaged),
            "unreadable": listed(self.unreadable),
            "orphans": self.orphans,
            "ok": self.ok,
        }


async def read_batch(
    engine: AsyncEngine, after: str, limit: int
) -> list[tuple[str, list[uuid.UUID]]]:
    """The next ``limit`` distinct sha256s after ``after`` (from the first with ``""``),
    each with its documents' ids (the index on ``document.sha256`` gives them in order)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT sha256, array_agg(id ORDER BY id) AS ids FROM document"
                " WHERE sha256 > :after GROUP BY sha256 ORDER BY sha256 LIMIT :limit"
            ),
            {"after": after, "limit": limit},
        )
        return [(row.sha256, list(row.ids)) for row in rows]


async def named_of(engine: AsyncEngine, names: Sequence[str]) -> set[str]:
    """Which of ``names`` some document row names."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT DISTINCT sha256 FROM document WHERE sha256 = ANY(:names)"),
            {"names": list(names)},
        )
        return {row.sha256 for row in rows}


async def check_rows(
    engine: AsyncEngine, store: DocumentStore, report: VerifyReport, batch_size: int
) -> None:
    after = ""
    while True:
        batch = await read_batch(engine, after, batch_size)
        for sha256, ids in batch:
            report.checked += 1
            report.documents += len(ids)
            try:
                state = await store.check(sha256)
            except OSError as exc:
                log.error(
                    "document content unreadable",
                    sha256=sha256,
                    document_ids=[str(i) for i in ids],
                    reason="unreadable",
                    error=type(exc).__name__,
                )
                report.unreadable.append(Affected(sha256, ids))
                continue
            if state == "ok":
                continue
            log.error(
                "document content unavailable",
                sha256=sha256,
                document_ids=[str(i) for i in ids],
                reason=state,
            )
            (report.missing if state == "missing" else report.damaged).append(Affected(sha256, ids))
        if len(batch) < batch_size:
            return
        after = batch[-1][0]


async def find_orphans(
    engine: AsyncEngine, store: DocumentStore, report: VerifyReport, batch_size: int
) -> None:
    """The stored names no row names, asked ``batch_size`` at a time."""
    pending: list[str] = []

    async def settle() -> None:
        named = await named_of(engine, pending)
        report.orphans.extend(n for n in pending if n not in named)
        pending.clear()

    async for name in store.names():
        pending.append(name)
        if len(pending) >= batch_size:
            await settle()
    if pending:
        await settle()
    for orphan in report.orphans:
        log.warning("document content orphaned", sha256=orphan)


async def verify(
    engine: AsyncEngine,
    store: DocumentStore,
    *,
    store_name: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> VerifyReport:
    """Every document row's content checked in the store, then the store's files no row
    names listed."""
    report = VerifyReport(store_name)
    await check_rows(engine, store, report, batch_size)
    await find_orphans(engine, store, report, batch_size)
    log.info(
        "document store verified",
        documents=report.documents,
        checked=report.checked,
        missing=len(report.missing),
        damaged=len(report.damaged),
        unreadable=len(report.unreadable),
        orphans=len(report.orphans),
    )
    return report


def _affected_lines(label: str, affected: list[Affected]) -> list[str]:
    documents = sum(len(a.document_ids) for a in affected)
    if not affected:
        return [f"{label}: 0"]
    lines = [f"{label}: {len(affected)} content(s) of {documents} document(s)"]
    lines += [f"  {a.sha256}: {' '.join(str(i) for i in a.document_ids)}" for a in affected]
    return lines


def describe(report: VerifyReport) -> list[str]:
    """The lines the command prints: counts, sha256s and document ids."""
    lines = [
        f"checked: {report.checked} contents of {report.documents} documents in {report.store}"
    ]
    lines += _affected_lines("missing", report.missing)
    lines += _affected_lines("damaged", report.damaged)
    if report.unreadable:
        lines += _affected_lines("unreadable", report.unreadable)
    if report.orphans:
        lines.append(
            f"orphans: {len(report.orphans)} file(s) that no document names (left in place)"
        )
        lines += [f"  {name}" for name in report.orphans]
    else:
        lines.append("orphans: 0")
    if report.ok:
        lines.append("ok: every document's content is present and hashes to its name")
    else:
        lines.append(
            f"FAILED: {report.affected_documents()} document(s) without their content as uploaded"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_intake.verify_documents", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        help=f"contents per database read (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace, settings: IntakeSettings, out: IO[str], err: IO[str]
) -> int:
    """What the command does with ``settings``: 0 when every content is sound, 1 if not."""
    # One connection: the job does one thing at a time.
    engine = make_engine(settings.database_url, pool_size=1, application_name=APPLICATION_NAME)
    root = settings.intake_document_dir
    try:
        report = await verify(
            engine,
            FilesystemDocumentStore(root),
            store_name=str(root),
            batch_size=args.batch_size,
        )
    finally:
        await engine.dispose()
    if args.json:
        out.write(json.dumps(report.to_json()) + "\n")
    else:
        out.write("\n".join(describe(report)) + "\n")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_job("verify-documents", run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
