"""C2SP tlog-cosignature/v1 (Ed25519, type 0x04): keys, lines, and interop vectors."""

from __future__ import annotations

import base64
import struct

import pytest

from ledger.cosignature import CosignatureVerifier, Cosigner, signed_message, verified_cosigners
from ledger.errors import CheckpointFormatError, VerificationError

BODY = "test\n123\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n"

# A native cosignature/v1 vkey and a cosignature of it, from transparency-dev/formats'
# note_cosigv1_test.go (Go implementation): key id and timestamp layout must agree.
GO_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
GO_SIG = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJ"
    "XORmnFBOBA=="
)


def test_go_cosignature_vkey_parses_with_the_same_key_id() -> None:
    """A vkey made by the Go implementation parses: our key id computation agrees."""
    v = CosignatureVerifier.parse(GO_VKEY)
    assert v.name == "remora.n621.de" and v.key_id.hex() == "da77ade7"
    assert v.vkey() == GO_VKEY


def test_go_cosignature_carries_its_timestamp_after_the_key_id() -> None:
    """The Go vector's signature bytes: key id, big-endian u64 timestamp 1727964367, 64-byte sig."""
    raw = base64.b64decode(GO_SIG)
    assert len(raw) == 4 + 8 + 64
    assert struct.unpack(">Q", raw[4:12])[0] == 1727964367


def test_cosignature_round_trips_and_binds_body_and_time() -> None:
    """A line verifies over its body; another body or a changed timestamp does not."""
    c = Cosigner.generate("witness.test/w1")
    line = c.cosign(BODY, 1700000000)
    v = CosignatureVerifier.parse(c.vkey)
    assert v.verify_line(BODY, line) == 1700000000
    with pytest.raises(VerificationError):
        v.verify_line(BODY.replace("123", "124"), line)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[4:12] = struct.pack(">Q", 1700000001)
    forged = f"\u2014 witness.test/w1 {base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(VerificationError):
        v.verify_line(BODY, forged)
    assert signed_message(BODY, 5).startswith(b"cosignature/v1\ntime 5\n")


def test_unknown_cosigners_are_ignored_and_known_ones_counted() -> None:
    """Per signed-note, lines by unknown keys are skipped, not failed."""
    a, b = Cosigner.generate("w.test/a"), Cosigner.generate("w.test/b")
    lines = [a.cosign(BODY, 1), b.cosign(BODY, 2)]
    assert verified_cosigners(BODY, lines, [a.verifier]) == {"w.test/a": 1}


def test_log_key_is_not_a_cosignature_key() -> None:
    """An Ed25519 signed-note vkey (type 0x01) is refused as a witness key."""
    with pytest.raises(CheckpointFormatError):
        CosignatureVerifier.parse("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
