"""The filesystem document store: content-addressed, atomic, idempotent."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from dibao_intake.adapters.document_store import (
    ContentDamagedError,
    ContentMissingError,
    ContentUnavailableError,
    FilesystemDocumentStore,
)


async def test_put_get_exists(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    content = b"%PDF-1.4 scan"
    digest = hashlib.sha256(content).hexdigest()
    assert not await store.exists(digest)
    await store.put(digest, content)
    await store.put(digest, content)  # same content again: nothing changes
    assert await store.exists(digest)
    assert await store.get(digest) == content
    assert (tmp_path / digest[:2] / digest).read_bytes() == content
    assert [p.name for p in (tmp_path / digest[:2]).iterdir()] == [digest]  # no temp files left


async def test_only_hashes_name_files(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        await store.get("../../etc/passwd")
    with pytest.raises(ContentMissingError):
        await store.get("0" * 64)


@pytest.mark.parametrize(
    "name", ["0" * 64 + "\n", "0" * 63 + "\n", "A" * 64, "0" * 65, "", "00/" + "0" * 61]
)
async def test_a_name_that_is_not_exactly_a_sha256_is_refused(tmp_path: Path, name: str) -> None:
    # ``$`` also matches before a final newline: the check must take the whole name.
    store = FilesystemDocumentStore(tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        await store.get(name)
    with pytest.raises(ValueError, match="sha256"):
        await store.exists(name)
    with pytest.raises(ValueError, match="sha256"):
        await store.put(name, b"x")
    assert os.listdir(tmp_path) == []


async def test_a_put_is_durable_when_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row commits once ``put`` returns: the content and its name must survive a crash
    from then on. ``os.replace`` is atomic but its new name (and a new directory's own
    name) lives in the directory, which must be synced too; otherwise a crash after the
    commit can leave a row whose content is gone. The real fsync runs; the test only
    notes which files and directories it was given."""
    synced: list[Path] = []
    real_fsync = os.fsync

    def noting_fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "fsync", noting_fsync)
    root = tmp_path / "store"  # made by the first put, as in a fresh deployment
    store = FilesystemDocumentStore(root)
    content = b"%PDF-1.4 durable"
    digest = hashlib.sha256(content).hexdigest()
    await store.put(digest, content)
    # The content (under its temporary name), its name in its directory, and the names
    # of the directories the put made in theirs.
    files = [p for p in synced if p.parent == root / digest[:2] and p.name.startswith(".")]
    assert len(files) == 1
    assert sorted(p for p in synced if p not in files) == [tmp_path, root, root / digest[:2]]
    synced.clear()
    # The same content again, as when two uploads of it run at once: the first may not
    # have synced its names yet, and this one's row may commit first. It waits for them.
    await store.put(digest, content)
    assert synced == [root / digest[:2], root]
    synced.clear()
    # Another content in the same directory: only the directory is synced after it.
    other = next(
        c
        for i in range(100_000)
        if hashlib.sha256(c := b"%%PDF-1.4 other %d" % i).hexdigest()[:2] == digest[:2]
    )
    await store.put(hashlib.sha256(other).hexdigest(), other)
    assert synced[1:] == [root / digest[:2]]
    assert await store.get(digest) == content
    assert await store.get(hashlib.sha256(other).hexdigest()) == other


def _stored(tmp_path: Path, content: bytes) -> tuple[str, Path]:
    digest = hashlib.sha256(content).hexdigest()
    return digest, tmp_path / digest[:2] / digest


@pytest.mark.parametrize(
    "damaged",
    [b"%PDF-1.4 scam", b"%PDF-1.4 sca", b"%PDF-1.4 scan\n", b""],
    ids=["altered", "truncated", "extended", "emptied"],
)
async def test_content_that_does_not_hash_to_its_name_is_not_returned(
    tmp_path: Path, damaged: bytes
) -> None:
    store = FilesystemDocumentStore(tmp_path)
    content = b"%PDF-1.4 scan"
    digest, path = _stored(tmp_path, content)
    await store.put(digest, content)
    path.write_bytes(damaged)
    with pytest.raises(ContentDamagedError) as raised:
        await store.get(digest)
    assert raised.value.sha256 == digest
    assert raised.value.reason == "damaged"
    assert await store.check(digest) == "damaged"


async def test_content_that_is_gone_is_missing(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    with pytest.raises(ContentMissingError) as raised:
        await store.get("0" * 64)
    assert (raised.value.sha256, raised.value.reason) == ("0" * 64, "missing")
    assert isinstance(raised.value, ContentUnavailableError)
    assert await store.check("0" * 64) == "missing"


async def test_a_put_over_a_damaged_file_replaces_it(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    content = b"%PDF-1.4 evidence"
    digest, path = _stored(tmp_path, content)
    await store.put(digest, content)
    assert await store.check(digest) == "ok"
    path.write_bytes(b"%PDF-1.4 evidenc")
    inode = path.stat().st_ino
    with capture_logs() as logs:
        await store.put(digest, content)
    assert path.read_bytes() == content
    assert path.stat().st_ino != inode  # a new file renamed over it, not written in place
    assert [(e["event"], e["sha256"], e["log_level"]) for e in logs] == [
        ("document content repaired", digest, "warning")
    ]
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temp files left
    repaired = path.stat().st_ino
    with capture_logs() as logs:
        await store.put(digest, content)  # sound now: left as it is
    assert logs == []
    assert path.stat().st_ino == repaired  # not written again


async def test_the_stored_names_are_listed_and_nothing_else(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    contents = [b"%PDF-1.4 one", b"%PDF-1.4 two", b"%PDF-1.4 three"]
    for content in contents:
        await store.put(hashlib.sha256(content).hexdigest(), content)
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / ".upload-left-by-a-crash").write_bytes(b"x")
    (tmp_path / "ab" / ("cd" + "0" * 62)).write_bytes(b"x")  # in the wrong directory
    (tmp_path / "notes.txt").write_text("an operator's")
    listed = [content.sha256 async for content in store.contents()]
    assert sorted(listed) == sorted(hashlib.sha256(c).hexdigest() for c in contents)
    assert [c async for c in FilesystemDocumentStore(tmp_path / "none").contents()] == []


async def test_contents_are_listed_with_when_they_were_written(tmp_path: Path) -> None:
    """What the sweep of orphans judges their age by: the file's mtime, which a put that
    keeps a sound copy leaves, and a repair renews."""
    store = FilesystemDocumentStore(tmp_path)
    content = b"%PDF-1.4 dated"
    digest, path = _stored(tmp_path, content)
    assert await store.written_at(digest) is None
    assert await store.put(digest, content) == "written"
    written = datetime.now(UTC) - timedelta(hours=3)
    os.utime(path, (written.timestamp(), written.timestamp()))
    assert await store.put(digest, content) == "kept"
    assert [(c.sha256, c.written_at) async for c in store.contents()] == [(digest, written)]
    assert await store.written_at(digest) == written
    path.write_bytes(b"%PDF-1.4 dater")
    assert await store.put(digest, content) == "repaired"
    renewed = await store.written_at(digest)
    assert renewed is not None
    assert renewed > written + timedelta(hours=2)


async def test_delete_removes_the_content_alone(tmp_path: Path) -> None:
    store = FilesystemDocumentStore(tmp_path)
    kept, gone = b"%PDF-1.4 kept", b"%PDF-1.4 gone"
    for content in (kept, gone):
        await store.put(hashlib.sha256(content).hexdigest(), content)
    digest = hashlib.sha256(gone).hexdigest()
    assert await store.delete(digest) is True
    assert await store.delete(digest) is False  # nothing left to delete
    assert await store.check(digest) == "missing"
    assert await store.written_at(digest) is None
    assert [c.sha256 async for c in store.contents()] == [hashlib.sha256(kept).hexdigest()]
    with pytest.raises(ValueError, match="sha256"):
        await store.delete("../" + digest[3:])
