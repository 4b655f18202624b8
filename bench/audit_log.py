"""Audit log: appends from Kafka beside plain INSERTs, proof latency and verification at 1 M.

``python -m bench.run audit --events 100000 --rounds 2 --log-size 1000000``

1. Appends: the same events (``ApplicationSubmitted`` with CloudEvents headers, 10,000
   households) are put on a fresh ``dibao.*.v1`` topic once; then, in alternating rounds,
   the audit consumer (``LogConsumer`` + ``LogAppender``: inbox, entries, Merkle nodes,
   checkpoints every 1,000) and a baseline consumer that decodes the same records into the
   same rows and writes them into a copy of ``log_entry`` (same indexes, no inbox, no
   tree) the way the log writes its entries (one binary COPY per batch, which is faster
   than an INSERT of the same rows, so the ratio is the log's own cost), both one
   transaction per fetched batch with durable commits
   (``synchronous_commit=on``; the server's ``fsync`` is reported). Rates are taken from
   the end of the first batch to the end of the last, so the group join is not counted.
2. Proofs: a log of ``--log-size`` entries, then inclusion proofs of random leaves against
   the full tree, one transaction each, beside a primary-key lookup of the same entry.
3. Verification: the whole log exported to a file as ``GET /audit/export`` writes it, then
   the offline verifier over that file (signature, every leaf, the root, the consistency
   chain of every checkpoint).
4. Scoped listings (``--listing-size``, 300,000): a log over 51 counties filled at
   ``--before-revision`` (0008), migrated to head (timed: the scope indexes and the
   backfill, migration 0009), then ``repo.find_entries`` for an empty scope, a small
   county, a county named only by searches, a big county, its city, a village and the
   province, first page and a page from the middle, the filter on leaf order (the old
   path, ``by_scope=False``) and the scope indexes taking turns; both must give the same
   entries.

With ``--before-revision``, part 1 also appends with the log migrated only to that
revision (before the scope indexes), beside head, in the same rounds; ``--search-share``
makes that share of the appended events searches naming two counties (the records whose
``regions`` the prefix table holds).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from bench.run import Report, Stack
from dibao.access.v1.events_pb2 import RECORD_TYPE_LIST, PersonalDataAccessed
from dibao.common.v1.types_pb2 import Actor, Money, RegionCode
from dibao.intake.v1.events_pb2 import ApplicationSubmitted, ApplicationWithdrawn
from dibao.intake.v1.types_pb2 import DeclaredIncome
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.appender import AppendResult, LogAppender
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.consumer import LogConsumer
from dibao_audit.entry import RecordedEvent
from dibao_audit.projection import EntryRow, KeyReader, project, project_records
from dibao_audit.repository import EntryFilter, WholeLog
from dibao_audit.testing import AuditDb, make_audit_db, recorded_event
from dibao_audit.verifier import verify_export_file
from dibao_common.messaging.envelope import EventRegistry
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics
from dibao_common.testing.stack import TestStack

HOUSEHOLDS = 10_000
SEED = hashlib.sha256(b"dibao audit bench key").digest()
ORIGIN = "dibao.audit/bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=100_000, help="events per append round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=5000, help="records per fetched batch")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--log-size", type=int, default=1_000_000, help="entries for 2 and 3")
    parser.add_argument("--proofs", type=int, default=2000, help="inclusion proofs timed")
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: append,proofs,listing"
    )
    parser.add_argument("--listing-size", type=int, default=300_000, help="entries for 4")
    parser.add_argument("--listing-reps", type=int, default=9, help="timings per query")
    parser.add_argument(
        "--before-revision",
        default="",
        help="also append at this revision (0008: before the scope indexes) in part 1",
    )
    parser.add_argument("--search-share", type=float, default=0.0, help="searches in part 1")


def _message(household: str, n: int) -> ApplicationSubmitted:
    message = ApplicationSubmitted(
        household_id=household,
        region=RegionCode(code=f"6201{n % 10:02d}001001"),
        actor=Actor(subject=f"clerk-{n % 50}", roles=["intake_clerk"], region_prefixes=["6201"]),
        application_id=str(uuid7()),
        applicant_person_id=str(uuid7()),
        incomes=[
            DeclaredIncome(
                person_id=str(uuid7()),
                monthly_amount=Money(fen=85_000 + n % 1000),
                period_months=12,
                description="seasonal farm work",
            )
        ],
        statement="household income below the local standard after the harvest failed",
        requested_amount=Money(fen=42_000),
    )
    message.occurred_at.FromSeconds(1_767_225_600 + n)
    return message


def _search(n: int, first: str, second: str) -> PersonalDataAccessed:
    """A search's access record by a caller of two counties (its ``regions`` both)."""
    message = PersonalDataAccessed(
        region=RegionCode(code=first),
        regions=[RegionCode(code=first), RegionCode(code=second)],
        actor=Actor(subject=f"clerk-{n % 50}", roles=["intake_clerk"]),
        service="intake",
        record_type=RECORD_TYPE_LIST,
        record_id=f"households?page={n}",
        operation="GET /households",
    )
    message.occurred_at.FromSeconds(1_767_225_600 + n)
    return message


def _events(
    count: int, households: Sequence[str], search_share: float = 0.0
) -> list[RecordedEvent]:
    every = round(1 / search_share) if search_share > 0 else 0
    return [
        recorded_event(
            _search(n, f"6201{n % 10:02d}000000", f"6201{(n + 3) % 10:02d}000000")
            if every and n % every == every - 1
            else _message(households[n % len(households)], n),
            offset=n,
            key=households[n % len(households)],
            partition=n % 6,
            actor=f"clerk-{n % 50}",
        )
        for n in range(count)
    ]


class PlainInserts:
    """The baseline: decode records into the same rows and write them, nothing more."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], table: str) -> None:
        self._sessions = sessions
        self._table = table
        self._registry = EventRegistry.default()
        self._keys = KeyReader(self._registry)
        self._next = 0

    def project(self, events: Sequence[RecordedEvent]) -> list[EntryRow]:
        return [project(e, self._registry) for e in events]

    def project_records(self, records: Sequence[Any]) -> list[EntryRow]:
        return project_records(records, self._keys)

    async def append_rows(self, rows: Sequence[EntryRow]) -> AppendResult:
        async with self._sessions() as session, session.begin():
            await repo.insert_entries(session, self._next, rows, table=self._table)
        self._next += len(rows)
        return AppendResult(len(rows), 0, self._next, None)


async def _produce(bootstrap: str, topic: str, events: Sequence[RecordedEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, e.payload, key=e.key, headers=list(e.headers))
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _server_cpu_s(postmaster: int | None) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live children and
    the children it reaped (0 when the server's processes cannot be read)."""
    if postmaster is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


async def _postmaster(db: AuditDb) -> int | None:
    async with db.owner.connect() as conn:
        backend = await conn.scalar(text("SELECT pg_backend_pid()"))
    return _parent_of(int(backend))


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@dataclass(frozen=True, slots=True)
class Consumed:
    rate: float
    batches: int
    client_us: float
    """CPU of this process (the consumer) per entry, in µs."""
    server_us: float
    """CPU of the PostgreSQL server per entry, in µs."""


async def _timed_consume(db: AuditDb, sink: Any, topic: str, expected: int, batch: int) -> Consumed:
    """Entries per second from the end of the first batch to the end of the last, and the
    CPU the consumer's process and the database server spent per entry in between."""
    marks: list[tuple[float, int, float, float]] = []
    done = asyncio.Event()
    total = 0
    postmaster = await _postmaster(db)

    async def mark(result: AppendResult) -> None:
        nonlocal total
        total += result.appended
        marks.append((time.perf_counter(), total, time.process_time(), _server_cpu_s(postmaster)))
        if total >= expected:
            done.set()

    consumer = LogConsumer(
        sink,
        db.stack.kafka_bootstrap,
        group=f"bench-{uuid.uuid4().hex[:8]}",
        pattern=f"^{topic.replace('.', '[.]')}$",
        batch_max=batch,
        after_append=mark,
        consumer_overrides={"fetch_max_bytes": 64 * 1024 * 1024},
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=1800)
    finally:
        await consumer.stop()
    if len(marks) < 2:  # one batch: the group join is in the figure
        return Consumed(marks[0][1] / (marks[0][0] - started), 1, 0.0, 0.0)
    (t0, n0, c0, s0), (t1, n1, c1, s1) = marks[0], marks[-1]
    n = n1 - n0
    return Consumed(n / (t1 - t0), len(marks), (c1 - c0) * 1e6 / n, (s1 - s0) * 1e6 / n)


async def _fsync(db: AuditDb) -> str:
    async with db.owner.connect() as conn:
        fsync = await conn.scalar(text("SHOW fsync"))
        sync = await conn.scalar(text("SHOW synchronous_commit"))
    return f"fsync={fsync} synchronous_commit={sync}"


async def _appends(stack: TestStack, args: argparse.Namespace, report: Report) -> None:
    topic = f"dibao.bench{uuid.uuid4().hex[:8]}.v1"
    await create_topic(stack.kafka_bootstrap, topic, partitions=args.partitions)
    plain: list[Consumed] = []
    audit: list[Consumed] = []
    before: list[Consumed] = []

    def row(r: int, what: str, c: Consumed) -> None:
        cpu = f"CPU/entry: consumer {c.client_us:.0f} µs, PostgreSQL {c.server_us:.0f} µs"
        report.rows.append([f"append round {r + 1}", what, f"{c.rate:,.0f}/s", cpu])

    try:
        households = [str(uuid7()) for _ in range(HOUSEHOLDS)]
        # Not kept: the consumer's process then holds what a service's would (the garbage
        # collector walks every live object, and 100,000 events are over a million).
        events = _events(args.events, households, args.search_share)
        await _produce(stack.kafka_bootstrap, topic, events)
        del events
        for r in range(args.rounds):
            plain_db = await make_audit_db(stack, f"bp{r}")
            try:
                table = "log_entry_plain"
                async with plain_db.owner.begin() as conn:
                    await conn.execute(text(f"CREATE TABLE {table} (LIKE log_entry INCLUDING ALL)"))
                report.settings["durability"] = await _fsync(plain_db)
                sink = PlainInserts(async_sessionmaker(plain_db.owner), table)
                plain.append(await _timed_consume(plain_db, sink, topic, args.events, args.batch))
                row(r, "plain rows", plain[-1])
            finally:
                await _drop(plain_db)
            revisions = [("head", audit, "audit log")]
            if args.before_revision:
                revisions.append(
                    (args.before_revision, before, f"audit log at {args.before_revision}")
                )
            for revision, runs, what in revisions if r % 2 == 0 else revisions[::-1]:
                audit_db = await make_audit_db(stack, f"ba{r}", revision)
                try:
                    appender = LogAppender(
                        audit_db.sessions, CheckpointSigner(SEED, ORIGIN), checkpoint_every=1000
                    )
                    runs.append(
                        await _timed_consume(audit_db, appender, topic, args.events, args.batch)
                    )
                    row(r, what, runs[-1])
                finally:
                    await _drop(audit_db)
    finally:
        await delete_topics(stack.kafka_bootstrap, [topic])
    plain_rate = statistics.median(c.rate for c in plain)
    audit_rate = statistics.median(c.rate for c in audit)
    report.figures["append_per_s_audit"] = round(audit_rate)
    report.figures["append_per_s_plain"] = round(plain_rate)
    report.figures["append_ratio"] = round(audit_rate / plain_rate, 3)
    if before:
        report.figures["append_per_s_before"] = round(statistics.median(c.rate for c in before))
    for name, runs in (("plain", plain), ("audit", audit), ("before", before)):
        if not runs:
            continue
        report.figures[f"append_cpu_us_{name}_consumer"] = round(
            statistics.median(c.client_us for c in runs), 1
        )
        report.figures[f"append_cpu_us_{name}_server"] = round(
            statistics.median(c.server_us for c in runs), 1
        )


async def _drop(db: AuditDb) -> None:
    await db.owner.dispose()
    await db.runtime.dispose()
    await db.stack.recreate_database("audit")  # leaves an empty database, not gigabytes


async def _fill(db: AuditDb, size: int, report: Report) -> LogAppender:
    appender = LogAppender(db.sessions, CheckpointSigner(SEED, ORIGIN), checkpoint_every=1000)
    households = [str(uuid7()) for _ in range(HOUSEHOLDS)]
    template = _events(20_000, households)
    t0 = time.perf_counter()
    pending: asyncio.Task[AppendResult] | None = None
    for done in range(0, size, 5000):
        n = min(5000, size - done)
        batch = [
            RecordedEvent(e.topic, e.partition, done + k, e.key, _fresh_id(e), e.payload)
            for k, e in enumerate(template[done % 20_000 : done % 20_000 + n])
        ]
        rows = appender.project(batch)  # while the previous batch's transaction runs
        if pending is not None:
            await pending
        pending = asyncio.create_task(appender.append_rows(rows))
    if pending is not None:
        await pending
    await appender.checkpoint_if_grown()
    fill = time.perf_counter() - t0
    report.rows.append(
        ["fill (direct appends, 5,000/batch)", f"{size:,} entries", f"{size / fill:,.0f}/s", ""]
    )
    return appender


def _fresh_id(event: RecordedEvent) -> tuple[tuple[str, bytes], ...]:
    # Every entry a distinct event: a new ce_id on the template's headers.
    return tuple((k, str(uuid.uuid4()).encode() if k == "ce_id" else v) for k, v in event.headers)


def _row(report: Report, *cells: Any) -> None:
    report.rows.append(list(cells))


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def _entry_row(session: AsyncSession, index: int) -> None:
    """The baseline: one entry by primary key, the same way the proofs read (asyncpg)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    await raw.driver_connection.fetchrow(  # type: ignore[union-attr]
        "SELECT * FROM log_entry WHERE leaf_index = $1", index
    )


async def _proofs(db: AuditDb, size: int, count: int, report: Report) -> None:
    """Per proof: the call inside a request's open transaction, and a whole transaction."""
    rng = random.Random(7)
    timings: dict[str, list[float]] = {
        "inclusion proof (in a transaction)": [],
        "baseline: entry by index (in a transaction)": [],
        "inclusion proof (own transaction)": [],
        "baseline: entry by index (own transaction)": [],
    }
    names = list(timings)
    async with db.sessions() as session, session.begin():
        for _ in range(count):
            index = rng.randrange(size)
            t0 = time.perf_counter()
            await service.inclusion_proof(session, index, size)
            t1 = time.perf_counter()
            await _entry_row(session, index)
            t2 = time.perf_counter()
            timings[names[0]].append((t1 - t0) * 1000)
            timings[names[1]].append((t2 - t1) * 1000)
            session.expunge_all()
    for _ in range(count):
        index = rng.randrange(size)
        t0 = time.perf_counter()
        async with db.sessions() as session, session.begin():
            await service.inclusion_proof(session, index, size)
        t1 = time.perf_counter()
        async with db.sessions() as session, session.begin():
            await _entry_row(session, index)
        t2 = time.perf_counter()
        timings[names[2]].append((t1 - t0) * 1000)
        timings[names[3]].append((t2 - t1) * 1000)
    for name, values in timings.items():
        p50, p99 = statistics.median(values), _percentile(values, 0.99)
        _row(report, f"{name} at {size:,}", f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms", count)
    proof = timings[names[0]]
    report.figures["proof_p50_ms"] = round(statistics.median(proof), 3)
    report.figures["proof_p99_ms"] = round(_percentile(proof, 0.99), 3)
    report.figures["proof_tx_p99_ms"] = round(_percentile(timings[names[2]], 0.99), 3)
    report.figures["lookup_p99_ms"] = round(_percentile(timings[names[1]], 0.99), 3)


async def _verify(db: AuditDb, appender: LogAppender, size: int, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.jsonl"
        t0, cpu0 = time.perf_counter(), time.process_time()
        async with db.sessions() as session, session.begin():
            covering = await repo.latest_checkpoint(session)
            assert covering is not None
            with path.open("wb") as fh:
                async for chunk in service.export_lines(
                    session, 0, covering.tree_size, covering, ORIGIN, [""]
                ):
                    fh.write(chunk)
        export_s = time.perf_counter() - t0
        # The export's own CPU (this process: reading the rows, checking each entry's
        # stored columns against its record, formatting); PostgreSQL's is not counted.
        export_cpu_s = time.process_time() - cpu0
        megabytes = path.stat().st_size / 1e6
        report.rows.append(
            [
                "export to file",
                f"{covering.tree_size:,} entries",
                f"{export_s:.1f} s",
                f"{megabytes:,.0f} MB",
            ]
        )
        report.rows.append(
            [
                "export, CPU of this process",
                f"{covering.tree_size:,} entries",
                f"{export_cpu_s:.1f} s",
                f"{export_cpu_s / max(covering.tree_size, 1) * 1e6:.1f} us/line",
            ]
        )
        report.figures["export_s"] = round(export_s, 2)
        report.figures["export_cpu_us_per_line"] = round(
            export_cpu_s / max(covering.tree_size, 1) * 1e6, 2
        )
        for workers in sorted({1, os.cpu_count() or 1}):
            t0 = time.perf_counter()
            result = verify_export_file(path, appender.signer.verifier, workers=workers)
            verify_s = time.perf_counter() - t0
            assert result.ok, result.problems
            assert result.checked == size
            report.rows.append(
                [
                    f"offline verification, {workers} process(es)",
                    f"{size:,} entries",
                    f"{verify_s:.1f} s",
                    "ok",
                ]
            )
            report.figures[f"verify_s_{workers}_workers"] = round(verify_s, 2)


async def run(bench_stack: Stack, args: argparse.Namespace) -> Report:
    """All four parts; ``--skip append,proofs,listing`` leaves some out."""
    stack = TestStack(bench_stack.pg_admin_dsn, bench_stack.kafka_bootstrap, bench_stack.db_prefix)
    skip = set(filter(None, args.skip.split(",")))
    report = Report(
        title="audit log",
        columns=["measure", "what", "figure", "note"],
        settings={k: v for k, v in vars(args).items() if k != "func"},
    )
    if "append" not in skip:
        await _appends(stack, args, report)
    if "proofs" not in skip:
        db = await make_audit_db(stack, "bl")
        try:
            appender = await _fill(db, args.log_size, report)
            await _proofs(db, args.log_size, args.proofs, report)
            await _verify(db, appender, args.log_size, report)
        finally:
            await _drop(db)
    if "listing" not in skip:
        await _listings(stack, args, report)
    report.settings["load_average"] = os.getloadavg()
    return report


LOG_REGION = "000000000000"
BIG, SMALL, SEARCHED, EMPTY = "620100", "620148", "620149", "620150"


def _county_event(n: int) -> RecordedEvent:
    """Entry ``n`` of the listing's log: 51 counties of city 6201 (each with 20 villages in
    4 townships); 3 in 10 entries are the big county's (620100), one in 2,000 the small
    one's (620148), one in 10 a search naming two counties (the second of every tenth
    search is 620149, named by nothing else); 620150 has none."""
    if n % 10 == 9:
        first = f"6201{1 + n % 47:02d}000000"
        second = SEARCHED + "000000" if n % 100 == 99 else f"6201{1 + (n // 10) % 47:02d}000000"
        message: Any = _search(n, first, second)
        key = first
    else:
        if n % 2000 == 1000:
            county = SMALL
        elif n % 10 < 3:
            county = BIG
        else:
            county = f"6201{1 + (n * 7919) % 47:02d}"
        village = f"{county}{1 + n % 4:03d}{1 + n % 5:03d}"
        key = f"hh-{village}-{n % 97}"
        message = ApplicationWithdrawn(
            household_id=key, region=RegionCode(code=village), application_id=f"app-{n}"
        )
        message.occurred_at.FromSeconds(1_767_225_600 + n)
    return recorded_event(message, offset=n, key=key, partition=n % 6, actor=f"clerk-{n % 50}")


async def _fill_counties(db: AuditDb, size: int) -> float:
    """Append the listing's log directly (5,000 a batch); its rate."""
    appender = LogAppender(db.sessions, CheckpointSigner(SEED, ORIGIN), checkpoint_every=1000)
    t0 = time.perf_counter()
    for lo in range(0, size, 5000):
        await appender.append_rows(
            appender.project([_county_event(n) for n in range(lo, min(size, lo + 5000))])
        )
    return size / (time.perf_counter() - t0)


async def _listing_ms(
    db: AuditDb, flt: EntryFilter, after: int | None, by_scope: bool
) -> tuple[float, list[int], tuple[str, Any]]:
    """One listing page's query (101 rows, as the API asks for a page of 100), in its own
    transaction: milliseconds, the indices found and the statement sent (with its
    parameters)."""
    sent: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        sent.append((args[2], args[3]))

    engine = db.runtime.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        t0 = time.perf_counter()
        async with db.sessions() as session, session.begin():
            rows = await repo.find_entries(session, flt, after=after, limit=101, by_scope=by_scope)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return ms, [e.leaf_index for e, _ in rows], next(s for s in sent if "log_entry" in s[0])


async def _server_ms(db: AuditDb, statement: tuple[str, Any]) -> float:
    """The statement's planning and execution time in the server (EXPLAIN ANALYZE)."""
    async with db.runtime.connect() as conn:
        raw = await conn.get_raw_connection()
        plan = await raw.driver_connection.fetchval(  # type: ignore[union-attr]
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement[0], *statement[1]
        )
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    return float(top["Planning Time"]) + float(top["Execution Time"])


async def _listings(stack: TestStack, args: argparse.Namespace, report: Report) -> None:
    size = args.listing_size
    db = await make_audit_db(stack, "bq", args.before_revision or "0008")
    try:
        rate = await _fill_counties(db, size)
        report.rows.append(
            ["listing log, filled at 0008", f"{size:,} entries", f"{rate:,.0f}/s", ""]
        )
        await db.owner.dispose()
        await db.runtime.dispose()
        t0 = time.perf_counter()
        await db.stack.migrate("audit")
        migrate_s = time.perf_counter() - t0
        report.rows.append(
            [
                "migration to head (0009)",
                f"{size:,} entries",
                f"{migrate_s:.1f} s",
                "indexes + backfill",
            ]
        )
        report.figures["listing_migration_s"] = round(migrate_s, 1)
        async with db.owner.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
        whole_log = WholeLog(LOG_REGION, EventRegistry.default())
        scopes = [
            ("empty county", (EMPTY,)),
            ("small county", (SMALL,)),
            ("county named only by searches", (SEARCHED,)),
            ("big county", (BIG,)),
            ("a village of the big county", (f"{BIG}001001",)),
            ("the city", ("6201",)),
            ("the province", ("62",)),
        ]
        for name, prefixes in scopes:
            flt = EntryFilter(region_prefixes=prefixes, whole_log=whole_log)
            for page, after in (("first page", None), ("from the middle", size // 2)):
                times: dict[bool, list[float]] = {False: [], True: []}
                server: dict[bool, list[float]] = {False: [], True: []}
                found: dict[bool, list[int]] = {}
                for _ in range(args.listing_reps):
                    for by_scope in (False, True):
                        ms, indices, sent = await _listing_ms(db, flt, after, by_scope)
                        times[by_scope].append(ms)
                        server[by_scope].append(await _server_ms(db, sent))
                        found[by_scope] = indices
                assert found[True] == found[False], (name, page)
                cells = []
                key = f"listing_ms_{prefixes[0]}_{'first' if after is None else 'middle'}"
                for by_scope, what in ((False, "old"), (True, "new")):
                    wall, db_ms = (
                        statistics.median(times[by_scope]),
                        statistics.median(server[by_scope]),
                    )
                    cells.append(f"{what} {wall:.2f} ms, server {db_ms:.2f} ms")
                    report.figures[f"{key}_{what}"] = round(wall, 2)
                    report.figures[f"{key}_{what}_server"] = round(db_ms, 2)
                report.rows.append(
                    [f"listing, {name} ({prefixes[0]})", f"{page}, {len(found[True])} rows", *cells]
                )
    finally:
        await _drop(db)
