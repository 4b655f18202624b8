"""Every service's migrations build exactly the schema its code describes.

What the code describes is the service's own models and the kit's tables its migrations
create (the outbox and inbox of ``dibao_common.messaging.schema``, the idempotency records
and webhook ids of ``dibao_common.http_schema``): ``dibao_<service>.models.migrated_schema``
(``dibao_common.db.schema``), the metadata the service's ``migrations/env.py`` gives
Alembic as its target. The kit tables are in the comparison too, so a kit table that drifts
from the kit's description of it (a later migration of one service altering or dropping
it) fails here like a model does.

A fresh database is migrated to head and compared twice with that metadata:

- by Alembic's ``compare_metadata`` (tables, columns and their types and nullability,
  indexes and unique constraints by their columns, foreign keys);
- by PostgreSQL's catalog against a second fresh database the metadata itself built
  (``create_all``): every column's type, nullability, default and identity, every
  constraint's and index's definition as PostgreSQL prints it. ``compare_metadata`` does
  not look at a partial index's predicate, an index expression, a check constraint or a
  server default; PostgreSQL normalises both sides the same way, so no text is compared
  as written.

Alembic's autogenerate, run as ``alembic revision --autogenerate`` runs it (``alembic
check``: the service's own ``env.py``), proposes nothing on a database at head; and the
target ``env.py`` hands Alembic is ``migrated_schema``'s, table for table and index for
index as PostgreSQL's DDL prints them.

Triggers (constraint triggers too), functions, views, roles and grants are the migrations'
alone (the models do not describe them) and are not compared.

A change to a kit table's definition in place is caught too: the migrations build the
kit's tables from frozen steps (``dibao_common.kit_migrations.v0001``, ...), not from the
kit's current definitions, so an edited definition without a new step and a migration in
every service carrying the table leaves the migrated database behind the metadata.
"""

from __future__ import annotations

import asyncio
import importlib
import io
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from dibao_common.db import make_engine
from dibao_common.testing.catalog import catalog_query, schema_catalog
from dibao_common.testing.stack import SERVICES, TestStack

pytestmark = pytest.mark.postgres


def schema_of(service: str) -> MetaData:
    """What the service's code says its migrations build: its models and the kit tables
    its migrations leave, in one metadata (``migrated_schema``, also Alembic's target)."""
    schema: MetaData = importlib.import_module(f"dibao_{service}.models").migrated_schema()
    return schema


def env_target(stack: TestStack, service: str) -> MetaData:
    """The ``target_metadata`` the service's ``migrations/env.py`` configures Alembic with,
    read by running that ``env.py`` as Alembic does, offline (no database) and with no
    migration to run."""
    config = stack.alembic_config(service)
    script = ScriptDirectory.from_config(config)
    with EnvironmentContext(
        config, script, fn=lambda _rev, _context: [], as_sql=True, output_buffer=io.StringIO()
    ) as env:
        script.run_env()
        target: MetaData = env.get_context().opts["target_metadata"]
    return target


def _ddl(schema: MetaData) -> list[str]:
    """Every table and index of ``schema`` as PostgreSQL's DDL for it (constraints, their
    names, defaults, partial predicates and expressions included)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
    ddl = []
    for table in sorted(schema.tables.values(), key=lambda t: t.name):
        ddl.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        ddl.extend(
            str(CreateIndex(index).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: i.name or "")
        )
    return ddl


def _fresh(stack: TestStack, kind: str) -> TestStack:
    """Databases of their own for this test, apart from the session's migrated ones."""
    return TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_{kind}")


def _differences(connection: Connection, schema: MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, schema))


# Constraint triggers are the migrations' alone (no model describes them).
_CATALOG = catalog_query(trigger_constraints=False)


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_build_what_the_models_and_kit_describe(
    stack: TestStack, service: str
) -> None:
    schema = schema_of(service)
    migrated, built = _fresh(stack, "drift_migrated"), _fresh(stack, "drift_built")
    await migrated.recreate_database(service)
    await built.recreate_database(service)
    try:
        await migrated.migrate(service, "head")
        engine = make_engine(built.database_url(service), pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(schema.create_all)
        finally:
            await engine.dispose()
        engine = make_engine(migrated.database_url(service), pool_size=1)
        try:
            async with engine.connect() as conn:
                assert await conn.run_sync(_differences, schema) == []
        finally:
            await engine.dispose()
        from_migrations = await schema_catalog(migrated.dsn(service), _CATALOG)
        from_metadata = await schema_catalog(built.dsn(service), _CATALOG)
        assert {
            "only the migrations have": sorted(from_migrations - from_metadata),
            "only the models and kit describe": sorted(from_metadata - from_migrations),
        } == {"only the migrations have": [], "only the models and kit describe": []}
    finally:
        await migrated.drop_database(service)
        await built.drop_database(service)


@pytest.mark.parametrize("service", SERVICES)
async def test_autogenerate_proposes_nothing_on_a_migrated_database(
    stack: TestStack, service: str
) -> None:
    """``alembic check``: what ``alembic revision --autogenerate`` would write, through the
    service's own ``env.py`` and its ``target_metadata``, is empty at head. A target that
    left out a kit table would propose dropping it."""
    migrated = _fresh(stack, "drift_autogenerate")
    await migrated.recreate_database(service)
    try:
        await migrated.migrate(service, "head")
        await asyncio.to_thread(command.check, migrated.alembic_config(service))
    finally:
        await migrated.drop_database(service)


@pytest.mark.parametrize("service", SERVICES)
def test_env_py_gives_alembic_the_schema_compared_here(stack: TestStack, service: str) -> None:
    """What the tests above compare is what ``alembic revision --autogenerate`` compares."""
    assert _ddl(env_target(stack, service)) == _ddl(schema_of(service))
