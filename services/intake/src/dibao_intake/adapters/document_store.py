"""Where document contents live: content-addressed by sha256, behind a small protocol.

The filesystem store is the default; an object store (S3, MinIO, OSS) implements the same
methods. Contents are written before the database row commits, so a committed row
always has its content; an upload whose transaction then fails leaves an unreferenced file
that a sweep may remove, never a row without content.

A content is its name: what ``get`` returns hashes to the sha256 asked for, or it raises
(a file altered on disk, cut short or gone is not the evidence that was uploaded). A ``put``
of content whose file exists checks that file and replaces it when it does not hash to its
name, so handing a document in again repairs it. ``python -m dibao_intake.verify_documents``
checks the whole store against the ``document`` rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal, Protocol

from dibao_common.observability import get_logger

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")
_CHUNK = 1024 * 1024

log = get_logger(__name__)

ContentState = Literal["ok", "missing", "damaged"]


class ContentUnavailableError(Exception):
    """The store does not hold the content of ``sha256`` as it was put."""

    reason: Literal["missing", "damaged", "unreadable"]

    def __init__(self, sha256: str) -> None:
        super().__init__(f"{sha256}: {self.reason}")
        self.sha256 = sha256


class ContentMissingError(ContentUnavailableError):
    """No content under the name."""

    reason = "missing"


class ContentDamagedError(ContentUnavailableError):
    """Content under the name that does not hash to it (altered, truncated)."""

    reason = "damaged"


class ContentUnreadableError(ContentUnavailableError):
    """Content under the name that cannot be read (permissions, an I/O error): not known
    to be what was put, so not served either (verify_documents lists it as unreadable)."""

    reason = "unreadable"


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


def _file_state(path: Path, sha256: str) -> ContentState:
    """Whether the file at ``path`` hashes to ``sha256``, read a chunk at a time."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return "missing"
    return "ok" if digest.hexdigest() == sha256 else "damaged"


class DocumentStore(Protocol):
    async def put(self, sha256: str, content: bytes) -> None:
        """Store ``content``, which hashes to ``sha256``, under it. A second put of the same
        content leaves a sound copy as it is and replaces a damaged one."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The content, checked against its name: ``ContentMissingError`` when absent,
        ``ContentDamagedError`` when what is stored does not hash to ``sha256``,
        ``ContentUnreadableError`` when it cannot be read."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def check(self, sha256: str) -> ContentState:
        """Whether the content is there and hashes to its name (read, not kept in memory)."""
        ...

    def names(self) -> AsyncIterator[str]:
        """Every name the store holds content under, in no particular order."""
        ...


class FilesystemDocumentStore:
    """Contents in ``<root>/<first two hex digits>/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a lowercase hex sha256")
        return self.root / sha256[:2] / sha256

    async def put(self, sha256: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, sha256, self._path(sha256), content)

    @classmethod
    def _put(cls, sha256: str, path: Path, content: bytes) -> None:
        state = _file_state(path, sha256)
        if state == "ok":
            # Put by another upload just now, perhaps: its names may not be synced yet,
            # and this upload's row may commit before that one's.
            _sync_directory(path.parent)
            _sync_directory(path.parent.parent)
            return
        if state == "damaged":
            # Rows name this content already (a put never writes other content under a
            # name): they have their evidence back once the rename below is synced.
            log.warning("document content repaired", sha256=sha256, size_bytes=len(content))
        cls._write(path, content)

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
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
        return await asyncio.to_thread(self._get, sha256, self._path(sha256))

    @staticmethod
    def _get(sha256: str, path: Path) -> bytes:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise ContentMissingError(sha256) from None
        except OSError:
            raise ContentUnreadableError(sha256) from None
        if hashlib.sha256(content).hexdigest() != sha256:
            raise ContentDamagedError(sha256)
        return content

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self._path(sha256).exists)

    async def check(self, sha256: str) -> ContentState:
        return await asyncio.to_thread(_file_state, self._path(sha256), sha256)

    async def names(self) -> AsyncIterator[str]:
        """The names of ``<root>/<2 hex>/<sha256>`` files whose directory is their name's
        prefix, a directory at a time; temporary files of uploads (``.upload-*``) and
        anything else an operator left there are not contents."""
        directories = await asyncio.to_thread(self._prefix_directories)
        for directory in directories:
            for name in await asyncio.to_thread(self._names_in, directory):
                yield name

    def _prefix_directories(self) -> list[Path]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [Path(e.path) for e in entries if _PREFIX.fullmatch(e.name) and e.is_dir()]

    @staticmethod
    def _names_in(directory: Path) -> list[str]:
        prefix = directory.name
        with os.scandir(directory) as entries:
            return sorted(
                e.name
                for e in entries
                if _SHA256.fullmatch(e.name) and e.name.startswith(prefix) and e.is_file()
            )
