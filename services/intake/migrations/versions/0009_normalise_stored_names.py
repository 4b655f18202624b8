"""Names stored before 5b2ca35 are brought to their one spelling.

Since 5b2ca35 a name is normalised once at the API boundary (``domain.names``: NFKC, every
separator U+00B7 MIDDLE DOT without white space around it, white space stripped and runs
one space, none between two Chinese characters, invisible characters dropped). Names
stored before kept the spelling typed (``买买提・艾力``, ``王　芳``), which is shown, copied
into events and compared as it is (``same_name`` brings only the recorded side to the one
spelling when comparing). This rewrites every stored name column to its one spelling:
``person.name``, ``staff_member.name``, ``staff_relative.name`` and
``bank_account.holder_name`` (superseded accounts included). A bank's name
(``bank_account.bank_name``) is not a person's name and stays as typed. Idempotent answers
kept in ``idempotency_record`` and messages already in the outbox are what was answered
and published, and stay as they were.

The normalisation is frozen here, a copy of ``domain/names.py`` as it is at this revision
(after ab9add9 and b4990a2), not imported: the application's function will change, and
what this migration does must not change with it (a later change of the rule is a later
migration). A name already in its spelling is not rewritten (the UPDATE names only rows
whose spelling differs, and only while they still hold the name read), so running it
again rewrites nothing. A name of nothing but separators and white space (which the API
refuses since 5b2ca35) has no spelling: it is left as it is and its table and row id are
logged (logger ``dibao_intake.migrations``, WARNING); the migration does not fail.

Bounded batches: each table is read by primary key, ``BATCH`` rows at a time, and each
batch's changed names are written with one UPDATE committed on its own (an autocommit
block: Alembic's transaction for this revision is committed before it, and a new one
begun after). A person's row is what household changes lock FOR UPDATE and submissions
lock FOR SHARE; one transaction over the whole table would hold every rewritten row's
lock until the end, and a live request touching one of them would wait that long. Here
each lock is held for one batch's statement. A run stopped half way leaves some batches
written, which is harmless (each is a name's one spelling) and a run again finishes.
An UPDATE that finds a row changed since it was read (a clerk's correction in between)
leaves it: the correction came through the API, so it is already in its spelling.

Downgrade does nothing: the spellings typed are not kept anywhere, and they were never
wanted (every spelling is the same name; the API has stored only the one since 5b2ca35).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("dibao_intake.migrations")

BATCH = 1000
"""Rows read, and at most rewritten, per statement."""

NAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("person", "name"),
    ("staff_member", "name"),
    ("staff_relative", "name"),
    ("bank_account", "holder_name"),
)
"""Every stored column holding a person's name (each table's key is ``id``, a uuid)."""

# --- Frozen copy of dibao_intake/domain/names.py at this revision. Never edit. ---------

NAME_DOT = "\u00b7"
DOTS = "\u00b7\u0387\u119e\u16eb\u2022\u2027\u2219\u22c5\u2981\u2e31\u30fb\u318d\ua78f\uff65"
FULL_STOPS = ".\u2024\u2025\u2026\u3002\ufe12\ufe19\ufe30\ufe52\uff0e\uff61"
INVISIBLE = "\u00ad\u200b\u2060\ufeff"
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS = re.escape(WHITE_SPACE)
_NOT_ASCII = rf"[^\x00-\x7f{_WS}{re.escape(NAME_DOT)}]"
_DOT_RUN = re.compile(
    rf"[{_WS}{re.escape(NAME_DOT)}]*{re.escape(NAME_DOT)}[{_WS}{re.escape(NAME_DOT)}]*"
)
_STOP_RUN = re.compile(
    rf"(?<={_NOT_ASCII})[{_WS}.{re.escape(NAME_DOT)}]*\.[{_WS}.{re.escape(NAME_DOT)}]*(?={_NOT_ASCII})"
)
_SPACE_RUN = re.compile(rf"[{_WS}]+")
_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_HAN_GAP = re.compile(rf"(?<=[{_HAN}]) (?=[{_HAN}])")
_TO_DOT = str.maketrans(
    dict.fromkeys(DOTS, NAME_DOT)
    | dict.fromkeys(INVISIBLE, None)
    | dict.fromkeys("\u3002\uff61", ".")
)


def normalise_name(name: str) -> str | None:
    """``name`` in its one spelling, or None when nothing but white space and separators
    is left (``domain.names.normalise_name`` raises there)."""
    text = unicodedata.normalize("NFKC", name).translate(_TO_DOT)
    text = _STOP_RUN.sub(NAME_DOT, text)
    text = _DOT_RUN.sub(NAME_DOT, text)
    text = _SPACE_RUN.sub(" ", text).strip(" ")
    text = _HAN_GAP.sub("", text)
    if not text.strip(NAME_DOT + ". "):
        return None
    return text


# --- End of the frozen copy. ------------------------------------------------------------


def _statements(table: str, column: str) -> tuple[sa.TextClause, sa.TextClause]:
    """The read of a batch and the write of its changed names (fixed names: NAME_COLUMNS)."""
    read = sa.text(
        f"SELECT id, {column} AS name FROM {table}"  # noqa: S608 - fixed names
        " WHERE CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)"
        " ORDER BY id LIMIT :batch"
    )
    write = sa.text(
        f"UPDATE {table} AS t SET {column} = v.new"  # noqa: S608 - fixed names
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:old AS text[]), CAST(:new AS text[]))"
        " AS v(id, old, new)"
        f" WHERE t.id = v.id AND t.{column} = v.old"
    )
    return read, write


def normalise_column(connection: sa.Connection, table: str, column: str) -> tuple[int, int]:
    """Rewrite ``table.column`` batch by batch; (rows rewritten, rows left unspellable)."""
    read, write = _statements(table, column)
    after: uuid.UUID | None = None
    rewritten = unspellable = 0
    while True:
        rows = connection.execute(read, {"after": after, "batch": BATCH}).all()
        if not rows:
            return rewritten, unspellable
        ids: list[uuid.UUID] = []
        old: list[str] = []
        new: list[str] = []
        for row_id, name in rows:
            spelling = normalise_name(name)
            if spelling is None:
                unspellable += 1
                log.warning("%s %s: %s holds no name, left as it is", table, row_id, column)
            elif spelling != name:
                ids.append(row_id)
                old.append(name)
                new.append(spelling)
        if ids:
            rewritten += connection.execute(write, {"ids": ids, "old": old, "new": new}).rowcount
        after = rows[-1][0]


def upgrade() -> None:
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        # alembic_env's lock_timeout was the transaction's (SET LOCAL): here the session's.
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        try:
            for table, column in NAME_COLUMNS:
                rewritten, unspellable = normalise_column(connection, table, column)
                log.info(
                    "%s.%s: %d names rewritten, %d left holding no name",
                    table,
                    column,
                    rewritten,
                    unspellable,
                )
        finally:
            connection.exec_driver_sql("RESET lock_timeout")


def downgrade() -> None:
    """Nothing: a data migration whose old values are kept nowhere. The spellings typed
    before 5b2ca35 cannot be told from the rows, and were never wanted (every spelling is
    the same name), so the schema at 0008 takes the rows as they are."""
