"""Merkle hashing, proof construction and verification: golden values and invariants."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import VerificationError
from ledger.verify import root_from_inclusion_proof, verify_consistency, verify_inclusion


class _Store:
    """An in-memory node store built by the same Frontier the ledger uses."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[merkle.NodeId, bytes] = {}
        self.reads = 0
        f = merkle.Frontier()
        for i, data in enumerate(leaves):
            h = merkle.leaf_hash(data)
            self.nodes[(0, i)] = h
            for lvl, idx, nh in f.append(h):
                self.nodes[(lvl, idx)] = nh
        self.leaf_hashes = [self.nodes[(0, i)] for i in range(len(leaves))]

    def read(self, ids: list[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        self.reads += 1
        return {i: self.nodes[i] for i in ids if i in self.nodes}


leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


def test_hashes_use_rfc9162_prefixes() -> None:
    """Leaves hash with prefix 0x00 and nodes with 0x01; the empty tree is SHA-256('')."""
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = b"a" * 32, b"b" * 32
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.EMPTY_ROOT.hex().startswith("e3b0c442")


def test_root_matches_rfc6962_golden_value() -> None:
    """The root of the 8 standard RFC 6962 test leaves is the published value."""
    leaves = [
        bytes.fromhex(h)
        for h in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
    ]
    root = merkle.root_from_leaves([merkle.leaf_hash(x) for x in leaves])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_split_point_is_largest_power_of_two_below_n() -> None:
    """k is the largest power of two strictly smaller than n."""
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 4, 4, 8]


@given(leaf_lists)
@settings(max_examples=60, deadline=None)
def test_frontier_root_equals_reference_root_for_every_prefix(leaves: list[bytes]) -> None:
    """Incremental roots and roots from stored nodes equal the RFC definition for every prefix."""
    store = _Store(leaves)
    f = merkle.Frontier()
    for n in range(1, len(leaves) + 1):
        f.append(store.leaf_hashes[n - 1])
        want = merkle.root_from_leaves(store.leaf_hashes[:n])
        assert f.root() == want
        assert merkle.root(n, store.read) == want
        assert merkle.Frontier.load(n, store.read).root() == want


@given(leaf_lists)
@settings(max_examples=40, deadline=None)
def test_every_prefix_inclusion_and_consistency_proof_verifies(leaves: list[bytes]) -> None:
    """For every size n, every index and every older size, the proofs verify."""
    store = _Store(leaves)
    for n in range(1, len(leaves) + 1):
        root = merkle.root(n, store.read)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, store.read)
            verify_inclusion(i, n, store.leaf_hashes[i], proof, root)
        for m in range(1, n + 1):
            old = merkle.root(m, store.read)
            verify_consistency(m, n, old, root, merkle.consistency_proof(m, n, store.read))


@given(leaf_lists, st.data())
@settings(max_examples=80, deadline=None)
def test_any_flipped_byte_fails_inclusion(leaves: list[bytes], data: st.DataObject) -> None:
    """Flipping any bit of the leaf hash, a proof element or the root makes inclusion fail."""
    store = _Store(leaves)
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    root = merkle.root(n, store.read)
    proof = merkle.inclusion_proof(i, n, store.read)
    parts = [store.leaf_hashes[i], *proof, root]
    which = data.draw(st.integers(0, len(parts) - 1))
    pos = data.draw(st.integers(0, 31))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(parts[which])
    bad[pos] ^= 1 << bit
    parts[which] = bytes(bad)
    with pytest.raises(VerificationError):
        verify_inclusion(i, n, parts[0], parts[1:-1], parts[-1])


@given(st.lists(st.binary(max_size=4), min_size=2, max_size=40), st.data())
@settings(max_examples=80, deadline=None)
def test_any_flipped_byte_fails_consistency(leaves: list[bytes], data: st.DataObject) -> None:
    """Flipping any bit of either root or of a proof element makes consistency fail."""
    store = _Store(leaves)
    n = len(leaves)
    m = data.draw(st.integers(1, n - 1))
    old, new = merkle.root(m, store.read), merkle.root(n, store.read)
    proof = merkle.consistency_proof(m, n, store.read)
    parts = [old, new, *proof]
    which = data.draw(st.integers(0, len(parts) - 1))
    bad = bytearray(parts[which])
    bad[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
    parts[which] = bytes(bad)
    with pytest.raises(VerificationError):
        verify_consistency(m, n, parts[0], parts[1], parts[2:])


def test_proofs_need_one_read_of_log_n_nodes() -> None:
    """A proof at a large size is built with one batch read of O(log n) nodes."""
    n = (1 << 40) + 12345
    asked: list[merkle.NodeId] = []

    def read(ids: list[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        asked.extend(ids)
        return {i: bytes(32) for i in ids}

    proof = merkle.inclusion_proof(n - 7, n, read)
    assert len(proof) <= 2 * 41
    assert len(asked) <= 3 * 41
    asked.clear()
    merkle.consistency_proof(n // 3, n, read)
    assert len(asked) <= 3 * 41


def test_proof_with_missing_node_raises_lookup_error() -> None:
    """A store lacking a node is reported, never answered with a wrong proof."""
    with pytest.raises(LookupError):
        merkle.inclusion_proof(0, 4, lambda ids: {})


def test_inclusion_proof_of_wrong_length_is_rejected() -> None:
    """Too long or too short proofs are rejected before comparing roots."""
    store = _Store([b"a", b"b", b"c"])
    proof = merkle.inclusion_proof(0, 3, store.read)
    with pytest.raises(VerificationError):
        root_from_inclusion_proof(0, 3, store.leaf_hashes[0], [*proof, bytes(32)])
    with pytest.raises(VerificationError):
        root_from_inclusion_proof(0, 3, store.leaf_hashes[0], proof[:1])
