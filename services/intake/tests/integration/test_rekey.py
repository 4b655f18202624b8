"""``python -m dibao_intake.rekey``, step 3 of a key rotation (ADR 0005), on PostgreSQL.

The job rewrites every ciphertext of the database it runs on, so these tests have a
database of their own (``<prefix>_rekey_intake``), emptied before each test: rotating
the session's shared database would leave its values under a key the session's app does
not hold. The values are written under the old key by the real service (an app on that
database, relay and consumers off: nothing here needs the broker), so every context is
the one the service binds; an app holding only the new key reads them afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dibao_common.auth import Role
from dibao_common.clock import FrozenClock
from dibao_common.crypto import FieldCipher, PiiSettings, key_id_of, mask_id_numbers_in
from dibao_common.db import make_engine
from dibao_common.testing.auth_fixtures import TokenFactory, auth_settings_values
from dibao_common.testing.stack import TestStack, api_client
from dibao_intake import rekey
from dibao_intake.domain.codes import Sex
from dibao_intake.main import create_app
from dibao_intake.models import Base
from dibao_intake.settings import IntakeSettings
from dibao_intake.synthetic import Synthesizer
from dibao_intake.testing import (
    ISSUED_ID_NUMBERS,
    IntakeClient,
    RegisteredHousehold,
    intake_database_of_its_own,
    intake_settings_for,
)

pytestmark = pytest.mark.postgres

OLD, NEW = "k2025", "k2026"
TOWNSHIP = "620123101000"


def _key(label: str) -> str:
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


KEYS = {OLD: _key("dibao rekey test key 2025"), NEW: _key("dibao rekey test key 2026")}


def _pii(*ring: str, active: str) -> PiiSettings:
    return PiiSettings(
        keys=",".join(f"{k}:{KEYS[k]}" for k in ring),
        active_key_id=active,
        hash_key=_key("dibao rekey test hash key"),
    )


def _cipher(*ring: str, active: str) -> FieldCipher:
    return FieldCipher.from_settings(_pii(*ring, active=active))


Values = dict[tuple[str, uuid.UUID], bytes]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rekey_stack() -> TestStack:
    return await intake_database_of_its_own("rekey")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rekey_engine(rekey_stack: TestStack) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(rekey_stack.database_url("intake"), pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def settings_for(rekey_stack: TestStack, tmp_path: Path) -> Callable[[PiiSettings], IntakeSettings]:
    def make(pii: PiiSettings) -> IntakeSettings:
        return intake_settings_for(
            rekey_stack,
            tmp_path / "documents",
            pii=pii,
            intake_relay_enabled=False,
            intake_timeline_enabled=False,
            housekeeping_interval_s=0,
        )

    return make


@asynccontextmanager
async def _service(settings: IntakeSettings, clock: FrozenClock) -> AsyncIterator[IntakeClient]:
    """The intake API on the test database, with ``settings``' keys."""
    app = create_app(settings, clock=clock)
    async with api_client(app) as http:
        synthesizer = Synthesizer(f"rekey-{uuid.uuid4()}", clock.today(), used=ISSUED_ID_NUMBERS)
        yield IntakeClient(http, TokenFactory().with_clock(clock.now), synthesizer)


@dataclass
class Written:
    households: list[RegisteredHousehold]
    numbers: set[str]
    """Every ID and account number sent (what the values must decrypt to)."""


async def _add_staff(intake: IntakeClient, body: dict[str, object]) -> None:
    response = await intake.http.post(
        f"/townships/{TOWNSHIP}/staff",
        json=body,
        headers=intake.headers(Role.POLICY_ADMIN, ["620123"]),
    )
    assert response.status_code == 201, response.text


@pytest_asyncio.fixture(loop_scope="session")
async def written(
    rekey_engine: AsyncEngine,
    settings_for: Callable[[PiiSettings], IntakeSettings],
    intake_clock: FrozenClock,
) -> Written:
    """An emptied database, then households and a roster written under the old key alone."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with rekey_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    async with _service(settings_for(_pii(OLD, active=OLD)), intake_clock) as intake:
        households = [await intake.register() for _ in range(3)]
        own, sister, brother = (
            intake.synthesizer.id_number(date(1975 + i, 3, 8), sex)
            for i, sex in enumerate((Sex.MALE, Sex.FEMALE, Sex.MALE))
        )
        await _add_staff(
            intake,
            {
                "name": "李明",
                "role": "dibao_staff",
                "id_number": own,
                "relatives": [
                    {"name": "李芳", "id_number": sister, "relation": "sister"},
                    {"name": "李强", "id_number": brother, "relation": "brother"},
                ],
            },
        )
        # No number of her own: a NULL the job passes over.
        await _add_staff(intake, {"name": "王丽", "role": "caseworker", "subject": "cw-rekey"})
    numbers = {own, sister, brother}
    for h in households:
        numbers |= {m.id_number for m in h.plan.members} | {h.plan.account_number}
    return Written(households, numbers)


async def _values(engine: AsyncEngine) -> Values:
    """Every stored ciphertext, by column name and row id."""
    found: Values = {}
    async with engine.connect() as conn:
        for c in rekey.ENCRYPTED_COLUMNS:
            rows = await conn.execute(
                text(f"SELECT id, {c.column} AS blob FROM {c.table} WHERE {c.column} IS NOT NULL")  # noqa: S608 - fixed names
            )
            found |= {(c.name, row.id): bytes(row.blob) for row in rows}
    return found


def _plaintexts(values: Values, cipher: FieldCipher) -> dict[tuple[str, uuid.UUID], str]:
    columns = {c.name: c for c in rekey.ENCRYPTED_COLUMNS}
    return {
        (name, row_id): cipher.decrypt(blob, context=columns[name].context(row_id))
        for (name, row_id), blob in values.items()
    }


def _per_column(values: Values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, _ in values:
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _run(settings: IntakeSettings, *args: str) -> tuple[int, str, str]:
    """The command in this process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = await rekey.run(rekey.parse_args(args), settings, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_every_value_is_rewritten_under_the_active_key_and_reads_the_same(
    written: Written,
    rekey_engine: AsyncEngine,
    rekey_stack: TestStack,
    settings_for: Callable[[PiiSettings], IntakeSettings],
    intake_clock: FrozenClock,
) -> None:
    before = await _values(rekey_engine)
    assert {key_id_of(blob) for blob in before.values()} == {OLD}
    plain = _plaintexts(before, _cipher(OLD, active=OLD))
    assert set(plain.values()) == written.numbers
    counts = _per_column(before)
    assert set(counts) == {c.name for c in rekey.ENCRYPTED_COLUMNS}

    # Batches of two: several per column, each from where the last ended.
    job = make_engine(rekey_stack.database_url("intake"), pool_size=1)
    try:
        report = await rekey.rekey(
            job, _cipher(OLD, NEW, active=NEW), batch_size=2, ring={OLD, NEW}
        )
    finally:
        await job.dispose()
    assert report.census == {name: {OLD: n} for name, n in counts.items()}
    assert {r.column.name: (r.rekeyed, r.skipped, r.left) for r in report.results} == {
        name: (n, 0, 0) for name, n in counts.items()
    }

    after = await _values(rekey_engine)
    assert after.keys() == before.keys()
    assert {key_id_of(blob) for blob in after.values()} == {NEW}
    assert not set(after.values()) & set(before.values())
    # The old key can leave the ring: the new one alone reads every value as it was.
    assert _plaintexts(after, _cipher(NEW, active=NEW)) == plain

    async with _service(settings_for(_pii(NEW, active=NEW)), intake_clock) as intake:
        household = written.households[0]
        identity = await intake.http.get(
            f"/persons/{household.person_ids[0]}/identity",
            params={"purpose": "investigation"},
            headers=intake.headers(Role.INVESTIGATOR, ["620123"]),
        )
        assert identity.status_code == 200, identity.text
        assert identity.json()["id_number"] == household.plan.members[0].id_number
        account = await intake.http.get(
            f"/bank-accounts/{household.body['bank_account']['token_id']}",
            params={"purpose": "payment"},
            headers=intake.headers(Role.FINANCE_OFFICER, ["620123"]),
        )
        assert account.status_code == 200, account.text
        assert account.json()["account_number"] == household.plan.account_number
        # Lookups go by keyed hash, which the rotation leaves alone: the same people
        # registered again are found in their household.
        again = await intake.http.post(
            "/households",
            json=household.plan.payload(),
            headers=intake.headers(regions=[household.plan.region_code]),
        )
        assert again.status_code == 409, again.text
        assert len(again.json()["conflicts"]) == len(household.plan.members)

    code, out, err = await _run(settings_for(_pii(OLD, NEW, active=NEW)))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == f"nothing to re-encrypt: every value is under key {NEW}"
    for c in rekey.ENCRYPTED_COLUMNS:
        assert f"{c.name}: 0 re-encrypted, 0 skipped" in out
    assert await _values(rekey_engine) == after


async def test_a_dry_run_counts_per_column_and_key_and_writes_nothing(
    written: Written,
    rekey_engine: AsyncEngine,
    settings_for: Callable[[PiiSettings], IntakeSettings],
) -> None:
    before = await _values(rekey_engine)
    code, out, err = await _run(settings_for(_pii(OLD, NEW, active=NEW)), "--dry-run")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"active key: {NEW}"
    for name, n in _per_column(before).items():
        assert f"{name}: {OLD} {n}" in lines
    assert lines[-1] == f"dry run: {len(before)} value(s) to re-encrypt, nothing written"
    assert await _values(rekey_engine) == before


async def test_a_key_missing_from_the_ring_stops_the_job_before_any_write(
    written: Written,
    rekey_engine: AsyncEngine,
    settings_for: Callable[[PiiSettings], IntakeSettings],
) -> None:
    before = await _values(rekey_engine)
    for args in ((), ("--dry-run",)):
        code, out, err = await _run(settings_for(_pii(NEW, active=NEW)), *args)
        assert (code, out) == (1, "")
        assert err.startswith("re-encryption stopped: person.id_number_cipher: ")
        assert f"under key {OLD!r}, which is not in DIBAO_PII_KEYS" in err
    assert await _values(rekey_engine) == before


async def test_a_value_that_does_not_decrypt_stops_the_job_and_its_batch_is_not_written(
    written: Written,
    rekey_engine: AsyncEngine,
    settings_for: Callable[[PiiSettings], IntakeSettings],
) -> None:
    first, second = written.households[0].person_ids[0], written.households[1].person_ids[0]
    async with rekey_engine.begin() as conn:
        # One person's ciphertext copied over another's: it names a key the ring has,
        # but it is bound to the other row.
        await conn.execute(
            text(
                "UPDATE person SET id_number_cipher ="
                " (SELECT id_number_cipher FROM person WHERE id = :first) WHERE id = :second"
            ),
            {"first": uuid.UUID(first), "second": uuid.UUID(second)},
        )
    before = await _values(rekey_engine)
    code, out, err = await _run(settings_for(_pii(OLD, NEW, active=NEW)))
    assert (code, out) == (1, "")
    assert err == (
        f"re-encryption stopped: person.id_number_cipher row {second}: does not decrypt under"
        f" key {OLD!r} with its row's context (altered, or copied from another row)\n"
    )
    # The persons are one batch: none of them was written.
    assert await _values(rekey_engine) == before


async def test_a_value_rewritten_meanwhile_is_skipped_not_overwritten(
    written: Written,
    rekey_engine: AsyncEngine,
    rekey_stack: TestStack,
    settings_for: Callable[[PiiSettings], IntakeSettings],
) -> None:
    """The service rewrites a person's number (under the new key) while the job is between
    its read and its write: a writer's transaction holds the row, the job reads the old
    value past it and then waits on the row in its UPDATE; the writer commits."""
    before = await _values(rekey_engine)
    person = uuid.UUID(written.households[2].person_ids[0])
    column = rekey.ENCRYPTED_COLUMNS[0]
    number = written.households[2].plan.members[0].id_number
    rewritten = _cipher(NEW, active=NEW).encrypt(number, context=column.context(person))
    async with rekey_engine.connect() as writer:
        await writer.execute(
            text("UPDATE person SET id_number_cipher = :blob WHERE id = :id"),
            {"blob": rewritten, "id": person},
        )
        job = asyncio.create_task(_run(settings_for(_pii(OLD, NEW, active=NEW))))
        await _until_waiting_on_a_lock(rekey_engine, rekey_stack.database_name("intake"), job)
        await writer.commit()
        code, out, err = await job

    assert (code, err) == (0, ""), err
    persons = _per_column(before)[column.name]
    assert (
        f"{column.name}: {persons - 1} re-encrypted, 1 skipped (changed meanwhile), 0 left" in out
    )
    after = await _values(rekey_engine)
    assert after[(column.name, person)] == rewritten
    assert {key_id_of(blob) for blob in after.values()} == {NEW}


async def _until_waiting_on_a_lock(
    engine: AsyncEngine, database: str, job: asyncio.Task[tuple[int, str, str]]
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        if job.done():
            raise AssertionError(f"the job ended before it reached the held row: {job.result()}")
        async with engine.connect() as conn:
            waiting = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db"
                    " AND application_name = :app AND wait_event_type = 'Lock'"
                ),
                {"db": database, "app": rekey.APPLICATION_NAME},
            )
            if waiting.scalar_one() == 1:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the job never waited on the held row")


async def test_the_command_runs_as_a_process_and_prints_no_number(
    written: Written,
    rekey_engine: AsyncEngine,
    settings_for: Callable[[PiiSettings], IntakeSettings],
) -> None:
    before = await _values(rekey_engine)
    settings = settings_for(_pii(OLD, NEW, active=NEW))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBAO_")}
    env |= {
        "DIBAO_DATABASE_URL": settings.database_url,
        "DIBAO_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DIBAO_ENVIRONMENT": "test",
        "DIBAO_LOG_LEVEL": "INFO",
        "DIBAO_PII_KEYS": settings.pii.keys.get_secret_value(),
        "DIBAO_PII_ACTIVE_KEY_ID": NEW,
        "DIBAO_PII_HASH_KEY": settings.pii.hash_key.get_secret_value(),
        "DIBAO_IDEMPOTENCY_FINGERPRINT_KEYS": (
            settings.idempotency_fingerprint_keys.get_secret_value()
        ),
    }
    env |= {f"DIBAO_{k.upper()}": str(v) for k, v in auth_settings_values().items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dibao_intake.rekey",
        "--batch-size",
        "3",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    out, log = stdout.decode(), stderr.decode()
    assert process.returncode == 0, out + log
    assert out.splitlines()[-1] == (
        f"done: {len(before)} re-encrypted, every value is under key {NEW}"
    )
    # The log has a line per column (INFO), and neither it nor the report holds a number,
    # whole or masked.
    assert log.count('"column re-encrypted"') == len(rekey.ENCRYPTED_COLUMNS)
    for number in written.numbers:
        assert number not in out + log
        assert mask_id_numbers_in(number) not in out + log
    after = await _values(rekey_engine)
    assert {key_id_of(blob) for blob in after.values()} == {NEW}
    assert _plaintexts(after, _cipher(NEW, active=NEW)) == _plaintexts(
        before, _cipher(OLD, active=OLD)
    )
