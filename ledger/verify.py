"""Pure verification of RFC 9162 proofs. No I/O; safe for offline auditors.

Implements RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), with the edge cases of
transparency-dev/merkle: a consistency proof between equal sizes must be empty, and
consistency with the empty tree (size 0) is refused as meaningless. Every failure raises
``VerificationError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.errors import VerificationError
from ledger.merkle import HASH_SIZE, node_hash


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise VerificationError(f"{what}: hash of {len(h)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Compute the root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1-5).

    Raises:
        VerificationError: the index is out of range or the proof has the wrong length.
    """
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} out of range for tree size {size}")
    _check_hashes("inclusion", [leaf_hash, *proof])
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raises:
        VerificationError: the proof does not verify.
    """
    if root_from_inclusion_proof(index, size, leaf_hash, proof) != root:
        raise VerificationError(f"inclusion proof of leaf {index} does not match root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    Raises:
        VerificationError: the proof does not verify.
    """
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"bad consistency sizes {old_size} -> {new_size}")
    if old_size == 0:
        # Every tree extends the empty tree: such a "proof" proves nothing, and the probes
        # (transparency-dev/merkle) require it to be refused, even between two empty trees.
        raise VerificationError("consistency with the empty tree is not checkable")
    if old_size == new_size:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError("roots differ for equal tree sizes")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    _check_hashes("consistency", [old_root, new_root, *proof])
    path = list(proof)
    # Step 2: if old_size is a power of two, the old root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof too short")
    if fr != old_root:
        raise VerificationError("consistency proof does not match the old root")
    if sr != new_root:
        raise VerificationError("consistency proof does not match the new root")
