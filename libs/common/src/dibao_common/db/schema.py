"""The schema a service's migrations build, as one metadata: its models and the kit's tables.

Every service's ``0001`` migration creates the kit's tables (the outbox and inbox of
``dibao_common.messaging.schema``, the idempotency records and webhook ids of
``dibao_common.http_schema``), but a service's models describe only its own tables.
Alembic compares a database with one metadata, ``target_metadata``: given the models
alone, ``alembic revision --autogenerate`` proposes dropping every kit table and never
sees one drift. :func:`service_schema` is that one metadata. Each service builds its own
with it (``dibao_<service>.models.migrated_schema``), which its ``migrations/env.py``
hands to Alembic and ``tests/infra/test_schema_drift.py`` compares a migrated database
with.

Not re-exported by ``dibao_common.db``: the kit's table modules import
``dibao_common.db.engine``, so the package importing this module would be a cycle.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import MetaData, Table

from dibao_common.db.engine import service_metadata
from dibao_common.http_schema import idempotency_record, webhook_message
from dibao_common.messaging.schema import inbox_message, outbox_message

KIT_TABLES: tuple[Table, ...] = (outbox_message, inbox_message, idempotency_record, webhook_message)
"""What every service's ``0001`` migration creates."""


def service_schema(models: MetaData, *, dropped: Collection[str] = ()) -> MetaData:
    """A new metadata holding copies of ``models``' tables and of the kit's tables, but
    those named in ``dropped`` (kit tables a service's later migrations drop).

    ``models`` is left as it is: ``create_all`` on it, as some tests do, still builds the
    service's own tables alone. A name in ``dropped`` that is no kit table, or a model
    table named as a kit table, is refused: either would leave the schema quietly other
    than the migrations build.
    """
    kit = {table.name: table for table in KIT_TABLES}
    unknown = set(dropped) - kit.keys()
    if unknown:
        raise ValueError(f"not kit tables, so not dropped: {sorted(unknown)}")
    clash = kit.keys() & {table.name for table in models.tables.values()}
    if clash:
        raise ValueError(f"model tables named as the kit's: {sorted(clash)}")
    schema = service_metadata()
    for table in models.tables.values():
        table.to_metadata(schema)
    for name, table in kit.items():
        if name not in dropped:
            table.to_metadata(schema)
    return schema
