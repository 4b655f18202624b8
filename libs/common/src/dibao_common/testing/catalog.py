"""A database's schema as PostgreSQL describes it, for tests comparing two schemas.

Each relation of the public schema but Alembic's own, as a set of lines: every column
(type, nullability, default, identity, generated), every constraint and every index as
``pg_get_*def`` prints them. PostgreSQL normalises both sides the same way, so two
databases compare equal when their schemas are, whatever SQL text built them.
"""

from __future__ import annotations

import asyncpg

_RELATIONS = """
WITH rel AS (
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
)
"""
_COLUMNS = """
SELECT 'column ' || rel.relname || '.' || a.attname || {position} ' '
       || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE a.attidentity WHEN 'a' THEN ' IDENTITY ALWAYS' WHEN 'd' THEN ' IDENTITY' ELSE '' END
       || CASE WHEN a.attgenerated <> '' THEN ' GENERATED' ELSE '' END
FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
"""
_CONSTRAINTS = """
SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid {triggers}
"""
_INDEXES = """
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM rel JOIN pg_index i ON i.indrelid = rel.oid
"""
_GRANTS = """
SELECT 'grant ' || table_name || ' ' || privilege_type
FROM information_schema.role_table_grants
WHERE table_schema = 'public' AND grantee = current_database() || '_app'
"""


def catalog_query(
    *, positions: bool = False, trigger_constraints: bool = True, grants: bool = False
) -> str:
    """The catalog's statement: with each column's ``positions``; without constraint
    triggers unless ``trigger_constraints`` (a migration's, which no model describes);
    with the grants to the runtime role ``<database>_app`` when ``grants``."""
    parts = [
        _COLUMNS.format(position="' #' || a.attnum ||" if positions else ""),
        _CONSTRAINTS.format(triggers="" if trigger_constraints else "AND con.contype <> 't'"),
        _INDEXES,
        *([_GRANTS] if grants else []),
    ]
    return _RELATIONS + "UNION ALL".join(parts)


async def schema_catalog(dsn: str, query: str) -> set[str]:
    """The lines ``query`` (:func:`catalog_query`) gives for the database at ``dsn``."""
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0] for row in await conn.fetch(query)}
    finally:
        await conn.close()
