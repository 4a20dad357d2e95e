"""Full verification of a stored ledger (``ledger verify``), in the manner of Tessera's fsck.

Trusts nothing it reads from the database under test: the log's verifier key(s) and the
witnesses' keys come from the caller (key directory, ``--vkey``, settings), never from the
database. From the stored entry bytes alone it recomputes every leaf hash, the index recorded
in each entry, the query columns copied from each entry, every stored Merkle node, every row
of the subject index, and the root at the size of every checkpoint it knows:

* stored checkpoints (``ledger_checkpoint``), whose signatures must verify with the key;
* stored witness cosignatures (``ledger_cosignature``), checked with the witnesses' keys;
* checkpoints the auditor holds from outside (a saved checkpoint, a receipt's checkpoint,
  a witness's latest): the database's tree must extend each of them.

Each problem is attributed to the first entry index it implicates, and to a table. A stored
node that disagrees is reported only when no entry inside its range is itself bad. When only
a root disagrees (entries, leaves and nodes were all rewritten consistently), the known
checkpoints bisect the log: the first bad index lies in ``[g, m)``, ``m`` the smallest size
whose root differs and ``g`` the largest smaller size whose root matches; ``g`` is named
(exact when the two are one entry apart, as with one share per append transaction). The
report's ``first_bad_index`` is the smallest index named.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger import merkle
from ledger.checkpoint import Checkpoint, NoteVerifier, open_with_any
from ledger.cosignature import CosignatureVerifier, split_note, verified_cosigners
from ledger.entry import ENTRY_VERSION, decode_entry, time_micros
from ledger.errors import LedgerCorruptionError, LedgerUnavailableError, VerificationError
from ledger.storage import ALL_TABLES, create_ledger_engine, schema_exists

CHUNK = 1 << 14
MAX_PROBLEMS = 100


@dataclass(frozen=True, kw_only=True)
class KnownCheckpoint:
    """A signed checkpoint the auditor holds from outside the database under test."""

    source: str
    note: str


@dataclass(kw_only=True)
class Problem:
    """One thing found wrong; ``index`` is the first entry it implicates, ``table`` where."""

    index: int | None
    kind: str
    detail: str
    table: str | None = None


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
    known_checkpoints: list[str] = field(default_factory=list)
    witnessed_size: int | None = None
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
            extra = ""
            if self.known_checkpoints:
                extra = f"; extends {len(self.known_checkpoints)} checkpoint(s) held outside it"
            return (
                f"OK: {self.size} entries, root {self.root}, "
                f"{self.checkpoints} checkpoint(s) verified{extra}"
            )
        p = self.first_problem
        assert p is not None
        where = f"index {p.index}" if p.index is not None else "ledger"
        table = f" [{p.table}]" if p.table else ""
        return f"FAILED at {where}: {p.kind}{table}: {p.detail} ({len(self.problems)} problem(s))"


@dataclass(frozen=True, slots=True)
class _Known:
    size: int
    root: bytes
    source: str
    outside: bool  # held outside the database, or cosigned by a trusted witness


_COLUMNS = ("partner_id", "purpose", "action", "decision")


class _Checker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.problems: list[Problem] = []
        self.bad_leaves: list[int] = []

    def add(self, index: int | None, kind: str, detail: str, table: str | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(index=index, kind=kind, detail=detail, table=table))
        if index is not None and kind != "node_mismatch":
            self.bad_leaves.append(index)

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
                    "ledger_node",
                )


def verify_storage(
    engine: Engine,
    *,
    vkey: str | Sequence[str],
    known: Sequence[KnownCheckpoint] = (),
    witness_vkeys: Sequence[str] = (),
) -> VerifyReport:
    """Verify everything stored in a ledger database against keys held outside it.

    Args:
        engine: Engine of the ledger database (read only access suffices).
        vkey: The log's verifier key(s): the current key and any retired by rotation.
        known: Checkpoints held outside the database (saved by an auditor, from receipts,
            fetched from witnesses); the stored tree must extend each.
        witness_vkeys: Witnesses' cosignature/v1 verifier keys (stored and carried
            cosignatures are checked with them).

    Returns:
        The report; ``ok`` only if every check held.

    Raises:
        LedgerUnavailableError: the database cannot be read or has no ledger.
        VerificationError: no or a malformed key, or a ``known`` checkpoint that does not
            verify with the keys.
    """
    started = time.perf_counter()
    vkeys = [vkey] if isinstance(vkey, str) else list(vkey)
    if not vkeys:
        raise VerificationError("no verifier key: the database's own record is not trusted")
    verifiers = [NoteVerifier.parse(v) for v in vkeys]
    witnesses = [CosignatureVerifier.parse(v) for v in witness_vkeys]
    outside = [_open_known(k, verifiers, witnesses) for k in known]
    try:
        with engine.connect() as conn, engine.connect() as index_conn:
            if not schema_exists(conn):
                raise LedgerUnavailableError(f"no ledger tables ({', '.join(ALL_TABLES)})")
            return _verify(conn, index_conn, verifiers, witnesses, outside, started)
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"cannot read ledger: {type(e).__name__}: {e}") from e


def verify_url(
    url: str,
    *,
    vkey: str | Sequence[str],
    known: Sequence[KnownCheckpoint] = (),
    witness_vkeys: Sequence[str] = (),
) -> VerifyReport:
    """``verify_storage`` on a database URL."""
    engine = create_ledger_engine(url)
    try:
        return verify_storage(engine, vkey=vkey, known=known, witness_vkeys=witness_vkeys)
    finally:
        engine.dispose()


def _open_known(
    k: KnownCheckpoint,
    verifiers: Sequence[NoteVerifier],
    witnesses: Sequence[CosignatureVerifier],
) -> _Known:
    try:
        body = open_with_any(verifiers, k.note)
        cp = Checkpoint.parse(body)
        if cp.origin not in {v.name for v in verifiers}:
            raise VerificationError(f"origin {cp.origin!r} is not the log's")
        cosigners = verified_cosigners(body, split_note(k.note)[1], witnesses)
    except VerificationError as e:
        raise VerificationError(f"{k.source}: {e.message}") from e
    by = f" cosigned by {', '.join(sorted(cosigners))}" if cosigners else ""
    return _Known(cp.size, cp.root, f"{k.source} (size {cp.size}{by})", True)


def _stored_checkpoints(
    chk: _Checker,
    verifiers: Sequence[NoteVerifier],
    witnesses: Sequence[CosignatureVerifier],
) -> tuple[list[_Known], list[tuple[int, str, str]]]:
    """Valid stored checkpoints (cosigned ones marked ``outside``), and the stored
    checkpoints whose signature or row is bad as ``(size, kind, detail)``."""
    rows = chk.conn.execute(
        sa.text("SELECT size, root, note FROM ledger_checkpoint ORDER BY size")
    ).all()
    cosigs: dict[int, list[str]] = {}
    for size, line in chk.conn.execute(
        sa.text("SELECT size, line FROM ledger_cosignature ORDER BY size, witness")
    ):
        cosigs.setdefault(int(size), []).append(str(line))
    good: list[_Known] = []
    bad: list[tuple[int, str, str]] = []
    for size, root, note in rows:
        size = int(size)
        try:
            body = open_with_any(verifiers, note)
            cp = Checkpoint.parse(body)
        except VerificationError as e:
            why = f"checkpoint at size {size} does not verify with the trusted key(s): {e.message}"
            bad.append((size, "checkpoint_signature", why))
            continue
        if cp.size != size or cp.root != bytes(root):
            bad.append(
                (size, "checkpoint_row", f"checkpoint at size {size}: row disagrees with note")
            )
            continue
        try:
            cosigners = verified_cosigners(body, cosigs.get(size, []), witnesses)
        except VerificationError as e:
            chk.add(None, "cosignature_invalid", f"size {size}: {e.message}", "ledger_cosignature")
            cosigners = {}
        if cosigners:
            src = f"stored checkpoint {size} cosigned by {', '.join(sorted(cosigners))}"
            good.append(_Known(size, cp.root, src, True))
        else:
            good.append(_Known(size, cp.root, f"stored checkpoint {size}", False))
    return good, bad


def _index_rows(conn: Connection) -> Iterator[tuple[int, str, bool]]:
    result = conn.execution_options(yield_per=CHUNK).execute(
        sa.text("SELECT idx, pseudonym, excluded FROM ledger_subject_index ORDER BY idx, pseudonym")
    )
    for r in result:
        yield int(r[0]), str(r[1]), bool(r[2])


class _IndexCheck:
    """Merge-join of the entries (in index order) with the stored subject index."""

    def __init__(self, chk: _Checker, rows: Iterator[tuple[int, str, bool]]) -> None:
        self.chk = chk
        self.rows = rows
        self.peek = next(rows, None)

    def entry(self, idx: int, subjects: Sequence[str], excluded: Sequence[str]) -> None:
        want = {(p, False) for p in subjects} | {(p, True) for p in set(excluded) - set(subjects)}
        have: set[tuple[str, bool]] = set()
        while self.peek is not None and self.peek[0] <= idx:
            i, p, x = self.peek
            if i < idx:
                self.orphan(i)
            else:
                have.add((p, x))
            self.peek = next(self.rows, None)
        if have == want:
            return
        missing, extra = len(want - have), len(have - want)
        self.chk.add(
            idx,
            "subject_index_mismatch",
            f"{missing} row(s) missing, {extra} row(s) not in the entry "
            "(recomputed from the entry's subjects)",
            "ledger_subject_index",
        )

    def orphan(self, idx: int) -> None:
        self.chk.add(
            idx,
            "subject_index_mismatch",
            "row for an entry that does not exist",
            "ledger_subject_index",
        )

    def rest(self) -> None:
        if self.peek is not None:
            self.orphan(self.peek[0])


def _verify(
    conn: Connection,
    index_conn: Connection,
    verifiers: Sequence[NoteVerifier],
    witnesses: Sequence[CosignatureVerifier],
    outside: Sequence[_Known],
    started: float,
) -> VerifyReport:
    chk = _Checker(conn)
    stored, bad = _stored_checkpoints(chk, verifiers, witnesses)
    known = [*stored, *outside]
    wanted = {k.size for k in known}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    index = _IndexCheck(chk, _index_rows(index_conn))
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
                chk.add(
                    expected,
                    "missing_entry",
                    f"entry {expected} is missing (next is {idx})",
                    "ledger_entry",
                )
                gap = True
                break
            data = bytes(row[2])
            lh = merkle.leaf_hash(data)
            if lh != bytes(row[1]):
                chk.add(
                    idx,
                    "leaf_hash_mismatch",
                    "stored leaf hash does not match entry bytes",
                    "ledger_entry",
                )
            subjects = _check_entry(chk, idx, data, row)
            if subjects is not None:
                index.entry(idx, *subjects)
            emitted += frontier.append(lh)
            expected += 1
            if expected in wanted:
                roots[expected] = frontier.root()
        chk.check_nodes(emitted)
    size = expected
    _check_known(chk, known, roots, size, gap)
    _check_signed_cover(chk, stored, bad, size)
    if not gap:
        index.rest()  # rows of entries that are gone (after the causes above)
    problems = chk.problems
    indexed = [p.index for p in problems if p.index is not None]
    witnessed = [k.size for k in known if k.outside]
    return VerifyReport(
        ok=not problems,
        size=size,
        root=frontier.root().hex(),
        checkpoints=len(stored),
        latest_checkpoint_size=stored[-1].size if stored else None,
        first_bad_index=min(indexed) if indexed else None,
        problems=problems,
        known_checkpoints=[k.source for k in outside],
        witnessed_size=max(witnessed) if witnessed else None,
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_known(
    chk: _Checker, known: Sequence[_Known], roots: dict[int, bytes], size: int, gap: bool
) -> None:
    """The tree must extend every known checkpoint: not shorter, same root at its size."""
    beyond = [k for k in known if k.size > size]
    if beyond and not gap:
        far = max(beyond, key=lambda k: (k.outside, k.size))
        chk.add(
            size,
            "truncated",
            f"{far.source} covers entries up to {far.size - 1} but the log ends at {size}",
            "ledger_entry",
        )
    within = sorted((k for k in known if k.size <= size), key=lambda k: k.size)
    for level in (False, True):  # stored checkpoints, then those vouched for from outside
        bad = [k for k in within if k.outside == level and roots.get(k.size) != k.root]
        if not bad:
            continue
        m = bad[0]
        matching = [
            k.size
            for k in within
            if k.size < m.size and (k.outside or not level) and roots.get(k.size) == k.root
        ]
        g = max(matching, default=0)
        if any(g <= b < m.size for b in chk.bad_leaves):
            continue  # explained by an entry problem already reported
        exact = "entry" if m.size - g == 1 else f"one of entries [{g}, {m.size})"
        chk.add(
            g,
            "root_mismatch",
            f"{exact} differs from what {m.source} signed (its root differs; "
            f"the tree matches the known checkpoints up to size {g})",
            "ledger_entry",
        )


def _check_signed_cover(
    chk: _Checker, stored: Sequence[_Known], bad: Sequence[tuple[int, str, str]], size: int
) -> None:
    """Every append signs its checkpoint in its own transaction: entries beyond the last
    valid checkpoint, or checkpoints that do not verify, mean stored data was replaced.
    A bad checkpoint is attributed to the first entry no valid checkpoint below it covers."""
    valid = sorted(k.size for k in stored)
    for b, kind, detail in bad:
        chk.add(max((s for s in valid if s < b), default=0), kind, detail, "ledger_checkpoint")
    last = valid[-1] if valid else 0
    if last < size:
        chk.add(
            last,
            "unsigned_tail",
            f"entries [{last}, {size}) are covered by no valid checkpoint (each append "
            "signs one: checkpoints were removed or entries inserted)",
            "ledger_checkpoint",
        )


def _check_entry(
    chk: _Checker, idx: int, data: bytes, row: Any
) -> tuple[Sequence[str], Sequence[str]] | None:
    """Check one entry; return its (subjects, excluded subjects), None if undecodable."""
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
        if ok:
            subjects, excluded = obj["subjects"], obj["excluded_subjects"]
            if isinstance(subjects, list) and isinstance(excluded, list):
                return subjects, excluded
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    try:
        entry = decode_entry(data)
    except LedgerCorruptionError as e:
        chk.add(idx, "entry_malformed", e.message, "ledger_entry")
        return None
    if entry.index != idx:
        chk.add(idx, "entry_moved", f"entry bytes record index {entry.index}", "ledger_entry")
    if int(row[3]) != time_micros(entry.time):
        chk.add(idx, "column_mismatch", "column time_us disagrees with the entry", "ledger_entry")
    for pos, name in enumerate(_COLUMNS, start=4):
        if row[pos] != getattr(entry, name):
            chk.add(
                idx, "column_mismatch", f"column {name} disagrees with the entry", "ledger_entry"
            )
    return entry.subjects, entry.excluded_subjects
