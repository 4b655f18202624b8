"""The filesystem document store: content-addressed, atomic, idempotent."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dibao_intake.adapters.document_store import FilesystemDocumentStore


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
    with pytest.raises(FileNotFoundError):
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
