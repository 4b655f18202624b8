"""RFC 9162 Merkle tree: hashes, proofs and their verification, as pure functions.

Storage-independent: proofs are described as leaf ranges whose hashes a caller fetches
(from the database's complete subtrees) or computes (from leaves), so the service and the
offline verifier share one definition of the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Range = tuple[int, int]
"""A half-open leaf range ``[start, end)``."""

Subtree = tuple[int, int]
"""A complete subtree ``(level, index)``: leaves ``[index << level, (index + 1) << level)``."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[0:n]) over already-hashed leaves, in O(n) time and O(log n) memory."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The complete subtrees, left to right, that tile ``[start, end)`` in an RFC 9162 tree.

    Valid for the ranges the tree's own recursion produces (``start`` aligned to a power of
    two at least as large as the range), which are all the ranges proofs refer to.
    """
    out: list[Subtree] = []
    pos = start
    while pos < end:
        level = (end - pos).bit_length() - 1
        # Alignment keeps the subtree inside the tree's shape.
        while pos & ((1 << level) - 1):
            level -= 1
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its tiling subtrees (left to right)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form the audit path of leaf ``index`` in a tree of ``size``.

    Ordered from the leaf upwards, as RFC 9162 section 2.1.3.1 PATH(m, D[n]) lists them.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    out: list[Range] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m = lo + k, m - k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Ranges of the consistency proof between two tree sizes (RFC 9162 section 2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[Range] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def range_cover(start: int, end: int, size: int) -> list[Range]:
    """Ranges outside ``[start, end)`` whose hashes let a verifier rebuild the root of ``size``.

    Used by exports of a slice of the log: with these hashes and the slice's leaves, the
    root of the covering checkpoint can be recomputed without the rest of the log.
    """
    if not 0 <= start <= end <= size:
        raise ValueError(f"range [{start}, {end}) is not within a tree of size {size}")
    out: list[Range] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= start or lo >= end:
            out.append((lo, hi))
        elif start <= lo and hi <= end:
            return
        else:
            k = _split(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    if size:
        walk(0, size)
    return out


def root_from_range(
    start: int, leaves: Sequence[bytes], size: int, cover: Mapping[Range, bytes]
) -> bytes:
    """Rebuild the root of ``size`` from the leaf hashes of ``[start, start+len)`` and ``cover``."""
    end = start + len(leaves)

    def mth(lo: int, hi: int) -> bytes:
        if hi <= start or lo >= end:
            return cover[(lo, hi)]
        if hi - lo == 1:
            return leaves[lo - start]
        k = _split(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    if size == 0:
        return EMPTY_ROOT
    if start == 0 and end == size:
        return root_of(leaves)
    return mth(0, size)


def subtree_hashes_needed(ranges: Iterable[Range]) -> set[Subtree]:
    """Every complete subtree a set of proof ranges is made of."""
    return {s for lo, hi in ranges for s in perfect_subtrees(lo, hi)}


def hash_ranges(ranges: Sequence[Range], subtree: Callable[[Subtree], bytes]) -> list[bytes]:
    """Hashes of ``ranges`` from a lookup of complete subtree hashes."""
    return [fold_subtrees([subtree(s) for s in perfect_subtrees(lo, hi)]) for lo, hi in ranges]


class ProofError(ValueError):
    """A proof does not verify."""


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2; raises ProofError when the proof is wrong."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2; raises ProofError when the proof is wrong."""
    if old_size < 0:
        raise ProofError("a tree size cannot be negative")
    if old_size > new_size:
        raise ProofError("the old tree is larger than the new one")
    if old_size == 0 and old_root != EMPTY_ROOT:
        # The empty tree has one root: any other "size 0" head is not the log's.
        raise ProofError("the root of the empty tree is the hash of nothing")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")


@dataclass(slots=True)
class Frontier:
    """The right edge of a growing tree: one complete subtree per set bit of its size.

    Appending a leaf returns the complete subtrees it completes (the leaf itself at level 0
    included), which is what the log persists so any proof is a few indexed lookups.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)
    """Hashes of the tiling subtrees, largest (leftmost) first."""

    @classmethod
    def restore(cls, size: int, subtree: Callable[[Subtree], bytes]) -> Frontier:
        """The frontier of a stored tree of ``size`` from its complete subtree hashes."""
        return cls(size, [subtree(s) for s in perfect_subtrees(0, size)])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; the new complete subtrees as ``(level, index, hash)``."""
        created = [(0, self.size, leaf)]
        carry, level, index = leaf, 0, self.size
        self.size += 1
        # Each trailing 1-bit of the old size is a same-level subtree to merge with.
        while index & 1:
            carry = node_hash(self.hashes.pop(), carry)
            level += 1
            index >>= 1
            created.append((level, index, carry))
        self.hashes.append(carry)
        return created

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """:meth:`append` of many leaves; every subtree they create, in creation order."""
        created: list[tuple[int, int, bytes]] = []
        add = created.append
        hashes = self.hashes
        pop, push = hashes.pop, hashes.append
        sha256 = hashlib.sha256
        size = self.size
        for leaf in leaves:
            add((0, size, leaf))
            carry, level, index = leaf, 0, size
            while index & 1:
                carry = sha256(b"\x01" + pop() + carry).digest()
                level += 1
                index >>= 1
                add((level, index, carry))
            push(carry)
            size += 1
        self.size = size
        return created

    def push(self, leaf: bytes) -> None:
        """:meth:`append` without the list of created subtrees (for verifiers)."""
        hashes = self.hashes
        index = self.size
        self.size = index + 1
        while index & 1:
            leaf = hashlib.sha256(b"\x01" + hashes.pop() + leaf).digest()
            index >>= 1
        hashes.append(leaf)

    def root(self) -> bytes:
        """The tree head for the current size."""
        return fold_subtrees(self.hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))
