"""RFC 9162 Merkle tree hashing and proof construction. Pure: no I/O.

Invariants (RFC 9162 §2.1):

* ``leaf_hash(d) = SHA-256(0x00 ‖ d)``, ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``.
* The tree over ``n > 1`` leaves splits at ``k``, the largest power of two *smaller* than ``n``.
* Every subtree the RFC algorithms ask for decomposes, left to right, into *perfect*
  subtrees of strictly decreasing size. A perfect subtree of ``2**level`` leaves starting at
  leaf ``index * 2**level`` is called node ``(level, index)``; level 0 are the leaf hashes.

Storage keeps the hash of every completed perfect subtree, so any root or proof is assembled
from ``O(log n)`` stored nodes that the caller reads in one batch through a ``NodeReader``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree: leaves ``[index << level, (index + 1) << level)``."""

NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
"""Returns the stored hash of each requested perfect subtree (missing ids may be omitted)."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf (RFC 9162 §2.1.1: ``SHA-256(0x00 ‖ data)``)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node (RFC 9162 §2.1.1: ``SHA-256(0x01 ‖ left ‖ right)``)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Compute MTH over ``leaf_hashes`` directly from the RFC definition (reference, O(n))."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


def range_nodes(start: int, end: int) -> list[NodeId]:
    """Decompose the RFC subtree over leaves ``[start, end)`` into perfect subtrees.

    Args:
        start: First leaf; a multiple of the largest power of two not above ``end - start``
            (true of every subtree the RFC algorithms visit, and of ``start == 0``).
        end: One past the last leaf; ``end > start``.

    Returns:
        Node ids left to right, sizes strictly decreasing.
    """
    out: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect-subtree hashes of one ``range_nodes`` decomposition into MTH."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the subtree ranges whose hashes form PATH(index, D[0:size]), leaf first.

    Implements RFC 9162 §2.1.3.1 iteratively.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} not in tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the subtree ranges whose hashes form PROOF(old_size, D[0:new_size]).

    Implements RFC 9162 §2.1.4.1 (SUBPROOF) iteratively; empty when the sizes are equal or
    ``old_size == 0``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"bad consistency sizes {old_size} -> {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                ranges.append((start, end))
            break
        k = split_point(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    ranges.reverse()
    return ranges


def _assemble(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    plans = [range_nodes(a, b) for a, b in ranges]
    wanted = sorted({nid for plan in plans for nid in plan})
    got = read(wanted)
    missing = [nid for nid in wanted if nid not in got]
    if missing:
        raise LookupError(f"node store lacks {len(missing)} node(s), first {missing[0]}")
    return [fold_range([got[nid] for nid in plan]) for plan in plans]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """Build the RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Args:
        index: Leaf index, ``0 <= index < size``.
        size: Tree size.
        read: Batch reader of stored perfect-subtree hashes (called once).

    Returns:
        Proof hashes, leaf side first.

    Raises:
        ValueError: index out of range.
        LookupError: the reader lacks a needed node.
    """
    return _assemble(inclusion_ranges(index, size), read)


def consistency_proof(old_size: int, new_size: int, read: NodeReader) -> list[bytes]:
    """Build the RFC 9162 consistency proof between two tree sizes.

    Raises:
        ValueError: ``not 0 <= old_size <= new_size``.
        LookupError: the reader lacks a needed node.
    """
    return _assemble(consistency_ranges(old_size, new_size), read)


def root(size: int, read: NodeReader) -> bytes:
    """Compute the root of the first ``size`` leaves from ``O(log size)`` stored nodes."""
    if size == 0:
        return EMPTY_ROOT
    return _assemble([(0, size)], read)[0]


class Frontier:
    """The compact range ``[0, size)``: one hash per set bit of ``size``, biggest first.

    Appending a leaf returns every perfect subtree it completes, so storage can write those
    nodes in the same transaction as the leaf.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self, *, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        levels = [lvl for lvl in reversed(range(size.bit_length())) if size >> lvl & 1]
        if len(levels) != len(hashes):
            raise ValueError(f"size {size} needs {len(levels)} frontier hashes, not {len(hashes)}")
        self.size = size
        self._levels = levels
        self._hashes = list(hashes)

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        """Build the frontier of a stored tree of ``size`` leaves with one batch read.

        Raises:
            LookupError: the reader lacks a needed node.
        """
        if size == 0:
            return cls()
        ids = range_nodes(0, size)
        got = read(ids)
        missing = [nid for nid in ids if nid not in got]
        if missing:
            raise LookupError(f"node store lacks {len(missing)} node(s), first {missing[0]}")
        return cls(size=size, hashes=[got[nid] for nid in ids])

    def copy(self) -> Frontier:
        """Return an independent copy (used to roll back on a failed transaction)."""
        return Frontier(size=self.size, hashes=self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return the completed nodes ``(level, index, hash)``, level >= 1."""
        levels, hashes = self._levels, self._hashes
        levels.append(0)
        hashes.append(leaf)
        self.size += 1
        done: list[tuple[int, int, bytes]] = []
        while len(levels) > 1 and levels[-1] == levels[-2]:
            right = hashes.pop()
            lvl = levels.pop() + 1
            h = node_hash(hashes[-1], right)
            hashes[-1] = h
            levels[-1] = lvl
            done.append((lvl, (self.size >> lvl) - 1, h))
        return done

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append many leaf hashes; return all completed nodes."""
        out: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            out.extend(self.append(leaf))
        return out

    def root(self) -> bytes:
        """Return MTH of the leaves appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        return fold_range(self._hashes)
