"""The Merkle core against RFC 9162 known answers and a brute-force reference."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from dibao_audit import merkle
from dibao_audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_cover,
    root_from_range,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of the certificate-transparency reference implementations.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


class Reference:
    """RFC 9162 section 2.1 written as literally as possible, memoised on leaf ranges."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    @functools.cache  # noqa: B019 - one short-lived object per test
    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return hashlib.sha256(b"\x00" + self.leaves[lo]).digest()
        k = 1
        while k * 2 < n:
            k *= 2
        return hashlib.sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi)).digest()

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def _leaves(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


class _Stored:
    """What the log keeps: every complete subtree an append creates."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = Frontier()
        self.roots = [EMPTY_ROOT]
        for data in leaves:
            for level, index, h in self.frontier.append(leaf_hash(data)):
                self.nodes[(level, index)] = h
            self.roots.append(self.frontier.root())

    def subtree(self, key: tuple[int, int]) -> bytes:
        return self.nodes[key]


def test_empty_tree_is_the_hash_of_nothing() -> None:
    assert root_of([]).hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    assert root_of([leaf_hash(x) for x in CT_LEAVES[:size]]).hex() == CT_ROOTS[size - 1]


def test_known_inclusion_and_consistency_proofs() -> None:
    stored = _Stored(CT_LEAVES)
    path = hash_ranges(inclusion_ranges(0, 8), stored.subtree)
    assert [p.hex()[:16] for p in path] == [
        "96a296d224f285c6",
        "5f083f0a1a33ca07",
        "6b47aaf29ee3c2af",
    ]
    proof = hash_ranges(consistency_ranges(6, 8), stored.subtree)
    assert [p.hex()[:16] for p in proof] == [
        "0ebc5d3437fbe2db",
        "ca854ea128ed050b",
        "d37ee418976dd957",
    ]
    proof = hash_ranges(consistency_ranges(2, 5), stored.subtree)
    assert [p.hex()[:16] for p in proof] == ["5f083f0a1a33ca07", "bc1a0643b12e4d2d"]


def test_every_inclusion_proof_up_to_300_matches_the_reference() -> None:
    leaves = _leaves(300)
    ref = Reference(leaves)
    stored = _Stored(leaves)
    for size in range(1, 301):
        root = stored.roots[size]
        assert root == ref.mth(0, size)
        for index in range(size):
            proof = hash_ranges(inclusion_ranges(index, size), stored.subtree)
            assert proof == ref.path(index, 0, size), (index, size)
            verify_inclusion(index, size, leaf_hash(leaves[index]), proof, root)


def test_every_consistency_proof_up_to_150_matches_the_reference() -> None:
    leaves = _leaves(150)
    ref = Reference(leaves)
    stored = _Stored(leaves)
    for new in range(1, 151):
        for old in range(1, new + 1):
            proof = hash_ranges(consistency_ranges(old, new), stored.subtree)
            expected = ref.subproof(old, 0, new, True) if old < new else []
            assert proof == expected, (old, new)
            verify_consistency(old, new, stored.roots[old], stored.roots[new], proof)


def test_a_wrong_proof_is_refused() -> None:
    leaves = _leaves(37)
    stored = _Stored(leaves)
    root = stored.roots[37]
    proof = hash_ranges(inclusion_ranges(20, 37), stored.subtree)
    with pytest.raises(ProofError):
        verify_inclusion(20, 37, leaf_hash(b"forged"), proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(21, 37, leaf_hash(leaves[20]), proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(20, 37, leaf_hash(leaves[20]), proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(20, 37, leaf_hash(leaves[20]), [*proof, root], root)
    cons = hash_ranges(consistency_ranges(13, 37), stored.subtree)
    with pytest.raises(ProofError):
        verify_consistency(13, 37, stored.roots[12], root, cons)
    with pytest.raises(ProofError):
        verify_consistency(13, 37, stored.roots[13], stored.roots[36], cons)
    with pytest.raises(ProofError):
        verify_consistency(13, 37, stored.roots[13], root, [])
    bad = list(cons)
    bad[1] = node_hash(bad[1], bad[1])
    with pytest.raises(ProofError):
        verify_consistency(13, 37, stored.roots[13], root, bad)


def test_a_negative_index_or_size_is_refused() -> None:
    """Indices and sizes are unsigned in RFC 9162: in Python, -1 shifted right stays -1,
    so without the check leaf -1 of a tree of 2^k verified as its last leaf."""
    leaves = _leaves(8)
    stored = _Stored(leaves)
    for size in (1, 2, 4, 8):
        proof = hash_ranges(inclusion_ranges(size - 1, size), stored.subtree)
        verify_inclusion(size - 1, size, leaf_hash(leaves[size - 1]), proof, stored.roots[size])
        with pytest.raises(ProofError):
            verify_inclusion(-1, size, leaf_hash(leaves[size - 1]), proof, stored.roots[size])
    with pytest.raises(ProofError):
        verify_consistency(-1, -1, stored.roots[8], stored.roots[8], [])


def test_push_is_append_without_the_created_subtrees() -> None:
    a, b = Frontier(), Frontier()
    for data in _leaves(300):
        a.append(leaf_hash(data))
        b.push(leaf_hash(data))
        assert (a.size, a.hashes) == (b.size, b.hashes)


def test_extend_is_append_of_each_leaf() -> None:
    a, b = Frontier(), Frontier()
    leaves = [leaf_hash(data) for data in _leaves(300)]
    for lo, hi in ((0, 1), (1, 7), (7, 64), (64, 65), (65, 300)):
        created = [node for leaf in leaves[lo:hi] for node in a.append(leaf)]
        assert b.extend(leaves[lo:hi]) == created
        assert (a.size, a.hashes) == (b.size, b.hashes)
    assert b.extend([]) == []


def test_restored_frontier_continues_exactly() -> None:
    leaves = _leaves(77)
    stored = _Stored(leaves[:50])
    resumed = Frontier.restore(50, stored.subtree)
    assert resumed.root() == stored.roots[50]
    for data in leaves[50:]:
        for level, index, h in resumed.append(leaf_hash(data)):
            stored.nodes[(level, index)] = h
    assert resumed.root() == root_of([leaf_hash(x) for x in leaves])


@pytest.mark.parametrize(
    ("start", "end", "size"),
    [(0, 0, 9), (0, 9, 9), (3, 7, 9), (8, 9, 9), (5, 6, 200), (64, 130, 257)],
)
def test_a_slice_with_its_cover_rebuilds_the_root(start: int, end: int, size: int) -> None:
    leaves = [leaf_hash(x) for x in _leaves(size)]
    stored = _Stored(_leaves(size))
    cover_ranges = range_cover(start, end, size)
    cover = dict(zip(cover_ranges, hash_ranges(cover_ranges, stored.subtree), strict=True))
    assert root_from_range(start, leaves[start:end], size, cover) == stored.roots[size]
    if end > start:
        tampered = list(leaves[start:end])
        tampered[0] = leaf_hash(b"tampered")
        assert root_from_range(start, tampered, size, cover) != stored.roots[size]


def test_ranges_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_ranges(5, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_ranges(6, 5)
    assert merkle.perfect_subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]


def test_a_tree_of_size_zero_has_only_the_empty_root() -> None:
    """A "size 0" head with any other root is not the log's: consistency from it used to be
    accepted whatever the root (an empty proof), so a history that began with a forged
    empty checkpoint passed the chain check of a sliced export."""
    stored = _Stored(_leaves(5))
    verify_consistency(0, 5, EMPTY_ROOT, stored.roots[5], [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    for new in (0, 5):
        with pytest.raises(ProofError, match="empty tree"):
            verify_consistency(
                0, new, b"\x11" * 32, b"\x11" * 32 if new == 0 else stored.roots[5], []
            )


def _refused(verify: Callable[..., None], *args: Any) -> bool:
    try:
        verify(*args)
    except ProofError:
        return True
    return False


def _mutations(proof: list[bytes], extra: bytes) -> list[tuple[str, list[bytes]]]:
    """Every way a path can be tampered with by one step: an element dropped, two adjacent
    swapped, one flipped in a bit, one added in front or at the end, the order reversed."""
    out: list[tuple[str, list[bytes]]] = []
    for i in range(len(proof)):
        out.append((f"drop {i}", proof[:i] + proof[i + 1 :]))
        flipped = bytes([proof[i][0] ^ 1]) + proof[i][1:]
        out.append((f"flip {i}", [*proof[:i], flipped, *proof[i + 1 :]]))
        if i + 1 < len(proof):
            out.append((f"swap {i}", [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]))
    out += [("prefix", [extra, *proof]), ("suffix", [*proof, extra])]
    if len(proof) > 1:
        out.append(("reversed", proof[::-1]))
    return out


def test_every_tampered_inclusion_proof_is_refused() -> None:
    """Truncated, extended, swapped or altered paths, a neighbour's index, and the leaf hash
    of the node domain (0x01) in place of the leaf's (0x00) are all refused."""
    leaves = _leaves(33)
    stored = _Stored(leaves)
    for size in range(1, 34):
        root = stored.roots[size]
        for index in range(size):
            leaf = leaf_hash(leaves[index])
            proof = hash_ranges(inclusion_ranges(index, size), stored.subtree)
            verify_inclusion(index, size, leaf, proof, root)
            for name, bad in _mutations(proof, root):
                assert _refused(verify_inclusion, index, size, leaf, bad, root), (name, index, size)
            for other in (index - 1, index + 1, index + size):
                if other != index:
                    with pytest.raises(ProofError):
                        verify_inclusion(other, size, leaf, proof, root)
            as_node = hashlib.sha256(b"\x01" + leaves[index]).digest()
            with pytest.raises(ProofError):
                verify_inclusion(index, size, as_node, proof, root)
    # Domain separation: the children of an inner node given as an entry's bytes do not
    # hash to that node, so a tree of 4 cannot pass for one of 2 whose leaf 0 is that
    # "entry" (leaves are hashed from bytes, 0x00 in front; nodes with 0x01).
    four = _Stored(_leaves(4))
    posing = four.nodes[(0, 0)] + four.nodes[(0, 1)]
    assert node_hash(four.nodes[(0, 0)], four.nodes[(0, 1)]) == four.nodes[(1, 0)]
    with pytest.raises(ProofError):
        verify_inclusion(0, 2, leaf_hash(posing), [four.nodes[(1, 1)]], four.roots[4])


def test_every_tampered_consistency_proof_is_refused() -> None:
    leaves = _leaves(24)
    stored = _Stored(leaves)
    for new in range(2, 25):
        for old in range(1, new):
            old_root, new_root = stored.roots[old], stored.roots[new]
            proof = hash_ranges(consistency_ranges(old, new), stored.subtree)
            verify_consistency(old, new, old_root, new_root, proof)
            for name, bad in _mutations(proof, new_root):
                assert _refused(verify_consistency, old, new, old_root, new_root, bad), (
                    name,
                    old,
                    new,
                )
            for a, b in ((old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1)):
                if 0 < a < b <= 24:
                    with pytest.raises(ProofError):
                        verify_consistency(a, b, stored.roots[a], stored.roots[b], proof)
            with pytest.raises(ProofError):
                verify_consistency(old, new, stored.roots[old - 1], new_root, proof)
            with pytest.raises(ProofError):
                verify_consistency(new, old, new_root, old_root, proof)
