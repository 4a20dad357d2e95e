"""C2SP checkpoints and signed notes: golden vector, key ids, tampering."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.checkpoint import Checkpoint, NoteSigner, NoteVerifier, key_id, open_checkpoint
from ledger.errors import CheckpointFormatError, VerificationError

# golang.org/x/mod/sumdb/note documentation example (Ed25519 is deterministic).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)


def test_signing_reproduces_the_go_note_golden_vector() -> None:
    """Our signer yields the exact vkey and signed note of Go's note package example."""
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.vkey == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_TEXT + "\n" + GO_SIG
    assert NoteVerifier.parse(GO_VKEY).open(GO_TEXT + "\n" + GO_SIG) == GO_TEXT


def test_key_id_follows_the_signed_note_spec() -> None:
    """Key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pubkey)[:4]."""
    pub = base64.b64decode(GO_VKEY.split("+")[2])[1:]
    want = hashlib.sha256(b"PeterNeumann\n\x01" + pub).digest()[:4]
    assert key_id("PeterNeumann", pub) == want and want.hex() == "c74f20a3"


def test_checkpoint_body_is_origin_size_base64_root() -> None:
    """The body is three newline-terminated lines and parses back."""
    cp = Checkpoint(origin="example.com/log", size=12, root=bytes(range(32)))
    body = cp.body()
    assert body == f"example.com/log\n12\n{base64.b64encode(bytes(range(32))).decode()}\n"
    assert Checkpoint.parse(body) == cp


def test_signed_checkpoint_opens_with_only_the_vkey() -> None:
    """An auditor verifies a checkpoint from the note and the vkey string alone."""
    signer = NoteSigner.generate("example.com/log")
    signed = signer.sign_checkpoint(Checkpoint(origin="example.com/log", size=3, root=bytes(32)))
    got = open_checkpoint(signed.note, signer.vkey)
    assert (got.size, got.root) == (3, bytes(32))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace("\n3\n", "\n4\n", 1),
        lambda n: n.replace("example.com/log\n", "example.com/evil\n", 1),
        # A character well inside the base64 signature (the last one before "=" carries padding
        # bits a decoder ignores, so changing it may change nothing).
        lambda n: n[:-10] + ("A" if n[-10] != "A" else "B") + n[-9:],
    ],
    ids=["size", "origin", "signature"],
)
def test_tampered_checkpoint_is_rejected(mutate: object) -> None:
    """Changing the size, origin or signature makes verification fail."""
    signer = NoteSigner.generate("example.com/log")
    signed = signer.sign_checkpoint(Checkpoint(origin="example.com/log", size=3, root=bytes(32)))
    with pytest.raises(VerificationError):
        open_checkpoint(mutate(signed.note), signer.vkey)  # type: ignore[operator]


def test_note_signed_by_another_key_is_rejected() -> None:
    """A note without a signature by the expected key does not verify."""
    a, b = NoteSigner.generate("log"), NoteSigner.generate("log")
    note = a.sign_checkpoint(Checkpoint(origin="log", size=1, root=bytes(32))).note
    with pytest.raises(CheckpointFormatError):
        open_checkpoint(note, b.vkey)


@pytest.mark.parametrize(
    "vkey",
    ["nope", "a+b+c", GO_VKEY.replace("c74f20a3", "c74f20a4"), "bad name+00000000+AAAA"],
)
def test_malformed_vkey_is_rejected(vkey: str) -> None:
    """Malformed or self-inconsistent verifier keys are refused."""
    with pytest.raises(CheckpointFormatError):
        NoteVerifier.parse(vkey)
