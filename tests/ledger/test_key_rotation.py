"""Checkpoint signing-key rotation (issue 5.4): new checkpoints use the new key, old ones verify."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger import Disclosure, Ledger, LedgerKeyError
from ledger.checkpoint import NoteVerifier
from ledger.errors import CheckpointFormatError
from ledger.fsck import verify_url
from ledger.keys import RETIRED_VKEYS_FILE, SUBJECT_KEY_FILE, retired_vkeys, rotate_signer
from ledger.verify import verify_inclusion

ORIGIN = "test.example/log"


def disclosure() -> Disclosure:
    return Disclosure(time=datetime.now(UTC), decision="ALLOW", partner_id="adco")


def test_rotated_key_signs_new_checkpoints_and_old_receipts_still_verify(tmp_path: Path) -> None:
    """After rotation: a receipt saved before verifies with the old vkey, new ones with the new."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    keys = tmp_path / "keys"
    with Ledger.open(url, keys_dir=keys, origin=ORIGIN) as led:
        [receipt] = led.append([disclosure()])
        old_cp = led.checkpoint()
        old_vkey = led.verifier_key
        old_proof = led.inclusion_proof(receipt.index, old_cp.size)

    new_signer = rotate_signer(keys, name=ORIGIN)
    assert retired_vkeys(keys) == [old_vkey]
    assert (keys / RETIRED_VKEYS_FILE).read_text().strip() == old_vkey
    assert "PRIVATE" not in (keys / RETIRED_VKEYS_FILE).read_text().upper()

    with Ledger.open(url, keys_dir=keys, origin=ORIGIN) as led:
        assert led.verifier_key == new_signer.vkey != old_vkey
        assert led.latest_checkpoint() == old_cp  # still readable: signed by a retired key
        led.append([disclosure()])
        new_cp = led.checkpoint()
        proof = led.consistency_proof(old_cp.size, new_cp.size)

    # The old receipt: the old checkpoint verifies with the old key only.
    old_text = NoteVerifier.parse(old_vkey).open(old_cp.note)
    assert old_text.startswith(ORIGIN)
    verify_inclusion(receipt.index, old_cp.size, receipt.leaf_hash, old_proof, old_cp.root)
    with pytest.raises(CheckpointFormatError):
        NoteVerifier.parse(new_signer.vkey).open(old_cp.note)
    # New checkpoints are signed with the new key and extend the old ones.
    NoteVerifier.parse(new_signer.vkey).open(new_cp.note)
    from ledger.verify import verify_consistency

    verify_consistency(old_cp.size, new_cp.size, old_cp.root, new_cp.root, proof)
    # fsck checks every checkpoint with the current and retired keys.
    report = verify_url(url, vkey=[new_signer.vkey, *retired_vkeys(keys)])
    assert report.ok and report.checkpoints == 2
    assert not verify_url(url, vkey=new_signer.vkey).ok


def test_a_foreign_key_is_still_refused(tmp_path: Path) -> None:
    """Replacing the key file without a rotation record does not open the ledger."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger.open(url, keys_dir=tmp_path / "a", origin=ORIGIN):
        pass
    other = tmp_path / "b"
    other.mkdir(mode=0o700)
    subject = tmp_path / "a" / SUBJECT_KEY_FILE
    (other / SUBJECT_KEY_FILE).write_bytes(subject.read_bytes())
    (other / SUBJECT_KEY_FILE).chmod(0o600)
    with pytest.raises(LedgerKeyError, match="another checkpoint signing key"):
        Ledger.open(url, keys_dir=other, origin=ORIGIN)
