"""The stored log on the real PostgreSQL: exactly-once, restart, proofs, immutability."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.appender import CHECKPOINT_TYPE
from dibao_audit.dbcheck import check_database
from dibao_audit.entry import RecordedEvent, canonical_bytes, header_block, parse_header_block
from dibao_audit.main import create_app
from dibao_audit.merkle import leaf_hash, root_of, verify_consistency, verify_inclusion
from dibao_audit.models import LogEntry
from dibao_audit.projector import EntryProjector
from dibao_audit.settings import AuditSettings
from dibao_audit.testing import TEST_SEED, AuditDb
from dibao_audit.verifier import read_export, verify_export
from dibao_common.messaging.envelope import Envelope, EventRegistry, ce_type_of, topic_of
from dibao_common.testing.auth_fixtures import make_auth_settings
from dibao_common.testing.service_env import common_secret_values
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]


def household_event(i: int, household: str = "hh-1", region: str = "620102001001") -> RecordedEvent:
    message = intake_pb2.ApplicationWithdrawn(
        household_id=household,
        region=types_pb2.RegionCode(code=region),
        actor=types_pb2.Actor(subject=f"clerk-{i % 3}"),
        application_id=f"app-{i}",
    )
    envelope = Envelope(
        ce_id=uuid.uuid4(),
        ce_type=ce_type_of(message),
        ce_source="dibao/intake",
        ce_time=datetime(2026, 11, 1, tzinfo=UTC),
        ce_subject=f"application/app-{i}",
        key=household,
        payload=message.SerializeToString(),
        actor=f"clerk-{i % 3}",
    )
    return RecordedEvent(
        topic=topic_of(message),
        partition=0,
        offset=i,
        key=household.encode(),
        headers=tuple(envelope.to_headers()),
        payload=envelope.payload,
    )


async def test_duplicates_are_appended_once_and_a_restart_resumes_exactly(
    audit_db: AuditDb,
) -> None:
    events = [household_event(i) for i in range(25)]
    first = audit_db.appender(checkpoint_every=10)
    r1 = await first.append([*events[:10], events[3], events[3]])
    assert (r1.appended, r1.duplicates, r1.tree_size) == (10, 2, 10)
    r2 = await first.append(events[5:15])  # 5 redelivered
    assert (r2.appended, r2.duplicates, r2.tree_size) == (5, 5, 15)
    # A new process: nothing in memory, everything from the database.
    second = audit_db.appender(checkpoint_every=10)
    r3 = await second.append(events[12:25])
    assert (r3.appended, r3.duplicates, r3.tree_size) == (10, 3, 25)
    async with audit_db.sessions() as session:
        entries = list(await session.scalars(sa.select(LogEntry).order_by("leaf_index")))
        cps = await repo.checkpoints_up_to(session, 25)
        outbox = (
            await session.execute(sa.text("SELECT ce_type FROM outbox_message ORDER BY id"))
        ).scalars()
        assert list(outbox) == [CHECKPOINT_TYPE, CHECKPOINT_TYPE]
    assert [str(e.ce_id) for e in entries] == [e.header("ce_id").decode() for e in events]  # type: ignore[union-attr]
    leaves = [leaf_hash(canonical_bytes(e)) for e in events]
    async with audit_db.sessions() as session:
        stored = await repo.subtree_hashes(session, {(0, i) for i in range(25)})
    assert [stored[(0, i)] for i in range(25)] == leaves
    # Checkpoints fall at the end of the batch that reaches N more entries.
    assert [c.tree_size for c in cps] == [10, 25]
    assert cps[1].root_hash == root_of(leaves)
    assert cps[1].previous_tree_size == 10
    assert entries[7].household_id == "hh-1"
    assert entries[7].application_id == "app-7"
    assert entries[7].region == "620102001001"
    assert entries[7].actor == "clerk-1"
    made = await EntryProjector(audit_db.sessions, batch=7).catch_up()
    assert made == 25
    async with audit_db.sessions() as session:
        views = await repo.views_of(session, [7, 24])
    assert views[7] is not None
    assert views[7]["application_id"] == "app-7"
    assert views[24] is not None


async def test_stored_proofs_verify_for_every_leaf(audit_db: AuditDb) -> None:
    events = [household_event(i) for i in range(70)]
    appender = audit_db.appender(checkpoint_every=1000)
    for lo in range(0, 70, 9):  # odd batch sizes cross subtree boundaries
        await appender.append(events[lo : lo + 9])
    leaves = [leaf_hash(canonical_bytes(e)) for e in events]
    async with audit_db.sessions() as session:
        for size in (1, 2, 7, 33, 64, 70):
            root = root_of(leaves[:size])
            for index in range(size):
                proof = await service.inclusion_proof(session, index, size)
                verify_inclusion(index, size, leaves[index], proof, root)
        for old, new in ((1, 70), (13, 64), (64, 70), (32, 33)):
            proof = await service.consistency_proof(session, old, new)
            verify_consistency(old, new, root_of(leaves[:old]), root_of(leaves[:new]), proof)


async def test_the_runtime_role_may_only_insert_and_select(audit_db: AuditDb) -> None:
    await audit_db.appender().append([household_event(i) for i in range(3)])
    conn = await asyncpg.connect(audit_db.dsn, server_settings={"role": audit_db.role})
    try:
        assert await conn.fetchval("SELECT current_user") == audit_db.role
        assert await conn.fetchval("SELECT count(*) FROM log_entry") == 3
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'log_entry'"
        )
        assert owner != audit_db.role
        for table, column in (
            ("log_entry", "ce_type"),
            ("merkle_node", "hash"),
            ("checkpoint", "key_id"),
            ("entry_view", "decoded"),
        ):
            for statement in (
                f"UPDATE {table} SET {column} = {column}",  # noqa: S608 - fixed names
                f"DELETE FROM {table}",  # noqa: S608 - fixed names
                f"TRUNCATE {table}",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER TABLE log_entry DISABLE TRIGGER USER")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")
    finally:
        await conn.close()


async def test_the_services_connection_cannot_leave_the_runtime_role(audit_db: AuditDb) -> None:
    """The running service's own connections, wired as the stack configures them: neither
    the role they run as nor the login under it may edit the log or turn its trigger off,
    whatever the session resets (a superuser login would be one SET ROLE NONE away)."""
    await audit_db.appender().append([household_event(i) for i in range(3)])
    settings = AuditSettings(
        database_url=audit_db.url,
        audit_runtime_database_url=audit_db.runtime_url,
        kafka_bootstrap=audit_db.stack.kafka_bootstrap,
        **common_secret_values(),
        audit_signing_key=base64.b64encode(TEST_SEED).decode(),
        audit_consume=False,
        audit_relay=False,
    )
    app = create_app(settings, auth=make_auth_settings())
    async with api_client(app):
        engine: AsyncEngine = app.state.engine
        for escape in ("RESET ROLE", "SET ROLE NONE", "SET SESSION AUTHORIZATION DEFAULT"):
            async with engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute(escape)
                who = await driver.fetchrow(
                    "SELECT current_user, session_user, rolsuper FROM pg_roles "
                    "WHERE rolname = current_user"
                )
                assert tuple(who) == (audit_db.role, audit_db.role, False), escape
                assert await driver.fetchval("SELECT count(*) FROM log_entry") == 3
                for statement in (
                    "UPDATE log_entry SET ce_type = 'x'",
                    "DELETE FROM log_entry",
                    "TRUNCATE log_entry",
                    "ALTER TABLE log_entry DISABLE TRIGGER USER",
                    "ALTER TABLE log_entry DISABLE TRIGGER log_entry_append_only",
                    "SET session_replication_role = replica",
                ):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await driver.execute(statement)
            await engine.dispose()  # no session altered by the escape goes back to the pool


async def test_the_trigger_refuses_changes_even_from_the_owner(audit_db: AuditDb) -> None:
    await audit_db.appender().append([household_event(i) for i in range(2)])
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        for statement in (
            "UPDATE log_entry SET ce_type = 'x'",
            "DELETE FROM log_entry",
            "TRUNCATE log_entry CASCADE",
            "UPDATE merkle_node SET hash = hash",
            "DELETE FROM checkpoint",
            "DELETE FROM entry_view",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_superusers_edit_is_named_by_the_verifier(audit_db: AuditDb) -> None:
    appender = audit_db.appender(checkpoint_every=16)
    events = [household_event(i) for i in range(40)]
    for lo in range(0, 40, 8):
        await appender.append(events[lo : lo + 8])
    assert await appender.checkpoint_if_grown() == 40
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        # Only a superuser can get past the trigger, and must do so on purpose.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE log_entry SET payload = payload || '\\x00'::bytea WHERE leaf_index = 23"
        )
    finally:
        await conn.close()
    key = appender.signer.verifier
    async with audit_db.sessions() as session:
        covering = await repo.latest_checkpoint(session)
        assert covering is not None
        assert covering.tree_size == 40
        lines = [
            line async for line in service.export_lines(session, 0, 40, covering, key.name, ["62"])
        ]
    text = b"".join(lines).decode().splitlines()
    header, entries = read_export(text)
    report = verify_export(header, entries, key)
    assert not report.ok
    assert report.first_bad_index == 23
    assert header.history == []  # v2: an earlier checkpoint only when asked for (from_size)


async def test_a_timed_checkpoint_skips_a_log_that_only_announced_itself(
    audit_db: AuditDb,
) -> None:
    appender = audit_db.appender(checkpoint_every=1000)
    assert await appender.checkpoint_if_grown() is None  # empty log
    await appender.append([household_event(i) for i in range(3)])
    assert await appender.checkpoint_if_grown() == 3
    assert await appender.checkpoint_if_grown() is None


async def test_rewriting_an_entry_and_its_leaf_is_caught_by_the_signed_checkpoints(
    audit_db: AuditDb,
) -> None:
    appender = audit_db.appender(checkpoint_every=16)
    events = [household_event(i) for i in range(40)]
    for lo in range(0, 40, 8):
        await appender.append(events[lo : lo + 8])
    await appender.checkpoint_if_grown()
    forged = household_event(999)
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE log_entry SET payload = $1, header_block = $2 WHERE leaf_index = 23",
            forged.payload,
            header_block(forged.headers),
        )
        await conn.execute(
            'UPDATE log_entry SET "offset" = 23 WHERE leaf_index = 23',
        )
        stored = RecordedEvent(
            forged.topic, forged.partition, 23, forged.key, forged.headers, forged.payload
        )
        await conn.execute(
            "UPDATE merkle_node SET hash = $1 WHERE level = 0 AND index = 23",
            leaf_hash(canonical_bytes(stored)),
        )
    finally:
        await conn.close()
    key = appender.signer.verifier
    async with audit_db.sessions() as session:
        covering = await repo.latest_checkpoint(session)
        since = await repo.checkpoint_at(session, 16)
        assert covering is not None
        assert since is not None
        lines = [
            line
            async for line in service.export_lines(
                session, 0, 40, covering, key.name, ["62"], since=since
            )
        ]
    header, entries = read_export(b"".join(lines).decode().splitlines())
    report = verify_export(header, entries, key)
    assert not report.ok
    # Content and leaf agree: the roots tell, and the export names the entry by the stored
    # columns the forged record contradicts (it checks them since 1 Dec 2026).
    assert report.first_bad_index == 23
    assert [p for p in report.problems if p.startswith("entry")] == [
        next(p for p in report.problems if "entry 23: stored" in p)
    ]
    # The export names the checkpoint asked for (16), not every one: the range is from it.
    assert report.suspect_range == (16, 40)
    # The database check reads every checkpoint: it names the range between two.
    checked = await check_database(audit_db.url, key)
    assert checked.suspect_range == (16, 32)
    assert checked.first_bad_index == 23  # and the edit left the old record's columns


async def test_migration_0004_turns_json_headers_into_the_hashed_block_and_back(
    audit_db: AuditDb,
) -> None:
    event = household_event(1)
    await audit_db.stack.downgrade("audit", "0003")
    as_json = json.dumps([[k, base64.b64encode(v).decode()] for k, v in event.headers])
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute(
            """INSERT INTO log_entry (leaf_index, ce_id, ce_type, topic, partition, "offset",
                   record_key, headers, payload)
               VALUES (0, $1, 't', $2, 0, 1, $3, $4::jsonb, $5)""",
            uuid.uuid4(),
            event.topic,
            event.key,
            as_json,
            event.payload,
        )
        await audit_db.stack.migrate("audit", "0004")
        block = await conn.fetchval("SELECT header_block FROM log_entry")
        assert bytes(block) == header_block(event.headers)
        await audit_db.stack.downgrade("audit", "0003")
        back = json.loads(await conn.fetchval("SELECT headers::text FROM log_entry"))
        assert back == [[k, base64.b64encode(v).decode()] for k, v in parse_header_block(block)]
    finally:
        await conn.close()
    await audit_db.stack.migrate("audit", "head")


async def test_export_lines_are_the_canonical_entries_or_their_leaf_only(audit_db: AuditDb) -> None:
    events = [
        household_event(i, region="620102001001" if i % 3 else "630101001001") for i in range(23)
    ]
    appender = audit_db.appender(checkpoint_every=10)
    await appender.append(events)
    prefixes = ["6201"]
    async with audit_db.sessions() as session:
        covering = await repo.latest_checkpoint(session)
        assert covering is not None
        lines = [
            chunk
            async for chunk in service.export_lines(
                session, 3, 21, covering, appender.signer.origin, prefixes, chunk=4
            )
        ]
        expected = [
            service.export_line(e, e.region is not None and e.region.startswith("6201"))
            for chunk in [c async for c in repo.stream_records(session, 3, 21)]
            for e in chunk
        ]
    got = b"".join(lines).decode().splitlines()[1:]
    assert got == expected
    assert sum('"redacted": true' in line for line in got) == 6
    for line, event in zip(got, events[3:21], strict=True):
        obj = json.loads(line)
        if "entry" in obj:
            assert base64.b64decode(obj["entry"]) == canonical_bytes(event)


def _with_headers(event: RecordedEvent, **changed: bytes) -> RecordedEvent:
    headers = tuple((k, changed.get(k, v)) for k, v in event.headers)
    return RecordedEvent(
        event.topic, event.partition, event.offset, event.key, headers, event.payload
    )


async def test_a_record_the_tables_cannot_index_as_sent_is_still_appended(
    audit_db: AuditDb,
) -> None:
    """The consumer retries a failed batch without limit, so a record whose keys the
    database refuses (a time out of range once in UTC, a NUL in a text key, a key too
    long for a B-tree entry) would stop the log for good: each is logged, keys aside."""
    long_text = base64.b64encode(os.urandom(6000)).decode()
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-\x00-1",
        region=types_pb2.RegionCode(code="620102001001"),
        actor=types_pb2.Actor(subject="clerk-1"),
        application_id=long_text,
    )
    bad_payload = household_event(3)
    bad_payload = RecordedEvent(
        bad_payload.topic,
        0,
        3,
        bad_payload.key,
        bad_payload.headers,
        message.SerializeToString(),
    )
    poison = [
        _with_headers(household_event(1), ce_time=b"0001-01-01T00:00:00+01:00"),
        _with_headers(household_event(2), ce_actor=long_text.encode()),
        _with_headers(household_event(4), ce_actor=b"clerk\x00"),
        _with_headers(household_event(5), ce_type=long_text.encode()),
        bad_payload,
    ]
    appender = audit_db.appender(checkpoint_every=1000)
    for n, event in enumerate(poison, 1):
        result = await asyncio.wait_for(appender.append([event]), 30)
        assert (result.appended, result.tree_size) == (1, n)
    good = household_event(6)
    after = await appender.append([good])
    assert (after.appended, after.tree_size) == (1, len(poison) + 1)
    leaves = [leaf_hash(canonical_bytes(e)) for e in [*poison, good]]
    async with audit_db.sessions() as session:
        stored = await repo.subtree_hashes(session, {(0, i) for i in range(len(leaves))})
        entries = list(await session.scalars(sa.select(LogEntry).order_by("leaf_index")))
    # Content and tree stay exact whatever happened to the query keys.
    assert [stored[(0, i)] for i in range(len(leaves))] == leaves
    assert entries[0].ce_time is None
    assert entries[1].actor == long_text[:512]
    assert entries[2].actor == "clerk\ufffd"
    assert entries[3].ce_type == long_text[:512]
    assert entries[4].household_id == "hh-\ufffd-1"  # still names a household
    assert entries[4].application_id == long_text[:512]
    assert entries[4].region == "620102001001"


async def test_a_payload_with_a_nul_does_not_stop_the_projector(audit_db: AuditDb) -> None:
    """jsonb holds no NUL (\\u0000) either: the decoded view of an entry whose payload has
    one failed its batch, which the projector retried for ever, so no entry after it got a
    view. Its view shows the NUL as U+FFFD, as the keys do."""
    message = intake_pb2.ApplicationWithdrawn(
        household_id="hh-1",
        region=types_pb2.RegionCode(code="620102001001"),
        actor=types_pb2.Actor(subject="clerk-1"),
        application_id="app-\x00-1",
        reason="撤回\x00",
    )
    plain = household_event(1)
    nul = RecordedEvent(plain.topic, 0, 1, plain.key, plain.headers, message.SerializeToString())
    appender = audit_db.appender(checkpoint_every=1000)
    await appender.append([household_event(0), nul, household_event(2)])
    made = await asyncio.wait_for(EntryProjector(audit_db.sessions, batch=2).catch_up(), 30)
    assert made == 3
    async with audit_db.sessions() as session:
        views = await repo.views_of(session, [0, 1, 2])
        entries = await repo.entries_from(session, 0, 3)
    view = views[1]
    assert view is not None
    assert (view["application_id"], view["reason"]) == ("app-\ufffd-1", "撤回\ufffd")
    assert views[2] is not None
    # A view made on reading (before the projector's) is the same.
    assert service.view_of(entries[1], EventRegistry.default()) == view


def _rfc_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 over leaf hashes, written out independently of ``merkle``."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc_mth(leaves[:k]) + _rfc_mth(leaves[k:])).digest()


def _rfc_root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to (None: malformed)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn //= 2
        sn //= 2
    return r if sn == 0 else None


def _rfc_consistent(first: int, second: int, h1: bytes, h2: bytes, path: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 (with the trivial cases of 2.1.4: equal sizes, size 0)."""
    if first == second:
        return not path and h1 == h2
    if first == 0:
        return not path
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, h1)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = hashlib.sha256(b"\x01" + c + fr).digest()
            sr = hashlib.sha256(b"\x01" + c + sr).digest()
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            sr = hashlib.sha256(b"\x01" + sr + c).digest()
        fn //= 2
        sn //= 2
    return sn == 0 and fr == h1 and sr == h2


async def test_every_stored_proof_up_to_70_leaves_verifies_by_the_rfc(audit_db: AuditDb) -> None:
    """Inclusion proofs of every index of every size 1..70 and consistency proofs between
    every pair of sizes 0..70, read from the database, checked by the RFC's algorithms
    written out above (not ``merkle``'s), and a wrong leaf or root refused."""
    events = [household_event(i) for i in range(70)]
    appender = audit_db.appender(checkpoint_every=1000)
    for lo, hi in itertools.pairwise([0, 1, 2, 5, 13, 31, 32, 33, 64, 70]):
        await appender.append(events[lo:hi])
    leaves = [hashlib.sha256(b"\x00" + canonical_bytes(e)).digest() for e in events]
    roots = [_rfc_mth(leaves[:n]) for n in range(71)]
    async with audit_db.sessions() as session:
        for size in range(1, 71):
            for index in range(size):
                path = await service.inclusion_proof(session, index, size)
                assert _rfc_root_from_path(index, size, leaves[index], path) == roots[size], (
                    index,
                    size,
                )
                wrong = leaves[(index + 1) % 70]
                assert _rfc_root_from_path(index, size, wrong, path) != roots[size]
        for second in range(71):
            for first in range(second + 1):
                path = await service.consistency_proof(session, first, second)
                assert _rfc_consistent(first, second, roots[first], roots[second], path), (
                    first,
                    second,
                )
                if 0 < first < second:
                    assert not _rfc_consistent(first, second, roots[first - 1], roots[second], path)


async def test_concurrent_appenders_keep_indices_dense_and_the_tree_exact(
    audit_db: AuditDb,
) -> None:
    """Two appenders (as two processes) and concurrent calls on each, with overlapping,
    redelivered batches: every event once, indices 0..n-1, every stored subtree the one
    the leaves give, every checkpoint the root of its size."""
    events = [household_event(i) for i in range(120)]
    first = audit_db.appender(checkpoint_every=7)
    second = audit_db.appender(checkpoint_every=11)
    batches = [events[lo : lo + 13] for lo in range(0, 120, 9)]  # overlapping by four
    calls = [
        (first if n % 2 else second).append(batch)
        for n, batch in enumerate(batches + batches[::-1])
    ]
    await asyncio.gather(*calls, first.checkpoint_if_grown(), second.checkpoint_if_grown())
    async with audit_db.sessions() as session:
        entries = list(await session.scalars(sa.select(LogEntry).order_by("leaf_index")))
        nodes = {
            (int(lv), int(i)): bytes(h)
            for lv, i, h in await session.execute(
                sa.text("SELECT level, index, hash FROM merkle_node")
            )
        }
        cps = await repo.checkpoints_up_to(session, 10**9)
    assert [e.leaf_index for e in entries] == list(range(120))
    by_id = {e.header("ce_id").decode(): e for e in events}  # type: ignore[union-attr]
    assert sorted(str(e.ce_id) for e in entries) == sorted(by_id)
    leaves = [leaf_hash(canonical_bytes(by_id[str(e.ce_id)])) for e in entries]
    expected: dict[tuple[int, int], bytes] = {}
    level = leaves
    for lv in itertools.count():
        expected.update({(lv, i): h for i, h in enumerate(level)})
        if len(level) < 2:
            break
        level = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
    assert nodes == expected
    assert cps
    for cp in cps:
        assert bytes(cp.root_hash) == root_of(leaves[: cp.tree_size])


async def test_a_checkpoint_signed_by_another_process_is_seen_by_this_one(
    audit_db: AuditDb,
) -> None:
    """A checkpoint that does not grow the tree leaves the other process's cached frontier
    as it was: it must still not sign that size again (the insert would fail, and the
    consumer would retry the batch for ever) and must chain its next one to it."""
    events = [household_event(i) for i in range(30)]
    this = audit_db.appender(checkpoint_every=25)
    other = audit_db.appender(checkpoint_every=25)
    await this.append(events[:20])
    assert await other.checkpoint_if_grown() == 20
    assert await this.checkpoint_if_grown() is None
    redelivered = await this.append(events[:20])
    assert (redelivered.appended, redelivered.checkpoint_size) == (0, None)
    assert (await this.append(events[20:])).checkpoint_size is None  # 10 since 20, not 30
    assert await this.checkpoint_if_grown() == 30
    async with audit_db.sessions() as session:
        cps = await repo.checkpoints_up_to(session, 30)
    assert [(c.tree_size, c.previous_tree_size) for c in cps] == [(20, None), (30, 20)]
