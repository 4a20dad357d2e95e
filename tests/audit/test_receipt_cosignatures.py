"""Receipts of a witnessed ledger carry the published checkpoint and its cosignatures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.auditing import prove_entry, receipt_document, verify_receipt
from gateway.cli.audit import app as audit_cli
from ledger import Ledger, VerificationError
from ledger.cosignature import Cosigner
from ledger.testing import running_witness
from ledger.witness.client import WitnessConfig
from tests.ledger.conftest import ORIGIN, make_disclosure


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[tuple[Ledger, str]]:
    """A SQLite ledger with one in-process witness (k = 1) that has cosigned 3 entries."""
    url = f"sqlite:///{tmp_path / 'led.db'}"
    with Ledger.open(url, keys_dir=tmp_path / "keys", origin=ORIGIN) as plain:
        vkey = plain.verifier_key
    with running_witness(
        "witness.test/w1", origin=ORIGIN, log_vkey=vkey, store=tmp_path / "w1.db"
    ) as w:
        config = WitnessConfig(url=w.url, vkey=w.vkey)
        led = Ledger.open(
            url, keys_dir=tmp_path / "keys", origin=ORIGIN, witnesses=[config], witness_interval_s=0
        )
        led.append([make_disclosure(i) for i in range(3)])
        assert led.witness_publisher is not None and led.witness_publisher.publish().published
        yield led, w.vkey
        led.close()


def test_receipt_checkpoint_is_the_published_one_and_its_cosignature_verifies(
    witnessed: tuple[Ledger, str],
) -> None:
    """The receipt's checkpoint carries the witness's cosignature; k = 1 verifies offline."""
    led, wkey = witnessed
    doc = receipt_document(prove_entry(led, 1))
    assert wkey.split("+")[0] in doc["checkpoint"]
    verified = verify_receipt(doc, led.verifier_key, witness_vkeys=[wkey], quorum=1)
    assert verified.tree_size == 3


def test_receipt_without_enough_cosignatures_fails_the_quorum(
    witnessed: tuple[Ledger, str],
) -> None:
    """Requiring two witnesses when one cosigned fails; a forged cosignature line fails."""
    led, wkey = witnessed
    doc = receipt_document(prove_entry(led, 1))
    other = Cosigner.generate("witness.test/w2").vkey
    with pytest.raises(VerificationError, match="1 of the 2"):
        verify_receipt(doc, led.verifier_key, witness_vkeys=[wkey, other], quorum=2)
    note = str(doc["checkpoint"])
    line = note.rstrip("\n").rsplit("\n", 1)[1]
    forged = line[:-6] + ("AAAAA=" if not line.endswith("AAAAA=") else "BBBBB=")
    doc["checkpoint"] = note.replace(line, forged)
    with pytest.raises(VerificationError):
        verify_receipt(doc, led.verifier_key, witness_vkeys=[wkey], quorum=1)


def test_verify_receipt_command_checks_the_witness_quorum(
    witnessed: tuple[Ledger, str], tmp_path: Path
) -> None:
    """`audit verify-receipt --witness-vkey` passes with the witness's cosignature and fails
    (exit 1) when a second, absent witness is required."""
    led, wkey = witnessed
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt_document(prove_entry(led, 1))), encoding="utf-8")
    args = ["verify-receipt", str(path), "--key", led.verifier_key, "--witness-vkey", wkey]
    ok = CliRunner().invoke(audit_cli, args)
    assert ok.exit_code == 0, ok.output
    assert "cosigned by 1 of 1 witnesses" in ok.output
    other = Cosigner.generate("witness.test/w2").vkey
    short = CliRunner().invoke(audit_cli, [*args, "--witness-vkey", other])
    assert short.exit_code == 1 and "FAILED" in short.output
    usage = CliRunner().invoke(audit_cli, [*args, "--quorum", "2"])
    assert usage.exit_code == 2
