"""Full verification of a stored ledger (``ledger verify``), in the manner of Tessera's fsck.

Recomputes, from the stored entry bytes alone: every leaf hash, the index recorded in each
entry, the query columns copied from each entry, every stored Merkle node, and the root at
the size of every stored checkpoint, whose signature is checked with the verifier key.
Storage is read in index order, in chunks, so memory stays bounded at any size.

Each problem is attributed to the first entry index it implicates. A stored node that
disagrees is reported only when no entry inside its range is itself bad (otherwise it is a
consequence of that entry). The report's ``first_bad_index`` is the smallest such index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger import merkle
from ledger.checkpoint import Checkpoint, NoteVerifier, open_with_any
from ledger.entry import ENTRY_VERSION, decode_entry, time_micros
from ledger.errors import LedgerCorruptionError, LedgerUnavailableError, VerificationError
from ledger.storage import ALL_TABLES, create_ledger_engine, schema_exists

CHUNK = 1 << 14
MAX_PROBLEMS = 100


@dataclass(kw_only=True)
class Problem:
    """One thing found wrong; ``index`` is the first entry it implicates, if any."""

    index: int | None
    kind: str
    detail: str


@dataclass(kw_only=True)
class VerifyReport:
    """Outcome of ``verify_storage``."""

    ok: bool
    size: int
    root: str
    checkpoints: int
    latest_checkpoint_size: int | None
    first_bad_index: int | None
    problems: list[Problem] = field(default_factory=list)
    signatures_checked: bool = True
    seconds: float = 0.0

    @property
    def first_problem(self) -> Problem | None:
        """The problem at ``first_bad_index`` (or the first one without an index)."""
        if not self.problems:
            return None
        indexed = [p for p in self.problems if p.index is not None]
        if indexed:
            return min(indexed, key=lambda p: p.index if p.index is not None else -1)
        return self.problems[0]

    def to_json(self) -> str:
        """Render the report as JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def summary(self) -> str:
        """One human line: OK, or the first bad index and what is wrong."""
        if self.ok:
            return (
                f"OK: {self.size} entries, root {self.root}, "
                f"{self.checkpoints} checkpoint(s) verified"
            )
        p = self.first_problem
        assert p is not None
        where = f"index {p.index}" if p.index is not None else "ledger"
        return f"FAILED at {where}: {p.kind}: {p.detail} ({len(self.problems)} problem(s))"


_COLUMNS = ("partner_id", "purpose", "action", "decision")


class _Checker:
    def __init__(self, conn: Connection, vkey: str | Sequence[str] | None) -> None:
        self.conn = conn
        self.problems: list[Problem] = []
        self.bad_leaves: list[int] = []
        vkeys = [vkey] if isinstance(vkey, str) else list(vkey or ())
        # Several keys: checkpoints signed before a key rotation verify with retired keys.
        self.verifiers = [NoteVerifier.parse(v) for v in vkeys]

    def add(self, index: int | None, kind: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(index=index, kind=kind, detail=detail))
        if index is not None and kind != "node_mismatch":
            self.bad_leaves.append(index)

    def checkpoints(self) -> list[tuple[int, bytes]]:
        rows = self.conn.execute(
            sa.text("SELECT size, root, note FROM ledger_checkpoint ORDER BY size")
        ).all()
        out: list[tuple[int, bytes]] = []
        for size, root, note in rows:
            try:
                if self.verifiers:
                    text = open_with_any(self.verifiers, note)
                else:
                    text = note[: note.rfind("\n\n") + 1]
                cp = Checkpoint.parse(text)
            except VerificationError as e:
                self.add(None, "checkpoint_signature", f"checkpoint at size {size}: {e.message}")
                continue
            if cp.size != size or cp.root != bytes(root):
                self.add(
                    None, "checkpoint_row", f"checkpoint at size {size}: row disagrees with note"
                )
            out.append((cp.size, cp.root))
        return out

    def check_nodes(self, emitted: list[tuple[int, int, bytes]]) -> None:
        by_level: dict[int, list[tuple[int, bytes]]] = {}
        for lvl, i, h in emitted:
            by_level.setdefault(lvl, []).append((i, h))
        for lvl, items in by_level.items():
            lo, hi = items[0][0], items[-1][0]
            stored = {
                int(r[0]): bytes(r[1])
                for r in self.conn.execute(
                    sa.text(
                        "SELECT idx, hash FROM ledger_node "
                        "WHERE level = :l AND idx >= :lo AND idx <= :hi"
                    ),
                    {"l": lvl, "lo": lo, "hi": hi},
                )
            }
            for i, h in items:
                if stored.get(i) == h:
                    continue
                start, end = i << lvl, (i + 1) << lvl
                if any(start <= b < end for b in self.bad_leaves):
                    continue  # a consequence of a bad entry already reported
                what = "missing" if i not in stored else "does not match the entries"
                self.add(
                    start,
                    "node_mismatch",
                    f"stored node (level {lvl}, index {i}) over entries [{start}, {end}) {what}",
                )


def verify_storage(engine: Engine, *, vkey: str | Sequence[str] | None) -> VerifyReport:
    """Verify everything stored in a ledger database.

    Args:
        engine: Engine of the ledger database (read only access suffices).
        vkey: Verifier key(s) for checkpoint signatures (the current key and any retired by
            rotation); None skips signature checks (the
            report says so) but still checks roots.

    Returns:
        The report; ``ok`` only if every check held.

    Raises:
        LedgerUnavailableError: the database cannot be read or has no ledger.
        VerificationError: ``vkey`` is malformed.
    """
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            if not schema_exists(conn):
                raise LedgerUnavailableError(f"no ledger tables ({', '.join(ALL_TABLES)})")
            return _verify(conn, vkey, started)
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"cannot read ledger: {type(e).__name__}: {e}") from e


def verify_url(url: str, *, vkey: str | Sequence[str] | None) -> VerifyReport:
    """``verify_storage`` on a database URL."""
    engine = create_ledger_engine(url)
    try:
        return verify_storage(engine, vkey=vkey)
    finally:
        engine.dispose()


def _verify(conn: Connection, vkey: str | Sequence[str] | None, started: float) -> VerifyReport:
    chk = _Checker(conn, vkey)
    checkpoints = chk.checkpoints()
    cp_roots = dict(checkpoints)
    frontier = merkle.Frontier()
    expected = 0
    gap = False
    while not gap:
        rows = conn.exec_driver_sql(
            "SELECT idx, leaf_hash, data, time_us, partner_id, purpose, action, decision "
            f"FROM ledger_entry WHERE idx >= {int(expected)} ORDER BY idx LIMIT {CHUNK}"
        ).all()
        if not rows:
            break
        emitted: list[tuple[int, int, bytes]] = []
        for row in rows:
            idx = int(row[0])
            if idx != expected:
                chk.add(expected, "missing_entry", f"entry {expected} is missing (next is {idx})")
                gap = True
                break
            data = bytes(row[2])
            lh = merkle.leaf_hash(data)
            if lh != bytes(row[1]):
                chk.add(idx, "leaf_hash_mismatch", "stored leaf hash does not match entry bytes")
            _check_entry(chk, idx, data, row)
            emitted += frontier.append(lh)
            expected += 1
            want = cp_roots.get(expected)
            if want is not None and frontier.root() != want:
                _root_mismatch(chk, expected)
        chk.check_nodes(emitted)
    size = expected
    for cp_size, _ in checkpoints:
        if cp_size > size:
            if not gap:
                chk.add(
                    size,
                    "truncated",
                    f"checkpoint at size {cp_size} covers entries up to "
                    f"{cp_size - 1} but the log ends at {size}",
                )
            break
    if cp_roots.get(0) is not None and cp_roots[0] != merkle.EMPTY_ROOT:
        _root_mismatch(chk, 0)
    problems = chk.problems
    indexed = [p.index for p in problems if p.index is not None]
    latest = checkpoints[-1][0] if checkpoints else None
    return VerifyReport(
        ok=not problems,
        size=size,
        root=frontier.root().hex(),
        checkpoints=len(checkpoints),
        latest_checkpoint_size=latest,
        first_bad_index=min(indexed) if indexed else None,
        problems=problems,
        signatures_checked=bool(chk.verifiers),
        seconds=round(time.perf_counter() - started, 3),
    )


def _root_mismatch(chk: _Checker, size: int) -> None:
    if chk.bad_leaves or any(p.index is not None for p in chk.problems):
        return  # explained by an entry problem already reported
    chk.add(None, "root_mismatch", f"root at size {size} differs from the signed checkpoint")


def _check_entry(chk: _Checker, idx: int, data: bytes, row: Any) -> None:
    # Fast path (1M entries must verify in under a minute): parse the JSON once and check
    # what storage could get wrong; the leaf hash already binds the exact bytes. Full
    # canonical decoding (``decode_entry``) runs only when something looks wrong.
    try:
        obj = json.loads(data)
        ok = (
            obj["v"] == ENTRY_VERSION
            and obj["index"] == idx
            and int(row[3]) == time_micros(datetime.fromisoformat(obj["time"]))
            and all(row[pos] == obj[name] for pos, name in enumerate(_COLUMNS, start=4))
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if ok:
        return
    try:
        entry = decode_entry(data)
    except LedgerCorruptionError as e:
        chk.add(idx, "entry_malformed", e.message)
        return
    if entry.index != idx:
        chk.add(idx, "entry_moved", f"entry bytes record index {entry.index}")
    if int(row[3]) != time_micros(entry.time):
        chk.add(idx, "column_mismatch", "column time_us disagrees with the entry")
    for pos, name in enumerate(_COLUMNS, start=4):
        if row[pos] != getattr(entry, name):
            chk.add(idx, "column_mismatch", f"column {name} disagrees with the entry")
