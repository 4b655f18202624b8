"""The export's column check per entry, in-process (no database): CPU per entry.

``uv run --no-sync python -m bench.audit_export_check [--entries 20000] [--repeat 5]``

The entries are the audit benchmark's (``ApplicationSubmitted`` with CloudEvents headers,
each with a fresh ``ce_id``) as ``canonical_range`` gives them to ``service._made_columns``
(the check of every export line's stored columns against its record). Prints the CPU
time per entry of each pass; an older version is measured by putting its
``services/audit/src`` first on ``PYTHONPATH`` (``CanonicalRange`` without the block and
payload sizes is built without them).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import fields
from typing import Any

from uuid_utils.compat import uuid7

from bench.audit_log import HOUSEHOLDS, _events, _fresh_id
from dibao_audit import repository as repo
from dibao_audit import service
from dibao_audit.entry import RecordedEvent, canonical_from_parts
from dibao_audit.projection import Columns, key_reader, project
from dibao_common.messaging.envelope import EventRegistry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    registry = EventRegistry.default()
    households = [str(uuid7()) for _ in range(HOUSEHOLDS)]
    events = [
        RecordedEvent(e.topic, e.partition, k, e.key, _fresh_id(e), e.payload)
        for k, e in enumerate(_events(args.entries, households))
    ]
    rows = [project(e, registry) for e in events]
    parts: list[Any] = [
        list(range(len(rows))),
        [
            canonical_from_parts(r.topic, r.partition, r.offset, r.key, r.header_block, r.payload)
            for r in rows
        ],
        [r.leaf_hash for r in rows],
        [
            Columns(
                r.ce_id,
                r.ce_type,
                r.ce_time,
                r.household_id,
                r.application_id,
                r.case_id,
                r.region,
                r.actor,
                r.regions,
            )
            for r in rows
        ],
    ]
    if "block_sizes" in {f.name for f in fields(repo.CanonicalRange)}:
        parts += [[len(r.header_block) for r in rows], [len(r.payload) for r in rows]]
    chunk = repo.CanonicalRange(*parts)
    reader = key_reader(registry)
    made, differ = service._made_columns(chunk, reader)
    assert not differ  # every entry agrees with its record
    assert made == chunk.stored
    per_entry = []
    for _ in range(args.repeat):
        t0 = time.process_time()
        service._made_columns(chunk, reader)
        per_entry.append((time.process_time() - t0) / len(rows) * 1e6)
    print(
        f"{service.__file__}: {len(rows):,} entries, CPU per entry "
        f"{', '.join(f'{x:.2f}' for x in per_entry)} us (median {statistics.median(per_entry):.2f})"
    )


if __name__ == "__main__":
    main()
