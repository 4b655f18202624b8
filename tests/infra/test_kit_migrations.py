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

import pytest

from dibao_common.testing.catalog import catalog_query, schema_catalog
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


# With each column's position and the grants to the runtime role (0006's downgrade grants).
_CATALOG = catalog_query(positions=True, grants=True)


@pytest.mark.postgres
async def test_audit_0006_downgrade_brings_back_the_inbox_0005_had(stack: TestStack) -> None:
    fresh = TestStack(stack.pg_admin_dsn, stack.kafka_bootstrap, f"{stack.db_prefix}_kit_0006")
    await fresh.recreate_database("audit")
    try:
        await fresh.migrate("audit", "0005")
        at_0005 = await schema_catalog(fresh.dsn("audit"), _CATALOG)
        assert any(line.startswith("column inbox_message.") for line in at_0005)
        await fresh.migrate("audit", "0006")
        assert not any(
            "inbox_message" in line for line in await schema_catalog(fresh.dsn("audit"), _CATALOG)
        )
        await fresh.downgrade("audit", "0005")
        assert await schema_catalog(fresh.dsn("audit"), _CATALOG) == at_0005
    finally:
        await fresh.drop_database("audit")
