"""Cross-service flows: what users see when a case goes through the running services.

One stack of the module's own (``deploy/stack.sh up``, instance ``flows``: the five
services as processes, their migrations and the demo district, on the test stack's
PostgreSQL and Kafka) serves every test here; it is stopped, and its databases and state
directory deleted, when the module ends. Every request goes over HTTP with development
tokens signed by the keys the stack wrote, as a district portal's or an auditor's would.

Audit's events reach an application's timeline by the one anomaly audit raises today:
``AnomalyDetected`` of rule ``event_id_reused``, about the application when the event whose
id was reused names one. No service reuses an id, so the test is the faulty producer: it
puts on ``dibao.intake.v1`` a record with the id of an application's submission and other
content, as a broken or replaying service would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.checkpoint import CheckpointSigner
from dibao_common.devtoken import mint
from dibao_common.messaging.envelope import Envelope, ce_type_of, topic_of
from dibao_common.testing.local_stack import RunningStack, running_stack
from dibao_common.testing.stack import REPO_ROOT, TestStack
from dibao_intake.demo import REFERENCE_DAY
from dibao_intake.domain.codes import AreaType
from dibao_intake.synthetic import (
    PlannedHousehold,
    Synthesizer,
    application_payload,
    multipart_upload,
    pdf_bytes,
    required_documents,
)

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

INSTANCE = "flows"
COUNTY = "620123"
"""Yuzhong County of the demo district: the portal's and the auditor's region."""
OTHER_COUNTY = "620102"
"""Chengguan District beside it: its auditor must not see Yuzhong's households."""
VILLAGE = "620123101203"
"""夏官营村 of 夏官营镇, whose township has a responsible caseworker on the demo roster."""
OTHER_VILLAGE = "620102001001"
"""A village code of Chengguan District (OTHER_COUNTY): where a forged record may claim to be."""
WAIT_S = 90.0
"""Bound on waiting for an event to go outbox -> Kafka -> audit log (or a checkpoint)."""
ACCESSED = "dibao.access.PersonalDataAccessed.v1"
SUBMITTED = "dibao.intake.ApplicationSubmitted.v1"
ANOMALY = "dibao.audit.AnomalyDetected.v1"

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = WAIT_S
) -> T:
    """The first result of ``probe`` that is not None, polled until ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: T | None = None
    while loop.time() < deadline:
        last = await probe()
        if last is not None:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass(frozen=True, slots=True)
class Flows:
    """The running stack and tokens of its users."""

    stack: RunningStack
    secrets: dict[str, str] = field(repr=False)

    def token(self, role: str, region: str, subject: str) -> str:
        return mint(
            self.stack.signing_key(),
            subject=subject,
            roles=[role],
            regions=[region],
            issuer=self.secrets["DIBAO_JWT_ISSUER"],
            audience=self.secrets["DIBAO_JWT_AUDIENCE"],
            ttl_s=3600,
        )

    def vkey(self) -> str:
        """The log's verifier key, pinned: made from the signing seed the stack wrote, not
        from what the service publishes."""
        seed = self.secrets["DIBAO_AUDIT_SIGNING_KEY"]
        origin = self.secrets.get("DIBAO_AUDIT_LOG_ORIGIN", "dibao.audit/local")
        return CheckpointSigner(base64.b64decode(seed), origin).verifier.vkey()


@pytest.fixture(scope="module")
async def flows(stack: TestStack) -> AsyncIterator[Flows]:
    # A checkpoint each second while the log grows (the default is a minute), so that a
    # flow's entries are covered by a signed checkpoint soon after they are appended.
    async with running_stack(
        stack, INSTANCE, {"DIBAO_AUDIT_CHECKPOINT_INTERVAL_S": "1"}
    ) as running:
        yield Flows(running, running.secrets())


class Portal:
    """A district portal: an intake clerk's token, talking to intake over HTTP."""

    def __init__(self, flows: Flows, subject: str) -> None:
        self.subject = subject
        self.http = httpx.AsyncClient(
            base_url=flows.stack.url("intake"),
            headers={"Authorization": f"Bearer {flows.token('intake_clerk', COUNTY, subject)}"},
            timeout=30,
        )

    async def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(uuid.uuid4())} | kwargs.pop("headers", {})
        response = await self.http.post(path, headers=headers, **kwargs)
        assert response.status_code in (200, 201), f"POST {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.http.get(path)
        assert response.status_code == 200, f"GET {path}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    async def register_and_apply(self, seed: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A household registered and its complete application submitted: the answers."""
        plan: PlannedHousehold = Synthesizer(seed, REFERENCE_DAY).household(
            VILLAGE, AreaType.RURAL, f"榆中县夏官营镇夏官营村{seed[-1:]}社1号"
        )
        household = await self.post("/households", json=plan.payload())
        person_ids = [m["person_id"] for m in household["members"]]
        documents = []
        for number, (kind, member) in enumerate(required_documents(plan, REFERENCE_DAY)):
            data = {"household_id": household["id"], "document_type": kind}
            if member is not None:
                data["person_id"] = person_ids[member]
            upload, content_type = multipart_upload(
                data, pdf_bytes(f"{seed} {kind} {number}"), filename=f"{kind}.pdf"
            )
            documents.append(
                (
                    await self.post(
                        "/documents", content=upload, headers={"content-type": content_type}
                    )
                )["id"]
            )
        body = application_payload(household["id"], person_ids, plan, documents)
        application = await self.post("/applications", json=body)
        return household, application

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def portal(flows: Flows) -> AsyncIterator[Portal]:
    made = Portal(flows, f"portal-{uuid.uuid4().hex[:8]}")
    yield made
    await made.close()


class Auditor:
    """An auditor of one region, reading audit's API."""

    def __init__(self, flows: Flows, region: str) -> None:
        self.token = flows.token("auditor", region, f"auditor-{region}")
        self.http = httpx.AsyncClient(
            base_url=flows.stack.url("audit"),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    async def entries(self, **params: str) -> list[dict[str, Any]]:
        """Every entry the auditor may see that matches ``params``, all pages."""
        found: list[dict[str, Any]] = []
        query: dict[str, str] = dict(params)
        while True:
            response = await self.http.get("/audit/entries", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["items"]
            if page["next_cursor"] is None:
                return found
            query["cursor"] = page["next_cursor"]

    async def entry(self, index: int) -> httpx.Response:
        return await self.http.get(f"/audit/entries/{index}")

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def auditors(flows: Flows) -> AsyncIterator[tuple[Auditor, Auditor]]:
    """An auditor of the portal's county and one of the county beside it."""
    own, other = Auditor(flows, COUNTY), Auditor(flows, OTHER_COUNTY)
    yield own, other
    await own.close()
    await other.close()


def _types(entries: list[dict[str, Any]]) -> list[str]:
    return [e["ce_type"] for e in entries]


async def _logged(
    auditor: Auditor, household_id: str, wanted: set[str], reads: set[str]
) -> list[dict[str, Any]]:
    """The household's entries once the log holds every type in ``wanted`` and an access
    record of each operation in ``reads`` (decoded from the entries)."""
    seen_reads: dict[int, str] = {}

    async def probe() -> list[dict[str, Any]] | None:
        found = await auditor.entries(household_id=household_id)
        if not wanted <= set(_types(found)):
            return None
        for e in found:
            if e["ce_type"] == ACCESSED and e["index"] not in seen_reads:
                operation = await _operation(auditor, e["index"])
                if operation is None:
                    return None  # not covered by a checkpoint yet
                seen_reads[e["index"]] = operation
        return found if reads <= set(seen_reads.values()) else None

    what = f"{sorted(wanted)} and reads {sorted(reads)} of household {household_id}"
    return await eventually(probe, what)


async def _operation(auditor: Auditor, index: int) -> str | None:
    """The ``operation`` of the access record logged at ``index``, as the auditor reads it
    (None while no checkpoint covers the entry: the read serves it with its proof)."""
    response = await auditor.entry(index)
    if response.status_code == 409 and "entry-not-covered" in response.text:
        return None
    assert response.status_code == 200, response.text
    decoded = response.json()["decoded"]
    assert isinstance(decoded, dict), response.text
    return str(decoded.get("operation", ""))


async def _covered(auditor: Auditor, index: int) -> int:
    """The size of the first signed checkpoint that covers ``index``."""

    async def probe() -> int | None:
        response = await auditor.http.get("/audit/checkpoints/latest")
        if response.status_code != 200:
            return None
        size = int(response.json()["tree_size"])
        return size if size > index else None

    return await eventually(probe, f"a checkpoint covering entry {index}")


def _verify(flows: Flows, auditor: Auditor, start: int, end: int) -> dict[str, Any]:
    """``python -m dibao_audit.verify_cli --url`` over [start, end) with the pinned key and an
    inclusion proof asked for every entry: its JSON report (exit status 0 asserted)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dibao_audit.verify_cli",
            "--url",
            flows.stack.url("audit"),
            "--vkey",
            flows.vkey(),
            "--token",
            auditor.token,
            "--start",
            str(start),
            "--end",
            str(end),
            "--inclusion-samples",
            str(end - start),
            "--timeout",
            "60",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def test_a_submission_is_in_the_audit_log_of_its_county_with_proofs(
    flows: Flows, portal: Portal, auditors: tuple[Auditor, Auditor]
) -> None:
    """A district portal registers a household and submits its complete application to
    intake; the portal reads both back. The audit log then holds HouseholdRegistered,
    ApplicationSubmitted and ApplicationAccepted and the access records of the two reads,
    found by an auditor of the county (by household and by application); an auditor of
    the county beside it finds none of them, by listing or by index. Each entry's
    inclusion proof verifies against a checkpoint signed with the pinned key
    (verify_cli)."""
    own, other = auditors
    household, application = await portal.register_and_apply("flows submission 1")
    assert application["status"] == "submitted", application
    household_id, application_id = household["id"], application["id"]
    assert (await portal.get(f"/households/{household_id}"))["id"] == household_id
    read = await portal.get(f"/applications/{application_id}")
    assert [e["type"] for e in read["timeline"]] == [
        "dibao.intake.ApplicationSubmitted.v1",
        "dibao.intake.ApplicationAccepted.v1",
    ]

    events = {
        "dibao.intake.HouseholdRegistered.v1",
        "dibao.intake.ApplicationSubmitted.v1",
        "dibao.intake.ApplicationAccepted.v1",
    }
    reads = {"GET /households/{household_id}", "GET /applications/{application_id}"}
    logged = await _logged(own, household_id, events | {ACCESSED}, reads)
    types = _types(logged)
    for event in events:
        assert types.count(event) == 1, types
    # The timeline's entries are the logged events themselves (their ids).
    by_type = {e["ce_type"]: e for e in logged}
    for entry in read["timeline"]:
        assert by_type[entry["type"]]["ce_id"] == entry["ce_id"]
    assert all(e["region"] == VILLAGE for e in logged), logged
    assert not [e for e in logged if e["contradicted"]], logged
    reads_logged = [e for e in logged if e["ce_type"] == ACCESSED and e["actor"] == portal.subject]
    assert {await _operation(own, e["index"]) for e in reads_logged} >= reads, reads_logged
    # By application: the submission and acceptance, and who read the application (its
    # access records name it), not the household's read.
    by_application = await own.entries(application_id=application_id)
    assert {SUBMITTED, "dibao.intake.ApplicationAccepted.v1"} <= set(_types(by_application))
    read_by = {
        await _operation(own, e["index"]) for e in by_application if e["ce_type"] == ACCESSED
    }
    assert "GET /applications/{application_id}" in read_by, by_application
    assert "GET /households/{household_id}" not in read_by, by_application

    # The county beside it sees none of it.
    assert await other.entries(household_id=household_id) == []
    assert await other.entries(application_id=application_id) == []
    for entry in logged:
        refused = await other.entry(entry["index"])
        assert refused.status_code == 404, refused.text

    # Each entry proved included under a signed checkpoint, the key pinned.
    indices = [e["index"] for e in logged]
    await _covered(own, max(indices))
    report = _verify(flows, own, min(indices), max(indices) + 1)
    assert report["ok"] is True, report
    assert report["key_pinned"] is True, report
    assert report["tree_size"] > max(indices), report
    # Every entry of the span the auditor may read was recomputed, listed and proved
    # (other regions' entries in between are redacted for them, and skipped).
    assert report["checked"] >= len(indices), report
    assert report["inclusion_proofs_checked"] == max(indices) + 1 - min(indices), report


async def test_a_withdrawal_reaches_the_audit_log_and_the_timeline(
    flows: Flows, portal: Portal, auditors: tuple[Auditor, Auditor]
) -> None:
    """The portal withdraws a submitted application through intake: the application reads
    withdrawn, its timeline ends with ApplicationWithdrawn, and the audit log holds that
    very event (same id) for the county's auditor."""
    own, _ = auditors
    household, application = await portal.register_and_apply("flows withdrawal 2")
    application_id = application["id"]
    withdrawn = await portal.post(
        f"/applications/{application_id}/withdrawal",
        json={"reason": "家庭成员找到稳定工作，主动撤回申请"},
    )
    assert withdrawn["status"] == "withdrawn", withdrawn
    read = await portal.get(f"/applications/{application_id}")
    assert read["status"] == "withdrawn"
    assert read["withdrawal_cause"] == "applicant_request"
    timeline = read["timeline"]
    assert [e["type"] for e in timeline][-1] == "dibao.intake.ApplicationWithdrawn.v1", timeline
    ce_id = timeline[-1]["ce_id"]

    async def probe() -> list[dict[str, Any]] | None:
        found = await own.entries(
            application_id=application_id, ce_type="dibao.intake.ApplicationWithdrawn.v1"
        )
        return found or None

    logged = await eventually(probe, f"ApplicationWithdrawn of {application_id}")
    assert [e["ce_id"] for e in logged] == [ce_id]
    assert logged[0]["household_id"] == household["id"]
    assert logged[0]["actor"] == portal.subject


async def test_an_event_id_reused_about_an_application_reaches_its_timeline_and_county(
    flows: Flows, portal: Portal, auditors: tuple[Auditor, Auditor]
) -> None:
    """The portal submits an application; then a faulty producer puts on
    ``dibao.intake.v1`` a record with the ce_id of that application's ApplicationSubmitted
    but other content (another kind, and a village of the county beside it). Audit logs
    both and raises an ``AnomalyDetected`` (``event_id_reused``) about the application, in
    the logged submission's region: the application's timeline shows it once (its rule and
    severity, no words), the county's auditor finds it among the household's entries with
    both log indices, and the auditor of the county beside it does not; that auditor, who
    reads the forged entry, gets one about the event, naming no application. Until 2 Dec
    2026 the forged region gave a second anomaly about the application, there."""
    own, other = auditors
    household, application = await portal.register_and_apply("flows reused id 3")
    household_id, application_id = household["id"], application["id"]
    read = await portal.get(f"/applications/{application_id}")
    [submitted] = [e for e in read["timeline"] if e["type"] == SUBMITTED]

    async def submission_logged() -> list[dict[str, Any]] | None:
        return await own.entries(application_id=application_id, ce_type=SUBMITTED) or None

    [original] = await eventually(submission_logged, f"the submission of {application_id}")
    assert original["ce_id"] == submitted["ce_id"]

    forged = intake_pb2.ApplicationSubmitted(
        household_id=household_id,
        region=types_pb2.RegionCode(code=OTHER_VILLAGE),
        application_id=application_id,
        kind=enums_pb2.APPLICATION_KIND_TEMPORARY,
    )
    envelope = Envelope(
        ce_id=uuid.UUID(submitted["ce_id"]),
        ce_type=ce_type_of(forged),
        ce_source="dibao/intake",
        ce_time=datetime.now(UTC),
        ce_subject=application_id,
        key=household_id,
        payload=forged.SerializeToString(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=flows.stack.env["DIBAO_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        await producer.send_and_wait(
            topic_of(forged),
            envelope.payload,
            key=household_id.encode(),
            headers=envelope.to_headers(),
        )
    finally:
        await producer.stop()

    async def in_timeline() -> list[dict[str, Any]] | None:
        timeline = (await portal.get(f"/applications/{application_id}"))["timeline"]
        return [e for e in timeline if e["type"] == ANOMALY] or None

    # The forged entry's county reads an anomaly about the event (the household's key
    # too: published after the application's, in the same transaction).
    async def theirs_logged() -> list[dict[str, Any]] | None:
        return await other.entries(household_id=household_id, ce_type=ANOMALY) or None

    [theirs] = await eventually(theirs_logged, "the anomaly in the forged entry's county")
    assert theirs["region"] == OTHER_VILLAGE
    assert theirs["application_id"] is None

    # The one anomaly: the submission and acceptance themselves raised none (audit's
    # anomalies about the household are keyed by it, so any earlier one would be first).
    [entry] = await eventually(in_timeline, f"the anomaly in the timeline of {application_id}")
    assert entry["summary"] == "Anomaly detected: event_id_reused", entry
    assert entry["details"] == {"rule": "event_id_reused", "severity": "warning"}
    assert entry["source"] == "dibao/audit"

    async def anomaly_logged() -> list[dict[str, Any]] | None:
        return await own.entries(household_id=household_id, ce_type=ANOMALY) or None

    [logged] = await eventually(anomaly_logged, f"the anomaly about {application_id}")
    assert logged["ce_id"] == entry["ce_id"]  # the very event the timeline shows
    assert logged["region"] == VILLAGE

    async def decoded() -> dict[str, Any] | None:
        response = await own.entry(logged["index"])
        if response.status_code == 409 and "entry-not-covered" in response.text:
            return None
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()["decoded"]
        return view

    anomaly = await eventually(decoded, f"a checkpoint covering entry {logged['index']}")
    assert anomaly["subject"] == {"kind": "application", "id": application_id}
    assert anomaly["event_ids"] == [submitted["ce_id"]]
    first, again = (int(i) for i in anomaly["log_indices"])
    assert first == original["index"]
    assert again > first

    # By the application too (its application_id: an anomaly lacked one until 1 Dec 2026).
    by_application = await own.entries(application_id=application_id, ce_type=ANOMALY)
    assert [e["ce_id"] for e in by_application] == [logged["ce_id"]]
    assert await other.entries(application_id=application_id, ce_type=ANOMALY) == []

    assert [
        e["ce_id"] for e in await other.entries(household_id=household_id, ce_type=ANOMALY)
    ] == [theirs["ce_id"]]
    # What it reads of the household: the forged entry, the one its anomaly names.
    [forged_entry] = await other.entries(household_id=household_id, ce_type=SUBMITTED)
    assert forged_entry["index"] == again
    # Nor among the anomalies it reads (the whole log's, its own county's).
    assert logged["ce_id"] not in {e["ce_id"] for e in await other.entries(ce_type=ANOMALY)}
    refused = await other.entry(logged["index"])
    assert refused.status_code == 404, refused.text
