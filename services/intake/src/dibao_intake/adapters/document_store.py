"""Where document contents live: content-addressed by sha256, behind a small protocol.

The filesystem store is the default; an object store (S3, MinIO, OSS) implements the same
three methods. Contents are written before the database row commits, so a committed row
always has its content; an upload whose transaction then fails leaves an unreferenced file
that a sweep may remove, never a row without content.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(directory: Path) -> None:
    """``directory`` and any missing parents, each new name synced in its parent."""
    created = []
    while not directory.is_dir():
        created.append(directory)
        directory = directory.parent
    for new in reversed(created):
        new.mkdir(exist_ok=True)  # exist_ok: another upload may have made it just now
        _sync_directory(new.parent)


class DocumentStore(Protocol):
    async def put(self, sha256: str, content: bytes) -> None:
        """Store ``content`` under its hash (a second put of the same content is a no-op)."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The content; ``FileNotFoundError`` when absent."""
        ...

    async def exists(self, sha256: str) -> bool: ...


class FilesystemDocumentStore:
    """Contents in ``<root>/<first two hex digits>/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a lowercase hex sha256")
        return self.root / sha256[:2] / sha256

    async def put(self, sha256: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(sha256), content)

    @staticmethod
    def _put(path: Path, content: bytes) -> None:
        if path.exists():
            # Put by another upload just now, perhaps: its names may not be synced yet,
            # and this upload's row may commit before that one's.
            _sync_directory(path.parent)
            _sync_directory(path.parent.parent)
            return
        _make_directories(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename is atomic, not durable until its directory is synced: the row that
        # commits after this returns must not outlive its content in a crash.
        _sync_directory(path.parent)

    async def get(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self._path(sha256).read_bytes)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self._path(sha256).exists)
