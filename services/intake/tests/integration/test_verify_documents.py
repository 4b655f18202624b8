"""``python -m dibao_intake.verify_documents``: the document store checked against the rows.

The job reads every ``document`` row of the database it runs on and the whole store, so
these tests have a database (``<prefix>_verifydocs_intake``) and a store of their own,
both emptied before each test. The documents are uploaded by the real service (an app on
that database, relay and consumers off: nothing here needs the broker); the tests then
spoil the files as bit rot, an operator or tampering would.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.testing.auth_fixtures import TokenFactory, auth_settings_values
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake import verify_documents
from dibao_intake.adapters import document_store
from dibao_intake.adapters.document_store import DocumentStore, FilesystemDocumentStore
from dibao_intake.adapters.repositories import documents as documents_repo
from dibao_intake.main import create_app
from dibao_intake.models import Base
from dibao_intake.settings import IntakeSettings
from dibao_intake.synthetic import Synthesizer, pdf_bytes
from dibao_intake.testing import (
    ISSUED_ID_NUMBERS,
    IntakeClient,
    intake_database_of_its_own,
    intake_settings_for,
)

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def verify_stack() -> TestStack:
    return await intake_database_of_its_own("verifydocs")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def verify_engine(verify_stack: TestStack) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(verify_stack.database_url("intake"), pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def settings(verify_stack: TestStack, tmp_path: Path) -> IntakeSettings:
    return intake_settings_for(
        verify_stack,
        tmp_path / "documents",
        intake_relay_enabled=False,
        intake_timeline_enabled=False,
        housekeeping_interval_s=0,
    )


@dataclass
class Stored:
    """What was uploaded: each document's id and sha256, and the store they are in."""

    store: FilesystemDocumentStore
    documents: dict[str, str]
    """document id -> sha256"""

    def ids_of(self, digest: str) -> list[str]:
        return sorted(i for i, d in self.documents.items() if d == digest)

    def path(self, digest: str) -> Path:
        return self.store.root / digest[:2] / digest


@asynccontextmanager
async def _service(
    settings: IntakeSettings, clock: FrozenClock, store: DocumentStore | None = None
) -> AsyncIterator[tuple[IntakeClient, str]]:
    """The intake API on the test database (``store``: the settings' by default), as a
    clerk uses it, and a household registered to upload documents for."""
    app = create_app(settings, clock=clock, store=store)
    async with api_client(app) as http:
        synthesizer = Synthesizer(f"verify-{uuid.uuid4()}", clock.today(), used=ISSUED_ID_NUMBERS)
        intake = IntakeClient(http, TokenFactory().with_clock(clock.now), synthesizer)
        household = await intake.register()
        yield intake, household.id


@pytest_asyncio.fixture(loop_scope="session")
async def stored(
    verify_engine: AsyncEngine, settings: IntakeSettings, intake_clock: FrozenClock
) -> Stored:
    """An emptied database and store, then five documents of four contents (one handed
    in as two documents: a photo and another type) uploaded through the API."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with verify_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    documents: dict[str, str] = {}
    async with _service(settings, intake_clock) as (intake, household_id):
        contents = [pdf_bytes(f"scan {n} {uuid.uuid4()}") for n in range(4)]
        kinds = ["photo"] * len(contents) + ["other"]
        for kind, content in zip(kinds, [*contents, contents[1]], strict=True):
            response = await intake.upload(household_id, kind, content=content)
            assert response.status_code == 201, response.text
            documents[response.json()["id"]] = response.json()["sha256"]
    store = FilesystemDocumentStore(settings.intake_document_dir)
    return Stored(store, documents)


async def _run(settings: IntakeSettings, *args: str) -> tuple[int, str, str]:
    """The command in this process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = await verify_documents.run(verify_documents.parse_args(args), settings, out, err)
    return code, out.getvalue(), err.getvalue()


def _spoil(stored: Stored) -> tuple[str, str, str]:
    """Alter the file of the content handed in twice, remove another's, and put a file
    no row names: (damaged, missing, orphan) sha256s."""
    digests = sorted(set(stored.documents.values()))
    twice = next(d for d in digests if len(stored.ids_of(d)) == 2)
    gone = next(d for d in digests if d != twice)
    path = stored.path(twice)
    path.write_bytes(path.read_bytes().replace(b"scan", b"scam"))
    stored.path(gone).unlink()
    orphan_content = pdf_bytes(f"never recorded {uuid.uuid4()}")
    orphan = hashlib.sha256(orphan_content).hexdigest()
    stored.path(orphan).parent.mkdir(exist_ok=True)
    stored.path(orphan).write_bytes(orphan_content)
    _age(stored.path(orphan), hours=2)
    return twice, gone, orphan


def _age(path: Path, *, hours: float) -> None:
    """Make ``path`` look written ``hours`` ago, as an upload's that rolled back then."""
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


async def _orphan(stored: Stored, label: str, *, hours: float = 0) -> tuple[str, bytes]:
    """Content put in the store as an upload puts it, which no row names, written
    ``hours`` ago: its sha256 and bytes."""
    content = pdf_bytes(f"{label} {uuid.uuid4()}")
    digest = hashlib.sha256(content).hexdigest()
    await stored.store.put(digest, content)
    if hours:
        _age(stored.path(digest), hours=hours)
    return digest, content


@pytest.mark.parametrize("batch_size", [1, 2, 500])
async def test_a_sound_store_passes(
    stored: Stored, settings: IntakeSettings, batch_size: int
) -> None:
    code, out, err = await _run(settings, "--batch-size", str(batch_size))
    assert code == 0, out + err
    lines = out.splitlines()
    assert f"checked: 4 contents of 5 documents in {stored.store.root}" in lines
    assert "missing: 0" in lines
    assert "damaged: 0" in lines
    assert "orphans: 0" in lines
    assert lines[-1] == "ok: every document's content is present and hashes to its name"


@pytest.mark.parametrize("batch_size", [1, 3, 500])
async def test_missing_damaged_and_orphaned_files_are_each_reported(
    stored: Stored, settings: IntakeSettings, batch_size: int
) -> None:
    damaged, missing, orphan = _spoil(stored)
    before = {p: p.read_bytes() for p in stored.store.root.rglob("*") if p.is_file()}
    code, out, _ = await _run(settings, "--batch-size", str(batch_size))
    assert code == 1, out
    lines = out.splitlines()
    assert f"checked: 4 contents of 5 documents in {stored.store.root}" in lines
    assert "missing: 1 content(s) of 1 document(s)" in lines
    assert f"  {missing}: {' '.join(stored.ids_of(missing))}" in lines
    assert "damaged: 1 content(s) of 2 document(s)" in lines
    assert f"  {damaged}: {' '.join(stored.ids_of(damaged))}" in lines
    assert "orphans: 1 file(s) older than 1h that no document names (left in place)" in lines
    assert f"  {orphan}" in lines
    assert lines[-1] == "FAILED: 3 document(s) without their content as uploaded"
    # Nothing in the store was changed, the orphan included.
    after = {p: p.read_bytes() for p in stored.store.root.rglob("*") if p.is_file()}
    assert after == before


async def test_the_json_report(stored: Stored, settings: IntakeSettings) -> None:
    damaged, missing, orphan = _spoil(stored)
    code, out, _ = await _run(settings, "--json", "--batch-size", "2")
    assert code == 1
    report = json.loads(out)
    assert report == {
        "store": str(stored.store.root),
        "documents": 5,
        "checked": 4,
        "missing": [{"sha256": missing, "document_ids": stored.ids_of(missing)}],
        "damaged": [{"sha256": damaged, "document_ids": stored.ids_of(damaged)}],
        "unreadable": [],
        "orphans": [orphan],
        "orphan_min_age_s": 3600,
        "recent": [],
        "sweep": False,
        "swept": [],
        "not_swept": [],
        "ok": False,
    }


async def test_orphans_alone_do_not_fail_the_check(
    stored: Stored, settings: IntakeSettings
) -> None:
    """A file no row names is an upload whose transaction failed (or one in flight): it
    is listed for an operator, not an error in the evidence."""
    orphan, _ = await _orphan(stored, "rolled back", hours=2)
    code, out, _ = await _run(settings, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert report["orphans"] == [orphan]


async def test_an_empty_database_and_store_pass(
    verify_engine: AsyncEngine, verify_stack: TestStack, tmp_path: Path
) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with verify_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    settings = intake_settings_for(verify_stack, tmp_path / "never-made")
    code, out, _ = await _run(settings)
    assert code == 0, out
    assert out.splitlines()[-1] == "ok: every document's content is present and hashes to its name"


def _environment(settings: IntakeSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    env |= {
        "DIBAO_DATABASE_URL": settings.database_url,
        "DIBAO_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DIBAO_ENVIRONMENT": "test",
        "DIBAO_LOG_LEVEL": "INFO",
        "DIBAO_INTAKE_DOCUMENT_DIR": str(settings.intake_document_dir),
        "DIBAO_PII_KEYS": settings.pii.keys.get_secret_value(),
        "DIBAO_PII_ACTIVE_KEY_ID": settings.pii.active_key_id,
        "DIBAO_PII_HASH_KEY": settings.pii.hash_key.get_secret_value(),
        "DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": (
            settings.idempotency_fingerprint_keys.get_secret_value()
        ),
    }
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in auth_settings_values().items()}
    return env


async def test_the_command_runs_as_a_process(stored: Stored, settings: IntakeSettings) -> None:
    """As an operator's nightly job runs it: the service's environment, the report on
    stdout, a JSON log line on stderr for each content not as uploaded, exit 1."""
    damaged, missing, orphan = _spoil(stored)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dibao_intake.verify_documents",
        "--json",
        env=_environment(settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 1, stdout.decode() + stderr.decode()
    report: dict[str, Any] = json.loads(stdout)
    assert [(a["sha256"], a["document_ids"]) for a in report["missing"]] == [
        (missing, stored.ids_of(missing))
    ]
    assert [(a["sha256"], a["document_ids"]) for a in report["damaged"]] == [
        (damaged, stored.ids_of(damaged))
    ]
    assert report["orphans"] == [orphan]
    logged = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    errors = {
        (e["reason"], e["sha256"]): e["document_ids"] for e in logged if e["level"] == "error"
    }
    assert errors == {
        ("missing", missing): stored.ids_of(missing),
        ("damaged", damaged): stored.ids_of(damaged),
    }


def _files(stored: Stored) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in stored.store.root.rglob("*") if p.is_file()}


async def test_a_young_orphan_is_not_judged(stored: Stored, settings: IntakeSettings) -> None:
    """An upload writes its content before its row commits: until then no row names it,
    as none names a rolled-back upload's. Content written within ``--orphan-min-age``
    (1 h by default) is listed apart as recent, not judged, and never swept."""
    young, content = await _orphan(stored, "just written")
    old, _ = await _orphan(stored, "rolled back", hours=2)
    code, out, _ = await _run(settings)
    assert code == 0, out
    lines = out.splitlines()
    assert "orphans: 1 file(s) older than 1h that no document names (left in place)" in lines
    assert f"  {old}" in lines
    assert "recent: 1 file(s) written in the last 1h that no document names yet (not judged)" in (
        lines
    )
    assert f"  {young}" in lines
    code, out, _ = await _run(settings, "--json", "--sweep")
    assert code == 0, out
    report = json.loads(out)
    assert (report["orphans"], report["recent"], report["swept"]) == ([old], [young], [old])
    assert stored.path(young).read_bytes() == content
    assert not stored.path(old).exists()
    # The minimum age is the operator's: 30 minutes still leaves it; 0 judges everything.
    code, out, _ = await _run(settings, "--json", "--orphan-min-age", "30m")
    assert (json.loads(out)["orphans"], json.loads(out)["recent"]) == ([], [young])
    code, out, _ = await _run(settings, "--json", "--orphan-min-age", "0")
    assert (json.loads(out)["orphans"], json.loads(out)["recent"]) == ([young], [])
    assert stored.path(young).read_bytes() == content  # listed, not swept without --sweep


@pytest.mark.parametrize("batch_size", [1, 500])
async def test_an_old_orphan_is_swept_with_sweep_and_left_without(
    stored: Stored, settings: IntakeSettings, batch_size: int
) -> None:
    damaged, missing, orphan = _spoil(stored)
    before = _files(stored)
    code, out, _ = await _run(settings, "--batch-size", str(batch_size))
    assert code == 1, out
    lines = out.splitlines()
    assert "orphans: 1 file(s) older than 1h that no document names (left in place)" in lines
    assert f"  {orphan}" in lines
    assert "recent: 0" in lines
    assert not [line for line in lines if line.startswith("swept")]
    assert _files(stored) == before  # a dry run by default
    with capture_logs() as logs:
        code, out, _ = await _run(settings, "--sweep", "--batch-size", str(batch_size))
    assert code == 1, out  # the damaged and the missing content are still what fails it
    lines = out.splitlines()
    assert "orphans: 1 file(s) older than 1h that no document names" in lines
    assert "swept: 1 orphan(s) deleted" in lines
    assert lines[lines.index("swept: 1 orphan(s) deleted") + 1] == f"  {orphan}"
    assert "not swept: 0" in lines
    # The orphan alone went; the damaged content is evidence to restore, not to sweep.
    assert _files(stored) == {p: c for p, c in before.items() if p != stored.path(orphan)}
    assert stored.path(damaged).exists()
    assert not stored.path(missing).exists()  # nor put back by anything here
    [swept] = [e for e in logs if e["event"] == "document content swept"]
    assert swept["sha256"] == orphan
    [summary] = [e for e in logs if e["event"] == "document store verified"]
    assert (summary["orphans"], summary["swept"], summary["not_swept"]) == (1, 1, 0)
    code, out, _ = await _run(settings, "--sweep")
    assert "orphans: 0" in out.splitlines()
    assert "swept: 0 orphan(s) deleted" in out.splitlines()


class PausedStore(FilesystemDocumentStore):
    """The service's store, holding an upload between its content's put and its row's
    insert (its transaction open) until ``resume`` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written = asyncio.Event()
        self.resume = asyncio.Event()

    async def put(self, sha256: str, content: bytes) -> document_store.PutOutcome:
        outcome = await super().put(sha256, content)
        self.written.set()
        await self.resume.wait()
        return outcome


async def test_an_upload_in_flight_is_neither_judged_nor_swept(
    stored: Stored, settings: IntakeSettings, intake_clock: FrozenClock
) -> None:
    content = pdf_bytes(f"in flight {uuid.uuid4()}")
    digest = hashlib.sha256(content).hexdigest()
    store = PausedStore(settings.intake_document_dir)
    async with _service(settings, intake_clock, store) as (intake, household_id):
        upload = asyncio.create_task(intake.upload(household_id, "photo", content=content))
        try:
            await asyncio.wait_for(store.written.wait(), 30)
            code, out, _ = await _run(settings, "--json", "--sweep")
            assert code == 0, out
            report = json.loads(out)
            assert (report["orphans"], report["recent"], report["swept"]) == ([], [digest], [])
            # Judged at once (no minimum age) it is an orphan, but the upload holds its
            # content's lock: the sweep leaves it.
            code, out, _ = await _run(settings, "--json", "--sweep", "--orphan-min-age", "0")
            report = json.loads(out)
            assert (report["orphans"], report["swept"]) == ([digest], [])
            assert report["not_swept"] == [{"sha256": digest, "reason": "in-flight"}]
            assert stored.path(digest).read_bytes() == content
        finally:
            store.resume.set()
            response = await upload
    assert response.status_code == 201, response.text
    code, out, _ = await _run(settings, "--json", "--sweep", "--orphan-min-age", "0")
    assert code == 0, out
    report = json.loads(out)
    assert (report["checked"], report["orphans"], report["recent"]) == (5, [], [])
    assert stored.path(digest).read_bytes() == content


async def test_a_row_committed_after_the_listing_keeps_its_content(
    stored: Stored, settings: IntakeSettings, verify_engine: AsyncEngine, intake_clock: FrozenClock
) -> None:
    """The content an old orphan holds is handed in again between the listing and the
    sweep: its row names it now, and the sweep checks the table again before deleting."""
    orphan, content = await _orphan(stored, "handed in again", hours=2)
    report = await verify_documents.verify(verify_engine, stored.store, store_name="test")
    assert report.orphans == [orphan]
    async with _service(settings, intake_clock) as (intake, household_id):
        response = await intake.upload(household_id, "photo", content=content)
        assert response.status_code == 201, response.text
    await verify_documents.sweep_orphans(verify_engine, stored.store, report)
    assert report.swept == []
    assert [(n.sha256, n.reason) for n in report.not_swept] == [(orphan, "referenced")]
    assert stored.path(orphan).read_bytes() == content


async def _waiting_for_content_lock(engine: AsyncEngine, digest: str) -> bool:
    """Whether a session waits for the advisory lock an upload of ``digest`` takes."""
    lock_class, lock_key = documents_repo.content_lock(digest)
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = CAST(CAST(:c AS bigint) AS oid)"
                " AND objid = CAST(CAST(:o AS bigint) AS oid) AND objsubid = 2"
            ),
            {"c": lock_class & 0xFFFFFFFF, "o": lock_key & 0xFFFFFFFF},
        )
    return bool(waiting)


class RacingStore(FilesystemDocumentStore):
    """The store the sweep deletes from, running ``race`` just before a delete: the sweep
    has found, under the content's lock, that no row names it."""

    def __init__(self, root: Path, race: Callable[[str], Awaitable[None]]) -> None:
        super().__init__(root)
        self.race = race

    async def delete(self, sha256: str) -> bool:
        await self.race(sha256)
        return await super().delete(sha256)


async def test_an_upload_during_the_delete_writes_its_content_again(
    stored: Stored, settings: IntakeSettings, verify_engine: AsyncEngine, intake_clock: FrozenClock
) -> None:
    """The same bytes handed in again just as the sweep deletes them: the upload's put
    finds the old file sound and keeps it, and its row commits. Unless the upload waits
    for the sweep (the content's advisory lock, taken before the put), the delete then
    leaves that row without its content."""
    orphan, content = await _orphan(stored, "rolled back, then handed in again", hours=2)
    loop = asyncio.get_running_loop()
    async with _service(settings, intake_clock) as (intake, household_id):
        uploads: list[asyncio.Task[Any]] = []

        async def race(sha256: str) -> None:
            uploads.append(
                asyncio.create_task(intake.upload(household_id, "photo", content=content))
            )
            deadline = loop.time() + 30
            # Until the upload is done, or waits for the lock the sweep holds.
            while not uploads[0].done() and not await _waiting_for_content_lock(
                verify_engine, sha256
            ):
                assert loop.time() < deadline, "the upload neither finished nor waited"
                await asyncio.sleep(0.01)

        store = RacingStore(stored.store.root, race)
        report = await verify_documents.verify(verify_engine, store, store_name="test", sweep=True)
        response = await uploads[0]
    assert response.status_code == 201, response.text
    assert report.swept == [orphan]  # an orphan still when the sweep held its lock
    assert stored.path(orphan).read_bytes() == content  # written again by the upload
    code, out, _ = await _run(settings, "--json")
    assert code == 0, out
    assert (json.loads(out)["missing"], json.loads(out)["orphans"]) == ([], [])


async def test_an_orphan_that_cannot_be_deleted_fails_the_sweep_alone(
    stored: Stored, verify_engine: AsyncEngine
) -> None:
    """A delete that fails (permissions, an I/O error; here a directory where the file
    was) is logged and fails the run; the other orphans are swept all the same."""
    stuck, _ = await _orphan(stored, "stuck", hours=2)
    other, _ = await _orphan(stored, "rolled back", hours=2)
    report = await verify_documents.verify(verify_engine, stored.store, store_name="test")
    assert sorted(report.orphans) == sorted([stuck, other])
    path = stored.path(stuck)
    path.unlink()
    path.mkdir()
    (path / "kept").write_bytes(b"x")
    _age(path, hours=2)
    with capture_logs() as logs:
        await verify_documents.sweep_orphans(verify_engine, stored.store, report)
    assert report.swept == [other]
    assert [(n.sha256, n.reason) for n in report.not_swept] == [(stuck, "failed")]
    assert report.sweep_failed
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert (error["event"], error["sha256"]) == ("document content not swept", stuck)
    lines = verify_documents.describe(report)
    assert f"  {stuck}: failed" in lines
    assert "FAILED: 1 orphan(s) could not be deleted (logged)" in lines
    assert lines[-1] == "ok: every document's content is present and hashes to its name"
    assert not stored.path(other).exists()
