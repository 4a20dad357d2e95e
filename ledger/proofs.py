"""The stored tree: its size, roots, RFC 9162 proofs, and signed checkpoints of it.

Every function takes an open connection; nodes are read with one ``UNION ALL`` of point
reads per proof. A checkpoint is signed only if the tree is consistent with the last signed
checkpoint (a consistency proof from it is computed and verified first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    open_with_any,
)
from ledger.errors import (
    InconsistentCheckpointError,
    LedgerCorruptionError,
    ProofRangeError,
    VerificationError,
)
from ledger.storage import checkpoint_t, cosignature_t, entry_t
from ledger.verify import verify_consistency

_T = TypeVar("_T")
MAX_INDEX = 2**63 - 1  # BIGINT


def _union_sql(ids: Sequence[merkle.NodeId], ph: str) -> tuple[str, tuple[int, ...]]:
    parts: list[str] = []
    params: list[int] = []
    for lvl, i in ids:
        if lvl == 0:
            parts.append(f"SELECT 0, idx, leaf_hash FROM ledger_entry WHERE idx = {ph}")
            params.append(i)
        else:
            parts.append(
                f"SELECT level, idx, hash FROM ledger_node WHERE level = {ph} AND idx = {ph}"
            )
            params += (lvl, i)
    return " UNION ALL ".join(parts), tuple(params)


def node_reader(conn: Connection) -> merkle.NodeReader:
    """Return a NodeReader that fetches any set of nodes with one UNION ALL of point reads.

    Raw driver SQL on purpose: the statement shape varies with the tree size, which would
    defeat SQLAlchemy's statement cache and cost more than the query (proof target: 1 ms).
    """
    ph = "?" if conn.dialect.name == "sqlite" else "%s"

    def read(ids: Sequence[merkle.NodeId]) -> Mapping[merkle.NodeId, bytes]:
        if not ids:
            return {}
        rows = conn.exec_driver_sql(*_union_sql(ids, ph))
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}

    return read


def raw_node_reader(cur: Any, ph: str) -> merkle.NodeReader:
    """``node_reader`` on a driver cursor (used inside the append transaction)."""

    def read(ids: Sequence[merkle.NodeId]) -> Mapping[merkle.NodeId, bytes]:
        if not ids:
            return {}
        cur.execute(*_union_sql(ids, ph))
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in cur.fetchall()}

    return read


def tree_size(conn: Connection) -> int:
    """Number of committed entries: ``max(idx) + 1``."""
    m = conn.execute(sa.select(sa.func.max(entry_t.c.idx))).scalar()
    return 0 if m is None else int(m) + 1


def _proof(conn: Connection, size: int, build: Callable[[], _T]) -> _T:
    # The size is read only when a node is missing: a proof is then one query.
    try:
        return build()
    except LookupError as e:
        have = tree_size(conn)
        if size > have:
            raise ProofRangeError(f"tree size {size} exceeds log size {have}") from e
        raise LedgerCorruptionError(f"proof needs a missing node: {e}") from e


def root(conn: Connection, size: int | None) -> bytes:
    """Root hash of the first ``size`` entries (None: all).

    Raises:
        ProofRangeError: ``size`` is negative or exceeds the log.
        LedgerCorruptionError: a stored node is missing.
    """
    n = tree_size(conn) if size is None else size
    if n < 0:
        raise ProofRangeError(f"tree size {n} is negative")
    return _proof(conn, n, lambda: merkle.root(n, node_reader(conn)))


def inclusion_proof(conn: Connection, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of ``index`` in the tree of ``size``.

    Raises:
        ProofRangeError: ``not 0 <= index < size <= log size``.
        LedgerCorruptionError: a stored node is missing.
    """
    if not 0 <= index < size or size > MAX_INDEX:
        raise ProofRangeError(f"index {index} not in a tree of size {size}")
    return _proof(conn, size, lambda: merkle.inclusion_proof(index, size, node_reader(conn)))


def consistency_proof(conn: Connection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof from ``old_size`` to ``new_size``.

    Raises:
        ProofRangeError: ``not 0 <= old_size <= new_size <= log size``.
        LedgerCorruptionError: a stored node is missing.
    """
    if not 0 <= old_size <= new_size or new_size > MAX_INDEX:
        raise ProofRangeError(f"bad sizes {old_size} -> {new_size}")
    return _proof(
        conn,
        new_size,
        lambda: merkle.consistency_proof(old_size, new_size, node_reader(conn)),
    )


def latest_checkpoint(
    conn: Connection, verifiers: Sequence[NoteVerifier]
) -> SignedCheckpoint | None:
    """The stored checkpoint of the largest size, verified with any of ``verifiers``.

    Raises:
        LedgerCorruptionError: it does not verify.
    """
    row = conn.execute(
        sa.select(checkpoint_t.c.note).order_by(checkpoint_t.c.size.desc()).limit(1)
    ).first()
    if row is None:
        return None
    try:
        text = open_with_any(verifiers, row[0])
        cp = Checkpoint.parse(text)
    except VerificationError as e:
        raise LedgerCorruptionError(f"latest stored checkpoint does not verify: {e}") from e
    return SignedCheckpoint(origin=cp.origin, size=cp.size, root=cp.root, note=row[0])


def check_extends(cp: Checkpoint, size: int, root: bytes, read: merkle.NodeReader) -> None:
    """Check that the stored tree of ``size`` entries with ``root`` extends checkpoint ``cp``
    (same root at the same size, else an RFC 9162 consistency proof built from ``read``).

    Raises:
        InconsistentCheckpointError: it does not (truncated, rewritten, or forged).
    """
    if cp.size > size:
        raise InconsistentCheckpointError(
            f"the log has {size} entries but a signed checkpoint covers {cp.size}"
        )
    try:
        if cp.size == size:
            if cp.root != root:
                raise VerificationError(f"root at size {size} differs from the signed one")
        elif cp.size == 0:
            if cp.root != merkle.EMPTY_ROOT:
                raise VerificationError("empty checkpoint with a non-empty root")
        else:
            proof = merkle.consistency_proof(cp.size, size, read)
            verify_consistency(cp.size, size, cp.root, root, proof)
    except (LookupError, VerificationError) as e:
        raise InconsistentCheckpointError(
            f"tree of size {size} does not extend the checkpoint of size {cp.size}: {e}"
        ) from e


def sign_checkpoint(
    conn: Connection, signer: NoteSigner, verifiers: Sequence[NoteVerifier]
) -> SignedCheckpoint:
    """Sign and store a checkpoint of the current tree if it grew since the last one.

    Call inside a write transaction (``storage.write_txn``).

    Returns:
        The new checkpoint, or the latest one if the tree did not grow.

    Raises:
        InconsistentCheckpointError: the current tree does not extend the last signed
            checkpoint (nothing is signed).
        LedgerCorruptionError: stored checkpoints or nodes are damaged.
    """
    size = tree_size(conn)
    read = node_reader(conn)
    latest = latest_checkpoint(conn, verifiers)
    try:
        new_root = merkle.root(size, read)
    except LookupError as e:
        raise LedgerCorruptionError(f"cannot compute root: {e}") from e
    if latest is not None:
        check_extends(latest.checkpoint, size, new_root, read)
        if latest.size == size:
            return latest
    signed = signer.sign_checkpoint(Checkpoint(origin=signer.name, size=size, root=new_root))
    conn.execute(
        checkpoint_t.insert().values(
            size=size, root=new_root, note=signed.note, created_us=time.time_ns() // 1000
        )
    )
    return signed


def add_cosignatures(conn: Connection, size: int, lines: Mapping[str, str]) -> None:
    """Insert cosignature lines by witness name for the checkpoint of ``size`` (a line
    already stored for that witness and size is kept)."""
    have = {
        str(r[0])
        for r in conn.execute(
            sa.select(cosignature_t.c.witness).where(cosignature_t.c.size == size)
        )
    }
    now = time.time_ns() // 1000
    rows = [
        {"size": size, "witness": w, "line": line, "created_us": now}
        for w, line in lines.items()
        if w not in have
    ]
    if rows:
        conn.execute(cosignature_t.insert(), rows)


def cosigned_sizes(conn: Connection) -> dict[str, int]:
    """The largest checkpoint size each witness cosigned, by witness name."""
    rows = conn.execute(
        sa.select(cosignature_t.c.witness, sa.func.max(cosignature_t.c.size)).group_by(
            cosignature_t.c.witness
        )
    )
    return {str(r[0]): int(r[1]) for r in rows}


def cosigned_checkpoint(
    conn: Connection, verifiers: Sequence[NoteVerifier], quorum: int
) -> SignedCheckpoint | None:
    """The latest stored checkpoint with at least ``quorum`` cosignature rows, its note
    carrying them (log signature verified; cosignatures are for the reader to check).

    Raises:
        LedgerCorruptionError: its log signature does not verify.
    """
    size = conn.execute(
        sa.select(cosignature_t.c.size)
        .group_by(cosignature_t.c.size)
        .having(sa.func.count() >= quorum)
        .order_by(cosignature_t.c.size.desc())
        .limit(1)
    ).scalar()
    if size is None:
        return None
    note = conn.execute(sa.select(checkpoint_t.c.note).where(checkpoint_t.c.size == size)).scalar()
    if note is None:
        raise LedgerCorruptionError(f"cosignatures on size {size} but no such checkpoint")
    lines = conn.execute(
        sa.select(cosignature_t.c.line)
        .where(cosignature_t.c.size == size)
        .order_by(cosignature_t.c.witness)
    ).scalars()
    full = str(note) + "".join(f"{line}\n" for line in lines)
    try:
        cp = Checkpoint.parse(open_with_any(verifiers, full))
    except VerificationError as e:
        raise LedgerCorruptionError(f"cosigned checkpoint does not verify: {e}") from e
    return SignedCheckpoint(origin=cp.origin, size=cp.size, root=cp.root, note=full)
