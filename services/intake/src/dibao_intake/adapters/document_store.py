"""Where document contents live: content-addressed by sha256, behind a small protocol.

The filesystem store is the default; an object store (S3, MinIO, OSS) implements the same
methods. Contents are written before the database row commits, so a committed row
always has its content; an upload whose transaction then fails leaves an unreferenced file
(an orphan), never a row without content. ``verify_documents --sweep`` removes orphans
older than a minimum age (by ``StoredContent.written_at``), each under the advisory lock
that an upload of the same content holds from before its put until its row commits
(docs/adr/0015).

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from dibao_common.observability import get_logger

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")
_CHUNK = 1024 * 1024

log = get_logger(__name__)

ContentState = Literal["ok", "missing", "damaged"]

PutOutcome = Literal["written", "kept", "repaired"]
"""What a put did: wrote content the store did not hold, kept a sound copy it held, or
replaced a copy that did not hash to its name."""


@dataclass(frozen=True, slots=True)
class StoredContent:
    """A content the store holds, as its listing tells it."""

    sha256: str
    written_at: datetime
    """When it was last written (a file's mtime, an object's Last-Modified), timezone-aware.
    A put that keeps a sound copy does not change it."""


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


def _modified(mtime: float) -> datetime:
    return datetime.fromtimestamp(mtime, UTC)


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
    async def put(self, sha256: str, content: bytes) -> PutOutcome:
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

    def contents(self) -> AsyncIterator[StoredContent]:
        """Every content the store holds, with when it was written, in no particular order
        (an object store's listing gives both)."""
        ...

    async def written_at(self, sha256: str) -> datetime | None:
        """When the content was last written; None when the store holds none under the
        name (an object store: its metadata, without reading the content)."""
        ...

    async def delete(self, sha256: str) -> bool:
        """Remove the content; whether there was one to remove. Only for contents no row
        names, under their lock (``verify_documents --sweep``): the store cannot tell."""
        ...


class FilesystemDocumentStore:
    """Contents in ``<root>/<first two hex digits>/<sha256>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a lowercase hex sha256")
        return self.root / sha256[:2] / sha256

    async def put(self, sha256: str, content: bytes) -> PutOutcome:
        return await asyncio.to_thread(self._put, sha256, self._path(sha256), content)

    @classmethod
    def _put(cls, sha256: str, path: Path, content: bytes) -> PutOutcome:
        state = _file_state(path, sha256)
        if state == "ok":
            # Put by another upload just now, perhaps: its names may not be synced yet,
            # and this upload's row may commit before that one's.
            _sync_directory(path.parent)
            _sync_directory(path.parent.parent)
            return "kept"
        if state == "damaged":
            # Rows name this content already (a put never writes other content under a
            # name): they have their evidence back once the rename below is synced.
            log.warning("document content repaired", sha256=sha256, size_bytes=len(content))
        cls._write(path, content)
        return "repaired" if state == "damaged" else "written"

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

    async def written_at(self, sha256: str) -> datetime | None:
        return await asyncio.to_thread(self._written_at, self._path(sha256))

    @staticmethod
    def _written_at(path: Path) -> datetime | None:
        try:
            return _modified(path.stat().st_mtime)
        except FileNotFoundError:
            return None

    async def delete(self, sha256: str) -> bool:
        return await asyncio.to_thread(self._delete, self._path(sha256))

    @staticmethod
    def _delete(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _sync_directory(path.parent)
        return True

    async def contents(self) -> AsyncIterator[StoredContent]:
        """The ``<root>/<2 hex>/<sha256>`` files whose directory is their name's prefix, a
        directory at a time; temporary files of uploads (``.upload-*``) and anything else
        an operator left there are not contents."""
        directories = await asyncio.to_thread(self._prefix_directories)
        for directory in directories:
            for content in await asyncio.to_thread(self._contents_in, directory):
                yield content

    def _prefix_directories(self) -> list[Path]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [Path(e.path) for e in entries if _PREFIX.fullmatch(e.name) and e.is_dir()]

    @staticmethod
    def _contents_in(directory: Path) -> list[StoredContent]:
        prefix = directory.name
        found = []
        with os.scandir(directory) as entries:
            for e in entries:
                if not (_SHA256.fullmatch(e.name) and e.name.startswith(prefix)):
                    continue
                try:
                    if e.is_file():
                        found.append(StoredContent(e.name, _modified(e.stat().st_mtime)))
                except FileNotFoundError:
                    continue  # deleted since the directory was read
        return sorted(found, key=lambda c: c.sha256)
