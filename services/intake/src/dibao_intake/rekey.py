"""Re-encrypt intake's personal data under the active key: ``python -m dibao_intake.rekey``.

Step 3 of a key rotation (docs/adr/0005): once a new key is active everywhere, the values
written under older keys are decrypted and encrypted again, so that the old key can leave
the ring. Run it with the service's own environment (``DIBAO_DATABASE_URL``,
``DIBAO_PII_*``, the ring holding both keys); ``--dry-run`` only counts the values per
column and key.

The scan reads each ciphertext's key id in SQL (its header is not secret), so only values
under another key are fetched, a batch at a time in primary-key order. Each batch is one
short transaction: the service keeps running, and a value it rewrote meanwhile (a new
ciphertext, under the active key) is left as it is: a row is updated only while it still
holds the ciphertext that was read. Before writing anything the job counts the values per
key and refuses when one is under a key the ring lacks: a run that could only stop half
way does not start. A value that does not decrypt (altered, or copied from another row)
stops it too, and its batch is rolled back. Run twice, the second run finds nothing.

Nothing here logs or prints a number: rows are named by id, keys by key id.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dibao_common.crypto import (
    FORMAT_VERSION,
    DecryptionFailedError,
    FieldCipher,
    MalformedCiphertextError,
    UnknownKeyIdError,
    key_id_of,
)
from dibao_common.db import make_engine
from dibao_common.logged_errors import describe_exception
from dibao_common.observability import get_logger
from dibao_intake.adapters.pii import account_context, id_number_context
from dibao_intake.jobs import batch_size, run_job
from dibao_intake.settings import IntakeSettings

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 500
APPLICATION_NAME = "dibao-intake-rekey"
"""The job's connections' ``application_name``: an operator sees it in pg_stat_activity."""


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    """A column of ciphertexts and what each one is bound to, given its row's id."""

    table: str
    column: str
    context: Callable[[uuid.UUID], str]

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


ENCRYPTED_COLUMNS = (
    EncryptedColumn("person", "id_number_cipher", partial(id_number_context, "person")),
    EncryptedColumn("bank_account", "number_cipher", account_context),
    EncryptedColumn("staff_member", "id_number_cipher", partial(id_number_context, "staff_member")),
    EncryptedColumn(
        "staff_relative", "id_number_cipher", partial(id_number_context, "staff_relative")
    ),
)
"""Every ``_cipher`` column of intake (a unit test holds this to the models)."""


def key_id_sql(column: str) -> str:
    """The key id in a stored value's header, read without the key (ADR 0005); NULL for
    bytes that are not a ciphertext of this format, which the job then refuses."""
    return (
        f"CASE WHEN length({column}) > 2 AND get_byte({column}, 0) = {FORMAT_VERSION}"
        f" THEN convert_from(substring({column} from 3 for get_byte({column}, 1)), 'SQL_ASCII')"
        " END"
    )


class RekeyError(Exception):
    """The job cannot go on: a key is missing from the ring, or a value does not decrypt."""


@dataclass(frozen=True, slots=True)
class StoredValue:
    row_id: uuid.UUID
    blob: bytes


@dataclass(frozen=True, slots=True)
class ColumnResult:
    column: EncryptedColumn
    rekeyed: int
    skipped: int
    """Rows whose value changed between the read and the write: left as the writer left it."""
    left: int
    """Values still under another key once the column was done."""


@dataclass
class RekeyReport:
    active_key_id: str
    census: dict[str, dict[str | None, int]]
    """Per column, how many values each key id holds, before the run (None: no header)."""
    results: list[ColumnResult] = field(default_factory=list)

    def to_reencrypt(self) -> int:
        return sum(
            n
            for by_key in self.census.values()
            for key_id, n in by_key.items()
            if key_id != self.active_key_id
        )


def unknown_keys(census: dict[str, dict[str | None, int]], ring: set[str]) -> list[str]:
    """A sentence for each column holding values the ring cannot decrypt."""
    problems = []
    for name, by_key in census.items():
        for key_id, n in by_key.items():
            if key_id is None:
                problems.append(f"{name}: {n} value(s) without a readable key id header")
            elif key_id not in ring:
                problems.append(
                    f"{name}: {n} value(s) under key {key_id!r}, which is not in DIBAO_PII_KEYS"
                )
    return problems


def reencrypt_batch(
    cipher: FieldCipher, column: EncryptedColumn, rows: Sequence[StoredValue]
) -> list[bytes]:
    """Each row's value under the active key, or ``RekeyError`` naming the first row that
    cannot be: the batch is then written not at all."""
    out = []
    for row in rows:
        where = f"{column.name} row {row.row_id}"
        try:
            out.append(cipher.reencrypt(row.blob, context=column.context(row.row_id)))
        except UnknownKeyIdError as exc:
            raise RekeyError(
                f"{where}: written under key {exc.key_id!r}, which is not in DIBAO_PII_KEYS"
            ) from None
        except DecryptionFailedError:
            raise RekeyError(
                f"{where}: does not decrypt under key {key_id_of(row.blob)!r} with its row's"
                " context (altered, or copied from another row)"
            ) from None
        except MalformedCiphertextError as exc:
            raise RekeyError(f"{where}: not a ciphertext of this format ({exc})") from None
    return out


async def take_census(
    conn: AsyncConnection, columns: Sequence[EncryptedColumn] = ENCRYPTED_COLUMNS
) -> dict[str, dict[str | None, int]]:
    census: dict[str, dict[str | None, int]] = {}
    for c in columns:
        rows = await conn.execute(
            text(
                f"SELECT {key_id_sql(c.column)} AS key_id, count(*) AS n FROM {c.table}"  # noqa: S608 - fixed names
                f" WHERE {c.column} IS NOT NULL GROUP BY 1 ORDER BY 1"
            )
        )
        census[c.name] = {row.key_id: int(row.n) for row in rows}
    return census


async def read_batch(
    conn: AsyncConnection,
    column: EncryptedColumn,
    active_key_id: str,
    after: uuid.UUID | None,
    limit: int,
) -> list[StoredValue]:
    """The next ``limit`` values under another key than the active one, after ``after``."""
    c = column.column
    rows = await conn.execute(
        text(
            f"SELECT id, {c} AS blob FROM {column.table}"  # noqa: S608 - fixed names
            f" WHERE {c} IS NOT NULL AND ({key_id_sql(c)}) IS DISTINCT FROM :active"
            + ("" if after is None else " AND id > :after")
            + " ORDER BY id LIMIT :limit"
        ),
        {"active": active_key_id, "limit": limit} | ({} if after is None else {"after": after}),
    )
    return [StoredValue(row.id, bytes(row.blob)) for row in rows]


async def write_batch(
    conn: AsyncConnection,
    column: EncryptedColumn,
    rows: Sequence[StoredValue],
    new: Sequence[bytes],
) -> int:
    """Write the new values over the rows that still hold what was read; how many did."""
    t, c = column.table, column.column
    written = await conn.execute(
        text(
            f"UPDATE {t} SET {c} = v.new"  # noqa: S608 - fixed names
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:old AS bytea[]), CAST(:new AS bytea[]))"
            " AS v(id, old, new)"
            f" WHERE {t}.id = v.id AND {t}.{c} = v.old RETURNING {t}.id"
        ),
        {"ids": [r.row_id for r in rows], "old": [r.blob for r in rows], "new": list(new)},
    )
    return len(written.all())


async def count_left(conn: AsyncConnection, column: EncryptedColumn, active_key_id: str) -> int:
    c = column.column
    left = await conn.execute(
        text(
            f"SELECT count(*) FROM {column.table}"  # noqa: S608 - fixed names
            f" WHERE {c} IS NOT NULL AND ({key_id_sql(c)}) IS DISTINCT FROM :active"
        ),
        {"active": active_key_id},
    )
    return int(left.scalar_one())


async def rekey_column(
    engine: AsyncEngine, cipher: FieldCipher, column: EncryptedColumn, batch_size: int
) -> ColumnResult:
    rekeyed = skipped = 0
    after: uuid.UUID | None = None
    while True:
        async with engine.begin() as conn:
            rows = await read_batch(conn, column, cipher.active_key_id, after, batch_size)
            if not rows:
                break
            written = await write_batch(conn, column, rows, reencrypt_batch(cipher, column, rows))
        rekeyed += written
        skipped += len(rows) - written
        after = rows[-1].row_id
        if len(rows) < batch_size:
            break
    async with engine.connect() as conn:
        left = await count_left(conn, column, cipher.active_key_id)
    result = ColumnResult(column, rekeyed, skipped, left)
    log.info(
        "column re-encrypted",
        table=column.table,
        column=column.column,
        rekeyed=rekeyed,
        skipped=skipped,
        left=left,
        active_key_id=cipher.active_key_id,
    )
    return result


async def rekey(
    engine: AsyncEngine,
    cipher: FieldCipher,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    ring: set[str],
    columns: Sequence[EncryptedColumn] = ENCRYPTED_COLUMNS,
) -> RekeyReport:
    """Count the values per key, then (unless ``dry_run``) re-encrypt, column by column,
    those under another key than the active one. ``RekeyError`` before any write when a
    key is missing from ``ring``; on a value that does not decrypt, after the batches
    before its own."""
    async with engine.connect() as conn:
        census = await take_census(conn, columns)
    report = RekeyReport(cipher.active_key_id, census)
    for name, by_key in census.items():
        log.info("census", column=name, values_by_key_id={str(k): n for k, n in by_key.items()})
    problems = unknown_keys(census, ring)
    if problems:
        raise RekeyError("; ".join(problems))
    if dry_run:
        return report
    for column in columns:
        report.results.append(await rekey_column(engine, cipher, column, batch_size))
    return report


def describe(report: RekeyReport, *, dry_run: bool) -> list[str]:
    """The lines the command prints: counts, never values."""
    lines = [f"active key: {report.active_key_id}"]
    for name, by_key in report.census.items():
        counts = ", ".join(
            f"{k if k is not None else '(no header)'} {n}" for k, n in by_key.items()
        )
        lines.append(f"{name}: {counts or 'no values'}")
    if dry_run:
        lines.append(f"dry run: {report.to_reencrypt()} value(s) to re-encrypt, nothing written")
        return lines
    for r in report.results:
        lines.append(
            f"{r.column.name}: {r.rekeyed} re-encrypted, {r.skipped} skipped (changed"
            f" meanwhile), {r.left} left under other keys"
        )
    rekeyed = sum(r.rekeyed for r in report.results)
    left = sum(r.left for r in report.results)
    if rekeyed == 0 and left == 0:
        lines.append(f"nothing to re-encrypt: every value is under key {report.active_key_id}")
    elif left == 0:
        lines.append(
            f"done: {rekeyed} re-encrypted, every value is under key {report.active_key_id}"
        )
    else:
        lines.append(
            f"{rekeyed} re-encrypted; {left} still under other keys (rewritten meanwhile by a"
            " process on an old key?): run it again before removing a key from the ring"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_intake.rekey", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only count the values per column and key id"
    )
    return parser.parse_args(argv)


async def run(
    args: argparse.Namespace, settings: IntakeSettings, out: IO[str], err: IO[str]
) -> int:
    """What the command does with ``settings``: 0 when done, 1 when it could not be."""
    # One connection: the job does one thing at a time.
    engine = make_engine(settings.database_url, pool_size=1, application_name=APPLICATION_NAME)
    try:
        report = await rekey(
            engine,
            FieldCipher.from_settings(settings.pii),
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            ring=set(settings.pii.key_ring()),
        )
    except RekeyError as exc:
        log.error("re-encryption stopped", reason=describe_exception(exc))
        err.write(f"re-encryption stopped: {exc}\n")
        return 1
    finally:
        await engine.dispose()
    out.write("\n".join(describe(report, dry_run=args.dry_run)) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_job("rekey", run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
