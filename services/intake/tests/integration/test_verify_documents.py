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
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.clock import FrozenClock
from dibao_common.db import make_engine
from dibao_common.testing.auth_fixtures import TokenFactory, auth_settings_values
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake import verify_documents
from dibao_intake.adapters.document_store import FilesystemDocumentStore
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


@pytest_asyncio.fixture(loop_scope="session")
async def stored(
    verify_engine: AsyncEngine, settings: IntakeSettings, intake_clock: FrozenClock
) -> Stored:
    """An emptied database and store, then five documents of four contents (one handed
    in twice) uploaded through the API."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with verify_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    app = create_app(settings, clock=intake_clock)
    documents: dict[str, str] = {}
    async with api_client(app) as http:
        synthesizer = Synthesizer(
            f"verify-{uuid.uuid4()}", intake_clock.today(), used=ISSUED_ID_NUMBERS
        )
        intake = IntakeClient(http, TokenFactory().with_clock(intake_clock.now), synthesizer)
        household = await intake.register()
        contents = [pdf_bytes(f"scan {n} {uuid.uuid4()}") for n in range(4)]
        for content in [*contents, contents[1]]:
            response = await intake.upload(household.id, "photo", content=content)
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
    return twice, gone, orphan


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
    assert "orphans: 1 file(s) that no document names (left in place)" in lines
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
        "ok": False,
    }


async def test_orphans_alone_do_not_fail_the_check(
    stored: Stored, settings: IntakeSettings
) -> None:
    """A file no row names is an upload whose transaction failed (or one in flight): it
    is listed for an operator, not an error in the evidence."""
    content = pdf_bytes(f"rolled back {uuid.uuid4()}")
    await stored.store.put(hashlib.sha256(content).hexdigest(), content)
    code, out, _ = await _run(settings, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert report["orphans"] == [hashlib.sha256(content).hexdigest()]


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
