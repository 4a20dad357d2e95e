"""The remote auditor's checks on what a gateway sends: entry bytes, full exports, state files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit_client import CheckpointStore, RootCheck, check_leaf, open_note
from ledger import SignedCheckpoint, VerificationError
from ledger.checkpoint import Checkpoint, NoteSigner
from ledger.merkle import leaf_hash, root_from_leaves
from partner_gateway.v1 import audit_pb2

ORIGIN = "test.example/ledger"


def entries(n: int) -> list[audit_pb2.LedgerEntry]:
    return [
        audit_pb2.LedgerEntry(
            index=i, data=f"entry {i}".encode(), leaf_hash=leaf_hash(f"entry {i}".encode())
        )
        for i in range(n)
    ]


def checkpoint_of(es: list[audit_pb2.LedgerEntry]) -> SignedCheckpoint:
    root = root_from_leaves([e.leaf_hash for e in es])
    return SignedCheckpoint(origin=ORIGIN, size=len(es), root=root, note="")


def test_an_entry_whose_bytes_were_changed_is_refused() -> None:
    """A server that edits an entry but keeps its leaf hash is caught, naming the index."""
    e = entries(3)[2]
    e.data = b"entry 2, edited"
    with pytest.raises(VerificationError, match="entry 2"):
        check_leaf(e)


def test_a_full_export_folds_to_the_checkpoint_root() -> None:
    """Every leaf, in order, gives the checkpoint's root; entries after it are allowed."""
    es = entries(7)
    check = RootCheck(checkpoint_of(es[:5]))
    for e in es:
        check.add(e)
    check.finish()


@pytest.mark.parametrize("mutation", ["drop", "swap", "short", "leaf"])
def test_an_altered_export_is_refused(mutation: str) -> None:
    """A dropped, reordered, truncated or substituted entry does not pass."""
    es = entries(6)
    cp = checkpoint_of(es)
    if mutation == "drop":
        del es[3]
    elif mutation == "swap":
        es[2], es[3] = es[3], es[2]
    elif mutation == "short":
        es = es[:4]
    else:
        es[1] = audit_pb2.LedgerEntry(index=1, data=b"x", leaf_hash=leaf_hash(b"x"))
    check = RootCheck(cp)
    with pytest.raises(VerificationError):
        for e in es:
            check.add(e)
        check.finish()


def test_saved_checkpoint_round_trips_and_is_reverified(tmp_path: Path) -> None:
    """The store keeps the signed note itself, and refuses it under another key."""
    signer = NoteSigner.generate(ORIGIN)
    cp = signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=4, root=bytes(32)))
    store = CheckpointStore(directory=tmp_path)
    path = store.save("gw:1", cp)
    assert path.read_text() == cp.note
    assert store.load("gw:1", ORIGIN, [signer.vkey]) == open_note(cp.note, [signer.vkey])
    assert store.load("other:1", ORIGIN, [signer.vkey]) is None
    with pytest.raises(VerificationError, match="does not verify"):
        store.load("gw:1", ORIGIN, [NoteSigner.generate(ORIGIN).vkey])
