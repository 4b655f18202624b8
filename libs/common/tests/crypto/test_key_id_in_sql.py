"""The key id of a stored ciphertext can be read in SQL, as the rotation runbook says."""

from __future__ import annotations

import asyncpg
import pytest

from dibao_common.crypto import FieldCipher
from dibao_common.testing.stack import TestStack

pytestmark = pytest.mark.postgres

KEY_ID_SQL = (
    "SELECT convert_from(substring($1::bytea from 3 for get_byte($1::bytea, 1)), 'SQL_ASCII')"
)


async def test_key_id_is_readable_without_the_key(stack: TestStack) -> None:
    cipher = FieldCipher({"k1": bytes(32), "key-2026.q4": bytes(range(32))}, "key-2026.q4")
    blob = cipher.encrypt("62010219800101123X", context="intake.person.id_number:x")
    conn = await asyncpg.connect(stack.pg_admin_dsn)
    try:
        assert await conn.fetchval(KEY_ID_SQL, blob) == "key-2026.q4"
    finally:
        await conn.close()
