"""Application submissions per second and p99 latency, beside a bare FastAPI baseline.

Two servers run side by side on the same PostgreSQL, each a single uvicorn process:

- **intake**, the real service (``dibao_intake.main:create_app``): bearer token, request
  validation, the household and its documents loaded, the rules, the staff-relation check,
  the caseworker, six inserts, two outbox events, the idempotency record, the JSON access
  log, with its outbox relay and timeline consumer running in the same process;
- **baseline** (``bench/intake_baseline.py``): the same JSON body parsed by FastAPI and
  inserted as one row with asyncpg.

Both get the same request bodies from the same load generator (a lean HTTP/1.1 client on
keep-alive connections, so that the client costs little next to either server). Peak
throughput is measured closed-loop; then each server gets an open-loop constant arrival
rate of 70 % of its own peak, and the p99 is taken from each request's scheduled send
time, so that a server falling behind cannot hide its queueing (no coordinated omission).
Targets: intake/baseline peak >= 0.5, intake p99 < 50 ms at 70 % of its peak.

``python -m bench.run intake --submissions 2000``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.intake_history import HISTORY_CLERK, prefill
from bench.run import Report, Stack
from dibao_common.clock import SystemClock
from dibao_common.testing.auth_fixtures import TokenFactory, auth_settings_values
from dibao_common.testing.service_env import TEST_FINGERPRINT_KEYS
from dibao_common.testing.stack import TestStack
from dibao_intake.domain.codes import AreaType
from dibao_intake.synthetic import (
    Synthesizer,
    application_payload,
    multipart_upload,
    pdf_bytes,
    required_documents,
)
from dibao_intake.testing import pii_settings_for_tests

ROOT = Path(__file__).resolve().parent.parent
VILLAGES = ("620102001001", "620102001002", "620123101203", "620123101201")
WARMUP = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submissions", type=int, default=2000, help="per measured phase")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop connections")
    parser.add_argument("--load", type=float, default=0.7, help="fraction of peak, open loop")
    base = int(os.environ.get("DIBAO_SVC_PORT_BASE", "8300"))
    parser.add_argument("--intake-port", type=int, default=base + 8)
    parser.add_argument("--baseline-port", type=int, default=base + 9)
    parser.add_argument("--no-idempotency-key", action="store_true")
    parser.add_argument(
        "--history",
        type=int,
        default=50_000,
        metavar="N",
        help="past households (with their applications, documents and timelines) written"
        " into the tables before measuring, as in a district's database (0: empty tables)",
    )
    parser.add_argument(
        "--also-unkeyed",
        action="store_true",
        help="measure intake a second time without Idempotency-Key (the kit's claim cost)",
    )
    parser.add_argument(
        "--timeline",
        choices=("separate", "in-process", "off"),
        default="separate",
        help="where the timeline consumer runs (separate: its own process, as deployed)",
    )
    parser.add_argument(
        "--relay",
        choices=("in-process", "separate"),
        default="in-process",
        help="where intake's outbox relay runs (separate: python -m"
        " dibao_common.messaging.relay beside the API, as a scaled-out deployment runs it)",
    )
    parser.add_argument(
        "--intake-workers",
        type=int,
        default=1,
        metavar="N",
        help="intake as N uvicorn worker processes (the baseline stays one process)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the timeline worker at this nice value (a smaller CPU share, as a "
        "container's CPU weight would give it)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        help="write each open-loop request (phase, scheduled offset s, latency ms) to FILE",
    )
    parser.add_argument(
        "--profile-phase",
        choices=("peak", "steady"),
        default="peak",
        help="which of intake's keyed phases --profile records",
    )
    parser.add_argument(
        "--profile-process",
        choices=("intake", "worker"),
        default="intake",
        help="the process --profile records: intake's server or the timeline worker",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record intake's keyed peak phase with py-spy into FILE (collapsed stacks)",
    )


# --- a lean HTTP/1.1 client -----------------------------------------------------------------


class Connection:
    """One keep-alive connection; requests are prepared bytes, responses status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, payload: bytes) -> tuple[int, bytes]:
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Phase:
    latencies_s: list[float]
    statuses: dict[int, int]
    elapsed_s: float
    # Open loop: each request's latency by its place in the schedule.
    scheduled: list[tuple[int, float]] = field(default_factory=list)
    # Open loop: the wall-clock time (epoch s) the schedule started.
    wall_start: float = 0.0
    # Open loop: requests per second as scheduled.
    schedule_rate: float = 0.0

    def p99_by_fifth_ms(self) -> list[float]:
        """The p99 of each fifth of the schedule: where in the phase the tail comes from."""
        if not self.scheduled:
            return []
        ordered = sorted(self.scheduled)
        size = max(1, len(ordered) // 5)
        fifths = [ordered[i : i + size] for i in range(0, len(ordered), size)][:5]
        return [
            round(1000 * sorted(x for _, x in part)[min(len(part) - 1, int(0.99 * len(part)))], 1)
            for part in fifths
        ]

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.elapsed_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it measures.

    The generator holds every request body and imports the service's modules: a full
    collection of its heap took 170-360 ms here (``gc.callbacks``), and every request due
    or answered meanwhile was counted that much late, against whichever server was being
    measured. The phase's garbage is freed by reference counting; the rest waits.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def closed_loop(port: int, payloads: Sequence[bytes], concurrency: int) -> Phase:
    with _collector_paused():
        return await _closed_loop(port, payloads, concurrency)


async def open_loop(port: int, payloads: Sequence[bytes], rate: float, pool: int = 64) -> Phase:
    """Requests at a constant rate; latency counts from each request's scheduled time."""
    with _collector_paused():
        return await _open_loop(port, payloads, rate, pool)


async def _closed_loop(port: int, payloads: Sequence[bytes], concurrency: int) -> Phase:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            while not queue.empty():
                payload = queue.get_nowait()
                started = time.perf_counter()
                status, _ = await conn.send(payload)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Phase(latencies, statuses, time.perf_counter() - started)


async def _open_loop(port: int, payloads: Sequence[bytes], rate: float, pool: int) -> Phase:
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        free.put_nowait(await Connection.open(port))
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    wall_start = time.time() + 0.2
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    by_index: list[tuple[int, float]] = []

    async def one(index: int, payload: bytes) -> None:
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        conn = await free.get()
        status, _ = await conn.send(payload)
        latencies.append(loop.time() - scheduled)
        by_index.append((index, latencies[-1]))
        statuses[status] = statuses.get(status, 0) + 1
        free.put_nowait(conn)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(payloads)))
    elapsed = loop.time() - start
    while not free.empty():
        free.get_nowait().close()
    return Phase(latencies, statuses, elapsed, by_index, wall_start, rate)


# --- servers ---------------------------------------------------------------------------------


class Server:
    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int, nice: int = 0
    ) -> None:
        self.name = name
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - fixed command
            command,
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )

    async def ready(self, path: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log.name}")
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}{path}")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready; see {self.log.name}")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server's processes have used so far (Linux /proc):
        the process and, with ``--workers``, the uvicorn workers of its process group."""
        return _cpu_s_of_group(self.process.pid)

    def stop(self, *, keep_log: bool = False) -> None:
        """Stop the server; its log is deleted unless ``keep_log`` (a run that failed)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
        if keep_log:
            print(f"{self.name}'s log: {self.log.name}", file=sys.stderr)
        else:
            Path(self.log.name).unlink(missing_ok=True)


def _processes() -> Iterator[list[str]]:
    """The fields after the command name of each process's /proc stat line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue


def _cpu_s(fields: list[str], *, children: bool = False) -> float:
    """User + system CPU seconds (and, with ``children``, those of reaped children)."""
    last = 15 if children else 13
    return sum(int(f) for f in fields[11:last]) / os.sysconf("SC_CLK_TCK")


def _cpu_s_of_group(pgid: int) -> float:
    return sum(_cpu_s(fields) for fields in _processes() if int(fields[2]) == pgid)


def _postmaster_pid(data_directory: str) -> int:
    return int(Path(data_directory, "postmaster.pid").read_text().split()[0])


class ClusterCpu:
    """CPU seconds used by one PostgreSQL cluster: its postmaster and its children.

    Backends come and go: the live children's time is summed, and the postmaster's own
    count of the children it has reaped (cutime, cstime) covers those that ended.
    """

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster

    @classmethod
    async def of(cls, dsn: str) -> ClusterCpu:
        conn = await asyncpg.connect(dsn)
        try:
            data_directory = await conn.fetchval("SHOW data_directory")
        finally:
            await conn.close()
        return cls(_postmaster_pid(data_directory))

    def cpu_s(self) -> float:
        own = Path(f"/proc/{self.postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        return _cpu_s(own, children=True) + sum(
            _cpu_s(fields) for fields in _processes() if int(fields[1]) == self.postmaster
        )


def _profile(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` until interrupted (it skews the phase's figures a little)."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy on PATH (uv tool install py-spy)")
    command = [py_spy, "record", "-p", str(pid), "-o", out, "--format", "raw", "-r", "200"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _uvicorn(app: str, port: int, *, factory: bool, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning"]
    return command + (["--factory"] if factory else [])


def _intake_env(url: str, bootstrap: str, documents: str) -> dict[str, str]:
    pii = pii_settings_for_tests()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    env |= {
        "DIBAO_DATABASE_URL": url,
        "DIBAO_KAFKA_BOOTSTRAP": bootstrap,
        "DIBAO_ENVIRONMENT": "test",
        # As deployed: one JSON access-log line per request (the bare baseline has none).
        "DIBAO_LOG_LEVEL": "INFO",
        "DIBAO_PII_KEYS": pii.keys.get_secret_value(),
        "DIBAO_PII_ACTIVE_KEY_ID": pii.active_key_id,
        "DIBAO_PII_HASH_KEY": pii.hash_key.get_secret_value(),
        "DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": TEST_FINGERPRINT_KEYS,
        "DIBAO_INTAKE_DOCUMENT_DIR": documents,
    }
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in auth_settings_values().items()}
    return env


# --- data ------------------------------------------------------------------------------------


async def _prepare(port: int, token: str, count: int, seed: str = "bench") -> list[dict[str, Any]]:
    """``count`` registered households with their documents; a complete body for each."""
    today = SystemClock().today()
    synthesizer = Synthesizer(seed, today)
    plans = [
        synthesizer.household(
            VILLAGES[i % len(VILLAGES)],
            AreaType.URBAN if i % 4 < 2 else AreaType.RURAL,
            "地址",
            "elderly_alone",
        )
        for i in range(count)
    ]
    headers = {"Authorization": f"Bearer {token}"}
    bodies: list[dict[str, Any] | None] = [None] * count
    semaphore = asyncio.Semaphore(32)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        plan = plans[index]
        async with semaphore:
            response = await client.post("/households", json=plan.payload(), headers=headers)
            response.raise_for_status()
            household = response.json()
            people = [m["person_id"] for m in household["members"]]
            documents = []
            for number, (kind, member) in enumerate(required_documents(plan, today)):
                fields = {"household_id": household["id"], "document_type": kind}
                if member is not None:
                    fields["person_id"] = people[member]
                upload, content_type = multipart_upload(
                    fields, pdf_bytes(f"bench {index} {number}"), filename="scan.pdf"
                )
                uploaded = await client.post(
                    "/documents", content=upload, headers=headers | {"content-type": content_type}
                )
                uploaded.raise_for_status()
                documents.append(uploaded.json()["id"])
            bodies[index] = application_payload(household["id"], people, plan, documents)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        await asyncio.gather(*(one(client, i) for i in range(count)))
    return [b for b in bodies if b is not None]


def _payloads(bodies: Sequence[dict[str, Any]], token: str, keyed: bool) -> list[bytes]:
    out = []
    for body in bodies:
        headers = {"Authorization": f"Bearer {token}"}
        if keyed:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        out.append(post("/applications", json.dumps(body, ensure_ascii=False).encode(), headers))
    return out


async def _reopen(dsn: str) -> None:
    """Between phases: the households' applications are set aside, so they may apply again.

    (A household has one open application of a kind; the benchmark reuses households
    rather than registering thousands more.)
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE application SET status = 'withdrawn', withdrawal_cause = 'applicant_request'"
            " WHERE status = 'submitted' AND submitted_by <> $1",
            HISTORY_CLERK,
        )
    finally:
        await conn.close()


async def _autovacuum_passes(dsn: str) -> int:
    """Autovacuum's vacuums and analyzes of the benchmark's tables so far. A pass during a
    timed phase is a burst of PostgreSQL CPU, and each ANALYZE makes every connection
    plan its statements again (bench/README.md, fourth session of 30 Nov)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)"
                " FROM pg_stat_user_tables"
            )
        )
    finally:
        await conn.close()


async def _pending_outbox(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM outbox_message WHERE published_at IS NULL")
        )
    finally:
        await conn.close()


async def _settle(dsn: str, *, timeout_s: float = 60.0) -> None:
    """Before a timed phase: the relay has published everything and the timeline worker
    has caught up (its entries stop growing for a second), so that no phase pays for the
    backlog of the one before."""
    deadline = time.perf_counter() + timeout_s
    await _drain(dsn, timeout_s=timeout_s)
    conn = await asyncpg.connect(dsn)
    try:
        last = -1
        while time.perf_counter() < deadline:
            count = int(await conn.fetchval("SELECT count(*) FROM timeline_entry"))
            if count == last:
                return
            last = count
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def _drain(dsn: str, *, timeout_s: float) -> float:
    """When the relay has published every outbox row (perf_counter), or the timeout."""
    deadline = time.perf_counter() + timeout_s
    while True:
        if not await _pending_outbox(dsn) or time.perf_counter() > deadline:
            return time.perf_counter()
        await asyncio.sleep(0.2)


def _profiled(args: argparse.Namespace, server: Server, worker: Server | None) -> int:
    """The process --profile records: the server, or the timeline worker beside it."""
    if args.profile_process == "worker":
        if worker is None:
            raise SystemExit("--profile-process worker needs --timeline separate")
        return worker.process.pid
    return server.process.pid


def _sidecars_cpu_s(
    sidecars: dict[str, Server], server: Server, intake: Server
) -> dict[str, float]:
    """The CPU seconds so far of the processes that serve intake beside its API (the
    timeline worker, the relay when separate), for an intake phase."""
    return {name: s.cpu_s() for name, s in sidecars.items()} if server is intake else {}


def _server_processes(name: str, args: argparse.Namespace) -> int:
    """How many uvicorn processes serve ``name`` (the baseline is always one)."""
    return 1 if name == "baseline" else args.intake_workers


def _per_request_ms(after: dict[str, float], before: dict[str, float], n: int) -> dict[str, float]:
    return {name: round(1000 * (after[name] - before[name]) / n, 2) for name in before}


def _write_trace(path: str, phases: list[tuple[str, Phase]], args: argparse.Namespace) -> None:
    """Each open-loop request as a CSV line: where in its phase it was due, how long it took."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("server,index,scheduled_s,latency_ms,scheduled_epoch_s\n")
        for name, phase in phases:
            for index, latency in sorted(phase.scheduled):
                at = index / phase.schedule_rate
                out.write(
                    f"{name},{index},{at:.4f},{1000 * latency:.2f},{phase.wall_start + at:.4f}\n"
                )


async def run(stack: Stack, args: argparse.Namespace) -> Report:
    scratch = TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_bench")
    await scratch.recreate_database("intake")
    await scratch.migrate("intake")
    documents = tempfile.mkdtemp(prefix="bench-intake-documents-")
    env = _intake_env(scratch.database_url("intake"), stack.kafka_bootstrap, documents)
    in_process = "true" if args.timeline == "in-process" else "false"
    intake = Server(
        "intake",
        _uvicorn(
            "dibao_intake.main:create_app",
            args.intake_port,
            factory=True,
            workers=args.intake_workers,
        ),
        env
        | {
            "DIBAO_INTAKE_TIMELINE_ENABLED": in_process,
            "DIBAO_INTAKE_RELAY_ENABLED": "true" if args.relay == "in-process" else "false",
        },
        args.intake_port,
    )
    sidecars: dict[str, Server] = {}
    if args.timeline == "separate":
        sidecars["timeline worker"] = Server(
            "timeline", [sys.executable, "-m", "dibao_intake.worker"], env, 0, args.worker_nice
        )
    if args.relay == "separate":
        sidecars["relay"] = Server(
            "relay",
            [
                sys.executable,
                "-m",
                "dibao_common.messaging.relay",
                "--database-url",
                scratch.database_url("intake"),
                "--bootstrap",
                stack.kafka_bootstrap,
                "--name",
                "intake",
            ],
            env,
            0,
        )
    worker = sidecars.get("timeline worker")
    baseline = Server(
        "baseline",
        _uvicorn("bench.intake_baseline:app", args.baseline_port, factory=False),
        dict(os.environ) | {"BENCH_BASELINE_DSN": scratch.dsn("intake")},
        args.baseline_port,
    )
    failed = True
    try:
        await intake.ready("/readyz")
        await baseline.ready("/docs")
        token = TokenFactory()(
            roles=["intake_clerk"], regions=["62"], subject="bench-clerk", expires_in=3 * 3600
        )
        n = args.submissions
        prepared_at = time.perf_counter()
        bodies = await _prepare(intake.port, token, max(WARMUP, n))
        prepare_s = time.perf_counter() - prepared_at
        filled_at = time.perf_counter()
        history_rows = await prefill(
            scratch.dsn("intake"),
            args.history,
            regions=VILLAGES,
            baseline_body=bodies[0],
        )
        history_s = time.perf_counter() - filled_at
        keyed = not args.no_idempotency_key
        dsn = scratch.dsn("intake")
        await closed_loop(baseline.port, _payloads(bodies[:WARMUP], token, keyed), args.concurrency)
        await closed_loop(intake.port, _payloads(bodies[:WARMUP], token, keyed), args.concurrency)
        variants = [("baseline", baseline, keyed), ("intake", intake, keyed)]
        if args.also_unkeyed and keyed:
            variants.append(("intake, no Idempotency-Key", intake, False))
        cluster = await ClusterCpu.of(dsn)
        sidecar_ms: dict[str, dict[str, float]] = {}
        steady_cpu: dict[str, dict[str, float]] = {}
        steady_vacuums: dict[str, int] = {}
        results: list[tuple[str, Phase, Phase, float, float]] = []
        for name, server, with_key in variants:
            await _reopen(dsn)
            await _settle(dsn)
            used = server.cpu_s()
            used_pg = cluster.cpu_s()
            used_sidecars = _sidecars_cpu_s(sidecars, server, intake)
            profiler = (
                _profile(_profiled(args, server, worker), args.profile)
                if args.profile and name == "intake" and args.profile_phase == "peak"
                else None
            )
            peak = await closed_loop(
                server.port, _payloads(bodies[:n], token, with_key), args.concurrency
            )
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(60)
            cpu_ms = 1000 * (server.cpu_s() - used) / n
            pg_ms = 1000 * (cluster.cpu_s() - used_pg) / n
            if used_sidecars:
                sidecar_ms[name] = _per_request_ms(
                    _sidecars_cpu_s(sidecars, server, intake), used_sidecars, n
                )
            await _reopen(dsn)
            await _settle(dsn)
            steady_used = {
                "server": server.cpu_s(),
                "PostgreSQL": cluster.cpu_s(),
                **_sidecars_cpu_s(sidecars, server, intake),
            }
            profiler = (
                _profile(_profiled(args, server, worker), args.profile)
                if args.profile and name == "intake" and args.profile_phase == "steady"
                else None
            )
            vacuums = await _autovacuum_passes(dsn)
            steady = await open_loop(
                server.port, _payloads(bodies[:n], token, with_key), args.load * peak.rate
            )
            steady_vacuums[name] = await _autovacuum_passes(dsn) - vacuums
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(60)
            steady_cpu[name] = _per_request_ms(
                {
                    "server": server.cpu_s(),
                    "PostgreSQL": cluster.cpu_s(),
                    **_sidecars_cpu_s(sidecars, server, intake),
                },
                steady_used,
                n,
            )
            results.append((name, peak, steady, cpu_ms, pg_ms))
        if args.trace:
            _write_trace(args.trace, [(name, steady) for name, _p, steady, _c, _g in results], args)
        backlog_after = await _pending_outbox(scratch.dsn("intake"))
        drained_at = time.perf_counter()
        drain_s = await _drain(scratch.dsn("intake"), timeout_s=60.0) - drained_at
        failed = False
    finally:
        intake.stop(keep_log=failed)
        baseline.stop(keep_log=failed)
        for sidecar in sidecars.values():
            sidecar.stop(keep_log=failed)
        shutil.rmtree(documents, ignore_errors=True)
    (_, base_peak, _, base_cpu, _), (_, intake_peak, intake_rate, intake_cpu, _) = results[:2]
    ok = intake_peak.statuses.get(201, 0) + intake_rate.statuses.get(201, 0)
    ratio = intake_peak.rate / base_peak.rate
    report = Report(
        title=f"intake submissions vs bare FastAPI + one asyncpg insert ({n} per phase)",
        columns=[
            "server",
            "peak req/s",
            "p50 ms @peak",
            "p99 ms @peak",
            "CPU ms/req",
            "PG CPU ms/req",
            f"rate @{args.load:.0%}",
            "p50 ms",
            "p99 ms",
            "errors",
        ],
    )
    for name, peak, steady, cpu_ms, pg_ms in results:
        errors = sum(c for s, c in (peak.statuses | steady.statuses).items() if s != 201)
        report.rows.append(
            [
                name,
                peak.rate,
                peak.percentile_ms(0.5),
                peak.percentile_ms(0.99),
                round(cpu_ms, 2),
                round(pg_ms, 2),
                steady.rate,
                steady.percentile_ms(0.5),
                steady.percentile_ms(0.99),
                errors,
            ]
        )
    report.figures = {
        "intake/baseline peak throughput": round(ratio, 3),
        "target >= 0.5": ratio >= 0.5,
        "intake/baseline server CPU per request": round(intake_cpu / base_cpu, 1),
        **{f"sidecar CPU ms/req ({name}, peak phase)": ms for name, ms in sidecar_ms.items()},
        **{f"CPU ms/req at {args.load:.0%} ({name})": cpu for name, cpu in steady_cpu.items()},
        # How busy each server process was in the open loop (its CPU per request times the
        # rate, over its processes): a process near 1 queues, whatever its code.
        **{
            f"server process busy at {args.load:.0%} ({name})": round(
                steady_cpu[name]["server"] * steady.rate / 1000 / _server_processes(name, args), 2
            )
            for name, _peak, steady, _cpu, _pg in results
        },
        f"intake p99 ms at {args.load:.0%} of peak": round(intake_rate.percentile_ms(0.99), 1),
        **{
            f"p99 ms by fifth of the {args.load:.0%} phase ({name})": steady.p99_by_fifth_ms()
            for name, _peak, steady, _cpu, _pg in results
        },
        **{
            f"autovacuum passes (tables) during the {args.load:.0%} phase ({name})": count
            for name, count in steady_vacuums.items()
        },
        "target p99 < 50 ms": intake_rate.percentile_ms(0.99) < 50,
        "intake submissions accepted (201)": ok,
        "outbox rows pending right after the load": backlog_after,
        "seconds for the relay to drain them": round(drain_s, 2),
        "setup: households with documents registered in s": round(prepare_s, 1),
        "setup: past households written, with VACUUM ANALYZE and CHECKPOINT, in s": round(
            history_s, 1
        ),
        "rows in the busiest tables before the phases": {
            t: history_rows.get(t, 0)
            for t in ("application", "application_document", "timeline_entry", "document")
        },
    }
    report.settings = {
        "submissions_per_phase": n,
        "warmup": WARMUP,
        "concurrency": args.concurrency,
        "load_fraction": args.load,
        "idempotency_key": keyed,
        "household_shape": "elderly_alone (1 member, 4-5 documents)",
        "history_households": args.history,
        "servers": "one uvicorn process each (intake: --intake-workers), same PostgreSQL",
        "timeline_consumer": args.timeline,
        "outbox_relay": args.relay,
        "timeline_worker_nice": args.worker_nice,
        "intake_processes": args.intake_workers,
        "cpus": os.cpu_count(),
        "statistics": "p50/p99 by rank; open-loop latency from scheduled send time",
    }
    return report
