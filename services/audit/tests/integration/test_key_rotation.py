"""Rotating the log's signing key, on the real database and broker (docs/adr/0018).

The service hands over from its key to the next in one checkpoint signed by both, while it
consumes; an auditor who pinned only the old key verifies the whole log in every mode
(``verify_cli --database-url``, ``--url``, ``--export``; ``repair_tree`` too) and is told
where trust moved. A
key that appears without a hand-over, a hand-over co-signed by a key nobody trusts, and
the old key signing after its hand-over fail in every mode. The hand-overs an export
names are read through their index (migration 0010), not every checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repair_tree, verify_cli
from dibao_audit import repository as repo
from dibao_audit.appender import LogAppender
from dibao_audit.checkpoint import CheckpointError, CheckpointSigner, handover_of
from dibao_audit.entry import RecordedEvent
from dibao_audit.main import create_app
from dibao_audit.settings import AuditSettings
from dibao_audit.testing import (
    KEY_ID_TWINS,
    TEST_ORIGIN,
    TEST_SEED,
    AuditDb,
    api_settings,
    as_superuser,
    recorded_event,
    serving,
)
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.kafka_fixtures import create_topic, delete_topics, eventually
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

OLD = TEST_SEED
NEW = hashlib.sha256(b"dibao audit test next signing key").digest()
MALLORY = hashlib.sha256(b"a key nobody trusts").digest()
VILLAGE = "620102001001"


def _vkey(seed: bytes) -> str:
    return CheckpointSigner(seed, TEST_ORIGIN).verifier.vkey()


def _withdrawn(n: int) -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-r", region=types_pb2.RegionCode(code=VILLAGE), application_id=f"app-{n}"
    )
    return recorded_event(message, offset=n, key="hh-r")


async def _verify(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = await asyncio.to_thread(verify_cli.run, verify_cli._parse_args(list(args)), out)
    return code, json.loads(out.getvalue())


def _token(token_factory: TokenFactory) -> str:
    return token_factory(roles=["auditor"], regions=["6201"])


async def _every_mode(
    audit_db: AuditDb,
    url: str,
    token_factory: TokenFactory,
    tmp_path: Path,
    pinned: bytes = OLD,
    *extra: str,
) -> dict[str, tuple[int, dict[str, Any]]]:
    """``verify_cli`` pinned to the old key only (``pinned``), with ``extra`` arguments: the
    database, the service at ``url`` (its export saved), and that saved export offline."""
    saved = tmp_path / "export.jsonl"
    old = _vkey(pinned)
    return {
        "database": await _verify("--database-url", audit_db.url, "--vkey", old, *extra),
        "url": await _verify(
            "--url",
            url,
            "--token",
            _token(token_factory),
            "--vkey",
            old,
            "--save",
            str(saved),
            *extra,
        ),
        "export": await _verify("--export", str(saved), "--vkey", old, *extra),
    }


@pytest_asyncio.fixture(loop_scope="session")
async def topic(audit_db: AuditDb) -> AsyncIterator[str]:
    name = f"dibao.rotation{uuid.uuid4().hex[:8]}.v1"
    await create_topic(audit_db.stack.kafka_bootstrap, name, partitions=1)
    try:
        yield name
    finally:
        await delete_topics(audit_db.stack.kafka_bootstrap, [name])


def _consuming(
    audit_db: AuditDb, topic: str, seed: bytes, next_seed: bytes | None, *, consume: bool = True
) -> AuditSettings:
    """The whole service consuming ``topic`` alone, a checkpoint each 0.3 s while it grows."""
    return AuditSettings(
        database_url=audit_db.url,
        audit_runtime_database_url=audit_db.runtime_url,
        kafka_bootstrap=audit_db.stack.kafka_bootstrap,
        **common_secret_values(),
        audit_signing_key=base64.b64encode(seed).decode(),
        audit_next_signing_key=None if next_seed is None else base64.b64encode(next_seed).decode(),
        audit_log_origin=TEST_ORIGIN,
        audit_consumer_group=f"audit-{topic}",
        audit_topic_pattern=rf"^{topic.replace('.', '[.]')}$",
        audit_checkpoint_interval_s=0.3,
        audit_consume=consume,
    )


async def test_a_rotation_during_appends_is_followed_from_the_old_key_in_every_mode(
    audit_db: AuditDb, topic: str, token_factory: TokenFactory, tmp_path: Path
) -> None:
    """Three deployments in turn, each consuming 20 more events: the old key; the old key
    with the next (the first checkpoint is the hand-over, the later ones the new key's);
    the new key alone. Pinned to the old key only, every mode passes and names the
    hand-over; the new key alone, pinned, follows it back; the service publishes both."""
    auditor = token_factory.bearer(roles=["auditor"], regions=["6201"])
    events = [_withdrawn(i) for i in range(60)]
    producer = AIOKafkaProducer(bootstrap_servers=audit_db.stack.kafka_bootstrap)
    await producer.start()
    signed: list[tuple[int, str]] = []
    try:
        for seed, next_seed, hi in ((OLD, None, 20), (OLD, NEW, 40), (NEW, None, 60)):
            for e in events[hi - 20 : hi]:
                await producer.send_and_wait(topic, e.payload, key=e.key, headers=list(e.headers))
            app = create_app(
                _consuming(audit_db, topic, seed, next_seed), auth=make_auth_settings()
            )
            async with api_client(app) as client:

                async def covered(hi: int = hi) -> bool:
                    latest = await client.get("/audit/checkpoints/latest", headers=auditor)
                    return latest.status_code == 200 and latest.json()["tree_size"] >= hi

                await eventually(covered, timeout_s=60, what=f"a checkpoint of {hi} entries")
                page = await client.get(
                    "/audit/checkpoints", params={"limit": 100}, headers=auditor
                )
                signed = [(c["tree_size"], c["signed_note"]) for c in page.json()["items"]]
    finally:
        await producer.stop()

    handovers = [(size, note) for size, note in signed if handover_of(note) is not None]
    assert len(handovers) == 1, signed
    ((at, note),) = handovers
    assert 20 < at <= 40
    assert all(
        len(n.partition("\n\n")[2].splitlines()) == (2 if size == at else 1) for size, n in signed
    )

    app = create_app(
        _consuming(audit_db, topic, NEW, None, consume=False), auth=make_auth_settings()
    )
    async with api_client(app) as client:
        published = (await client.get("/audit/public-key")).json()
        assert published["vkey"] == _vkey(NEW)
        assert [(k["vkey"], k["from_tree_size"], k["to_tree_size"]) for k in published["keys"]] == [
            (_vkey(OLD), 0, at),
            (_vkey(NEW), at, None),
        ]
        assert published["handovers"] == [
            {"tree_size": at, "from_vkey": _vkey(OLD), "to_vkey": _vkey(NEW), "signed_note": note}
        ]
        async with serving(app) as url:
            runs = await _every_mode(audit_db, url, token_factory, tmp_path)
            runs["url, new key pinned"] = await _verify(
                "--url", url, "--token", _token(token_factory), "--vkey", _vkey(NEW)
            )
    for mode, (code, report) in runs.items():
        assert code == 0, (mode, report)
        assert report["tree_size"] == 60, mode
        moved = report["keys"]["handovers"]
        assert [(h["tree_size"], h["from"], h["to"]) for h in moved] == [
            (at, _vkey(OLD), _vkey(NEW))
        ]
        assert set(report["keys"]["used"]) == {_vkey(OLD), _vkey(NEW)}, mode
    assert runs["url, new key pinned"][1]["keys"]["handovers"][0]["followed"] == "backward"
    # The tree repair checks the stored checkpoints the same way (dry run: it only reads).
    out = io.StringIO()
    args = repair_tree._parse_args(
        ["--database-url", audit_db.url, "--vkey", _vkey(OLD), "--dry-run"]
    )
    assert await asyncio.to_thread(repair_tree.run, args, out) == 0, out.getvalue()
    assert json.loads(out.getvalue())["checkpoints_checked"] == len(signed)
    assert runs["url"][1]["keys"]["handovers"][0]["followed"] == "forward"


class _Forger(CheckpointSigner):
    """Signs as if the log's last checkpoint were by none of its keys when it holds not
    that one: its own key, or a hand-over from its own key to its next."""

    def key_after(self, note: str, tree_size: int, root_hash: bytes) -> str:
        try:
            return super().key_after(note, tree_size, root_hash)
        except CheckpointError:
            return "none of its keys"

    def sign_after(
        self, last_key_id: str | None, tree_size: int, root_hash: bytes, signed_at: datetime
    ) -> tuple[str, str]:
        held = {k.key_id for k in self.keys}
        return super().sign_after(
            last_key_id if last_key_id in held else None, tree_size, root_hash, signed_at
        )


FORGERIES = {
    "a new key without a hand-over": (_Forger(NEW, TEST_ORIGIN), "trusted at size 40"),
    "a hand-over co-signed by a key nobody trusts": (
        _Forger(MALLORY, TEST_ORIGIN, next_seed=NEW),
        "signed by no key trusted there",
    ),
    "the old key after its hand-over": (_Forger(OLD, TEST_ORIGIN), "handed over at 30"),
}


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_forged_rotation_fails_in_every_mode(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path, forgery: str
) -> None:
    """20 entries checkpointed by the old key (checkpoints 10 and 20); then 20 more signed
    by the forger (30, 40): each mode, pinned to the old key, exits 1 naming it. For the
    old key after its hand-over, the log first hands over honestly at 30."""
    forger, named = FORGERIES[forgery]
    events = [_withdrawn(i) for i in range(40)]
    app = create_app(api_settings(audit_db, audit_checkpoint_every=10), auth=make_auth_settings())
    async with api_client(app):
        await app.state.audit.appender.append(events[:20])
        if forgery == "the old key after its hand-over":
            rotating = CheckpointSigner(OLD, TEST_ORIGIN, next_seed=NEW)
            await LogAppender(audit_db.sessions, rotating, checkpoint_every=10).append(
                events[20:30]
            )
            await LogAppender(audit_db.sessions, forger, checkpoint_every=10).append(events[30:])
            named = "handed over at 30"
        else:
            await LogAppender(audit_db.sessions, forger, checkpoint_every=10).append(events[20:])
        async with serving(app) as url:
            runs = await _every_mode(audit_db, url, token_factory, tmp_path)
    for mode, (code, report) in runs.items():
        assert code == 1, (mode, report)
        assert any(named in p for p in report["problems"]), (mode, report["problems"])


async def test_a_hand_over_from_a_key_sharing_the_logs_key_id_fails_in_every_mode(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path
) -> None:
    """The log signs with one of ``KEY_ID_TWINS`` (checkpoints 10 and 20); someone with SQL
    access and the other twin (no stolen seed: a key of a given 4-byte id takes about 2^32
    tries) stores a hand-over from that twin to their own key at 30, and 40 by their key.
    Pinned to the log's key, every mode exits 1: the twin is not the log's key."""
    log, twin = KEY_ID_TWINS
    events = [_withdrawn(i) for i in range(40)]
    app = create_app(api_settings(audit_db, audit_checkpoint_every=10), auth=make_auth_settings())
    async with api_client(app):
        honest = CheckpointSigner(log, TEST_ORIGIN)
        await LogAppender(audit_db.sessions, honest, checkpoint_every=10).append(events[:20])
        forger = _Forger(twin, TEST_ORIGIN, next_seed=MALLORY)
        await LogAppender(audit_db.sessions, forger, checkpoint_every=10).append(events[20:])
        async with serving(app) as url:
            runs = await _every_mode(audit_db, url, token_factory, tmp_path, log)
    for mode, (code, report) in runs.items():
        assert code == 1, (mode, report)
        assert any("signed by no key trusted there" in p for p in report["problems"]), (
            mode,
            report["problems"],
        )


EDITED_KEY_ID = {
    # Before the rotation: the old key's checkpoint 10 said to be the new key's, so that the
    # signer would skip the hand-over (every later checkpoint by a key no auditor follows).
    "skipped": (10, NEW),
    # After it: the hand-over 20 said to be the old key's, so that it would hand over again.
    "repeated": (20, OLD),
}


@pytest.mark.parametrize("rotation", EDITED_KEY_ID)
async def test_the_signer_reads_the_last_key_from_its_signatures_not_the_key_id_column(
    audit_db: AuditDb, rotation: str
) -> None:
    """The old key signs 10; the old key with the next signs 20 (the hand-over) and 30.
    A superuser edits the key_id column of one checkpoint (no hash covers it) between the
    appends: the signer still hands over exactly once, and the log verifies from the old
    key but for the edit, which the database check names."""
    at, liar = EDITED_KEY_ID[rotation]
    events = [_withdrawn(i) for i in range(30)]
    rotating = LogAppender(
        audit_db.sessions, CheckpointSigner(OLD, TEST_ORIGIN, next_seed=NEW), checkpoint_every=10
    )
    await LogAppender(
        audit_db.sessions, CheckpointSigner(OLD, TEST_ORIGIN), checkpoint_every=10
    ).append(events[:10])
    if rotation == "repeated":
        await rotating.append(events[10:20])
    lie = CheckpointSigner(liar, TEST_ORIGIN).verifier.key_id
    edit = f"UPDATE checkpoint SET key_id = '{lie}' WHERE tree_size = {at}"  # noqa: S608 - hex, int
    await as_superuser(audit_db, edit)
    for lo in range(10 if rotation == "skipped" else 20, 30, 10):
        await rotating.append(events[lo : lo + 10])

    conn = await asyncpg.connect(audit_db.dsn)
    try:
        notes = [
            r[0] for r in await conn.fetch("SELECT signed_note FROM checkpoint ORDER BY tree_size")
        ]
    finally:
        await conn.close()
    assert [handover_of(n) is not None for n in notes] == [False, True, False]
    code, report = await _verify("--database-url", audit_db.url, "--vkey", _vkey(OLD))
    signer = CheckpointSigner(OLD if at == 10 else NEW, TEST_ORIGIN).verifier.key_id
    assert report["problems"] == [
        f"checkpoint {at}: stored key_id {lie} is not its note's ({signer})"
    ], report["problems"]
    assert code == 1
    assert [h["tree_size"] for h in report["keys"]["handovers"]] == [20]


async def test_a_kept_hand_over_retires_the_old_key_where_the_log_shown_omits_it(
    audit_db: AuditDb, token_factory: TokenFactory, tmp_path: Path
) -> None:
    """The log hands over from the old key to the new at 20; the auditor keeps that
    hand-over (``--checkpoint``). Whoever holds the old seed afterwards and runs the
    database deletes the hand-over and signs 30 with the old key: the log shown has no
    hand-over, only the old key's signatures, and its first 20 entries are the real ones.
    Every mode, pinned to the old key with the kept hand-over, exits 1: the old key
    handed over at 20."""
    events = [_withdrawn(i) for i in range(30)]
    app = create_app(api_settings(audit_db, audit_checkpoint_every=10), auth=make_auth_settings())
    async with api_client(app):
        await LogAppender(
            audit_db.sessions, CheckpointSigner(OLD, TEST_ORIGIN), checkpoint_every=10
        ).append(events[:10])
        rotating = CheckpointSigner(OLD, TEST_ORIGIN, next_seed=NEW)
        await LogAppender(audit_db.sessions, rotating, checkpoint_every=10).append(events[10:20])
        conn = await asyncpg.connect(audit_db.dsn)
        try:
            note = await conn.fetchval("SELECT signed_note FROM checkpoint WHERE tree_size = 20")
        finally:
            await conn.close()
        assert handover_of(note) is not None
        kept = tmp_path / "handover.note"
        kept.write_text(note)
        await as_superuser(audit_db, "DELETE FROM checkpoint WHERE tree_size >= 20")
        await LogAppender(
            audit_db.sessions, CheckpointSigner(OLD, TEST_ORIGIN), checkpoint_every=10
        ).append(events[20:])
        async with serving(app) as url:
            runs = await _every_mode(
                audit_db, url, token_factory, tmp_path, OLD, "--checkpoint", str(kept)
            )
    for mode, (code, report) in runs.items():
        assert code == 1, (mode, report)
        assert any("handed over at 20" in p for p in report["problems"]), (
            mode,
            report["problems"],
        )


async def test_the_published_key_is_the_logs_whatever_the_checkpoint_table_says(
    audit_db: AuditDb,
) -> None:
    """The log signs 10 with its key. Someone with SQL access stores a checkpoint 20 that
    names a hand-over from the log's key to theirs, signed by their key alone, its key_id
    theirs. ``GET /audit/public-key`` (what an auditor pins, fetched at a time they trust)
    still publishes the log's key, and neither that hand-over nor their key."""
    app = create_app(api_settings(audit_db, audit_checkpoint_every=10), auth=make_auth_settings())
    async with api_client(app) as client:
        await app.state.audit.appender.append([_withdrawn(i) for i in range(10)])
        forged, key_id = _Forger(OLD, TEST_ORIGIN, next_seed=MALLORY).sign_after(
            None, 20, b"\x14" * 32, datetime(2026, 12, 1, tzinfo=UTC)
        )
        body, _, signatures = forged.partition("\n\n")
        theirs = body + "\n\n" + signatures.splitlines()[1] + "\n"
        conn = await asyncpg.connect(audit_db.dsn)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(
                "INSERT INTO checkpoint (tree_size, checkpoint_id, root_hash, signed_note, "
                "key_id, signed_at, previous_tree_size) VALUES (20, $1, $2, $3, $4, now(), 10)",
                uuid.uuid4(),
                b"\x14" * 32,
                theirs,
                key_id,
            )
        finally:
            await conn.close()
        published = (await client.get("/audit/public-key")).json()
    assert published["vkey"] == _vkey(OLD)
    assert published["handovers"] == []
    assert [k["vkey"] for k in published["keys"]] == [_vkey(OLD)]


THIRD = hashlib.sha256(b"dibao audit test third signing key").digest()
EVERY = 1000
"""A province's log checkpoints every 1,000 entries."""


def _province_checkpoints(count: int, handovers: dict[int, tuple[bytes, bytes]]) -> list[Any]:
    """``count`` checkpoints every ``EVERY`` entries as the log signs them, handing over at
    the sizes of ``handovers`` (from one key to the next) and signed by the key of the last
    hand-over between them: COPY records of the ``checkpoint`` table."""
    key = OLD
    records: list[Any] = []
    previous: int | None = None
    for n in range(1, count + 1):
        size = n * EVERY
        root = hashlib.sha256(size.to_bytes(8, "big")).digest()
        at = datetime.fromtimestamp(1_790_000_000 + n * 60, UTC)
        if size in handovers:
            old, new = handovers[size]
            signer = CheckpointSigner(old, TEST_ORIGIN, next_seed=new)
            note, key_id = signer.sign_after(signer.verifier.key_id, size, root, at)
            key = new
        else:
            signer = CheckpointSigner(key, TEST_ORIGIN)
            note, key_id = signer.sign(size, root, at), signer.verifier.key_id
        records.append((size, uuid.uuid4(), root, note, key_id, at, previous))
        previous = size
    return records


Scans = list[tuple[str, str | None, int]]


def _checkpoint_scans(plan: dict[str, Any]) -> Scans:
    """Each scan of ``checkpoint`` in a plan: its kind, its index and the rows it read."""
    own: Scans = []
    if plan.get("Relation Name") == "checkpoint":
        read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        own.append((plan["Node Type"], plan.get("Index Name"), plan.get("Actual Loops", 1) * read))
    return own + [s for child in plan.get("Plans", []) for s in _checkpoint_scans(child)]


async def _handovers_and_plans(
    audit_db: AuditDb, up_to: int | None
) -> tuple[list[int], Scans, Scans]:
    """``repository.handovers``' tree sizes, and the scans of ``checkpoint`` of its own
    statement (as it sent it) run again under EXPLAIN ANALYZE: planned for its parameters'
    values (a custom plan: PostgreSQL folds them into the query first), and for any
    values (the generic plan PostgreSQL may keep for a prepared statement after five
    runs, and asyncpg prepares and keeps every statement of a connection)."""
    with audit_db.statements_sent() as sent:
        async with audit_db.sessions() as session:
            found = [cp.tree_size for cp in await repo.handovers(session, up_to)]
    [(statement, parameters)] = [s for s in sent if "FROM checkpoint" in s[0]]
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        custom = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *parameters)
        values = [await conn.fetchval("SELECT quote_literal($1::text)", str(p)) for p in parameters]
        await conn.execute("PREPARE handovers AS " + statement)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        execute = "EXECUTE handovers" + (f"({', '.join(values)})" if values else "")
        generic = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + execute)
    finally:
        await conn.close()
    custom_scans, generic_scans = (
        _checkpoint_scans(json.loads(p)[0]["Plan"]) for p in (custom, generic)
    )
    return found, custom_scans, generic_scans


async def test_the_hand_overs_are_read_through_their_index_not_every_checkpoint(
    audit_db: AuditDb,
) -> None:
    """A province's checkpoint table: 20,000 checkpoints (20 million entries, one each
    1,000), the old key handing over to the next at 6,000,000 and that one to a third at
    15,000,000. Every export asks for the hand-overs up to its checkpoint
    (``repository.handovers``): its statement reads the two through
    ``ix_checkpoint_handover`` (migration 0010), where it read every checkpoint in range
    (no index held the note's hand-over line), and does so in a generic plan too: the
    query's LIKE pattern a bind parameter, the planner matched it to the partial index
    only in a plan for its value. Without the index (down to 0009) the same rows are
    found by reading every checkpoint in range; up again, through the index.

    The notes are the keys' own, but of a tree the test does not store (20 million
    entries): the rows are copied past the trigger that takes only the log's next
    checkpoint (replica mode), then ANALYZEd; the planner's choice depends on the table's
    size and statistics, not on the roots."""
    first, second = 6_000_000, 15_000_000
    records = _province_checkpoints(20_000, {first: (OLD, NEW), second: (NEW, THIRD)})
    assert [r[0] for r in records if handover_of(r[3]) is not None] == [first, second]
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table(
            "checkpoint",
            records=records,
            columns=(
                "tree_size",
                "checkpoint_id",
                "root_hash",
                "signed_note",
                "key_id",
                "signed_at",
                "previous_tree_size",
            ),
        )
        await conn.execute("ANALYZE checkpoint")
    finally:
        await conn.close()
    expected = {
        None: [first, second],
        20_000_000: [first, second],
        second: [first, second],
        second - 1: [first],
        first: [first],
        first - 1: [],
    }
    for up_to, sizes in expected.items():
        found, custom, generic = await _handovers_and_plans(audit_db, up_to)
        assert found == sizes, up_to
        through_index = [("Index Scan", "ix_checkpoint_handover", len(sizes))]
        assert custom == through_index, (up_to, custom)
        assert generic == through_index, (up_to, generic)

    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.downgrade("audit", "0009")
    for up_to, sizes in expected.items():
        found, custom, _ = await _handovers_and_plans(audit_db, up_to)
        assert found == sizes, up_to
        everyone = min(up_to or 20_000_000, 20_000_000) // EVERY  # each checkpoint in range
        assert sum(read for _, _, read in custom) >= everyone, (up_to, custom)
    await audit_db.runtime.dispose()
    await audit_db.stack.migrate("audit")
    found, custom, generic = await _handovers_and_plans(audit_db, second - 1)
    assert found == [first]
    assert custom == generic == [("Index Scan", "ix_checkpoint_handover", 1)]
