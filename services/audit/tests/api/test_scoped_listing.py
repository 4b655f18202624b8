"""A scoped listing reads the entries it returns, not the log (migration 0009, ADR 0017).

Against the real database: ``GET /audit/entries`` gives each scope exactly its entries,
page by page (every level a token may name, a search's other regions, the whole log's,
an empty scope), the same as the old filter on leaf order; after the migration's backfill
too; a scope reads about as many rows as it returns; and the table of a search's region
prefixes is append-only, written only by the log, and checked against the records.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient

from dibao.access.v1 import events_pb2 as access_pb2
from dibao.audit.v1 import events_pb2 as audit_pb2
from dibao.common.v1 import enums_pb2, types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit import repository as repo
from dibao_audit import verify_cli
from dibao_audit.checkpoint import CheckpointSigner
from dibao_audit.dbcheck import asyncpg_dsn
from dibao_audit.entry import RecordedEvent
from dibao_audit.main import create_app
from dibao_audit.testing import (
    TEST_ORIGIN,
    TEST_SEED,
    AuditDb,
    api_settings,
    as_superuser,
    recorded_event,
    serving,
)
from dibao_common.messaging.envelope import EventRegistry, ce_type_of
from dibao_common.testing.auth_fixtures import TokenFactory, make_auth_settings
from dibao_common.testing.stack import api_client

pytestmark = [pytest.mark.postgres]

# Villages of two townships of Chengguan (620102), one of Qilihe (620103); Anning (620104)
# is named only by searches; 620105 by nothing.
VILLAGES = ("620102001001", "620102001002", "620102002001", "620103001001", "110101001001")
SEARCHED = "620104000000"
LOG_REGION = "000000000000"
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def _withdrawn(n: int, at: datetime | None = None) -> RecordedEvent:
    village = VILLAGES[n % 7 % len(VILLAGES)]  # uneven: some villages busier
    message = intake_pb2.ApplicationWithdrawn(
        household_id=f"hh-{village}",
        region=types_pb2.RegionCode(code=village),
        application_id=f"app-{n}",
    )
    return recorded_event(message, offset=n, key=f"hh-{village}", actor=f"clerk-{n % 3}", at=at)


def _search(n: int, at: datetime | None = None) -> RecordedEvent:
    """A search by a caller of two counties: its region the first, its regions both."""
    message = access_pb2.PersonalDataAccessed(
        region=types_pb2.RegionCode(code="620103000000"),
        regions=[types_pb2.RegionCode(code=c) for c in ("620103000000", SEARCHED)],
        actor=types_pb2.Actor(subject="clerk-of-two"),
        service="intake",
        record_type=access_pb2.RECORD_TYPE_LIST,
        record_id=f"households?page={n}",
        operation="GET /households",
    )
    return recorded_event(message, offset=n, key="", actor="clerk-of-two", at=at)


def _announced(n: int, at: datetime | None = None) -> RecordedEvent:
    message = audit_pb2.CheckpointPublished(
        origin=TEST_ORIGIN,
        region=types_pb2.RegionCode(code=LOG_REGION),
        actor=types_pb2.Actor(subject="audit", kind=enums_pb2.ACTOR_KIND_SYSTEM),
        tree_size=n,
        root_hash=b"\x01" * 32,
    )
    return recorded_event(message, offset=n, key=TEST_ORIGIN, partition=1, at=at)


def _events(lo: int, hi: int, *, timed: bool = False) -> list[RecordedEvent]:
    """Entries ``lo ..``: withdrawals, every 9th a search, every 25th a checkpoint's;
    ``timed``: each at its own hour, out of order (``n * 7 % 40`` after 1 Nov 2026: two
    days)."""
    out = []
    for n in range(lo, hi):
        at = BASE_TIME + timedelta(hours=n * 7 % 40) if timed else None
        make = _search if n % 9 == 4 else _announced if n % 25 == 24 else _withdrawn
        out.append(make(n, at))
    return out


def _expected(events: list[RecordedEvent], prefixes: tuple[str, ...]) -> list[int]:
    """Which entries a caller of ``prefixes`` reads, from the records (in Python)."""
    out = []
    for index, event in enumerate(events):
        if event.topic == "dibao.audit.v1":
            out.append(index)
            continue
        if event.topic == "dibao.access.v1":
            codes = ["620103000000", SEARCHED]
        else:
            codes = [VILLAGES[index % 7 % len(VILLAGES)]]
        if any(c.startswith(prefixes) for c in codes):
            out.append(index)
    return out


SCOPES: tuple[tuple[str, ...], ...] = (
    ("62",),
    ("6201",),
    ("620102",),
    ("620102001",),
    ("620102001002",),
    ("620103",),
    (SEARCHED[:6],),
    ("620105",),
    ("11", "620104"),
    ("6201", "620102", "620102001001"),
)


@pytest_asyncio.fixture(loop_scope="session")
async def app(audit_db: AuditDb) -> FastAPI:
    return create_app(api_settings(audit_db), auth=make_auth_settings())


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with api_client(app) as client:
        yield client


async def _listed(
    client: AsyncClient, tokens: TokenFactory, prefixes: tuple[str, ...], limit: int = 7
) -> list[int]:
    """Every entry a caller of ``prefixes`` lists, page by page."""
    headers = tokens.bearer(roles=["auditor"], regions=list(prefixes))
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/audit/entries", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["index"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def _append(db: AuditDb, events: list[RecordedEvent], first: int) -> None:
    appender = db.appender(checkpoint_every=50)
    for lo in range(0, len(events), 40):
        await appender.append(events[lo : lo + 40])
    async with db.sessions() as session:
        assert await repo.tree_size(session) == first + len(events)


async def _old_path(db: AuditDb, prefixes: tuple[str, ...]) -> list[int]:
    """The same scope as a filter on leaf order (the only way before migration 0009)."""
    flt = repo.EntryFilter(region_prefixes=prefixes)
    async with db.sessions() as session:
        rows = await repo.find_entries(session, flt, after=None, limit=10_000, by_scope=False)
    return [e.leaf_index for e, _ in rows]


async def test_each_scope_lists_exactly_its_entries_page_by_page(
    audit_db: AuditDb, client: AsyncClient, token_factory: TokenFactory
) -> None:
    events = _events(0, 300)
    await _append(audit_db, events, 0)
    for prefixes in SCOPES:
        expected = _expected(events, prefixes)
        assert await _listed(client, token_factory, prefixes) == expected, prefixes
        # The whole log's entries aside, the old filter finds the same.
        whole = set(_expected(events, ("999999",)))
        old = [i for i in await _old_path(audit_db, prefixes) if i not in whole]
        assert old == [i for i in expected if i not in whole], prefixes
    assert await _listed(client, token_factory, ("620105",)) == _expected(events, ("999999",))
    assert await _listed(client, token_factory, ()) == _expected(events, ())  # the whole log's
    assert await _listed(client, token_factory, ("620104",), limit=1) == _expected(
        events, ("620104",)
    )


def _rows_in(
    plan: dict[str, Any],
    tables: tuple[str, ...] = ("log_entry", "entry_region_prefix", "merkle_node"),
) -> int:
    """Rows a plan's scans of the log's tables read: returned or filtered out."""
    own = 0
    if plan.get("Relation Name") in tables:
        loops = plan.get("Actual Loops", 1)
        read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        own = loops * (read + plan.get("Rows Removed by Index Recheck", 0))
    return own + sum(_rows_in(child, tables) for child in plan.get("Plans", []))


async def _plan(
    db: AuditDb, flt: repo.EntryFilter, after: int | None, *, by_scope: bool = True
) -> dict[str, Any]:
    """The plan, with what it did, of the listing's query for a page of 11 (its own
    statement, as ``repo.find_entries`` sent it, run again under EXPLAIN ANALYZE)."""
    with db.statements_sent() as sent:
        async with db.sessions() as session:
            found = await repo.find_entries(session, flt, after=after, limit=11, by_scope=by_scope)
            assert len(found) <= 11
    [(statement, parameters)] = [s for s in sent if "log_entry" in s[0]]
    conn = await asyncpg.connect(db.dsn)
    try:
        explained = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *parameters)
    finally:
        await conn.close()
    plan: dict[str, Any] = json.loads(explained)[0]["Plan"]
    return plan


async def _rows_read(db: AuditDb, prefixes: tuple[str, ...], after: int | None) -> int:
    """Rows of the log's tables the listing's query reads for a page of 11."""
    return _rows_in(await _plan(db, repo.EntryFilter(region_prefixes=prefixes), after))


async def test_a_scope_reads_what_it_returns_not_the_log(
    audit_db: AuditDb, token_factory: TokenFactory
) -> None:
    """2,000 entries of one village, then a few of others: an empty scope, a quiet
    county, a village and a county named only by a search read a few dozen rows for a
    page of 11, first page or later, where the filter on leaf order walked the log."""
    busy = [_withdrawn(n * 7) for n in range(2000)]  # all of VILLAGES[0]
    quiet = [_withdrawn(3), _search(4), _withdrawn(5)]  # 620103, the search, 11...
    await _append(audit_db, busy + quiet, 0)
    async with audit_db.owner.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")
    for prefixes in (("620105",), ("620103",), ("620104",), ("110101001001",), ("37",)):
        for after in (None, 100, 1999):
            read = await _rows_read(audit_db, prefixes, after)
            assert read <= 60, (prefixes, after, read)
    assert await _rows_read(audit_db, ("620102001001",), 1000) <= 60  # the busy village


async def test_the_backfill_gives_entries_logged_before_it_their_scope(
    audit_db: AuditDb, token_factory: TokenFactory
) -> None:
    """Entries logged at 0008 (searches among them) are listed by every scope after the
    migration, as are those appended after it; the table is append-only and the runtime
    role may only read it."""
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.downgrade("audit", "0008")
    before = _events(0, 120)
    await _append(audit_db, before, 0)
    await audit_db.owner.dispose()
    await audit_db.runtime.dispose()
    await audit_db.stack.migrate("audit")
    after = _events(120, 200)
    await _append(audit_db, after, 120)
    app = create_app(api_settings(audit_db), auth=make_auth_settings())
    async with api_client(app) as client:
        for prefixes in SCOPES:
            listed = await _listed(client, token_factory, prefixes, limit=13)
            assert listed == _expected(before + after, prefixes), prefixes
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        rows = await conn.fetch(
            "SELECT prefix, count(*) FROM entry_region_prefix GROUP BY prefix ORDER BY prefix"
        )
        searches = sum(1 for e in before + after if e.topic == "dibao.access.v1")
        both = {"62", "6201"}  # both codes' province and city: once per search
        levels = (*both, "620103", "620104", "620103000", "620104000", *("620103000000",))
        assert {r[0]: r[1] for r in rows} == dict.fromkeys((*levels, SEARCHED), searches)
        for statement in (
            "UPDATE entry_region_prefix SET prefix = '11'",
            "DELETE FROM entry_region_prefix",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()
    runtime = await asyncpg.connect(asyncpg_dsn(audit_db.runtime_url))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("INSERT INTO entry_region_prefix VALUES ('11', 0)")
    finally:
        await runtime.close()


async def test_a_tampered_prefix_table_is_caught(
    audit_db: AuditDb, app: FastAPI, client: AsyncClient, token_factory: TokenFactory
) -> None:
    """A search's prefix rows deleted by a superuser hide it from the second county's
    listing: the database check names the entry, and so does ``verify_cli --url`` for that
    county's auditor (the export, which decides by the record, shows it). A row added for
    another county lists nothing there (each entry is checked against its record)."""
    events = _events(0, 30)
    await _append(audit_db, events, 0)
    search = 4
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "DELETE FROM entry_region_prefix WHERE leaf_index = $1 AND prefix LIKE '620104%'",
            search,
        )
        await conn.execute("INSERT INTO entry_region_prefix VALUES ('620105', $1)", search)
    finally:
        await conn.close()
    assert search not in await _listed(client, token_factory, ("620104",))
    assert await _listed(client, token_factory, ("620105",)) == _expected(events, ("999999",))

    vkey = (await client.get("/audit/public-key")).json()["vkey"]
    out = io.StringIO()
    args = verify_cli._parse_args(["--database-url", audit_db.url, "--vkey", vkey])
    assert await asyncio.to_thread(verify_cli.run, args, out) == 1
    report = json.loads(out.getvalue())
    assert report["first_bad_index"] == search
    assert any(
        p.startswith(f"entry {search}: stored region prefixes") for p in report["problems"]
    ), report["problems"]
    await audit_db.appender().checkpoint_if_grown()  # a checkpoint covering the search
    token = token_factory(roles=["auditor"], regions=["620104"])
    out = io.StringIO()
    async with serving(app) as url:
        args = verify_cli._parse_args(["--url", url, "--token", token, "--vkey", vkey])
        assert await asyncio.to_thread(verify_cli.run, args, out) == 1
    assert f"entry {search} is shown, but not listed" in json.loads(out.getvalue())["problems"]


async def test_candidates_naming_no_entry_end_no_listing(
    audit_db: AuditDb, client: AsyncClient, token_factory: TokenFactory
) -> None:
    """A candidate of the scope's indexes that names no entry of the log with its leaf (a
    superuser's prefix rows for indices before the log, an entry whose leaf was deleted)
    is skipped, as the filter on leaf order skipped it: the page is filled past it, not
    cut short (a short page ended the listing, so rows at -1 .. -3 hid every search from
    the county named only by searches, first page on). The database check names such rows
    (those before the log were not counted), and the entry without its leaf."""
    events = _events(0, 60)
    await _append(audit_db, events, 0)
    hidden = _expected(events, ("620103",))[2]  # a withdrawal of Qilihe's, not a search
    await as_superuser(
        audit_db,
        "INSERT INTO entry_region_prefix SELECT '620104', -i FROM generate_series(1, 3) i",
        f"DELETE FROM merkle_node WHERE level = 0 AND index = {hidden}",  # noqa: S608 - an int
    )
    for limit in (1, 3, 7):
        assert await _listed(client, token_factory, ("620104",), limit) == _expected(
            events, ("620104",)
        ), limit
        assert await _listed(client, token_factory, ("620103",), limit) == [
            i for i in _expected(events, ("620103",)) if i != hidden
        ], limit
    assert hidden not in await _old_path(audit_db, ("620103",))  # it skipped it too

    vkey = (await client.get("/audit/public-key")).json()["vkey"]
    out = io.StringIO()
    args = verify_cli._parse_args(["--database-url", audit_db.url, "--vkey", vkey])
    assert await asyncio.to_thread(verify_cli.run, args, out) == 1
    problems = json.loads(out.getvalue())["problems"]
    assert f"entry {hidden} has no leaf in merkle_node" in problems, problems
    assert "3 stored region prefixes name no entry of the log" in problems, problems


async def test_every_scope_and_filter_finds_what_the_filter_on_leaf_order_found(
    audit_db: AuditDb,
) -> None:
    """The scope's indexes and the old filter on leaf order (``by_scope=False``) find the
    same entries for every scope (each level, several and overlapping prefixes, none),
    with and without the whole log's, combined with type, actor and time filters, from
    every cursor, at every page size, and page by page."""
    events = _events(0, 150, timed=True)
    await _append(audit_db, events, 0)
    whole = repo.WholeLog(LOG_REGION, EventRegistry.default())
    types = [
        ce_type_of(m)
        for m in (
            intake_pb2.ApplicationWithdrawn,
            access_pb2.PersonalDataAccessed,
            audit_pb2.CheckpointPublished,
        )
    ]
    window = {
        "time_from": BASE_TIME + timedelta(minutes=9),
        "time_to": BASE_TIME + timedelta(minutes=30),
    }
    filters: list[dict[str, Any]] = [
        {},
        *({"ce_type": t} for t in types),
        {"actor": "clerk-1"},
        {"actor": "clerk-of-two"},
        window,
        {"ce_type": types[0], "actor": "clerk-2", **window},
        {"ce_type": types[1], "time_from": window["time_from"]},
    ]
    scopes = (*SCOPES, (), ("620104", "6201"), ("620103000000", "620104"))

    async with audit_db.sessions() as session:

        async def found(
            flt: repo.EntryFilter, after: int | None, limit: int, by_scope: bool
        ) -> list[int]:
            rows = await repo.find_entries(
                session, flt, after=after, limit=limit, by_scope=by_scope
            )
            return [e.leaf_index for e, _ in rows]

        for prefixes, kw, whole_log in itertools.product(scopes, filters, (None, whole)):
            flt = repo.EntryFilter(region_prefixes=prefixes, whole_log=whole_log, **kw)
            every = await found(flt, None, 1000, False)
            for after, limit in itertools.product((None, 4, 37, 149), (1, 6)):
                old = await found(flt, after, limit, False)
                new = await found(flt, after, limit, True)
                assert new == old, (prefixes, kw, whole_log, after, limit)
            paged: list[int] = []
            cursor = None
            while True:
                page = await found(flt, cursor, 9, True)
                paged += page
                if len(page) < 9:
                    break
                cursor = page[-1]
            assert paged == every, (prefixes, kw, whole_log)


def _returned(n: int) -> RecordedEvent:
    """An application of the first village returned: in these logs a rare type."""
    village = VILLAGES[0]
    message = intake_pb2.ApplicationReturned(
        household_id=f"hh-{village}",
        region=types_pb2.RegionCode(code=village),
        application_id=f"app-{n}",
    )
    return recorded_event(message, offset=n, key=f"hh-{village}", actor="clerk-0")


async def _rows_read_all(db: AuditDb, flt: repo.EntryFilter, after: int | None) -> int:
    """Rows of the log's tables read by every statement a listing's page of 11 sends
    (each run again under EXPLAIN ANALYZE)."""
    with db.statements_sent() as sent:
        async with db.sessions() as session:
            await repo.find_entries(session, flt, after=after, limit=11)
    statements = [s for s in sent if "log_entry" in s[0]]
    assert statements
    conn = await asyncpg.connect(db.dsn)
    try:
        total = 0
        for statement, parameters in statements:
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *parameters
            )
            total += _rows_in(
                json.loads(explained)[0]["Plan"], ("log_entry", "entry_region_prefix")
            )
    finally:
        await conn.close()
    return total


async def test_a_rare_type_or_actor_reads_its_own_entries_not_the_scope(
    audit_db: AuditDb,
) -> None:
    """4,000 withdrawals of one village by three clerks, and among them six returned
    applications and six withdrawals by a fourth clerk: listing the returned ones, or the
    fourth clerk's, in the village's county or in the province reads about those entries,
    first page or later, not the village's 4,000. Each part of the scope is its own
    statement, so the planner walks the type's or actor's index (``ix_log_entry_type``,
    ``ix_log_entry_actor``: equality, then leaf order) and tests each entry against the
    part's region, rather than the region's index testing each entry's type. (Checked in
    the sixteenth session: the closing note of the fifteenth had suspected the opposite.)"""
    busy = [_withdrawn(n * 7) for n in range(4000)]  # all of VILLAGES[0], clerks 0-2
    for k, at in enumerate((200, 900, 1700, 2500, 3300, 3990)):
        busy[at] = _returned(at * 7)
        busy[at + 3] = recorded_event(
            intake_pb2.ApplicationWithdrawn(
                household_id=f"hh-{VILLAGES[0]}",
                region=types_pb2.RegionCode(code=VILLAGES[0]),
                application_id=f"app-late-{k}",
            ),
            offset=(at + 3) * 7,
            key=f"hh-{VILLAGES[0]}",
            actor="clerk-rare",
        )
    await _append(audit_db, busy, 0)
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        await conn.execute("VACUUM ANALYZE log_entry")
    finally:
        await conn.close()
    expected = {
        "ce_type": [200, 900, 1700, 2500, 3300, 3990],
        "actor": [203, 903, 1703, 2503, 3303, 3993],
    }
    rare: tuple[dict[str, str], ...] = (
        {"ce_type": ce_type_of(intake_pb2.ApplicationReturned)},
        {"actor": "clerk-rare"},
    )
    for kw, prefixes, after in itertools.product(rare, (("620102",), ("62",)), (None, 1000)):
        flt = repo.EntryFilter(region_prefixes=prefixes, **kw)  # type: ignore[arg-type]
        [name] = kw
        async with audit_db.sessions() as session:
            found = await repo.find_entries(session, flt, after=after, limit=11)
        assert [e.leaf_index for e, _ in found] == [
            i for i in expected[name] if after is None or i > after
        ]
        read = await _rows_read_all(audit_db, flt, after)
        assert read <= 30, (kw, prefixes, after, read)
    # The measure tells the two walks apart: without the type's index, the region's walk
    # reads the village's entries to find the six.
    await as_superuser(audit_db, "DROP INDEX ix_log_entry_type")
    flt = repo.EntryFilter(region_prefixes=("620102",), **rare[0])  # type: ignore[arg-type]
    assert await _rows_read_all(audit_db, flt, None) >= 3990


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's nodes, itself first."""
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _time_of(event: RecordedEvent) -> datetime:
    return datetime.fromisoformat(dict(event.headers)["ce_time"].decode())


async def test_a_time_filter_finds_what_it_found_from_the_log_start(audit_db: AuditDb) -> None:
    """The walk starts at the first leaf of ``time_from``'s day (``entry_time_day``, ADR
    0011, 2 Dec 2026): over a log whose times are not in leaf order (each entry at
    ``n * 7 % 40`` hours, over two days, so late events are logged after later ones),
    every scope, scoped and unscoped, with and without ``time_to`` and the whole log's,
    from several cursors, lists exactly the entries of its scope in the window after the
    cursor (in Python, from the records), a ``time_from`` after every entry none; a
    ``time_from`` in either day, at midnight, and the hour before."""
    events = _events(0, 150, timed=True)
    await _append(audit_db, events, 0)
    whole = repo.WholeLog(LOG_REGION, EventRegistry.default())
    times = [_time_of(e) for e in events]
    assert times != sorted(times)
    starts = [BASE_TIME + timedelta(hours=h) for h in (-1, 0, 9, 23, 24, 25, 39, 40)]
    scopes = (*SCOPES, (), ("620104", "6201"))
    async with audit_db.sessions() as session:
        for prefixes, start, end, by_scope, after in itertools.product(
            scopes,
            starts,
            (None, BASE_TIME + timedelta(hours=30)),
            (True, False),
            (None, 12, 131),
        ):
            flt = repo.EntryFilter(
                region_prefixes=prefixes, time_from=start, time_to=end, whole_log=whole
            )
            rows = await repo.find_entries(session, flt, after=after, limit=1000, by_scope=by_scope)
            expected = [
                i
                for i in _expected(events, prefixes)
                if times[i] >= start
                and (end is None or times[i] < end)
                and (after is None or i > after)
            ]
            assert [e.leaf_index for e, _ in rows] == expected, (prefixes, start, end, after)
            paged: list[int] = []
            cursor = after
            while True:
                page = await repo.find_entries(
                    session, flt, after=cursor, limit=4, by_scope=by_scope
                )
                paged += [e.leaf_index for e, _ in page]
                if len(page) < 4:
                    break
                cursor = page[-1][0].leaf_index
            assert paged == expected, (prefixes, start, end, after, by_scope)
        for start in starts:
            flt = repo.EntryFilter(
                region_prefixes=("620102",), household_id=f"hh-{VILLAGES[0]}", time_from=start
            )
            rows = await repo.find_entries(session, flt, after=None, limit=1000)
            expected = [
                i
                for i in _expected(events, (VILLAGES[0],))
                if events[i].topic != "dibao.audit.v1" and times[i] >= start
            ]
            assert [e.leaf_index for e, _ in rows] == expected, start


async def _db_check(db: AuditDb) -> tuple[int, dict[str, Any]]:
    """``verify_cli --database-url`` over ``db``: its exit code and report."""
    out = io.StringIO()
    vkey = CheckpointSigner(TEST_SEED, TEST_ORIGIN).verifier.vkey()
    args = verify_cli._parse_args(["--database-url", db.url, "--vkey", vkey])
    code = await asyncio.to_thread(verify_cli.run, args, out)
    return code, json.loads(out.getvalue())


async def _vacuumed(db: AuditDb) -> None:
    """As autovacuum leaves an append-only table: its pages all-visible (an index-only
    scan reads no heap), its statistics current."""
    conn = await asyncpg.connect(db.dsn)
    try:
        await conn.execute("VACUUM ANALYZE log_entry")
        await conn.execute("VACUUM ANALYZE entry_time_day")
    finally:
        await conn.close()


def _floor_of(plan: dict[str, Any], name: str = "time_floor") -> dict[str, Any]:
    """The plan's one computation of a time bound (``time_floor``, ``time_ceiling``): one
    aggregate over ``entry_time_day``, run once, reading no row of the log."""
    [floor] = [n for n in _nodes(plan) if n.get("Subplan Name") == f"CTE {name}"]
    assert (floor["Actual Loops"], floor["Node Type"]) == (1, "Aggregate")
    assert {n.get("Relation Name") for n in _nodes(floor)} <= {None, "entry_time_day"}
    assert _rows_in(floor, ("log_entry", "entry_region_prefix")) == 0
    return floor


async def test_a_time_filter_reads_from_the_first_leaf_since_then(audit_db: AuditDb) -> None:
    """4,000 old entries of one village, then recent ones: 400 of Beijing's, a few of the
    village (one logged late, with an old time) and of others. "Since yesterday" reads the
    first leaves of the days since then (``entry_time_day``, one InitPlan) and walks the
    log from the first leaf since then, scoped and unscoped, first page or later: before
    the bound, the village's index scan read its whole history to test each entry's time
    (the planner expects matches spread over the log, not all at its end)."""
    old = BASE_TIME - timedelta(days=30)
    recent = BASE_TIME + timedelta(days=1)
    history = [_withdrawn(n * 7, old + timedelta(seconds=n)) for n in range(4000)]
    late = [_withdrawn(n * 7 + 4, recent + timedelta(seconds=n)) for n in range(4000, 4400)]
    late += [_withdrawn(30_807, recent), _withdrawn(30_814, old), _search(4, recent)]
    late += [_withdrawn(n * 7, recent + timedelta(seconds=n)) for n in range(4410, 4419)]
    late += [_withdrawn(3, recent), _announced(24, recent)]
    assert {VILLAGES[e.offset % 7 % 5] for e in history} == {VILLAGES[0]}
    assert {VILLAGES[e.offset % 7 % 5] for e in late[:400]} == {VILLAGES[4]}
    await _append(audit_db, history + late, 0)
    await _vacuumed(audit_db)
    since_then = len(late) - 1  # all but the late one
    whole = repo.WholeLog(LOG_REGION, EventRegistry.default())
    since = recent - timedelta(hours=1)
    for prefixes, after, by_scope, whole_log in itertools.product(
        (("620102001001",), ("6201",), ("620104",), ("620105",)),
        (None, 1000),
        (True, False),
        (None, whole),
    ):
        flt = repo.EntryFilter(region_prefixes=prefixes, time_from=since, whole_log=whole_log)
        plan = await _plan(audit_db, flt, after, by_scope=by_scope)
        _floor_of(plan)
        # The walk: rows of the entries and the prefix table read (a plan of a log this
        # small may hash all of merkle_node's leaves to join a page: not a walk).
        walked = _rows_in(plan, ("log_entry", "entry_region_prefix"))
        # Before: 3,000-4,000 and more (the village's history); now each part reads at
        # most the entries since then (a plan this small may test each of them).
        assert walked <= 3 * since_then, (prefixes, after, by_scope, whole_log, walked)
    # Nothing since: no walk of the log at all.
    flt = repo.EntryFilter(region_prefixes=("62",), time_from=recent + timedelta(days=1))
    for by_scope in (True, False):
        assert _rows_in(await _plan(audit_db, flt, None, by_scope=by_scope), ("log_entry",)) == 0


async def test_a_wide_window_of_a_sparse_scope_reads_the_scopes_entries_not_the_logs(
    audit_db: AuditDb,
) -> None:
    """A village's auditor asks for a window in which the whole log has many entries and
    the village few (a month of a province): 2,000 old entries (100 of the village), then
    1,500 of Beijing's and 6 of the village over the next three days. Before (ADR 0017), the
    bound was the least leaf of every entry since ``time_from``, read through
    ``ix_log_entry_time``: 1,500 and more index entries per page (the whole log's since
    then; past 100,000, no bound, and the walk read the village's whole history). Now the
    bound reads the days' first leaves, and the statement reads no more rows of the log
    than the village's entries since ``time_from``'s day, for every page; the pages are
    the village's entries in the window (from the records)."""
    old = BASE_TIME - timedelta(days=30)
    history = [  # one in 20 the village's, the others of three other villages
        _withdrawn(n * 7 + (0 if n % 20 == 0 else 1 + n % 3), old + timedelta(seconds=n))
        for n in range(2000)
    ]
    busy = [
        _withdrawn(n * 7 + 4, BASE_TIME + timedelta(minutes=3 * (n - 2000)))
        for n in range(2000, 3500)
    ]
    mine = [
        _withdrawn(n * 7, BASE_TIME + timedelta(hours=12 * (n - 3500))) for n in range(3500, 3506)
    ]
    log = history + busy[:500] + mine[:3] + busy[500:] + mine[3:]
    assert {VILLAGES[e.offset % 7 % 5] for e in mine} == {VILLAGES[0]}
    assert sum(e.offset % 7 == 0 for e in history) == 100
    assert {VILLAGES[e.offset % 7 % 5] for e in busy} == {VILLAGES[4]}
    await _append(audit_db, log, 0)
    await _vacuumed(audit_db)
    times = [_time_of(e) for e in log]
    village = (VILLAGES[0],)
    for hours, count in ((0, 6), (25, 3)):
        since = BASE_TIME + timedelta(hours=hours)
        expected = [i for i, e in enumerate(log) if e.offset % 7 == 0 and times[i] >= since]
        assert len(expected) == count
        flt = repo.EntryFilter(region_prefixes=village, time_from=since)
        for after in (None, expected[0], expected[2]):
            plan = await _plan(audit_db, flt, after)
            _floor_of(plan)
            read = _rows_in(plan, ("log_entry", "entry_region_prefix"))
            assert read <= 3 * 6, (hours, after, read)
        async with audit_db.sessions() as session:
            rows = await repo.find_entries(session, flt, after=None, limit=100)
            paged = await repo.find_entries(session, flt, after=expected[1], limit=2)
        assert [e.leaf_index for e, _ in rows] == expected
        assert [e.leaf_index for e, _ in paged] == expected[2:4]


async def test_a_window_long_past_reads_up_to_its_last_day_not_to_the_logs_end(
    audit_db: AuditDb,
) -> None:
    """A village's auditor asks for a window long past (``time_to`` a month back, with or
    without ``time_from``): 200 entries of one day a month ago (100 of the village), then
    1,500 of the village and 500 of Beijing's over the next four days. Before (ADR 0011,
    2 Dec 2026) nothing bounded the walk from above: the page after the window's last
    match (every listing ends with a short page) read the village's entries to the end of
    the log, 1,500 more. Now the last leaf of the days up to ``time_to``'s
    (``entry_time_day.last_leaf``, migration 0014; a ``time_to`` at midnight counts the
    day before only) ends each part's scan: every page reads at most that day's entries
    and the page's; the pages are the village's entries in the window (from the
    records)."""
    old = BASE_TIME - timedelta(days=30)  # 2 Oct, 00:00-00:33
    history = [  # every other one the village's, the others of three other villages
        _withdrawn(n * 7 + (0 if n % 2 == 0 else 1 + n % 3), old + timedelta(seconds=10 * n))
        for n in range(200)
    ]
    later = [  # three in four the village's, the others Beijing's: 1 Nov to 5 Nov
        _withdrawn(n * 7 + (0 if n % 4 else 4), BASE_TIME + timedelta(minutes=3 * (n - 200)))
        for n in range(200, 2200)
    ]
    log = history + later
    assert sum(e.offset % 7 == 0 for e in history) == 100
    assert sum(e.offset % 7 == 0 for e in later) == 1500
    assert {VILLAGES[e.offset % 7 % 5] for e in later} == {VILLAGES[0], VILLAGES[4]}
    await _append(audit_db, log, 0)
    await _vacuumed(audit_db)
    times = [_time_of(e) for e in log]
    village = (VILLAGES[0],)
    windows = (
        (None, old + timedelta(seconds=1000), 50),
        (old + timedelta(seconds=500), old + timedelta(seconds=1000), 25),
        (None, old + timedelta(days=1), 100),  # the next midnight: that day only
        (old - timedelta(days=3), BASE_TIME, 100),  # 1 Nov's midnight: none of 1 Nov's
    )
    for since, until, count in windows:
        expected = [
            i
            for i, e in enumerate(log)
            if e.offset % 7 == 0 and (since is None or times[i] >= since) and times[i] < until
        ]
        assert len(expected) == count
        flt = repo.EntryFilter(region_prefixes=village, time_from=since, time_to=until)
        for after in (None, expected[10], expected[-1]):
            plan = await _plan(audit_db, flt, after)
            _floor_of(plan, "time_ceiling")
            read = _rows_in(plan, ("log_entry", "entry_region_prefix"))
            # Before: 1,500 and more on the last page (the village's later entries).
            assert read <= 200 + 11, (since, until, after, read)
        async with audit_db.sessions() as session:
            paged: list[int] = []
            cursor = None
            while True:
                page = await repo.find_entries(session, flt, after=cursor, limit=11)
                paged += [e.leaf_index for e, _ in page]
                if len(page) < 11:
                    break
                cursor = page[-1][0].leaf_index
        assert paged == expected, (since, until)


def _timed(n: int, at: datetime) -> RecordedEvent:
    """Entry ``n`` of ``_events``'s kinds (a withdrawal, every 9th a search, every 25th a
    checkpoint's), at ``at``."""
    make = _search if n % 9 == 4 else _announced if n % 25 == 24 else _withdrawn
    return make(n, at)


async def test_a_window_ending_on_any_day_lists_exactly_its_entries(audit_db: AuditDb) -> None:
    """The walk ends at the last leaf of the days up to ``time_to``'s (``entry_time_day``,
    ADR 0011, 3 Dec 2026), exact whatever the clocks. Over three days out of leaf order
    (entry ``n`` at ``n * 11 % 72`` hours), with the first entry logged with a fourth
    day's time (ahead of every later leaf's) and the last one logged late with the first
    day's (it raises that day's last leaf to the log's end): every scope, scoped and
    unscoped, with the whole log's, with and without ``time_from``, from several cursors,
    whole and page by page, lists exactly the entries of its scope in the window (from the
    records), ``time_to`` at each midnight, a microsecond either side, within a day, before
    every entry and after. The bound is the largest leaf of the entries of the days up to
    the last instant before ``time_to`` (-1 when none), and no bound while one of those
    days has no last leaf (a day logged before migration 0014 and not filled yet)."""
    events = [_timed(n, BASE_TIME + timedelta(hours=n * 11 % 72)) for n in range(150)]
    events[0] = _timed(0, BASE_TIME + timedelta(days=3, hours=5))
    events.append(_timed(150, BASE_TIME + timedelta(minutes=30)))
    await _append(audit_db, events, 0)
    whole = repo.WholeLog(LOG_REGION, EventRegistry.default())
    times = [_time_of(e) for e in events]
    micro = timedelta(microseconds=1)
    ends = [
        BASE_TIME + timedelta(days=d) + eps for d in (1, 2, 3) for eps in (-micro, 0 * micro, micro)
    ]
    ends += [BASE_TIME, BASE_TIME + timedelta(hours=37), BASE_TIME + timedelta(days=6)]
    scopes = (("62",), ("620102001002",), ("620104",), ("620105",), (), ("620104", "6201"))

    async def ceiling(session: Any, end: datetime) -> int:
        flt = repo.EntryFilter(region_prefixes=(), time_to=end)
        bound = repo._time_ceiling(flt)
        assert bound is not None
        return int(await session.scalar(sa.select(bound)))

    async with audit_db.sessions() as session:
        for end in ends:
            last_day = (end - micro).astimezone(UTC).date()
            upto = [i for i, t in enumerate(times) if t.astimezone(UTC).date() <= last_day]
            assert await ceiling(session, end) == max(upto, default=-1), end
        for prefixes, start, end, by_scope, after in itertools.product(
            scopes,
            (None, BASE_TIME + timedelta(hours=29)),
            ends,
            (True, False),
            (None, 40),
        ):
            flt = repo.EntryFilter(
                region_prefixes=prefixes, time_from=start, time_to=end, whole_log=whole
            )
            expected = [
                i
                for i in _expected(events, prefixes)
                if (start is None or times[i] >= start)
                and times[i] < end
                and (after is None or i > after)
            ]
            rows = await repo.find_entries(session, flt, after=after, limit=1000, by_scope=by_scope)
            assert [e.leaf_index for e, _ in rows] == expected, (prefixes, start, end, after)
            paged: list[int] = []
            cursor = after
            while True:
                page = await repo.find_entries(
                    session, flt, after=cursor, limit=7, by_scope=by_scope
                )
                paged += [e.leaf_index for e, _ in page]
                if len(page) < 7:
                    break
                cursor = page[-1][0].leaf_index
            assert paged == expected, (prefixes, start, end, after, by_scope)
    # A day without its last leaf: no upper bound from the days up to it, still exact.
    await as_superuser(
        audit_db, "UPDATE entry_time_day SET last_leaf = NULL WHERE day = '2026-11-02'"
    )
    async with audit_db.sessions() as session:
        assert await ceiling(session, BASE_TIME + timedelta(hours=30)) == repo.BIGINT_MAX
        assert await ceiling(session, BASE_TIME + timedelta(hours=20)) == 150  # 1 Nov only
        end = BASE_TIME + timedelta(hours=30)
        flt = repo.EntryFilter(region_prefixes=("62",), time_to=end, whole_log=whole)
        rows = await repo.find_entries(session, flt, after=None, limit=1000)
        assert [e.leaf_index for e, _ in rows] == [
            i for i in _expected(events, ("62",)) if times[i] < end
        ]


async def test_a_tampered_day_table_is_caught(audit_db: AuditDb) -> None:
    """``entry_time_day`` is written by the log from the stored times (a runtime login may
    not write it) and checked by the database check: a day's first leaf moved later (which
    hides its earlier entries from every window from that day on), its last leaf moved
    earlier (which hides its later entries from every window up to that day), a last leaf
    removed, a day removed and one added are each named."""
    events = [_withdrawn(n, BASE_TIME + timedelta(hours=n * 7 % 60)) for n in range(60)]
    await _append(audit_db, events, 0)
    days = sorted({_time_of(e).date() for e in events})
    assert [str(d) for d in days] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    of_day = [[i for i, e in enumerate(events) if _time_of(e).date() == d] for d in days]
    conn = await asyncpg.connect(audit_db.dsn)
    try:
        stored = await conn.fetch(
            "SELECT day, first_leaf, last_leaf FROM entry_time_day ORDER BY day"
        )
        assert [tuple(r) for r in stored] == [
            (d, min(leaves), max(leaves)) for d, leaves in zip(days, of_day, strict=True)
        ]
    finally:
        await conn.close()
    runtime = await asyncpg.connect(asyncpg_dsn(audit_db.runtime_url))
    try:
        for column in ("first_leaf", "last_leaf"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(f"UPDATE entry_time_day SET {column} = 0")  # noqa: S608
    finally:
        await runtime.close()
    code, report = await _db_check(audit_db)
    assert code == 0, report
    assert (report["schema"], report["not_checked"]) == ("0015", {})
    last = max(of_day[0])
    await as_superuser(
        audit_db,
        f"UPDATE entry_time_day SET first_leaf = 5, last_leaf = {last - 1} "  # noqa: S608
        "WHERE day = '2026-11-01'",
        "DELETE FROM entry_time_day WHERE day = '2026-11-02'",
        "UPDATE entry_time_day SET last_leaf = NULL WHERE day = '2026-11-03'",
        "INSERT INTO entry_time_day VALUES ('2026-12-25', 0, 0)",
    )
    code, report = await _db_check(audit_db)
    assert code == 1, report
    assert report["problems"] == [
        f"day {days[0]}: entry_time_day names leaf 5 as its first, its entries' first is 0",
        f"day {days[0]}: entry_time_day names leaf {last - 1} as its last, its entries' "
        f"last is {last}",
        f"day {days[1]}: its entries' first leaf {min(of_day[1])} is not in entry_time_day",
        f"day {days[2]}: entry_time_day has no last leaf, its entries' last is "
        f"{max(of_day[2])} (a window up to that day is read to the log's end)",
        "day 2026-12-25: entry_time_day names leaf 0, but no entry is of that day",
    ]
