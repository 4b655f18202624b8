"""Every region an entry names: ``log_entry.regions``, made from the record like the others.

A search's access record (``PersonalDataAccessed``) names in ``regions`` (field 17, since
1 Dec 2026) each region it could show rows of; ``region`` (field 2) stays its filter or
the caller's first region. Queries filtered by ``region`` alone, so an auditor of a
search's second region did not find it. The new column holds the other regions the record
names (``projection.columns_of``: a function of the hashed record, checked on read and
by the verifier like every query column), NULL when it names none.

Existing entries are filled from their payloads, here, with the service's own derivation
(only entries of a type whose message has ``regions`` can name any: they are read by
``ce_type``'s index, 5000 at a time). ``log_entry`` refuses UPDATE for everyone
(migration 0002), so the refusing trigger is disabled for this transaction's UPDATEs
only: the owner's ALTER TABLE holds the table's exclusive lock until the commit, so no
other session runs while it is off, and a failure rolls back both.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dibao_audit.entry import MalformedEntryError, parse_header_block
from dibao_audit.projection import columns_of, key_reader
from dibao_common.messaging.envelope import EventRegistry

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 5000


def _types_with_regions(registry: EventRegistry) -> list[str]:
    out = []
    for ce_type in registry.types():
        cls = registry.message_class(ce_type)
        if cls is not None and "regions" in cls.DESCRIPTOR.fields_by_name:
            out.append(ce_type)
    return sorted(out)


def upgrade() -> None:
    op.execute("ALTER TABLE log_entry ADD COLUMN regions text[]")
    registry = EventRegistry.default()
    types = _types_with_regions(registry)
    if not types:
        return
    reader = key_reader(registry)
    bind = op.get_bind()
    select = sa.text(
        """
        SELECT leaf_index, topic, partition, "offset", header_block, payload FROM log_entry
        WHERE ce_type = ANY(:types) AND leaf_index > :after ORDER BY leaf_index LIMIT :n
        """
    )
    update = sa.text(
        """
        UPDATE log_entry e SET regions = ARRAY(SELECT jsonb_array_elements_text(v.value))
        FROM jsonb_each(CAST(:made AS jsonb)) AS v WHERE e.leaf_index = v.key::bigint
        """
    )
    op.execute("ALTER TABLE log_entry DISABLE TRIGGER log_entry_append_only")
    after = -1
    while True:
        rows = bind.execute(select, {"types": types, "after": after, "n": _CHUNK}).all()
        if not rows:
            break
        made: dict[str, list[str]] = {}
        for index, topic, partition, offset, block, payload in rows:
            try:
                headers = parse_header_block(bytes(block))
            except MalformedEntryError:
                continue  # its columns are none (``projection.contradictions``)
            regions = columns_of(topic, partition, offset, headers, bytes(payload), reader).regions
            if regions is not None:
                made[str(index)] = list(regions)
        if made:
            bind.execute(update, {"made": json.dumps(made)})
        after = rows[-1][0]
    op.execute("ALTER TABLE log_entry ENABLE TRIGGER log_entry_append_only")


def downgrade() -> None:
    op.execute("ALTER TABLE log_entry DROP COLUMN regions")
