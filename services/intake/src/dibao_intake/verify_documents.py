"""Check the document store against the database: ``python -m dibao_intake.verify_documents``.

The documents are the evidence of a case, and the store holds them by sha256 (the name a
``document`` row and the audit log's DocumentRef carry). A file can still be altered on
disk (bit rot, a careless operator, tampering), cut short or lost; a download then refuses
it, but nobody would know before someone asked for it. This job, run nightly with the
service's own environment (``DIBAO_DATABASE_URL``, ``DIBAO_INTAKE_DOCUMENT_DIR``...), reads
the distinct sha256s of the ``document`` rows in keyset batches (``--batch-size`` contents,
each batch a short read of its own), checks that each one's file is there and hashes to
its name, and lists the ids of the documents whose content is missing or damaged. It then
lists the files no row names: orphans, written more than ``--orphan-min-age`` ago (1 h by
default; an upload whose transaction failed), and apart from them the recent ones, not
judged (an upload writes its content before its row commits: one in flight looks the
same). It deletes nothing unless ``--sweep`` is given: then each orphan is deleted under
the advisory lock an upload of the same content holds until its row commits, once the
table, checked again under it, still has no row naming it and the file is still older
than the minimum age (docs/adr/0015); an orphan whose upload holds the lock, or that a
row names by then, is left and listed as not swept, with why.

Exit 0 when every document's content is sound (orphans alone included), 1 when any is
missing, damaged or unreadable, or when an orphan could not be deleted. ``--json`` prints
the report as one JSON object. Nothing here reads a document's other columns: contents
are named by sha256, documents by id.
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
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.db import make_engine
from dibao_common.observability import get_logger
from dibao_intake.adapters.document_store import DocumentStore, FilesystemDocumentStore
from dibao_intake.adapters.repositories import documents as repo
from dibao_intake.jobs import batch_size, describe_duration, duration, run_job
from dibao_intake.settings import IntakeSettings

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 500
DEFAULT_ORPHAN_MIN_AGE = timedelta(hours=1)
"""How old an unnamed content must be to count as an orphan: far longer than an upload's
transaction (seconds), short enough that a nightly sweep takes the day's failed uploads."""
APPLICATION_NAME = "dibao-intake-verify-documents"
"""The job's connection's ``application_name``: an operator sees it in pg_stat_activity."""


@dataclass(frozen=True, slots=True)
class Affected:
    """A content the store does not hold as uploaded, and the documents that name it."""

    sha256: str
    document_ids: list[uuid.UUID]


NotSweptReason = Literal["in-flight", "referenced", "recent", "gone", "failed"]
"""Why an orphan was left: an upload of it holds its lock; a row names it now; it was
written again since the listing; it was gone already; its delete failed (logged)."""


@dataclass(frozen=True, slots=True)
class NotSwept:
    sha256: str
    reason: NotSweptReason


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
    orphan_min_age: timedelta = DEFAULT_ORPHAN_MIN_AGE
    orphans: list[str] = field(default_factory=list)
    """Contents no row names, written at least ``orphan_min_age`` ago."""
    recent: list[str] = field(default_factory=list)
    """Contents no row names yet, written since: perhaps an upload in flight, not judged."""
    sweep: bool = False
    swept: list[str] = field(default_factory=list)
    """Orphans deleted (``--sweep``)."""
    not_swept: list[NotSwept] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.unreadable)

    @property
    def sweep_failed(self) -> bool:
        return any(n.reason == "failed" for n in self.not_swept)

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
            "orphan_min_age_s": self.orphan_min_age.total_seconds(),
            "recent": self.recent,
            "sweep": self.sweep,
            "swept": self.swept,
            "not_swept": [{"sha256": n.sha256, "reason": n.reason} for n in self.not_swept],
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
    engine: AsyncEngine,
    store: DocumentStore,
    report: VerifyReport,
    batch_size: int,
    now: datetime,
) -> None:
    """The stored contents no row names, asked ``batch_size`` at a time: orphans when
    written at least ``report.orphan_min_age`` before ``now``, recent otherwise."""
    cutoff = now - report.orphan_min_age
    pending: dict[str, datetime] = {}

    async def settle() -> None:
        named = await named_of(engine, list(pending))
        for name, written_at in pending.items():
            if name not in named:
                (report.orphans if written_at <= cutoff else report.recent).append(name)
        pending.clear()

    async for content in store.contents():
        pending[content.sha256] = content.written_at
        if len(pending) >= batch_size:
            await settle()
    if pending:
        await settle()
    for orphan in report.orphans:
        log.warning("document content orphaned", sha256=orphan)
    for name in report.recent:
        log.info("document content not named yet", sha256=name)


async def sweep_one(
    engine: AsyncEngine, store: DocumentStore, sha256: str, cutoff: datetime
) -> NotSweptReason | None:
    """Delete the orphan ``sha256`` if it still is one; None when deleted, else why not.

    Under the content's advisory lock, which an upload holds from before its put until
    its row commits: taken, no upload of it is in flight, and none starts before the
    delete is done (it waits for the lock, then writes the content afresh). The table is
    read again after the lock, in a statement of its own, so a row committed meanwhile
    is seen."""
    async with engine.begin() as conn:
        if not await repo.try_lock_content(conn, sha256):
            return "in-flight"
        if await repo.content_named(conn, sha256):
            return "referenced"
        try:
            written_at = await store.written_at(sha256)
            if written_at is None:
                return "gone"
            if written_at > cutoff:
                return "recent"
            deleted = await store.delete(sha256)
        except OSError as exc:  # permissions, an I/O error: the next orphans are tried
            log.error("document content not swept", sha256=sha256, error=type(exc).__name__)
            return "failed"
        return None if deleted else "gone"
    # The transaction ends here, and the lock with it: an upload waiting for it goes on.


async def sweep_orphans(
    engine: AsyncEngine, store: DocumentStore, report: VerifyReport, now: datetime | None = None
) -> None:
    """Delete ``report.orphans`` that are orphans still (:func:`sweep_one`), one at a
    time, each in a short transaction of its own; ``report.swept`` and ``not_swept`` say
    which."""
    report.sweep = True
    cutoff = (now if now is not None else datetime.now(UTC)) - report.orphan_min_age
    for sha256 in report.orphans:
        reason = await sweep_one(engine, store, sha256, cutoff)
        if reason is None:
            report.swept.append(sha256)
            log.info("document content swept", sha256=sha256)
        else:
            report.not_swept.append(NotSwept(sha256, reason))
            log.info("document content left", sha256=sha256, reason=reason)


async def verify(
    engine: AsyncEngine,
    store: DocumentStore,
    *,
    store_name: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    orphan_min_age: timedelta = DEFAULT_ORPHAN_MIN_AGE,
    sweep: bool = False,
    now: datetime | None = None,
) -> VerifyReport:
    """Every document row's content checked in the store, then the store's files no row
    names listed (orphans, and the recent ones), then with ``sweep`` the orphans deleted
    that still are."""
    report = VerifyReport(store_name, orphan_min_age=orphan_min_age)
    await check_rows(engine, store, report, batch_size)
    await find_orphans(
        engine, store, report, batch_size, now if now is not None else datetime.now(UTC)
    )
    if sweep:
        await sweep_orphans(engine, store, report)
    log.info(
        "document store verified",
        documents=report.documents,
        checked=report.checked,
        missing=len(report.missing),
        damaged=len(report.damaged),
        unreadable=len(report.unreadable),
        orphans=len(report.orphans),
        recent=len(report.recent),
        orphan_min_age_s=orphan_min_age.total_seconds(),
        swept=len(report.swept),
        not_swept=len(report.not_swept),
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
    age = describe_duration(report.orphan_min_age)
    if report.orphans:
        lines.append(
            f"orphans: {len(report.orphans)} file(s) older than {age} that no document names"
            + ("" if report.sweep else " (left in place)")
        )
        lines += [f"  {name}" for name in report.orphans]
    else:
        lines.append("orphans: 0")
    if report.recent:
        lines.append(
            f"recent: {len(report.recent)} file(s) written in the last {age} that no document"
            " names yet (not judged)"
        )
        lines += [f"  {name}" for name in report.recent]
    else:
        lines.append("recent: 0")
    if report.sweep:
        lines.append(f"swept: {len(report.swept)} orphan(s) deleted")
        lines += [f"  {name}" for name in report.swept]
        lines.append(f"not swept: {len(report.not_swept)}")
        lines += [f"  {n.sha256}: {n.reason}" for n in report.not_swept]
    if report.sweep_failed:
        failed = sum(n.reason == "failed" for n in report.not_swept)
        lines.append(f"FAILED: {failed} orphan(s) could not be deleted (logged)")
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
    parser.add_argument(
        "--orphan-min-age",
        type=duration,
        default=DEFAULT_ORPHAN_MIN_AGE,
        metavar="AGE",
        help="how long ago a file no document names must have been written to count as an"
        " orphan (seconds, or 90s, 30m, 1h, 2d; default"
        f" {describe_duration(DEFAULT_ORPHAN_MIN_AGE)}); younger ones are listed as recent"
        " and never swept: an upload writes its content before its row commits",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="delete the orphans (without it, nothing is deleted), each only if no upload of"
        " it is in flight and no row names it when it is deleted",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace, settings: IntakeSettings, out: IO[str], err: IO[str]
) -> int:
    """What the command does with ``settings``: 0 when every content is sound (and every
    orphan to sweep was swept or left for a reason), 1 if not."""
    # One connection: the job does one thing at a time.
    engine = make_engine(settings.database_url, pool_size=1, application_name=APPLICATION_NAME)
    root = settings.intake_document_dir
    try:
        report = await verify(
            engine,
            FilesystemDocumentStore(root),
            store_name=str(root),
            batch_size=args.batch_size,
            orphan_min_age=args.orphan_min_age,
            sweep=args.sweep,
        )
    finally:
        await engine.dispose()
    if args.json:
        out.write(json.dumps(report.to_json()) + "\n")
    else:
        out.write("\n".join(describe(report)) + "\n")
    return 0 if report.ok and not report.sweep_failed else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_job("verify-documents", run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
