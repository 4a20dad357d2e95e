"""The ``share-gateway ledger`` sub-commands, invoked through the Typer app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ledger import Disclosure, Ledger, open_checkpoint
from ledger.cli import app


def test_verifier_key_prints_the_vkey(ledger: Ledger, keys_dir: Path) -> None:
    """verifier-key prints the same name+keyid+base64 the ledger uses."""
    res = CliRunner().invoke(app, ["verifier-key", "--keys-dir", str(keys_dir)])
    assert res.exit_code == 0 and res.output.strip() == ledger.verifier_key


def test_checkpoint_sign_prints_a_verifiable_note(
    ledger: Ledger, keys_dir: Path, db_url: str, disclosure: Callable[..., Disclosure]
) -> None:
    """checkpoint --sign signs the grown tree and prints a note auditors can open."""
    ledger.append([disclosure(i) for i in range(3)])
    runner = CliRunner()
    res = runner.invoke(app, ["checkpoint", "--db", db_url, "--keys-dir", str(keys_dir), "--sign"])
    assert res.exit_code == 0, res.output
    assert open_checkpoint(res.output, ledger.verifier_key).size == 3
    res = runner.invoke(app, ["checkpoint", "--db", db_url, "--keys-dir", str(keys_dir), "--json"])
    assert json.loads(res.output)["size"] == 3


def test_verify_uses_gateway_settings_by_default(
    tmp_path: Path, disclosure: Callable[..., Disclosure]
) -> None:
    """Without --db, verify reads the ledger URL and keys from the gateway settings file."""
    data = tmp_path / "data"
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'data_dir = "{data}"\n')
    url = f"sqlite:///{(data / 'gateway.db').resolve()}"
    data.mkdir()
    with Ledger.open(url, keys_dir=data / "keys", origin="share-gateway.local/audit-ledger") as led:
        led.append([disclosure(0)])
        led.checkpoint()
    res = CliRunner().invoke(app, ["verify", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["size"] == 1 and out["vkey_source"].startswith("keys dir")


def test_verify_of_missing_database_exits_2(tmp_path: Path) -> None:
    """An unreadable ledger is a usage/availability error, exit code 2."""
    res = CliRunner().invoke(app, ["verify", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--json"])
    assert res.exit_code == 2 and json.loads(res.output)["ok"] is False


def test_read_only_commands_create_no_database(tmp_path: Path) -> None:
    """verify and checkpoint on a missing SQLite file say so and leave no file behind."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for args in (["verify", "--db", url], ["checkpoint", "--db", url, "--keys-dir", str(tmp_path)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "no such database" in res.stderr
    assert list(tmp_path.iterdir()) == []
