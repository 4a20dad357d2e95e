"""Tampering with stored data is detected by ``ledger verify`` at the right index.

The attacker is a database operator with write access (triggers dropped or disabled) but
without the ledger's signing key. The ledger under attack has checkpoints at 16 (one batch)
and then at every size 17..40 (one share per append transaction, each signing its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ledger import Disclosure, Ledger, merkle
from ledger.checkpoint import Checkpoint, NoteSigner
from ledger.cli import app
from tests.ledger.conftest import ORIGIN

N = 40
BAD = 17


@pytest.fixture
def filled(ledger: Ledger, disclosure: Callable[..., Disclosure], db_url: str) -> str:
    """A ledger of N entries: one batch of 16, then one append per entry."""
    ledger.append([disclosure(i) for i in range(16)])
    for i in range(16, N):
        ledger.append([disclosure(i)])
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


def _verify(url: str, keys_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    res = CliRunner().invoke(
        app, ["verify", "--db", url, "--keys-dir", str(keys_dir), "--json", *extra]
    )
    return res.exit_code, json.loads(res.output)


def test_untampered_ledger_verifies(filled: str, keys_dir: Path) -> None:
    """A clean ledger passes: exit 0, all checkpoints checked with the key."""
    code, out = _verify(filled, keys_dir)
    assert code == 0, out
    assert out["ok"] is True and out["size"] == N and out["checkpoints"] == N - 15
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


# -- rewrites that keep the database internally consistent ----------------------------------


def _rehash_edit(url: str, idx: int) -> None:
    """Change entry ``idx``'s partner and recompute its leaf hash, query column and every
    stored node above it, so that only signed checkpoints can tell."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    data = {
        int(i): bytes(d)
        for i, d in engine.connect().execute(sa.text("SELECT idx, data FROM ledger_entry")).all()
    }
    engine.dispose()
    data[idx] = data[idx].replace(b'"partner-a"', b'"partner-z"')
    frontier = merkle.Frontier()
    nodes: list[tuple[int, int, bytes]] = []
    for i in sorted(data):
        nodes += frontier.append(merkle.leaf_hash(data[i]))
    hexed = data[idx].hex()
    statements = [
        f"UPDATE ledger_entry SET data = {_hexlit(url, hexed)}, "
        f"leaf_hash = {_hexlit(url, merkle.leaf_hash(data[idx]).hex())}, "
        f"partner_id = 'partner-z' WHERE idx = {idx}",
        *(
            f"UPDATE ledger_node SET hash = {_hexlit(url, h.hex())} WHERE level = {lvl} "
            f"AND idx = {i}"
            for lvl, i, h in nodes
            if (i << lvl) <= idx < ((i + 1) << lvl)
        ),
    ]
    _tamper(url, *statements)


def _resign(url: str, from_size: int) -> None:
    """Re-sign every checkpoint of ``from_size`` or more with a new key (same origin) over
    the current tree, and replace the verifier key recorded in the database."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT size FROM ledger_checkpoint ORDER BY size")).all()
        leaves = [
            bytes(r[0])
            for r in conn.execute(sa.text("SELECT leaf_hash FROM ledger_entry ORDER BY idx"))
        ]
    engine.dispose()
    forger = NoteSigner.generate(ORIGIN)
    statements = [f"UPDATE ledger_sequencer SET vkey = '{forger.vkey}'"]
    for (size,) in rows:
        if size < from_size:
            continue
        root = merkle.root_from_leaves(leaves[:size])
        note = forger.sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root=root)).note
        statements.append(
            f"UPDATE ledger_checkpoint SET note = '{note}', root = {_hexlit(url, root.hex())} "
            f"WHERE size = {size}"
        )
    _tamper(url, *statements)


def _subject_rows(url: str, led: Ledger, subject: str) -> str:
    return f"DELETE FROM ledger_subject_index WHERE pseudonym = '{led.subject_pseudonym(subject)}'"


MUTATIONS: dict[str, tuple[Callable[[str, Ledger], None], int, str]] = {
    "edit_last_entry_recomputing_leaf_and_nodes": (
        lambda u, led: _rehash_edit(u, N - 1),
        N - 1,
        "root_mismatch",
    ),
    "rehashed_edit_under_a_checkpoint": (
        lambda u, led: _rehash_edit(u, BAD),
        BAD,
        "root_mismatch",
    ),
    "rehashed_edit_in_a_batch": (  # the batch [0, 16) has one checkpoint: bounded, not exact
        lambda u, led: _rehash_edit(u, 5),
        0,
        "root_mismatch",
    ),
    "resigned_with_replaced_stored_key": (
        lambda u, led: _rehash_edit(u, BAD) or _resign(u, BAD + 1),
        BAD,
        "checkpoint_signature",
    ),
    "checkpoints_deleted_after_20": (
        lambda u, led: _tamper(u, "DELETE FROM ledger_checkpoint WHERE size > 20"),
        20,
        "unsigned_tail",
    ),
    "subject_index_rows_of_one_subject_deleted": (
        lambda u, led: _tamper(u, _subject_rows(u, led, f"subject-{BAD}")),
        BAD,
        "subject_index_mismatch",
    ),
    "subject_index_row_added": (
        lambda u, led: _tamper(
            u,
            f"INSERT INTO ledger_subject_index (pseudonym, idx, excluded) "
            f"VALUES ('{'ab' * 32}', {BAD}, {'0' if u.startswith('sqlite') else 'false'})",
        ),
        BAD,
        "subject_index_mismatch",
    ),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_consistent_rewrites_are_detected_at_the_first_bad_index(
    filled: str, ledger: Ledger, keys_dir: Path, case: str
) -> None:
    """Rewrites that recompute what they can (leaves, nodes, index rows, signatures with
    another key) still fail verify, naming the first bad index and the table."""
    mutate, index, kind = MUTATIONS[case]
    mutate(filled, ledger)
    code, out = _verify(filled, keys_dir)
    assert code == 1, out
    assert out["first_bad_index"] == index, out
    first = min(
        (p for p in out["problems"] if p["index"] is not None),  # type: ignore[attr-defined]
        key=lambda p: p["index"],
    )
    assert first["kind"] == kind and first["table"], out


# -- rollbacks only outside evidence can show -----------------------------------------------


ROLLBACKS: dict[str, tuple[list[str], int]] = {
    "tail_truncated_with_its_checkpoints": (
        [
            f"DELETE FROM ledger_entry WHERE idx >= {N - 5}",
            f"DELETE FROM ledger_checkpoint WHERE size > {N - 5}",
            f"DELETE FROM ledger_subject_index WHERE idx >= {N - 5}",
        ],
        N - 5,
    ),
    "entries_and_checkpoints_deleted_after_checkpoint_20": (
        [
            "DELETE FROM ledger_entry WHERE idx >= 20",
            "DELETE FROM ledger_checkpoint WHERE size > 20",
            "DELETE FROM ledger_subject_index WHERE idx >= 20",
        ],
        20,
    ),
}


@pytest.mark.parametrize("case", list(ROLLBACKS))
def test_rollback_is_caught_by_the_auditors_saved_checkpoint(
    filled: str, keys_dir: Path, tmp_path: Path, case: str
) -> None:
    """An auditor saves the checkpoint it verified; a later rollback that leaves the database
    self-consistent fails against it, naming the first missing index."""
    saved = tmp_path / "auditor.checkpoint"
    res = CliRunner().invoke(
        app,
        ["verify", "--db", filled, "--keys-dir", str(keys_dir), "--save-checkpoint", str(saved)],
    )
    assert res.exit_code == 0, res.output
    statements, index = ROLLBACKS[case]
    _tamper(filled, *statements)
    code, out = _verify(filled, keys_dir)
    assert code == 0, out  # the database alone cannot show it: nothing inside is left
    code, out = _verify(filled, keys_dir, "--trusted-checkpoint", str(saved))
    assert code == 1 and out["first_bad_index"] == index, out
    assert out["problems"][0]["kind"] == "truncated", out  # type: ignore[index]


def test_rehashed_edit_under_a_trusted_checkpoint_names_the_entry(
    filled: str, ledger: Ledger, keys_dir: Path, tmp_path: Path
) -> None:
    """With every stored checkpoint forged, the checkpoints held outside bisect the log: the
    receipt's (size 17) matches, the auditor's (size 40) does not, so index 17 is named as
    the first that can be bad (the range [17, 40) in the detail)."""
    receipt_cp = tmp_path / "receipt.checkpoint"
    saved = tmp_path / "auditor.checkpoint"
    with sa.create_engine(filled, poolclass=sa.NullPool).connect() as conn:
        notes = dict(conn.execute(sa.text("SELECT size, note FROM ledger_checkpoint")).all())
    receipt_cp.write_text(notes[BAD])
    saved.write_text(notes[N])
    _rehash_edit(filled, BAD)
    _resign(filled, 0)  # every stored checkpoint now forged: the database vouches for nothing
    code, out = _verify(
        filled,
        keys_dir,
        "--trusted-checkpoint",
        str(saved),
        "--trusted-checkpoint",
        str(receipt_cp),
    )
    assert code == 1, out
    root = [p for p in out["problems"] if p["kind"] == "root_mismatch"]  # type: ignore[attr-defined]
    assert root and root[0]["index"] == BAD and "one of entries" in root[0]["detail"], out


def test_verify_without_a_trusted_key_refuses(filled: str, tmp_path: Path) -> None:
    """Without --vkey or a keys dir, verify exits 2 and says why; it never falls back to the
    key recorded in the database (which a forger replaces along with the signatures)."""
    res = CliRunner().invoke(
        app, ["verify", "--db", filled, "--keys-dir", str(tmp_path / "nokeys"), "--json"]
    )
    assert res.exit_code == 2, res.output
    assert "no verifier key" in json.loads(res.output)["error"]


def test_resigned_ledger_fails_with_the_vkey_held_out_of_band(filled: str, ledger: Ledger) -> None:
    """A ledger fully re-signed with another key (stored vkey replaced) fails verify --vkey
    with the real key, at index 0: no checkpoint the real key signed covers anything."""
    vkey = ledger.verifier_key
    _resign(filled, 0)
    res = CliRunner().invoke(app, ["verify", "--db", filled, "--vkey", vkey, "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 1 and out["first_bad_index"] == 0, out
    assert out["problems"][0]["kind"] == "checkpoint_signature", out
