"""The migrations that build the kit's tables keep doing what they did.

Every service's ``0001`` creates the kit's tables, and audit's ``0006`` drops the inbox and
its downgrade brings it back. They call the frozen steps of ``dibao_common.kit_migrations``,
never the kit's current definitions (``dibao_common.messaging.schema``,
``dibao_common.http_schema``, and ``dibao_common.db.schema`` which holds both): a migration
built from those would follow an edit to them on fresh databases only, while every deployed
database kept the old table, and ``test_schema_drift``, both of whose sides would move,
could not see it. Until 2 Dec 2026 every ``0001`` did just that.
"""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest

from dibao_common.testing.stack import REPO_ROOT, SERVICES, TestStack

CURRENT_DEFINITIONS = (
    "dibao_common.messaging.schema",
    "dibao_common.http_schema",
    "dibao_common.db.schema",
)
KIT_MIGRATIONS = REPO_ROOT / "libs" / "common" / "src" / "dibao_common" / "kit_migrations"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, and every ``module.name`` it imports from one."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _migrations() -> list[Path]:
    return sorted(
        path
        for service in SERVICES
        for path in (REPO_ROOT / "services" / service / "migrations" / "versions").glob("*.py")
    )


@pytest.mark.parametrize("path", _migrations(), ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_no_migration_builds_from_the_kits_current_definitions(path: Path) -> None:
    used = {
        name
        for name in _imports(path)
        if any(name == d or name.startswith(f"{d}.") for d in CURRENT_DEFINITIONS)
    }
    assert used == set()


def test_the_frozen_steps_use_nothing_of_the_kit() -> None:
    """Literal DDL: a kit constant or naming convention changed later cannot reach them."""
    steps = sorted(KIT_MIGRATIONS.glob("v*.py"))
    assert steps, "no frozen step found"
    for path in steps:
        assert {n for n in _imports(path) if n.startswith("dibao")} == set(), path.name


# The relations of the public schema but Alembic's own, described by PostgreSQL, with
# each column's position and the grants to the runtime role (0006's downgrade grants).
_CATALOG = """
WITH rel AS (
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
)
SELECT 'column ' || rel.relname || '.' || a.attname || ' #' || a.attnum || ' '
       || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE a.attidentity WHEN 'a' THEN ' IDENTITY ALWAYS' WHEN 'd' THEN ' IDENTITY' ELSE '' END
FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM rel JOIN pg_index i ON i.indrelid = rel.oid
UNION ALL
SELECT 'grant ' || table_name || ' ' || privilege_type
FROM information_schema.role_table_grants
WHERE table_schema = 'public' AND grantee = current_database() || '_app'
"""


async def _catalog(stack: TestStack, service: str) -> set[str]:
    conn = await asyncpg.connect(stack.dsn(service))
    try:
        return {row[0] for row in await conn.fetch(_CATALOG)}
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_audit_0006_downgrade_brings_back_the_inbox_0005_had(stack: TestStack) -> None:
    fresh = TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_kit_0006")
    await fresh.recreate_database("audit")
    name = fresh.database_name("audit")
    try:
        await fresh.migrate("audit", "0005")
        at_0005 = await _catalog(fresh, "audit")
        assert any(line.startswith("column inbox_message.") for line in at_0005)
        await fresh.migrate("audit", "0006")
        assert not any("inbox_message" in line for line in await _catalog(fresh, "audit"))
        await fresh.downgrade("audit", "0005")
        assert await _catalog(fresh, "audit") == at_0005
    finally:
        conn = await asyncpg.connect(stack.pg_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{name}_app"')
        finally:
            await conn.close()
