"""Cursors of keyset-paginated lists: the last row's id, opaque to the client."""

from __future__ import annotations

import base64
import binascii
import uuid

from dibao_common.errors import InvalidCursor


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor from None
