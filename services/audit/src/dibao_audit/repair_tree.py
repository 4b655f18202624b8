"""Rebuild the stored tree (``merkle_node``) from the entries: ``python -m
dibao_audit.repair_tree``.

A damaged ``merkle_node`` (a subtree changed or deleted behind the log's back: only a
superuser gets past the triggers) blocks the log: the appender refuses to sign a tree
that does not extend its last checkpoint, and a missing subtree stops appends. The nodes
are a function of the entries, so this tool recomputes every leaf from ``log_entry``
(the canonical bytes, as an export does), builds every complete subtree, and checks the
result against every signed checkpoint (signatures verified with the pinned key): the
root of the rebuilt tree at each checkpoint's size must be the signed root. Only then,
under the appender's lock, in one transaction, does it write the difference: nodes that
differ are rewritten, missing ones inserted, ones beyond the log deleted. If any root
differs, the entries themselves were changed (the tree is not what is damaged): it writes
nothing and exits 1 with the checkpoints that disagree (``verify_cli --database-url``
names the entries).

Writing needs a superuser login (it turns the append-only triggers off for its own
transaction with ``session_replication_role = replica``); ``--dry-run`` only reads and
says what it would write. The report (JSON, stdout) says what was found and done.
Entries appended after the latest checkpoint are under no signed root yet: their nodes
are rebuilt from their content as it stands, and the report counts them.

Exit codes: 0 the tree is intact or was repaired (or, with ``--dry-run``, can be);
1 refused (a root differs, entries missing, a checkpoint that does not verify);
2 could not run (reason on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg

from dibao_audit.checkpoint import CheckpointError, KeyTrust, VerifierKey
from dibao_audit.dbcheck import asyncpg_dsn
from dibao_audit.entry import canonical_from_parts
from dibao_audit.merkle import fold_subtrees, leaf_hash, perfect_subtrees
from dibao_audit.repository import APPEND_LOCK
from dibao_audit.verifier import tree_levels

_ENTRIES_SQL = """
    SELECT leaf_index, topic, partition, "offset", record_key, header_block, payload
    FROM log_entry WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index
"""
_NODES_SQL = """
    SELECT index, hash FROM merkle_node
    WHERE level = $1 AND index >= $2 AND index < $3 ORDER BY index
"""
# Nodes that are no complete subtree of the log: (index + 1) * 2^level > size.
_BEYOND_SQL = """
    SELECT level, index FROM merkle_node
    WHERE (index + 1)::numeric * power(2::numeric, level) > $1
"""


@dataclass(slots=True)
class RepairReport:
    """What the repair found and did (printed as JSON)."""

    log_size: int = 0
    checkpoints_checked: int = 0
    latest_checkpoint: int | None = None
    unsigned_entries: int = 0
    nodes: int = 0
    rewritten: list[list[int]] = field(default_factory=list)
    inserted: list[list[int]] = field(default_factory=list)
    deleted: list[list[int]] = field(default_factory=list)
    written: bool = False
    refused: list[str] = field(default_factory=list)

    @property
    def damage(self) -> int:
        return len(self.rewritten) + len(self.inserted) + len(self.deleted)

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("rewritten", "inserted", "deleted"):
            out[f"{name}_count"] = len(out[name])
            out[name] = out[name][:50]  # (level, index) of the first ones
        out["ok"] = not self.refused
        return out


async def _leaves(conn: asyncpg.Connection, size: int, chunk: int, report: RepairReport) -> bytes:
    """Every leaf recomputed from the entries' content (empty if an index is missing)."""
    leaves = bytearray()
    expected = 0
    for lo in range(0, size, chunk):
        for index, topic, partition, offset, key, block, payload in await conn.fetch(
            _ENTRIES_SQL, lo, lo + chunk
        ):
            if index != expected:
                report.refused.append(f"entry {expected} is missing: the log cannot be rebuilt")
                return b""
            expected += 1
            leaves += leaf_hash(
                canonical_from_parts(
                    topic,
                    partition,
                    offset,
                    None if key is None else bytes(key),
                    bytes(block),
                    bytes(payload),
                )
            )
    return bytes(leaves)


def _root(levels: list[bytes], size: int) -> bytes:
    return fold_subtrees([levels[lv][32 * i : 32 * i + 32] for lv, i in perfect_subtrees(0, size)])


async def _check_roots(
    conn: asyncpg.Connection, key: VerifierKey, levels: list[bytes], report: RepairReport
) -> None:
    """Every stored checkpoint must verify (by the pinned key, or one a stored hand-over
    introduced from it, docs/adr/0018) and be the rebuilt tree's root at its size."""
    rows = await conn.fetch("SELECT tree_size, signed_note FROM checkpoint ORDER BY tree_size")
    trust = KeyTrust.of(key)
    report.refused.extend(trust.follow(row[1] for row in rows))
    for size, note in rows:
        try:
            head = trust.verify(note)
        except CheckpointError as exc:
            report.refused.append(f"checkpoint {size} does not verify: {exc}")
            continue
        if head.tree_size != size or head.tree_size > report.log_size:
            report.refused.append(f"checkpoint {size} is not of the log's tree")
            continue
        report.checkpoints_checked += 1
        report.latest_checkpoint = size
        if size and _root(levels, size) != head.root_hash:
            report.refused.append(
                f"the entries do not give the signed root of checkpoint {size}: entries "
                "were changed, not only the tree (verify_cli --database-url names them)"
            )


async def _differences(
    conn: asyncpg.Connection, levels: list[bytes], chunk: int, report: RepairReport
) -> list[tuple[int, int, bytes]]:
    """The nodes to write: ``(level, index, hash)`` of the rebuilt tree that the table lacks
    or holds otherwise (noted on the report), and those beyond the log (noted)."""
    out: list[tuple[int, int, bytes]] = []
    for level, hashes in enumerate(levels):
        count = len(hashes) // 32
        report.nodes += count
        for lo in range(0, count, chunk):
            rows = await conn.fetch(_NODES_SQL, level, lo, lo + chunk)
            stored: dict[int, bytes] = {int(r[0]): bytes(r[1]) for r in rows}
            for index in range(lo, min(count, lo + chunk)):
                rebuilt = hashes[32 * index : 32 * index + 32]
                found = stored.get(index)
                if found is None:
                    report.inserted.append([level, index])
                    out.append((level, index, rebuilt))
                elif found != rebuilt:
                    report.rewritten.append([level, index])
                    out.append((level, index, rebuilt))
    for level, index in await conn.fetch(_BEYOND_SQL, report.log_size):
        report.deleted.append([int(level), int(index)])
    return out


async def repair(
    dsn: str, key: VerifierKey, *, dry_run: bool = False, chunk: int = 10_000
) -> RepairReport:
    """Rebuild ``merkle_node`` of the audit database at ``dsn`` (see the module)."""
    report = RepairReport()
    conn = await asyncpg.connect(asyncpg_dsn(dsn))
    try:
        async with conn.transaction():
            # Appends wait until the repair commits; the size read is the one repaired.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
            size = await conn.fetchval("SELECT coalesce(max(leaf_index) + 1, 0) FROM log_entry")
            report.log_size = int(size)
            leaves = await _leaves(conn, report.log_size, chunk, report)
            if report.refused:
                return report
            levels = tree_levels(leaves) if leaves else []
            await _check_roots(conn, key, levels, report)
            report.unsigned_entries = report.log_size - (report.latest_checkpoint or 0)
            if report.refused:
                return report
            writes = await _differences(conn, levels, chunk, report)
            if dry_run or not report.damage:
                return report
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.executemany(
                "DELETE FROM merkle_node WHERE level = $1 AND index = $2",
                [tuple(node) for node in report.deleted],
            )
            await conn.executemany(
                "INSERT INTO merkle_node (level, index, hash) VALUES ($1, $2, $3) "
                "ON CONFLICT (level, index) DO UPDATE SET hash = EXCLUDED.hash",
                writes,
            )
            report.written = True
    finally:
        await conn.close()
    return report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_audit.repair_tree", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url", required=True, help="the audit database, as a superuser to write"
    )
    parser.add_argument("--vkey", help="the log's verifier key (C2SP vkey)")
    parser.add_argument("--vkey-file", type=Path, help="a file holding the verifier key")
    parser.add_argument(
        "--dry-run", action="store_true", help="read and report only; write nothing"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Repair as asked; the JSON report goes to ``out``. 0 done or nothing to do, 1 refused."""
    if args.vkey:
        key = VerifierKey.parse(args.vkey)
    elif args.vkey_file:
        key = VerifierKey.parse(args.vkey_file.read_text())
    else:
        raise ValueError("the rebuilt tree is checked against the pinned key: give --vkey")
    report = asyncio.run(repair(args.database_url, key, dry_run=args.dry_run))
    out.write(json.dumps(report.summary(), indent=2) + "\n")
    return 1 if report.refused else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return run(args, sys.stdout)
    except (CheckpointError, ValueError, OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"repair could not run: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
