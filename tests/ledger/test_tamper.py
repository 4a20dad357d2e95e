"""Tampering with stored data is detected by ``ledger verify`` at the right index."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ledger import Disclosure, Ledger
from ledger.cli import app

N = 40
BAD = 17


@pytest.fixture
def filled(ledger: Ledger, disclosure: Callable[..., Disclosure], db_url: str) -> str:
    """A ledger of N entries with checkpoints at 16 and N."""
    ledger.append([disclosure(i) for i in range(16)])
    ledger.checkpoint()
    ledger.append([disclosure(i) for i in range(16, N)])
    ledger.checkpoint()
    return db_url


def _tamper(url: str, *statements: str) -> None:
    """Apply statements as the owner with triggers disabled (superuser) or dropped (SQLite)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ).all():
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql("SET session_replication_role = replica")
        for s in statements:
            conn.exec_driver_sql(s)
    engine.dispose()


def _verify(url: str, keys_dir: Path) -> tuple[int, dict[str, object]]:
    res = CliRunner().invoke(app, ["verify", "--db", url, "--keys-dir", str(keys_dir), "--json"])
    return res.exit_code, json.loads(res.output)


def test_untampered_ledger_verifies(filled: str, keys_dir: Path) -> None:
    """A clean ledger passes: exit 0, all checkpoints checked with the key."""
    code, out = _verify(filled, keys_dir)
    assert code == 0, out
    assert out["ok"] is True and out["size"] == N and out["checkpoints"] == 2
    assert out["signatures_checked"] is True


def _hexlit(url: str, b: str) -> str:
    return f"x'{b}'" if url.startswith("sqlite") else f"'\\x{b}'::bytea"


def _replace_in_data(url: str, idx: int, old: str, new: str) -> str:
    if url.startswith("sqlite"):
        expr = f"CAST(replace(CAST(data AS TEXT), '{old}', '{new}') AS BLOB)"
    else:
        expr = f"convert_to(replace(convert_from(data, 'UTF8'), '{old}', '{new}'), 'UTF8')"
    return f"UPDATE ledger_entry SET data = {expr} WHERE idx = {idx}"


CASES: dict[str, tuple[Callable[[str], list[str]], int, str]] = {
    "update_one_field": (
        lambda u: [
            _replace_in_data(u, BAD, "partner-a", "partner-z"),
            f"UPDATE ledger_entry SET partner_id = 'partner-z' WHERE idx = {BAD}",
        ],
        BAD,
        "leaf_hash_mismatch",
    ),
    "update_query_column_only": (
        lambda u: [f"UPDATE ledger_entry SET decision = 'DENY' WHERE idx = {BAD}"],
        BAD,
        "column_mismatch",
    ),
    "delete": (
        lambda u: [f"DELETE FROM ledger_entry WHERE idx = {BAD}"],
        BAD,
        "missing_entry",
    ),
    "swap_two_entries": (
        lambda u: [
            f"UPDATE ledger_entry SET idx = -1 WHERE idx = {BAD}",
            f"UPDATE ledger_entry SET idx = {BAD} WHERE idx = 30",
            "UPDATE ledger_entry SET idx = 30 WHERE idx = -1",
        ],
        BAD,
        "entry_moved",
    ),
    "truncate_tail": (
        lambda u: [f"DELETE FROM ledger_entry WHERE idx >= {N - 5}"],
        N - 5,
        "truncated",
    ),
    "flip_stored_leaf_hash": (
        lambda u: [
            f"UPDATE ledger_entry SET leaf_hash = {_hexlit(u, '00' * 32)} WHERE idx = {BAD}"
        ],
        BAD,
        "leaf_hash_mismatch",
    ),
    "flip_stored_node_hash": (
        lambda u: [
            f"UPDATE ledger_node SET hash = {_hexlit(u, 'ff' * 32)} WHERE level = 1 AND idx = 10"
        ],
        20,
        "node_mismatch",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_at_the_right_index(filled: str, keys_dir: Path, case: str) -> None:
    """Each kind of tampering makes verify exit 1 and name the first bad index."""
    statements, index, kind = CASES[case]
    _tamper(filled, *statements(filled))
    code, out = _verify(filled, keys_dir)
    assert code == 1, out
    assert out["ok"] is False and out["first_bad_index"] == index, out
    problems = out["problems"]
    assert isinstance(problems, list)
    first = min((p for p in problems if p["index"] is not None), key=lambda p: p["index"])
    assert first["kind"] == kind, out


def test_forged_checkpoint_signature_is_detected(filled: str, keys_dir: Path) -> None:
    """A checkpoint note whose text was altered fails signature verification."""
    _tamper(
        filled,
        "UPDATE ledger_checkpoint SET note = replace(note, '\n16\n', '\n15\n') WHERE size = 16",
    )
    code, out = _verify(filled, keys_dir)
    assert code == 1 and out["problems"][0]["kind"] == "checkpoint_signature"  # type: ignore[index]


def test_human_output_names_the_first_bad_index(filled: str, keys_dir: Path) -> None:
    """Without --json, verify prints one line naming the bad index and the problem."""
    _tamper(filled, f"DELETE FROM ledger_entry WHERE idx = {BAD}")
    res = CliRunner().invoke(app, ["verify", "--db", filled, "--keys-dir", str(keys_dir)])
    assert res.exit_code == 1
    assert f"FAILED at index {BAD}: missing_entry" in res.output
