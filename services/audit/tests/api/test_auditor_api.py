"""The auditor interface over HTTP, on a real database (the app's lifespan running)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import re
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI
from httpx import AsyncClient

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao.intake.v1 import types_pb2 as intake_types
from dibao_audit import merkle, repository, service, verify_cli
from dibao_audit.api import ExportAccess
from dibao_audit.checkpoint import CheckpointSigner, VerifierKey
from dibao_audit.entry import RecordedEvent, canonical_bytes, entry_to_b64, parse_canonical
from dibao_audit.main import create_app
from dibao_audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from dibao_audit.testing import (
    TEST_ORIGIN,
    TEST_SEED,
    AuditDb,
    api_settings,
    recorded_event,
    serving,
)
from dibao_audit.verifier import read_export, verify_export
from dibao_common.auth import Principal, Role
from dibao_common.messaging.envelope import Envelope, ce_type_of, topic_of
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]

LANZHOU = "620102001001"
BEIJING = "110101001001"


def _registered(household: str, region: str) -> intake_pb2.HouseholdRegistered:
    person = types_pb2.PersonRef(
        person_id=f"{household}-p1", keyed_hash="ab" * 32, masked_name="张*丰"
    )
    return intake_pb2.HouseholdRegistered(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        household=intake_types.HouseholdSnapshot(
            household_id=household,
            members=[intake_types.Member(person=person, seriously_ill=True)],
        ),
    )


def _withdrawn(household: str, region: str, i: int) -> intake_pb2.ApplicationWithdrawn:
    return intake_pb2.ApplicationWithdrawn(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        application_id=f"app-{household}-{i}",
    )


@dataclass
class Api:
    app: FastAPI
    client: AsyncClient
    db: AuditDb
    tokens: TokenFactory
    events: list[Any]

    def auditor(self, regions: tuple[str, ...] = ("6201",), *extra: str) -> dict[str, str]:
        return self.tokens.bearer(roles=["auditor", *extra], regions=list(regions))

    async def access_events(self) -> list[access_pb2.PersonalDataAccessed]:
        async with self.db.owner.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT payload FROM outbox_message WHERE topic = 'dibao.access.v1' ORDER BY id"
                )
            )
            return [access_pb2.PersonalDataAccessed.FromString(bytes(r[0])) for r in rows]


@pytest_asyncio.fixture(loop_scope="session")
async def api(audit_db: AuditDb, token_factory: TokenFactory) -> AsyncIterator[Api]:
    app = create_app(api_settings(audit_db, audit_checkpoint_every=10), auth=make_auth_settings())
    events = [recorded_event(_registered("hh-a", LANZHOU), offset=0, key="hh-a")]
    events += [recorded_event(_registered("hh-b", BEIJING), offset=1, key="hh-b")]
    events += [
        recorded_event(
            _withdrawn("hh-a" if i % 2 else "hh-b", LANZHOU if i % 2 else BEIJING, i),
            offset=2 + i,
            key="hh-a" if i % 2 else "hh-b",
            actor=f"clerk-{i % 3}",
        )
        for i in range(30)
    ]
    async with api_client(app) as client:
        appender = app.state.audit.appender
        for lo in range(0, len(events), 11):
            await appender.append(events[lo : lo + 11])
        yield Api(app, client, audit_db, token_factory, events)


async def test_the_public_key_is_published(api: Api) -> None:
    body = (await api.client.get("/audit/public-key")).json()
    key = VerifierKey.parse(body["vkey"])
    assert key.name == TEST_ORIGIN
    assert body["public_key"] == base64.b64encode(key.public_raw).decode()


async def test_auditors_only(api: Api) -> None:
    assert (await api.client.get("/audit/entries")).status_code == 401
    clerk = api.tokens.bearer(roles=["intake_clerk"], regions=["6201"])
    response = await api.client.get("/audit/entries", headers=clerk)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_entries_by_household_are_region_scoped_and_paginated(api: Api) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"household_id": "hh-a", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/audit/entries", params=params, headers=api.auditor())).json()
        seen += [e["index"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 16  # registration + 15 withdrawals
    assert seen == sorted(seen)
    other = await api.client.get(
        "/audit/entries", params={"household_id": "hh-b"}, headers=api.auditor()
    )
    assert other.json()["items"] == []
    by_actor = await api.client.get(
        "/audit/entries",
        params={"actor": "clerk-1", "ce_type": "dibao.intake.ApplicationWithdrawn.v1"},
        headers=api.auditor(("62", "11")),
    )
    assert {e["actor"] for e in by_actor.json()["items"]} == {"clerk-1"}
    assert len(by_actor.json()["items"]) == 10
    bad = await api.client.get("/audit/entries", params={"cursor": "nope"}, headers=api.auditor())
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/invalid-cursor")  # intake's answer too
    # Saying what to send instead (helper h3: "not one this service gave" said no more).
    assert "next_cursor of the previous page" in bad.json()["detail"]


async def test_an_entry_comes_with_a_proof_that_verifies(api: Api) -> None:
    latest = (await api.client.get("/audit/checkpoints/latest", headers=api.auditor())).json()
    key = VerifierKey.parse((await api.client.get("/audit/public-key")).json()["vkey"])
    cp = key.verify(latest["signed_note"])
    assert cp.tree_size == latest["tree_size"] == 32
    body = (await api.client.get("/audit/entries/0", headers=api.auditor())).json()
    leaf = leaf_hash(canonical_bytes(api.events[0]))
    assert body["proof"]["leaf_hash"] == leaf.hex()
    path = [bytes.fromhex(p) for p in body["proof"]["path"]]
    verify_inclusion(0, cp.tree_size, leaf, path, cp.root_hash)
    assert body["masked"] is True
    member = body["decoded"]["household"]["members"][0]
    assert member["person"]["masked_name"] == "***"
    assert member["seriously_ill"] == "***"
    assert member["person"]["person_id"] == "hh-a-p1"
    # Against an older checkpoint too.
    older = (await api.client.get("/audit/checkpoints", headers=api.auditor())).json()["items"]
    sizes = [c["tree_size"] for c in older]
    assert sizes == [32, 22, 11]
    body = (
        await api.client.get("/audit/entries/5", params={"tree_size": 11}, headers=api.auditor())
    ).json()
    old = key.verify(older[-1]["signed_note"])
    verify_inclusion(
        5,
        11,
        leaf_hash(canonical_bytes(api.events[5])),
        [bytes.fromhex(p) for p in body["proof"]["path"]],
        old.root_hash,
    )
    foreign = await api.client.get("/audit/entries/1", headers=api.auditor())
    assert foreign.status_code == 404


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _root_by_rfc9162(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, as written there (not the service's merkle module)."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


async def test_an_auditor_verifies_an_entry_from_what_the_openapi_says(api: Api) -> None:
    """The published schema said nothing of how a proof is checked (the proof's fields had
    no description): an auditor had to read ADR 0006. It says it now, and following it with
    the answer alone, hashlib and an Ed25519 library, the entry verifies."""
    proof_schema = api.app.openapi()["components"]["schemas"]["InclusionProofOut"]
    said = proof_schema["description"]
    for step in ("dibao.audit.entry.v1", "SHA-256(0x00", "2.1.3.2", "/audit/public-key"):
        assert step in said, step
    assert all(p.get("description") for p in proof_schema["properties"].values())

    body = (await api.client.get("/audit/entries/0", headers=api.auditor())).json()
    entry, proof = body["entry"], body["proof"]
    headers = sorted((n.encode(), base64.b64decode(v)) for n, v in body["headers"])
    key = body["record_key"]
    canonical = b"".join(
        [
            _field(b"dibao.audit.entry.v1"),
            _field(entry["topic"].encode()),
            struct.pack(">IQ", entry["partition"], entry["offset"]),
            b"\x00" if key is None else b"\x01" + _field(base64.b64decode(key)),
            struct.pack(">I", len(headers)),
            *(_field(n) + _field(v) for n, v in headers),
            _field(base64.b64decode(body["payload"])),
        ]
    )
    leaf = hashlib.sha256(b"\x00" + canonical).digest()
    assert leaf.hex() == proof["leaf_hash"] == entry["leaf_hash"]
    root = _root_by_rfc9162(
        proof["index"], proof["tree_size"], leaf, [bytes.fromhex(p) for p in proof["path"]]
    )
    text, signatures = proof["checkpoint"].split("\n\n", 1)
    assert base64.b64decode(text.split("\n")[2]) == root
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    name, key_id, encoded = vkey.split("+", 2)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded)[1:])
    [signature] = [
        base64.b64decode(line.split(" ", 2)[2])
        for line in signatures.strip().split("\n")
        if line.split(" ", 2)[1] == name
    ]
    assert signature[:4].hex() == key_id
    public.verify(signature[4:], (text + "\n").encode())


async def test_an_entry_listed_before_a_checkpoint_covers_it_is_409_not_404(api: Api) -> None:
    """An entry appended since the latest checkpoint exists: it is listed, and asking for its
    proof says when one will be there instead of answering that there is no such entry."""
    appender = api.app.state.audit.appender
    await appender.append([recorded_event(_withdrawn("hh-a", LANZHOU, 99), offset=40, key="hh-a")])
    listed = (
        await api.client.get(
            "/audit/entries", params={"household_id": "hh-a"}, headers=api.auditor()
        )
    ).json()["items"]
    assert listed[-1]["index"] == 32
    pending = await api.client.get("/audit/entries/32", headers=api.auditor())
    assert pending.status_code == 409, pending.text
    assert pending.headers["content-type"] == "application/problem+json"
    assert pending.headers["retry-after"] == "60"
    body = pending.json()
    assert body["type"].endswith("/entry-not-covered")
    assert body["tree_size"] == 32
    assert "within 60 s" in body["detail"]
    # A named older checkpoint never will cover it: no Retry-After.
    older = await api.client.get(
        "/audit/entries/21", params={"tree_size": 11}, headers=api.auditor()
    )
    assert older.status_code == 409, older.text
    assert "retry-after" not in older.headers
    assert older.json()["tree_size"] == 11
    # An index past the log is still no such entry.
    absent = await api.client.get("/audit/entries/33", headers=api.auditor())
    assert absent.status_code == 404
    assert absent.json()["type"].endswith("/entry-not-found")


async def test_the_409_of_an_entry_not_covered_is_declared_as_it_is_answered(api: Api) -> None:
    """The 409 entry-not-covered carries `tree_size` and, for the latest checkpoint,
    `Retry-After`, but the OpenAPI document declared a bare Problem and no header, so a
    client generated from it (a bank's integration) dropped both (helper h3's walk-through).
    """
    spec = api.app.openapi()
    responses = spec["paths"]["/audit/entries/{index}"]["get"]["responses"]
    declared = responses["409"]
    assert list(declared["content"]) == ["application/problem+json"]
    ref = declared["content"]["application/problem+json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "tree_size" in schema["required"], schema
    assert {"type", "title", "status", "detail", "instance"} <= set(schema["properties"])
    assert declared["headers"]["Retry-After"]["schema"]["type"] == "integer"
    # The other problems stay the plain shape.
    assert responses["404"]["content"]["application/problem+json"]["schema"]["$ref"].endswith(
        "/Problem"
    )
    appender = api.app.state.audit.appender
    await appender.append([recorded_event(_withdrawn("hh-a", LANZHOU, 98), offset=40, key="hh-a")])
    pending = await api.client.get("/audit/entries/32", headers=api.auditor())
    assert pending.status_code == 409, pending.text
    body = pending.json()
    assert set(body) <= set(schema["properties"]), body
    assert set(schema["required"]) <= set(body), body
    assert int(pending.headers["retry-after"]) >= 1


async def test_an_entry_of_a_log_without_a_checkpoint_yet_is_409_not_404(
    audit_db: AuditDb, token_factory: TokenFactory
) -> None:
    """Before the first checkpoint is signed (a new log's first minute), an entry's read
    says so, as for one newer than the latest checkpoint; a named checkpoint that does not
    exist is still 404."""
    settings = api_settings(audit_db, audit_checkpoint_every=1000, audit_checkpoint_interval_s=30)
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:
        await app.state.audit.appender.append(
            [recorded_event(_registered("hh-a", LANZHOU), offset=0, key="hh-a")]
        )
        auditor = token_factory.bearer(roles=["auditor"], regions=["6201"])
        listed = (await client.get("/audit/entries", headers=auditor)).json()["items"]
        assert [e["index"] for e in listed] == [0]
        pending = await client.get("/audit/entries/0", headers=auditor)
        assert pending.status_code == 409, pending.text
        assert pending.headers["retry-after"] == "30"
        assert pending.json()["type"].endswith("/entry-not-covered")
        assert pending.json()["tree_size"] == 0
        named = await client.get("/audit/entries/0", params={"tree_size": 1}, headers=auditor)
        assert named.status_code == 404
        assert named.json()["type"].endswith("/checkpoint-not-found")


async def test_a_log_without_a_checkpoint_yet_says_whether_it_is_empty_and_when(
    audit_db: AuditDb, token_factory: TokenFactory
) -> None:
    """GET /audit/checkpoints/latest and an export answered a bare "No checkpoint yet":
    an empty log and one whose first checkpoint is seconds away read the same, and a
    client had no hint of when to ask again. Now an empty log says so (log_size 0, no
    Retry-After: nothing is waiting), and a log holding entries says how many and, in
    Retry-After, the seconds left until the ticker's next tick (the interval when no
    ticker runs in this process); the OpenAPI document declares both."""
    settings = api_settings(audit_db, audit_checkpoint_every=1000, audit_checkpoint_interval_s=30)
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app) as client:
        auditor = token_factory.bearer(roles=["auditor"], regions=["6201"])
        for path in ("/audit/checkpoints/latest", "/audit/export"):
            empty = await client.get(path, headers=auditor)
            assert empty.status_code == 404, (path, empty.text)
            assert empty.headers["content-type"] == "application/problem+json"
            body = empty.json()
            assert body["type"].endswith("/checkpoint-not-found"), body
            assert body["log_size"] == 0, body
            assert "the log is empty" in body["detail"], body
            assert "retry-after" not in empty.headers, path
        await app.state.audit.appender.append(
            [
                recorded_event(_registered("hh-a", LANZHOU), offset=0, key="hh-a"),
                recorded_event(_registered("hh-b", LANZHOU), offset=1, key="hh-b"),
            ]
        )
        for path in ("/audit/checkpoints/latest", "/audit/export"):
            waiting = await client.get(path, headers=auditor)
            assert waiting.status_code == 404, (path, waiting.text)
            body = waiting.json()
            assert body["log_size"] == 2, body
            assert waiting.headers["retry-after"] == "30", path
            assert "holds 2 entries" in body["detail"], body
            assert "within 30 s" in body["detail"], body
        # A ticker running here: the time left until its tick, not the whole interval.
        app.state.audit.schedule.ticks_in(12.0)
        soon = await client.get("/audit/checkpoints/latest", headers=auditor)
        assert 1 <= int(soon.headers["retry-after"]) <= 12, soon.headers
        assert f"within {soon.headers['retry-after']} s" in soon.json()["detail"]
        # A named size that was never signed is still just that.
        named = await client.get("/audit/export", params={"tree_size": 1}, headers=auditor)
        assert named.status_code == 404
        assert "log_size" not in named.json()
        assert "retry-after" not in named.headers
        spec = app.openapi()
        for path in ("/audit/checkpoints/latest", "/audit/export"):
            declared = spec["paths"][path]["get"]["responses"]["404"]
            ref = declared["content"]["application/problem+json"]["schema"]["$ref"]
            schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert "log_size" in schema["properties"], (path, schema)
            assert declared["headers"]["Retry-After"]["schema"]["type"] == "integer", path


async def test_consistency_between_checkpoints(api: Api) -> None:
    key = VerifierKey.parse((await api.client.get("/audit/public-key")).json()["vkey"])
    items = (await api.client.get("/audit/checkpoints", headers=api.auditor())).json()["items"]
    new, old = key.verify(items[0]["signed_note"]), key.verify(items[2]["signed_note"])
    body = (
        await api.client.get(
            "/audit/proofs/consistency",
            params={"from_size": old.tree_size, "to_size": new.tree_size},
            headers=api.auditor(),
        )
    ).json()
    proof = [bytes.fromhex(p) for p in body["path"]]
    verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    too_far = await api.client.get(
        "/audit/proofs/consistency", params={"from_size": 1, "to_size": 99}, headers=api.auditor()
    )
    assert too_far.status_code == 400


async def test_a_timeline_is_masked_by_role_and_every_read_is_logged(api: Api) -> None:
    before = len(await api.access_events())
    masked = await api.client.get("/audit/households/hh-a/timeline", headers=api.auditor())
    assert masked.status_code == 200
    body = masked.json()
    assert body["masked"] is True
    assert len(body["items"]) == 16
    first = body["items"][0]["decoded"]["household"]["members"][0]["person"]
    assert first["masked_name"] == "***"
    assert first["keyed_hash"] == "***"
    headers = api.auditor(("6201",), "county_approver")
    plain = (await api.client.get("/audit/households/hh-a/timeline", headers=headers)).json()
    assert plain["masked"] is False
    assert plain["items"][0]["decoded"]["household"]["members"][0]["person"]["masked_name"] == (
        "张*丰"
    )
    refused = await api.client.get("/audit/households/hh-b/timeline", headers=api.auditor())
    assert refused.status_code == 404
    missing = await api.client.get("/audit/households/nobody/timeline", headers=api.auditor())
    assert missing.status_code == 404
    logged = (await api.access_events())[before:]
    assert [(a.household_id, a.outcome) for a in logged] == [
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED),
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED),
        ("hh-b", access_pb2.ACCESS_OUTCOME_DENIED),
    ]
    assert logged[0].actor.subject == "test-user"
    assert list(logged[1].fields) == ["timeline", "personal_data"]
    assert logged[0].purpose == access_pb2.PURPOSE_AUDIT


async def test_a_timeline_page_past_the_last_entry_is_an_empty_page_of_a_granted_read(
    api: Api,
) -> None:
    """A cursor after a household's last entry (a client asking what was logged since the
    page it read) of a household the caller may read answered 404 and was recorded as a
    refused read, as if the caller had probed another county's household. It is a 200
    with an empty page, recorded as granted in the household's region; another region's
    household past the same cursor stays 404 recorded DENIED, and a household no record
    names stays 404 recording nothing."""
    whole = await api.client.get(
        "/audit/households/hh-a/timeline", params={"limit": 500}, headers=api.auditor()
    )
    assert whole.status_code == 200, whole.text
    assert whole.json()["next_cursor"] is None
    last = whole.json()["items"][-1]["index"]
    past = base64.urlsafe_b64encode(f"i:{last}".encode()).decode()
    before = len(await api.access_events())
    for headers in (api.auditor(), api.auditor(("6201",), "county_approver")):
        empty = await api.client.get(
            "/audit/households/hh-a/timeline", params={"cursor": past}, headers=headers
        )
        assert empty.status_code == 200, empty.text
        assert empty.json()["items"] == []
        assert empty.json()["next_cursor"] is None
        assert empty.json()["household_id"] == "hh-a"
    refused = await api.client.get(
        "/audit/households/hh-b/timeline", params={"cursor": past}, headers=api.auditor()
    )
    assert refused.status_code == 404
    missing = await api.client.get(
        "/audit/households/nobody/timeline", params={"cursor": past}, headers=api.auditor()
    )
    assert missing.status_code == 404
    logged = (await api.access_events())[before:]
    assert [(a.household_id, a.outcome, a.region.code) for a in logged] == [
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED, LANZHOU),
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED, LANZHOU),
        ("hh-b", access_pb2.ACCESS_OUTCOME_DENIED, BEIJING),
    ]
    # An empty page shows no entry: its record names the timeline read, nothing personal.
    assert [list(a.fields) for a in logged[:2]] == [["timeline"], ["timeline"]]


async def _stored_as_hh_as(api: Api) -> list[int]:
    """SQL edits of the stored columns alone: hh-a's registration (entry 0) stored under
    another household, and Beijing's entries 1, 2, 4 and 6 (hh-b's records, intact) stored
    as hh-a's in Lanzhou. Lanzhou's query for hh-a then finds 1, 2, 3, 4, 5, 6, 7, 9, ...
    of which it may read only hh-a's own withdrawals: the indices returned."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE log_entry SET household_id = 'hh-z' WHERE leaf_index = 0")
        await conn.execute(
            "UPDATE log_entry SET household_id = 'hh-a', region = $1"
            " WHERE leaf_index = ANY($2::bigint[])",
            LANZHOU,
            [1, 2, 4, 6],
        )
    finally:
        await conn.close()
    return list(range(3, 32, 2))


async def _pages(api: Api, url: str, params: dict[str, Any]) -> list[list[int]]:
    """Every page of ``url`` as Lanzhou's auditor reads it, cursor after cursor (each 200)."""
    pages: list[list[int]] = []
    cursor = None
    while len(pages) < 100:
        asked = params | ({"cursor": cursor} if cursor else {})
        response = await api.client.get(url, params=asked, headers=api.auditor())
        assert response.status_code == 200, (len(pages), response.text)
        pages.append([item["index"] for item in response.json()["items"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("more than 100 pages")


async def test_a_timeline_page_is_filled_past_the_entries_the_caller_may_not_see(
    api: Api,
) -> None:
    """The timeline kept, of the first `limit` entries its query found, those the caller
    may read, and filled nothing back: a short page, and when the first page held only
    entries the caller may not see (here stored columns edited to put Beijing's records in
    Lanzhou's hh-a), 404 recorded as a DENIED read of Beijing although hh-a's own entries
    follow. It now fills its pages as the listing does: full pages of what Lanzhou may
    read, every entry once, each read recorded GRANTED in Lanzhou."""
    readable = await _stored_as_hh_as(api)
    before = len(await api.access_events())
    timeline = await _pages(api, "/audit/households/hh-a/timeline", {"limit": 2})
    assert timeline == [readable[i : i + 2] for i in range(0, len(readable), 2)]
    listed = await _pages(api, "/audit/entries", {"household_id": "hh-a", "limit": 2})
    assert listed == timeline
    logged = (await api.access_events())[before:]
    assert [(a.household_id, a.outcome, a.region.code) for a in logged] == [
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED, LANZHOU)
    ] * len(timeline)


async def test_a_page_examines_a_bounded_number_of_entries_and_its_cursor_goes_on(
    api: Api,
) -> None:
    """Filling a page is bounded (``page_scan`` entries examined, at least `limit` + 1;
    5,000 unless the runtime says less, as here: 2). A page the bound stops is short or
    empty and its cursor is the last entry examined, so the next page goes on from there:
    the timeline and the listing of hh-a give every entry Lanzhou may read once, in order,
    after an empty first page (Beijing's 1 and 2 examined); the timeline's empty page is a
    granted read of nothing, not a 404, since the read goes on."""
    api.app.state.audit = dataclasses.replace(api.app.state.audit, page_scan=2)
    readable = await _stored_as_hh_as(api)
    before = len(await api.access_events())
    timeline = await _pages(api, "/audit/households/hh-a/timeline", {"limit": 1})
    assert timeline == [[], *([i] for i in readable)]
    assert await _pages(api, "/audit/entries", {"household_id": "hh-a", "limit": 1}) == timeline
    logged = (await api.access_events())[before:]
    assert [(a.household_id, a.outcome, a.region.code) for a in logged] == [
        ("hh-a", access_pb2.ACCESS_OUTCOME_GRANTED, LANZHOU)
    ] * len(timeline)
    assert list(logged[0].fields) == ["timeline"]  # the empty page showed nothing


async def test_an_export_verifies_offline_and_hides_other_regions(api: Api) -> None:
    key = VerifierKey.parse((await api.client.get("/audit/public-key")).json()["vkey"])
    response = await api.client.get("/audit/export", headers=api.auditor())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    header, entries = read_export(response.text.splitlines())
    report = verify_export(header, entries, key)
    assert report.ok, report.problems
    assert (report.checked, report.redacted) == (16, 16)
    part = await api.client.get(
        "/audit/export", params={"start": 3, "end": 9, "tree_size": 22}, headers=api.auditor()
    )
    header, entries = read_export(part.text.splitlines())
    assert verify_export(header, entries, key).ok
    bad = await api.client.get(
        "/audit/export", params={"start": 5, "end": 99}, headers=api.auditor()
    )
    assert bad.status_code == 400


async def test_an_entry_read_is_recorded_as_showing_the_event_as_logged(api: Api) -> None:
    """The decoded view is masked for an auditor without a personal-data role, but the
    payload is the event as logged (the verifier hashes it), personal fields included:
    the read's access record names the raw event and personal data, whatever the mask."""
    before = len(await api.access_events())
    body = (await api.client.get("/audit/entries/0", headers=api.auditor())).json()
    assert body["masked"] is True
    assert body["decoded"]["household"]["members"][0]["person"]["masked_name"] == "***"
    raw = intake_pb2.HouseholdRegistered.FromString(base64.b64decode(body["payload"]))
    assert raw.household.members[0].person.masked_name == "张*丰"  # what the mask hides
    approver = api.auditor(("6201",), "county_approver")
    assert (await api.client.get("/audit/entries/0", headers=approver)).json()["masked"] is False
    logged = (await api.access_events())[before:]
    assert [(a.household_id, a.record_id) for a in logged] == [("hh-a", "audit-entry/0")] * 2
    for record in logged:
        assert {"event_payload", "personal_data"} <= set(record.fields), record.fields
        assert record.region.code == LANZHOU
    # The published schema says what `masked` covers and what the payload is.
    schema = api.app.openapi()["components"]["schemas"]["EntryWithProofOut"]["properties"]
    assert "decoded" in schema["masked"]["description"]
    assert "as logged" in schema["payload"]["description"]


async def test_an_entry_read_names_the_application_the_entry_is_about(api: Api) -> None:
    """An auditor reading an application's entry (its submission holds the whole snapshot)
    reads that application, but the access record named only the household: GET
    /audit/entries?application_id= (who read this application, ADR 0006) found intake's
    reads and not the audit's own (helper h3's walk-through). An entry about no
    application still names none."""
    before = len(await api.access_events())
    withdrawn = await api.client.get("/audit/entries/3", headers=api.auditor())
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["entry"]["application_id"] == "app-hh-a-1"
    registered = await api.client.get("/audit/entries/0", headers=api.auditor())
    assert registered.status_code == 200, registered.text
    logged = (await api.access_events())[before:]
    assert [(a.record_id, a.application_id, a.household_id) for a in logged] == [
        ("audit-entry/3", "app-hh-a-1", "hh-a"),
        ("audit-entry/0", "", "hh-a"),
    ]


async def test_an_export_is_recorded_for_every_household_it_shows(api: Api) -> None:
    """An export carries the raw bytes of the caller's regions' entries: each household
    whose entries it showed gets an access record of its own (so 'who read this
    household's data' finds the export), once per export; households it only gave by
    their leaf hashes (other regions') get none."""
    both = api.auditor(("62", "11"))
    cases: list[tuple[dict[str, str], dict[str, str], set[str]]] = [
        ({}, api.auditor(), {"hh-a"}),
        ({}, both, {"hh-a", "hh-b"}),
        ({"decoded": "true"}, both, {"hh-a", "hh-b"}),
        ({"start": "3", "end": "9", "tree_size": "22"}, both, {"hh-a", "hh-b"}),
        ({"start": "1", "end": "3"}, api.auditor(), set()),  # hh-b's entries only: redacted
    ]
    for params, headers, households in cases:
        before = len(await api.access_events())
        response = await api.client.get("/audit/export", params=params, headers=headers)
        assert response.status_code == 200, response.text
        export_id = re.fullmatch(
            r'attachment; filename="audit-(\d+)-(\d+)-at-(\d+)\.jsonl"',
            response.headers["content-disposition"],
        )
        assert export_id is not None
        record_id = "audit-export/{}-{}@{}".format(*export_id.groups())
        logged = (await api.access_events())[before:]
        assert [a.household_id for a in logged if not a.household_id] == [""], params
        named = [a for a in logged if a.household_id]
        assert sorted(a.household_id for a in named) == sorted(households), params
        for record in named:
            assert record.record_id == record_id
            assert record.action == access_pb2.ACCESS_ACTION_EXPORT
            assert record.outcome == access_pb2.ACCESS_OUTCOME_GRANTED
            assert record.region.code == (LANZHOU if record.household_id == "hh-a" else BEIJING)
            assert {"event_payload", "personal_data"} <= set(record.fields)
            assert record.correlation_id == logged[0].correlation_id


async def test_an_exports_own_record_is_found_by_the_auditor_of_each_region_it_covers(
    api: Api,
) -> None:
    """The export's own access record named one region, the widest of the token's (ties
    to the first): an auditor of 62 and 11 exported both provinces' entries and the
    record was Gansu's only, so Beijing's auditor never found it. It names each region
    of the token (`regions`, 12-digit codes, `region` the first of them), as an intake
    search over several regions does, and once logged it is listed by the auditor of
    each region and of no other."""
    before = len(await api.access_events())
    response = await api.client.get("/audit/export", headers=api.auditor(("62", "11")))
    assert response.status_code == 200, response.text
    own = [a for a in (await api.access_events())[before:] if not a.household_id]
    assert len(own) == 1
    record = own[0]
    assert record.record_type == access_pb2.RECORD_TYPE_LIST
    assert record.region.code == "620000000000"
    assert [r.code for r in record.regions] == ["620000000000", "110000000000"]

    access_type = ce_type_of(record)
    appender = api.app.state.audit.appender
    await appender.append([recorded_event(record, offset=500, key="", actor="test-user")])
    for region, sees in (("11", True), ("62", True), ("44", False)):
        listed = await api.client.get(
            "/audit/entries", params={"ce_type": access_type}, headers=api.auditor((region,))
        )
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == (1 if sees else 0), (region, listed.json())
    # A token of one region is recorded under it alone, as before (no `regions` to add).
    before = len(await api.access_events())
    await api.client.get("/audit/export", headers=api.auditor(("6201",)))
    own = [a for a in (await api.access_events())[before:] if not a.household_id]
    assert [(a.region.code, [r.code for r in a.regions]) for a in own] == [
        ("620100000000", ["620100000000"])
    ]


@pytest.mark.parametrize("decoded", [False, True])
async def test_an_exports_households_are_recorded_before_their_lines_leave(
    api: Api, decoded: bool
) -> None:
    """Chunk by chunk (4 entries here), the households a chunk shows are recorded and
    committed before the chunk is yielded, each (household, region) once per export."""
    runtime = api.app.state.audit
    principal = Principal(
        subject="auditor-1", roles=frozenset({Role.AUDITOR}), regions=("62", "11")
    )
    recorder = ExportAccess(runtime, principal, "audit-export/test", ["events"], None)
    order: list[Any] = []

    async def shown(pairs: list[tuple[str, str]]) -> None:
        await recorder(pairs)
        order.append({a.household_id for a in await api.access_events()})

    before = len(await api.access_events())
    async with runtime.sessions() as session, session.begin():
        cp = await repository.latest_checkpoint(session)
        assert cp is not None
        async for chunk in service.export_lines(
            session,
            0,
            cp.tree_size,
            cp,
            TEST_ORIGIN,
            principal.regions,
            registry=runtime.registry if decoded else None,
            chunk=4,
            households_shown=shown,
        ):
            lines = [json.loads(line) for line in chunk.decode().splitlines()]
            if "format" in lines[0]:
                continue
            lines_of = {api.events[line["index"]].key for line in lines if "entry" in line}
            assert {k.decode() for k in lines_of if k} <= order[-1]
            order.append("chunk")
    assert order.count("chunk") == 8
    logged = (await api.access_events())[before:]
    assert sorted(a.household_id for a in logged) == ["hh-a", "hh-b"]  # in 8 chunks, once
    assert recorder.named == {("hh-a", LANZHOU), ("hh-b", BEIJING)}


@pytest_asyncio.fixture(loop_scope="session")
async def served(api: Api) -> AsyncIterator[str]:
    """The same app on a real loopback port, for the CLI's own HTTP client."""
    async with serving(api.app) as url:
        yield url


async def test_the_verifier_cli_checks_a_running_service_and_a_saved_export(
    api: Api, served: str, tmp_path: Path
) -> None:
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["62", "11"])
    saved = tmp_path / "export.jsonl"
    out = io.StringIO()
    args = ["--url", served, "--token", token, "--vkey", vkey, "--save", str(saved)]
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
    report = json.loads(out.getvalue())
    assert code == 0, report
    assert report["checked"] == 32
    assert report["inclusion_proofs_checked"] >= 2
    assert report["key_pinned"] is True

    out = io.StringIO()
    offline = verify_cli._parse_args(["--export", str(saved), "--vkey", vkey])
    assert verify_cli.run(offline, out) == 0
    lines = saved.read_text().splitlines()
    entry = json.loads(lines[1 + 17])
    original = parse_canonical(base64.b64decode(entry["entry"]))
    entry["entry"] = entry_to_b64(dataclasses.replace(original, payload=b"rewritten"))
    lines[1 + 17] = json.dumps(entry)
    saved.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert verify_cli.run(offline, out) == 1
    assert json.loads(out.getvalue())["first_bad_index"] == 17


def _unreadable(message: intake_pb2.HouseholdRegistered, offset: int) -> RecordedEvent:
    """A registered type sent as JSON: the log keeps it but reads no keys (no region)."""
    envelope = Envelope(
        ce_id=uuid.uuid4(),
        ce_type=ce_type_of(message),
        ce_source="dibao/elsewhere",
        ce_time=datetime(2026, 11, 2, tzinfo=UTC),
        ce_subject=None,
        key=message.household_id,
        payload=json.dumps({"household_id": message.household_id, "name": "张三丰"}).encode(),
        content_type="application/json",
    )
    return RecordedEvent(
        topic=topic_of(message),
        partition=0,
        offset=offset,
        key=message.household_id.encode(),
        headers=tuple(envelope.to_headers()),
        payload=envelope.payload,
    )


async def test_entries_of_the_whole_log_are_seen_by_every_auditor(api: Api, served: str) -> None:
    """A checkpoint announcement (the log's own region) and a system event without a region
    concern every auditor; another region's entry, and an entry the log could not read
    (no region because unread, not because it has none), stay 404 like absent ones."""
    system = types_pb2.Actor(subject="audit", kind=enums_pb2.ACTOR_KIND_SYSTEM)
    announced = audit_pb2.CheckpointPublished(
        origin=TEST_ORIGIN,
        region=types_pb2.RegionCode(code="000000000000"),
        actor=system,
        tree_size=22,
        root_hash=b"\x01" * 32,
    )
    anomaly = audit_pb2.AnomalyDetected(
        actor=system,
        rule="checkpoint_late",
        subject=audit_pb2.Subject(kind="log", id=TEST_ORIGIN),
        details="no checkpoint for 2 h",
    )
    unknown = RecordedEvent(
        topic="dibao.intake.v1",
        partition=0,
        offset=900,
        key=b"hh-b",
        headers=(
            ("ce_type", b"dibao.intake.SomethingNew.v1"),
            ("ce_id", str(uuid.uuid4()).encode()),
        ),
        payload=_registered("hh-b", BEIJING).SerializeToString(),
    )
    more = [
        recorded_event(announced, offset=0, key=TEST_ORIGIN, partition=1),  # 32
        recorded_event(anomaly, offset=1, key="log", partition=1),  # 33
        unknown,  # 34
        _unreadable(_registered("hh-c", BEIJING), 901),  # 35
    ]
    more += [  # 36..45: enough for a checkpoint covering them
        recorded_event(_withdrawn("hh-a", LANZHOU, 100 + i), offset=910 + i, key="hh-a")
        for i in range(10)
    ]
    await api.app.state.audit.appender.append(more)
    whole_log, unread = [32, 33], [34, 35]

    key = VerifierKey.parse((await api.client.get("/audit/public-key")).json()["vkey"])
    latest = (await api.client.get("/audit/checkpoints/latest", headers=api.auditor())).json()
    cp = key.verify(latest["signed_note"])
    assert cp.tree_size == 46
    for regions in (("6201",), ("11",), ("620102001001",)):
        listed = await api.client.get(
            "/audit/entries", params={"limit": 500}, headers=api.auditor(regions)
        )
        indices = [e["index"] for e in listed.json()["items"]]
        assert set(whole_log) <= set(indices), regions
        assert not set(unread) & set(indices), regions
        by_type = await api.client.get(
            "/audit/entries",
            params={"ce_type": ce_type_of(announced)},
            headers=api.auditor(regions),
        )
        assert [e["index"] for e in by_type.json()["items"]] == [32]
        for index in whole_log:
            body = await api.client.get(f"/audit/entries/{index}", headers=api.auditor(regions))
            assert body.status_code == 200, (regions, index)
            proof = body.json()["proof"]
            leaf = leaf_hash(canonical_bytes(more[index - 32]))
            assert proof["leaf_hash"] == leaf.hex()
            path = [bytes.fromhex(p) for p in proof["path"]]
            verify_inclusion(index, cp.tree_size, leaf, path, cp.root_hash)
        assert (await api.client.get("/audit/entries/32", headers=api.auditor(regions))).json()[
            "decoded"
        ]["tree_size"] == "22"
    lanzhou = api.auditor(("6201",))
    for index in [1, *unread]:  # another region's; the unread ones
        refused = await api.client.get(f"/audit/entries/{index}", headers=lanzhou)
        assert refused.status_code == 404, index
        assert (
            refused.json()["type"]
            == (await api.client.get("/audit/entries/999", headers=lanzhou)).json()["type"]
        )
    listed = (await api.client.get("/audit/entries", params={"limit": 500}, headers=lanzhou)).json()
    assert [e["index"] for e in listed["items"]] == sorted(
        [0, *range(3, 32, 2), 32, 33, *range(36, 46)]
    )
    # Pages stay full and in order across entries that are not shown.
    paged: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await api.client.get("/audit/entries", params=params, headers=lanzhou)).json()
        assert len(page["items"]) == 3 or page["next_cursor"] is None
        paged += [e["index"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [e["index"] for e in listed["items"]]

    # An export shows exactly the entries the caller may read, and still verifies.
    for params in ({"start": "30"}, {"start": "30", "decoded": "true"}):
        response = await api.client.get("/audit/export", params=params, headers=lanzhou)
        lines = [json.loads(line) for line in response.text.splitlines()[1:]]
        shown = [line["index"] for line in lines if "entry" in line]
        assert shown == [31, 32, 33, *range(36, 46)], params
        header, entries = read_export(response.text.splitlines())
        report = verify_export(header, entries, key)
        assert report.ok, report.problems
        assert (report.checked, report.redacted) == (13, 3)
    # The CLI asks the service for the proof of every entry the export shows.
    out = io.StringIO()
    token = api.tokens(roles=["auditor"], regions=["6201"])
    args = ["--url", served, "--token", token, "--vkey", key.vkey(), "--start", "30"]
    args += ["--inclusion-samples", "16"]
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
    report = json.loads(out.getvalue())
    assert code == 0, report
    assert report["checked"] == 13

    # Timelines are a household's entries: the whole log's name none.
    timeline = (await api.client.get("/audit/households/hh-a/timeline", headers=lanzhou)).json()
    assert {i["index"] for i in timeline["items"]}.isdisjoint(whole_log)


async def test_numbers_and_times_beyond_the_databases_range_are_bad_input(api: Api) -> None:
    """Indices, sizes, cursors and times PostgreSQL cannot hold are the caller's error
    (a problem+json 4xx), not the service's, and are not logged as reads."""
    huge = str(2**63)
    cursor = base64.urlsafe_b64encode(f"i:{huge}".encode()).decode()
    asks: list[tuple[str, dict[str, str]]] = [
        (f"/audit/entries/{huge}", {}),
        ("/audit/entries/0", {"tree_size": huge}),
        (f"/audit/checkpoints/{huge}", {}),
        (f"/audit/entries/-{huge}1", {}),
        ("/audit/entries/0", {"tree_size": f"-{huge}1"}),
        ("/audit/checkpoints", {"cursor": cursor}),
        ("/audit/entries", {"cursor": cursor}),
        ("/audit/households/hh-a/timeline", {"cursor": cursor}),
        ("/audit/entries", {"time_from": "0001-01-01T00:00:00+01:00"}),
        ("/audit/entries", {"time_to": "9999-12-31T23:00:00-05:00"}),
        ("/audit/export", {"tree_size": huge}),
        ("/audit/export", {"start": "0", "end": huge}),
        ("/audit/proofs/consistency", {"from_size": "0", "to_size": huge}),
    ]
    before = len(await api.access_events())
    for path, params in asks:
        response = await api.client.get(path, params=params, headers=api.auditor())
        assert response.status_code in (400, 404, 422), (path, params, response.status_code)
        assert response.headers["content-type"] == "application/problem+json", (path, params)
    assert len(await api.access_events()) == before


async def test_a_listing_that_can_find_nothing_is_refused_saying_why(api: Api) -> None:
    """Time bounds the wrong way round, and a type the log does not know (an auditor typing
    the short name), answered 200 with an empty page, which reads as "nothing happened"
    (helper h3's walk-through). Now 422 at the parameter, saying what to send; nothing is
    recorded. Bounds the right way round and a type in full still list."""
    submitted = "2026-11-01T08:00:00+08:00"
    asks: list[tuple[dict[str, str], str, str]] = [
        (
            {"time_from": submitted, "time_to": "2026-10-31T08:00:00+08:00"},
            "/query/time_to",
            "is not after time_from",
        ),
        (
            {"time_from": submitted, "time_to": "2026-11-01T00:00:00Z"},
            "/query/time_to",
            "time_to exclusive",
        ),
        (
            {"ce_type": "ApplicationWithdrawn"},
            "/query/ce_type",
            "dibao.intake.ApplicationWithdrawn.v1",
        ),
        (
            {"ce_type": "dibao.intake.ApplicationWithdrawn"},
            "/query/ce_type",
            "dibao.intake.ApplicationWithdrawn.v1",
        ),
        ({"ce_type": "NoSuchType"}, "/query/ce_type", "is no event type the log knows"),
    ]
    before = len(await api.access_events())
    for params, pointer, said in asks:
        response = await api.client.get("/audit/entries", params=params, headers=api.auditor())
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["pointer"] == pointer, (params, error)
        assert said in error["detail"], (params, error)
    assert len(await api.access_events()) == before
    fine = await api.client.get(
        "/audit/entries",
        params={
            "ce_type": "dibao.intake.ApplicationWithdrawn.v1",
            "time_from": "2000-01-01T00:00:00Z",
            "time_to": "2100-01-01T00:00:00Z",
            "household_id": "hh-a",
        },
        headers=api.auditor(),
    )
    assert fine.status_code == 200, fine.text
    assert len(fine.json()["items"]) == 15


async def test_the_listings_parameters_say_what_they_compare(api: Api) -> None:
    """The OpenAPI document described none of GET /audit/entries' parameters: which time a
    bound compares (ce_time or appended_at), whether it is inclusive, how a type is
    spelt, what a cursor is."""
    paths = api.app.openapi()["paths"]
    said = {
        p["name"]: p.get("description", "") for p in paths["/audit/entries"]["get"]["parameters"]
    }
    assert all(said.values()), [name for name, text in said.items() if not text]
    assert "ce_time" in said["time_from"]
    assert "at or after" in said["time_from"]
    assert "exclusive" in said["time_to"]
    assert "dibao.intake.ApplicationSubmitted.v1" in said["ce_type"]
    assert "next_cursor" in said["cursor"]
    for path in ("/audit/checkpoints", "/audit/households/{household_id}/timeline"):
        [cursor] = [p for p in paths[path]["get"]["parameters"] if p["name"] == "cursor"]
        assert "next_cursor" in cursor.get("description", ""), path


async def test_a_checkpoint_not_signed_is_named_by_the_parameter_that_asked(api: Api) -> None:
    """An export's from_size, or a tree_size, naming no signed checkpoint answered "No
    checkpoint of that size": with both given, which one, and which sizes there are?"""
    for path, params, name in (
        ("/audit/export", {"from_size": "7"}, "from_size"),
        ("/audit/export", {"tree_size": "7"}, "tree_size"),
        ("/audit/checkpoints/7", {}, "tree_size"),
        ("/audit/entries/0", {"tree_size": "7"}, "tree_size"),
    ):
        response = await api.client.get(path, params=params, headers=api.auditor())
        assert response.status_code == 404, (path, params, response.text)
        detail = response.json()["detail"]
        assert detail.startswith(f"No checkpoint of size 7 ({name})"), (path, params, detail)
        assert "GET /audit/checkpoints lists them" in detail


async def test_text_postgresql_cannot_hold_is_bad_input(api: Api) -> None:
    """A NUL in a filter or a household id is a declared 422, not a 500 from the database
    (PostgreSQL text holds no NUL), and is not logged as a read."""
    asks: list[tuple[str, dict[str, str]]] = [
        ("/audit/entries", {name: "a\x00b"})
        for name in ("household_id", "application_id", "case_id", "ce_type", "actor")
    ]
    asks += [("/audit/households/hh-a%00/timeline", {})]
    before = len(await api.access_events())
    for path, params in asks:
        response = await api.client.get(path, params=params, headers=api.auditor())
        assert response.status_code == 422, (path, params, response.status_code)
        assert response.headers["content-type"] == "application/problem+json", (path, params)
    assert len(await api.access_events()) == before
    # The published schema says so, so that a client (or a fuzzer) knows before asking.
    paths = api.app.openapi()["paths"]
    declared = {
        (path, p["name"]): p["schema"]
        for path, method in (
            ("/audit/entries", "get"),
            ("/audit/households/{household_id}/timeline", "get"),
        )
        for p in paths[path][method]["parameters"]
        if p["name"] not in ("cursor", "limit", "time_from", "time_to")
    }
    assert len(declared) == 6
    for where, schema in declared.items():
        text = next(s for s in schema.get("anyOf", [schema]) if s["type"] == "string")
        assert re.fullmatch(text["pattern"], "dibao.intake.v1.HouseholdRegistered"), where
        assert not re.fullmatch(text["pattern"], "a\x00b"), where


async def test_an_empty_filter_is_refused_and_any_other_string_is_a_search(api: Api) -> None:
    """`household_id=` or `actor=` (a cleared form field, a script's unset variable) gave
    an empty 200, as if the household had no entries. An empty value is now a 422 saying
    so (read as absent it would widen a household's listing to the whole region). A value
    of another form than the producers' (`notauuid`) stays a search, answered 200: the log
    keeps what records say, and a faulty or forged record naming a household so must be
    found; the parameter's description says why."""
    names = ("household_id", "application_id", "case_id", "ce_type", "actor")
    before = len(await api.access_events())
    for name in names:
        response = await api.client.get("/audit/entries", params={name: ""}, headers=api.auditor())
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["pointer"] == f"/query/{name}", error
        assert error["detail"].startswith("must not be empty"), error
        assert "leave the parameter out" in error["detail"], error
    assert len(await api.access_events()) == before
    other = await api.client.get(
        "/audit/entries", params={"household_id": "notauuid"}, headers=api.auditor()
    )
    assert other.status_code == 200, other.text
    assert other.json()["items"] == []
    said = {
        p["name"]: p["description"]
        for p in api.app.openapi()["paths"]["/audit/entries"]["get"]["parameters"]
    }
    for name in ("household_id", "application_id", "case_id", "actor"):
        assert "any non-empty string is accepted" in said[name].lower(), (name, said[name])
    assert "UUID" in said["household_id"]


async def test_a_households_event_without_its_household_is_not_the_whole_logs(
    api: Api,
) -> None:
    """A faulty producer's household event sent without household id and region used to
    count as the whole log's, shown to every auditor; it now stays hidden like an unread
    entry. A log alert about no household is still the whole log's."""
    faulty = intake_pb2.HouseholdRegistered(
        household=intake_types.HouseholdSnapshot(
            members=[
                intake_types.Member(
                    person=types_pb2.PersonRef(person_id="p-x", masked_name="李*"),
                    seriously_ill=True,
                )
            ]
        )
    )
    alert = audit_pb2.AnomalyDetected(
        actor=types_pb2.Actor(subject="audit", kind=enums_pb2.ACTOR_KIND_SYSTEM),
        rule="checkpoint_late",
        subject=audit_pb2.Subject(kind="log", id=TEST_ORIGIN),
    )
    await api.app.state.audit.appender.append(
        [
            recorded_event(faulty, offset=950, key="no-household"),  # 32
            recorded_event(alert, offset=951, key="log", partition=1),  # 33
            *(  # 34..43: enough for a checkpoint covering them, and so their proofs
                recorded_event(_withdrawn("hh-a", LANZHOU, 200 + i), offset=960 + i, key="hh-a")
                for i in range(10)
            ),
        ]
    )
    for regions in (("6201",), ("11",)):
        headers = api.auditor(regions)
        hidden = await api.client.get("/audit/entries/32", headers=headers)
        assert hidden.status_code == 404, (regions, hidden.text)
        assert (await api.client.get("/audit/entries/33", headers=headers)).status_code == 200
        listed = await api.client.get("/audit/entries", params={"limit": 500}, headers=headers)
        indices = [e["index"] for e in listed.json()["items"]]
        assert 32 not in indices
        assert 33 in indices


async def test_the_cli_proves_a_kept_checkpoint_the_export_does_not_name_by_the_service(
    api: Api, served: str, tmp_path: Path
) -> None:
    """A checkpoint the auditor kept that a slice does not name (or one larger than the
    export's) is proved consistent by a consistency proof the service must give; a kept
    checkpoint of the same size with another root is a rewritten log."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["62", "11"])
    signer = CheckpointSigner(TEST_SEED, TEST_ORIGIN)
    leaves = [leaf_hash(canonical_bytes(e)) for e in api.events]
    cases = [  # (kept size, its root, --tree-size, exit code)
        (15, merkle.root_of(leaves[:15]), None, 0),  # inside the tree, signed nowhere else
        (32, merkle.root_of(leaves[:32]), 22, 0),  # larger than the export's checkpoint
        (15, merkle.root_of(leaves[1:16]), None, 1),  # another log's root for size 15
    ]
    for size, root, tree_size, expected in cases:
        kept = tmp_path / f"kept-{size}.txt"
        kept.write_text(signer.sign(size, root, datetime(2026, 11, 3, tzinfo=UTC)))
        args = ["--url", served, "--token", token, "--vkey", vkey, "--start", "20"]
        args += ["--checkpoint", str(kept)]
        if tree_size is not None:
            args += ["--tree-size", str(tree_size)]
        out = io.StringIO()
        code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
        report = json.loads(out.getvalue())
        assert code == expected, (size, report)
        assert report["kept_checkpoints_checked"] == 1 - expected, report


def _lying(
    app: Any,
    path: str,
    *,
    query: Callable[[bytes], bytes] | None = None,
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Any:
    """The service with one lie: requests under ``path`` get their query string replaced
    (the service answers something else than asked), or their JSON answer rewritten."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(path):
            await app(scope, receive, send)
            return
        if query is not None:
            scope = dict(scope, query_string=query(scope["query_string"]))
        if body is None:
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await app(scope, receive, capture)
        data = json.dumps(body(json.loads(b"".join(chunks)))).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return asgi


def _other_payload(body: dict[str, Any]) -> dict[str, Any]:
    return body | {"payload": base64.b64encode(b"a payment never approved").decode()}


async def test_the_cli_catches_a_service_that_answers_other_than_asked(api: Api) -> None:
    """Each lie verified before, over less than asked: a slice from 5 when asked from 0, an
    older checkpoint when asked for the latest, another one than named, and an entry shown
    online with other content than the leaf its proof leads from."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["62", "11"])
    lies: list[tuple[str, Any, list[str], str]] = [
        (
            "another slice",
            _lying(api.app, "/audit/export", query=lambda q: b"start=5"),
            [],
            "the export starts at 5",
        ),
        (
            "an older checkpoint",
            _lying(api.app, "/audit/export", query=lambda q: q + b"&tree_size=22"),
            [],
            "older than checkpoint 32",
        ),
        (
            "not the checkpoint named",
            _lying(api.app, "/audit/export", query=lambda q: q.replace(b"tree_size=11", b"")),
            ["--tree-size", "11"],
            "asked for checkpoint 11",
        ),
        (
            "other content online",
            _lying(api.app, "/audit/entries/", body=_other_payload),
            [],
            "not the entry it proves",
        ),
    ]
    for name, app, extra, problem in lies:
        async with serving(app) as url:
            args = ["--url", url, "--token", token, "--vkey", vkey, *extra]
            out = io.StringIO()
            code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
        report = json.loads(out.getvalue())
        assert code == 1, (name, report)
        assert any(problem in p for p in report["problems"]), (name, report["problems"])
    async with serving(api.app) as url:  # the service as it is
        for extra in ([], ["--tree-size", "11"], ["--start", "3", "--end", "9"]):
            args = ["--url", url, "--token", token, "--vkey", vkey, *extra]
            out = io.StringIO()
            code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
            assert code == 0, (extra, out.getvalue())


def _forked(size: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A checkpoint listing whose checkpoint ``size`` is signed, by the log's key, for
    another root (a second log, or the one before a rewrite), at its own time."""
    signer = CheckpointSigner(TEST_SEED, TEST_ORIGIN)

    def body(page: dict[str, Any]) -> dict[str, Any]:
        for item in page.get("items", []):
            if item["tree_size"] == size:
                at = datetime.fromisoformat(item["signed_at"])
                item["signed_note"] = signer.sign(size, b"\x07" * 32, at)
        return page

    return body


async def test_the_cli_checks_the_roots_of_the_checkpoints_the_service_lists(api: Api) -> None:
    """--url reads the service's checkpoints (GET /audit/checkpoints) to bound each
    entry's appended_at, and checked only their signatures and sizes: a listing holding
    checkpoint 22, or the export's own 32, signed for another root than the entries give
    (two trees signed by one key: a fork, or the log as it was before a rewrite) verified
    with exit 0. Each listed checkpoint of the export's size must have its root, and with
    a whole export each listed one must be the root of its first entries."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["62", "11"])
    for size, problem in [
        (22, "the entries do not give the root of checkpoint 22 the service lists"),
        (32, "the service lists checkpoint 32 with another root than the export's"),
    ]:
        async with serving(_lying(api.app, "/audit/checkpoints", body=_forked(size))) as url:
            args = ["--url", url, "--token", token, "--vkey", vkey]
            out = io.StringIO()
            code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
        report = json.loads(out.getvalue())
        assert code == 1, (size, report)
        assert any(problem in p for p in report["problems"]), (size, report["problems"])
    async with serving(_lying(api.app, "/audit/checkpoints", body=lambda page: page)) as url:
        args = ["--url", url, "--token", token, "--vkey", vkey]
        out = io.StringIO()
        code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
    assert code == 0, out.getvalue()


async def test_the_cli_checks_the_listed_checkpoints_inside_a_slice(api: Api) -> None:
    """With a slice (--start, --end), a listed checkpoint inside it (11 and 22 in
    [5, 30)) was not checked: one signed for another root verified with exit 0. Its root
    is now made from the cover's hashes left of the slice and the slice's leaves; a
    checkpoint at the slice's end (22 with --end 22) counts as inside."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["62"])  # Beijing's entries redacted
    for size, span in [(22, ("5", "30")), (11, ("5", "30")), (22, ("13", "22"))]:
        extra = ["--start", span[0], "--end", span[1]]
        for lie, expected in [(_forked(size), 1), (lambda page: page, 0)]:
            async with serving(_lying(api.app, "/audit/checkpoints", body=lie)) as url:
                args = ["--url", url, "--token", token, "--vkey", vkey, *extra]
                out = io.StringIO()
                code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
            report = json.loads(out.getvalue())
            assert code == expected, (size, span, report)
            if expected:
                assert report["problems"] == [
                    f"the entries do not give the root of checkpoint {size} the service "
                    "lists: two logs are signed with its key, or this one was rewritten since"
                ]


async def test_the_cli_exits_2_when_the_service_refuses_the_export(
    api: Api, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused export is a verification that could not run (2), not a problem found (1)."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    clerk = api.tokens(roles=["intake_clerk"], regions=["6201"])
    argv = ["--url", served, "--token", clerk, "--vkey", vkey]
    assert await asyncio.to_thread(verify_cli.main, argv) == 2
    assert "export refused: 403" in capsys.readouterr().err


async def test_the_cli_exits_2_naming_why_when_the_database_cannot_be_read(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    """--database-url with a login the server refuses, or a database that is not the log's,
    is a check that could not run (2, the reason on stderr), not a problem found in the log
    (1): it ended in an asyncpg traceback and exit 1 (helper h3's walk-through: the
    server's superuser tried as ``postgres``)."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    scheme, _, rest = api.db.url.partition("://")
    login, _, place = rest.rpartition("@")
    server, _, _database = place.partition("/")
    nobody = f"{scheme}://no_such_role_h3:secret-h3@{place}"
    not_the_log = f"{scheme}://{login}@{server}/postgres"
    for url, said in (
        (nobody, "InvalidAuthorizationSpecificationError"),
        (not_the_log, "it is not the audit log's database"),
    ):
        argv = ["--database-url", url, "--vkey", vkey]
        assert await asyncio.to_thread(verify_cli.main, argv) == 2, url
        captured = capsys.readouterr()
        assert captured.out == "", url
        assert captured.err.startswith("verification could not run: the database "), captured.err
        assert said in captured.err, captured.err
        assert "secret-h3" not in captured.err
        assert "Traceback" not in captured.err


async def test_the_cli_verifies_a_service_against_a_pinned_key_only(
    api: Api, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --vkey, --url used the key the service itself publishes: the thing audited
    vouched for its own signatures. It now refuses to run (2) as an export and the database
    do, unless --trust-published-key is given, which warns loudly, says so in the report
    and exits 3 (not 0) with ok false; that flag is refused with the other sources."""
    token = api.tokens(roles=["auditor"], regions=["62", "11"])
    assert await asyncio.to_thread(verify_cli.main, ["--url", served, "--token", token]) == 2
    err = capsys.readouterr().err
    assert "pinned key" in err
    assert "--trust-published-key" in err

    argv = ["--url", served, "--token", token, "--trust-published-key"]
    # Nothing found wrong, against the key the thing audited publishes: exit 3, ok false
    # (it was 0 and ok true, which a script took for a verified log).
    assert await asyncio.to_thread(verify_cli.main, argv) == verify_cli.UNPINNED == 3
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["key_pinned"] is False
    assert report["ok"] is False
    assert report["self_consistent"] is True
    assert report["problems"] == []
    assert "no pinned key" in report["warning"]
    assert "WARNING: NO PINNED KEY" in captured.err

    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    argv = ["--url", served, "--token", token, "--vkey", vkey]
    assert await asyncio.to_thread(verify_cli.main, argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["key_pinned"] is True
    assert json.loads(captured.out)["ok"] is True
    assert "warning" not in json.loads(captured.out)
    assert "self_consistent" not in json.loads(captured.out)
    assert "WARNING" not in captured.err

    argv = ["--database-url", api.db.url, "--trust-published-key"]
    assert await asyncio.to_thread(verify_cli.main, argv) == 2
    assert "applies to --url only" in capsys.readouterr().err


async def _lanzhou_verifies(api: Api, url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """``verify_cli --url`` as an auditor of Lanzhou's city (6201), the key pinned: its
    exit code and report."""
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    token = api.tokens(roles=["auditor"], regions=["6201"])
    out = io.StringIO()
    args = ["--url", url, "--token", token, "--vkey", vkey, *extra]
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
    return code, json.loads(out.getvalue())


async def test_stored_columns_a_record_contradicts_are_said_and_not_trusted(
    api: Api, served: str
) -> None:
    """The query columns are hashed by nothing: an SQL edit moved a Beijing entry into
    Lanzhou's region (index 2) and put another household on a Lanzhou entry (index 3). The
    API serves the columns the record gives, says which stored ones it contradicts, and
    decides visibility by the record's region; the CLI reports both."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE log_entry SET region = $1 WHERE leaf_index = 2", LANZHOU)
        await conn.execute("UPDATE log_entry SET household_id = 'hh-z' WHERE leaf_index = 3")
    finally:
        await conn.close()
    lanzhou = api.auditor(("6201",))
    assert (await api.client.get("/audit/entries/2", headers=lanzhou)).status_code == 404
    listed = (await api.client.get("/audit/entries", headers=lanzhou)).json()["items"]
    assert 2 not in [item["index"] for item in listed]
    found = await api.client.get("/audit/entries", params={"household_id": "hh-z"}, headers=lanzhou)
    (item,) = found.json()["items"]
    assert (item["index"], item["household_id"]) == (3, "hh-a")
    assert item["contradicted"] == {"household_id": "hh-z"}
    one = (await api.client.get("/audit/entries/3", headers=lanzhou)).json()["entry"]
    assert one["contradicted"] == {"household_id": "hh-z"}
    assert [item["contradicted"] for item in listed if item["index"] != 3] == [{}] * (
        len(listed) - 1
    )

    code, report = await _lanzhou_verifies(api, served)
    assert code == 1
    # Entry 2 is Beijing's by its record: the export gives its leaf only, as the listing
    # leaves it out (only --database-url, which sees every region, finds that edit).
    assert report["first_bad_index"] == 3
    problems = "\n".join(report["problems"])
    assert "entry 2" not in problems
    assert "entry 3: stored household_id contradicted by its record" in problems
    assert "entry 3: stored household_id contradicted by its record, the export says" in problems
    assert report["columns_checked"] == 16  # Lanzhou's 1 + 15 entries, 2 left out


@pytest.mark.parametrize("decoded", [False, True])
async def test_an_export_checks_the_stored_columns_against_each_record(
    api: Api, decoded: bool, tmp_path: Path
) -> None:
    """An export decided what to show by the stored columns and said nothing of an edit:
    an SQL edit moving Lanzhou's entry 5 into Beijing gave Lanzhou its leaf only (and
    Beijing's auditor the whole entry), one moving Beijing's entry 2 into Lanzhou showed it
    to Lanzhou, and an edited household went unsaid. Now each entry's stored columns are
    checked against its record, as the API checks what it serves: what is shown is decided
    by the record, a shown entry says which stored columns its record contradicts (off
    the verifier's fast path), the access records name the record's households, and the
    offline verifier reports every such line."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE log_entry SET region = $1 WHERE leaf_index = 5", BEIJING)
        await conn.execute("UPDATE log_entry SET region = $1 WHERE leaf_index = 2", LANZHOU)
        await conn.execute(
            "UPDATE log_entry SET household_id = 'hh-z', regions = '{110101001001}', "
            "ce_time = ce_time + interval '1 day' WHERE leaf_index = 7"
        )
    finally:
        await conn.close()
    params = {"end": "11", "tree_size": "11"} | ({"decoded": "true"} if decoded else {})
    before = len(await api.access_events())
    response = await api.client.get("/audit/export", params=params, headers=api.auditor())
    assert response.status_code == 200, response.text
    lines = {line["index"]: line for line in map(json.loads, response.text.splitlines()[1:])}
    assert sorted(i for i, line in lines.items() if "entry" in line) == [0, 3, 5, 7, 9]
    assert lines[2] == {"index": 2, "leaf_hash": lines[2]["leaf_hash"], "redacted": True}
    assert lines[5]["contradicted"] == {"region": BEIJING}
    assert set(lines[7]["contradicted"]) == {"household_id", "regions", "ce_time"}
    assert lines[7]["contradicted"]["household_id"] == "hh-z"
    assert lines[7]["contradicted"]["regions"] == [BEIJING]
    assert all("contradicted" not in lines[i] for i in (0, 3, 9))
    if decoded:
        assert lines[5]["ce_type"] == ce_type_of(intake_pb2.ApplicationWithdrawn())
    logged = (await api.access_events())[before:]
    assert {(a.household_id, a.region.code) for a in logged if a.household_id} == {
        ("hh-a", LANZHOU)
    }
    beijing = await api.client.get("/audit/export", params=params, headers=api.auditor(("11",)))
    shown = [json.loads(line) for line in beijing.text.splitlines()[1:]]
    assert [line["index"] for line in shown if "entry" in line] == [1, 2, 4, 6, 8, 10]
    assert next(line for line in shown if line["index"] == 2)["contradicted"] == {"region": LANZHOU}

    saved = tmp_path / "export.jsonl"
    saved.write_text(response.text)
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    out = io.StringIO()
    code = verify_cli.run(verify_cli._parse_args(["--export", str(saved), "--vkey", vkey]), out)
    report = json.loads(out.getvalue())
    assert code == 1, report
    assert report["first_bad_index"] == 5
    problems = "\n".join(report["problems"])
    assert "entry 5: stored region contradicted by its record, the export says" in problems
    assert "entry 7: stored ce_time, household_id, regions contradicted" in problems
    assert len(report["problems"]) == 2, problems


@pytest.mark.parametrize("decoded", [False, True])
async def test_an_entry_whose_record_was_rewritten_to_name_another_region_stays_its_regions(
    api: Api, decoded: bool, tmp_path: Path
) -> None:
    """An SQL edit rewrote the payload of Lanzhou's entry 5 to name Beijing, leaving its
    leaf (merkle_node) and stored columns alone. Since 68241c5 the export decided what to
    show by the rewritten record alone: Lanzhou's auditor got the line redacted, carrying
    the tree's (true) leaf, so Lanzhou's export verified with exit 0 and the rewrite was
    seen by Beijing only. A record that is not the one its leaf hashes is shown to the
    region its stored columns name too, so that region's auditor sees the mismatch."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        rewritten = _withdrawn("hh-a", BEIJING, 3).SerializeToString()
        await conn.execute("UPDATE log_entry SET payload = $1 WHERE leaf_index = 5", rewritten)
    finally:
        await conn.close()
    params = {"end": "11", "tree_size": "11"} | ({"decoded": "true"} if decoded else {})
    response = await api.client.get("/audit/export", params=params, headers=api.auditor())
    assert response.status_code == 200, response.text
    lines = {line["index"]: line for line in map(json.loads, response.text.splitlines()[1:])}
    assert sorted(i for i, line in lines.items() if "entry" in line) == [0, 3, 5, 7, 9]
    assert lines[5]["contradicted"] == {"region": LANZHOU}

    saved = tmp_path / "export.jsonl"
    saved.write_text(response.text)
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    out = io.StringIO()
    code = verify_cli.run(verify_cli._parse_args(["--export", str(saved), "--vkey", vkey]), out)
    report = json.loads(out.getvalue())
    assert code == 1, report
    assert report["first_bad_index"] == 5
    assert "entry 5: content does not match its leaf hash" in report["problems"]


async def test_the_api_shows_an_entry_rewritten_behind_the_logs_back_to_its_own_region(
    api: Api, served: str
) -> None:
    """SQL edits: Lanzhou's entry 5 got a payload naming Beijing, Lanzhou's entry 7 header
    bytes that are not a header block, and Beijing's entry 2 (its record intact) Lanzhou's
    stored region. Exports showed 5 and 7 to Lanzhou, contradicted, but the API decided by
    the rewritten record alone: 404 for Lanzhou's auditor, and left out of the listing and
    the timeline. Both are now served to Lanzhou as exports show them, saying what is
    contradicted; entry 2, Beijing's record, stays Beijing's."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        rewritten = _withdrawn("hh-a", BEIJING, 3).SerializeToString()
        await conn.execute("UPDATE log_entry SET payload = $1 WHERE leaf_index = 5", rewritten)
        await conn.execute(
            "UPDATE log_entry SET header_block = $1 WHERE leaf_index = 7", b"\x00\x00\x00\x09"
        )
        await conn.execute("UPDATE log_entry SET region = $1 WHERE leaf_index = 2", LANZHOU)
    finally:
        await conn.close()
    lanzhou = api.auditor(("6201",))
    one = await api.client.get("/audit/entries/5", headers=lanzhou)
    assert one.status_code == 200, one.text
    assert one.json()["entry"]["region"] == BEIJING  # what the record now says
    assert one.json()["entry"]["contradicted"] == {"region": LANZHOU}
    assert one.json()["payload"] == base64.b64encode(rewritten).decode()
    seven = await api.client.get("/audit/entries/7", headers=lanzhou)
    assert seven.status_code == 200, seven.text
    assert seven.json()["headers"] is None
    assert seven.json()["entry"]["contradicted"]["region"] == LANZHOU
    assert (await api.client.get("/audit/entries/2", headers=lanzhou)).status_code == 404
    listed = (await api.client.get("/audit/entries", headers=lanzhou)).json()["items"]
    contradicted = {item["index"]: item["contradicted"] for item in listed if item["contradicted"]}
    assert sorted(contradicted) == [5, 7]
    assert contradicted[5] == {"region": LANZHOU}
    assert 2 not in [item["index"] for item in listed]
    timeline = await api.client.get("/audit/households/hh-a/timeline", headers=lanzhou)
    items = {item["index"]: item for item in timeline.json()["items"]}
    assert items[5]["contradicted"] == {"region": LANZHOU}

    export = await api.client.get("/audit/export", params={"end": "11"}, headers=lanzhou)
    shown = [json.loads(line) for line in export.text.splitlines()[1:]]
    assert [line["index"] for line in shown if "entry" in line] == [
        item["index"] for item in listed if item["index"] < 11
    ]
    code, report = await _lanzhou_verifies(api, served)
    assert code == 1, report
    assert report["first_bad_index"] == 5
    problems = "\n".join(report["problems"])
    assert "entry 5: content does not match its leaf hash" in problems
    assert "entry 5: stored region contradicted by its record" in problems
    assert "not listed" not in problems


async def test_an_export_with_decoded_views_survives_a_header_block_that_is_not_one(
    api: Api, tmp_path: Path
) -> None:
    """An SQL edit made entry 5's header block bytes that are not one. The export without
    views shows it to its region (the record names none, the stored columns put it in
    Lanzhou) with every column contradicted; the export with decoded views (decoded=true)
    made each view by parsing the header block, which raised, and the stream broke off
    after its header, so one edited row denied every auditor that export. The entry's
    view is now none (a record that does not read), as for an undecodable payload."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE log_entry SET header_block = $1 WHERE leaf_index = 5", b"\x00\x00\x00\x09"
        )
    finally:
        await conn.close()
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    for decoded in (False, True):
        params = {"end": "11", "tree_size": "11"} | ({"decoded": "true"} if decoded else {})
        response = await api.client.get("/audit/export", params=params, headers=api.auditor())
        assert response.status_code == 200, response.text
        lines = [json.loads(line) for line in response.text.splitlines()[1:]]
        assert [line["index"] for line in lines] == list(range(11)), decoded
        (five,) = [line for line in lines if line["index"] == 5]
        assert "entry" in five
        assert five["contradicted"]["region"] == LANZHOU
        if decoded:
            assert five["decoded"] is None
        saved = tmp_path / "export.jsonl"
        saved.write_text(response.text)
        out = io.StringIO()
        args = verify_cli._parse_args(["--export", str(saved), "--vkey", vkey])
        assert verify_cli.run(args, out) == 1
        assert json.loads(out.getvalue())["first_bad_index"] == 5


async def test_the_cli_bounds_each_listed_appended_at_by_the_signed_checkpoints(
    api: Api, served: str
) -> None:
    """appended_at is hashed by nothing: an SQL edit dated entry 15 before checkpoint 11
    was signed (which does not cover it) and entry 5 a day after checkpoint 11 was (which
    covers it). Every proof still verifies; --url bounds each listed entry's appended_at by
    the signed times of the checkpoints around it, as --database-url does, within
    --clock-skew."""
    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE log_entry SET appended_at = appended_at - interval '1 day' "
            "WHERE leaf_index = 15"
        )
        await conn.execute(
            "UPDATE log_entry SET appended_at = appended_at + interval '1 day' WHERE leaf_index = 5"
        )
    finally:
        await conn.close()
    code, report = await _lanzhou_verifies(api, served)
    assert code == 1, report
    assert report["first_bad_index"] == 5
    problems = "\n".join(report["problems"])
    assert "entry 5: appended_at" in problems
    assert "is after checkpoint 11 was signed, which covers it" in problems
    assert "entry 15: appended_at" in problems
    assert "is before checkpoint 11 was signed, which does not cover it" in problems
    assert len(report["problems"]) == 2, problems
    assert report["appended_at_checked"] == report["columns_checked"] > 0
    # A slice of other entries is not concerned.
    code, report = await _lanzhou_verifies(api, served, "--start", "16", "--end", "22")
    assert code == 0, report


async def _export_header(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.client.get("/audit/export", params=params, headers=api.auditor())
    assert response.status_code == 200, response.text
    header: dict[str, Any] = json.loads(response.text.splitlines()[0])
    return header


async def test_an_exports_header_does_not_grow_with_the_logs_age(api: Api) -> None:
    """v1 headers carried every checkpoint and a consistency proof per pair. A v2 header
    carries the covering checkpoint, the cover and, when asked (from_size), one earlier
    checkpoint and the proof from it: the same size after ten more checkpoints."""
    young = await _export_header(api)
    assert young["format"] == "dibao.audit.export.v3"
    assert "history" not in young
    assert young["from_size"] is None
    appender = api.app.state.audit.appender
    for n in range(10):
        batch = [
            recorded_event(
                _withdrawn("hh-a", LANZHOU, 100 + 11 * n + i), offset=100 + 11 * n + i, key="hh-a"
            )
            for i in range(11)
        ]
        assert (await appender.append(batch)).checkpoint_size is not None
    old = await _export_header(api)
    assert old["tree_size"] == young["tree_size"] + 110
    assert abs(len(json.dumps(old)) - len(json.dumps(young))) < 16  # the note's digits

    since = await _export_header(api, from_size=young["tree_size"], start=5, end=20)
    assert since["from_size"] == young["tree_size"]
    assert since["from_checkpoint"] == young["checkpoint"]
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    key = VerifierKey.parse(vkey)
    header, entries = read_export(
        (
            await api.client.get(
                "/audit/export",
                params={"from_size": young["tree_size"], "start": 5, "end": 20},
                headers=api.auditor(("62", "11")),
            )
        ).text.splitlines()
    )
    report = verify_export(header, entries, key, kept=[young["checkpoint"]])
    assert report.ok, report.problems
    assert report.kept_checked == 1
    unknown = await api.client.get("/audit/export", params={"from_size": 7}, headers=api.auditor())
    assert unknown.status_code == 404
    beyond = await api.client.get(
        "/audit/export", params={"from_size": old["tree_size"] + 1}, headers=api.auditor()
    )
    assert beyond.status_code == 400


COUNTIES = ("620102000000", "620103000000", "620104000000")


def _search_of_two_counties(offset: int) -> RecordedEvent:
    """An intake search by a caller of two counties, unfiltered: its access record's region
    is the first county, its regions both (9a031b2)."""
    message = access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code=COUNTIES[0]),
        regions=[types_pb2.RegionCode(code=c) for c in COUNTIES[:2]],
        actor=types_pb2.Actor(subject="clerk-of-two"),
        service="intake",
        record_type=access_pb2.RECORD_TYPE_LIST,
        record_id="households?name=...",
        operation="GET /households",
    )
    return recorded_event(message, offset=offset, key="", actor="clerk-of-two")


async def _sees(api: Api, county: str, index: int) -> tuple[bool, int, bool]:
    """Whether an auditor of ``county`` lists the entry, what reading it answers, and
    whether their export shows it."""
    auditor = api.auditor((county[:6],))
    listed = (await api.client.get("/audit/entries", headers=auditor)).json()["items"]
    status = (await api.client.get(f"/audit/entries/{index}", headers=auditor)).status_code
    export = await api.client.get("/audit/export", headers=auditor)
    line = json.loads(export.text.splitlines()[1 + index])
    return index in [item["index"] for item in listed], status, "entry" in line


async def test_a_search_is_found_by_the_auditor_of_each_region_it_names(
    api: Api, served: str
) -> None:
    """A search record naming two counties is every one of their auditors' (listed, read,
    shown in exports), not a third county's. Its stored regions are hashed by nothing: an
    SQL edit of them is said in ``contradicted`` and reported by the CLI, and visibility
    still follows the record."""
    appender = api.app.state.audit.appender
    await appender.append([_search_of_two_counties(offset=100)])
    await appender.checkpoint_if_grown()
    index = len(api.events)
    first, second, third = COUNTIES
    assert await _sees(api, first, index) == (True, 200, True)
    assert await _sees(api, second, index) == (True, 200, True)
    assert await _sees(api, third, index) == (False, 404, False)
    one = await api.client.get(f"/audit/entries/{index}", headers=api.auditor(("620103",)))
    entry = one.json()["entry"]
    assert (entry["region"], entry["regions"], entry["contradicted"]) == (
        first,
        [first, second],
        {},
    )

    conn = await asyncpg.connect(api.db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE log_entry SET regions = $1 WHERE leaf_index = $2", [first, third], index
        )
    finally:
        await conn.close()
    # The second county still finds it (its prefixes, entry_region_prefix, are the
    # record's: ADR 0017); a read shows the record's regions and says what was stored,
    # and so does an export (which checks the stored columns too); the third is not shown.
    assert await _sees(api, second, index) == (True, 200, True)
    assert (await _sees(api, third, index))[:2] == (False, 404)
    one = await api.client.get(f"/audit/entries/{index}", headers=api.auditor(("620103",)))
    entry = one.json()["entry"]
    assert entry["regions"] == [first, second]
    assert entry["contradicted"] == {"regions": [first, third]}

    out = io.StringIO()
    vkey = (await api.client.get("/audit/public-key")).json()["vkey"]
    args = ["--database-url", api.db.url, "--vkey", vkey]
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out)
    report = json.loads(out.getvalue())
    assert code == 1
    assert report["contradicted_columns"] == {"regions": 1}
    assert report["first_bad_index"] == index
    assert (
        f"entry {index}: stored regions ('{first}', '{third}') is not its record's "
        f"(('{first}', '{second}'))" in report["problems"]
    )
    out = io.StringIO()
    token = api.tokens(roles=["auditor"], regions=["620102"])
    args = ["--url", served, "--token", token, "--vkey", vkey]
    assert await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(args), out) == 1
    problems = "\n".join(json.loads(out.getvalue())["problems"])
    assert f"entry {index}: stored regions contradicted by its record" in problems
