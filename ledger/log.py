"""The ledger: a verifiable append-only log of disclosure decisions over SQL storage.

Invariants:

* Indexes are dense and gap-free: each batch takes the writer lock (PostgreSQL: the
  ``ledger_sequencer`` row ``FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE``), reads the size under
  it, and writes entries, completed Merkle nodes, subject-index rows and new salts in one
  transaction. Any number of processes may append to the same database.
* ``append`` returns only after COMMIT returned (durable), or raises a ``LedgerError``.
  A commit whose outcome is unknown (connection lost during COMMIT) is reported as
  ``LedgerUnavailableError``: the gateway then fails closed, so an entry may exist for a
  disclosure that never happened, never the reverse.
* Concurrent callers are batched by one writer thread (group commit): while one transaction
  commits, newly arriving disclosures queue up and go into the next one.
* No update or delete path exists, except deleting a subject's salt (``forget_subject``).
* A checkpoint is signed only if the tree is consistent with the last signed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    open_with_any,
)
from ledger.entry import (
    Disclosure,
    Entry,
    decode_entry,
    entry_template,
    fill_template,
    time_micros,
    validate_disclosure,
)
from ledger.errors import (
    EntryNotFoundError,
    InconsistentCheckpointError,
    InvalidArgumentError,
    LedgerClosedError,
    LedgerCorruptionError,
    LedgerError,
    LedgerKeyError,
    LedgerPushbackError,
    LedgerUnavailableError,
    ProofRangeError,
    VerificationError,
)
from ledger.keys import load_or_create_signer, load_or_create_subject_key, retired_vkeys
from ledger.pseudonym import SALT_SIZE, Pseudonymizer, SubjectKey
from ledger.storage import (
    WRITE,
    checkpoint_t,
    chunked,
    create_ledger_engine,
    create_schema,
    entry_t,
    is_sqlite,
    salt_t,
    sequencer_t,
    subject_index_t,
)
from ledger.verify import verify_consistency

_T = TypeVar("_T")
_IN_CHUNK = 500
MAX_QUERY_LIMIT = 1000
_MAX_INDEX = 2**63 - 1  # BIGINT


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipt:
    """Proof of acceptance: the durably assigned index and the entry's leaf hash."""

    index: int
    leaf_hash: bytes
    payload_digest: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredEntry:
    """An entry as stored: index, leaf hash, canonical bytes and the decoded entry."""

    index: int
    leaf_hash: bytes
    data: bytes
    entry: Entry


class _Item:
    """One disclosure, prepared in the caller's thread (while the writer waits on fsync):
    its entry encoded around the writer-assigned parts, and the salt keys of its subjects."""

    __slots__ = ("disclosure", "salt_keys", "template", "time_us")

    def __init__(self, d: Disclosure, pz: Pseudonymizer) -> None:
        self.disclosure = d
        self.template = entry_template(d, subject_key_id=pz.key_id)
        self.time_us = time_micros(d.time)
        self.salt_keys = {s: pz.salt_key(s) for s in (*d.subject_ids, *d.excluded_subject_ids)}


class _Batch:
    """Appends committed together, and their waiting callers.

    A thread blocks by acquiring its own already-held raw lock; the writer releases it. That
    is one futex wake-up per caller, where ``threading.Event`` would also make every woken
    caller queue for the event's condition lock (64 callers: 64 serialized hand-offs).
    A coroutine awaits a future; the writer resolves all of one event loop's futures with
    one ``call_soon_threadsafe`` per batch.
    """

    __slots__ = ("count", "error", "items", "receipts", "waiters")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.count = 0
        self.waiters: list[Any] = []
        self.receipts: list[Receipt] = []
        self.error: LedgerError | None = None

    def finish(self) -> None:
        futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for w in self.waiters:
            if isinstance(w, asyncio.Future):
                futures.setdefault(w.get_loop(), []).append(w)
            else:
                w.release()
        for loop, fs in futures.items():  # one wake-up per event loop and batch
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fs)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():  # a cancelled caller stopped waiting; its entry is committed anyway
            f.set_result(None)


def _receipts(batch: _Batch, start: int, n: int) -> list[Receipt]:
    if batch.error is not None:
        raise batch.error
    return batch.receipts[start : start + n]


def _node_reader(conn: Connection) -> merkle.NodeReader:
    """Return a NodeReader that fetches any set of nodes with one UNION ALL of point reads.

    Raw driver SQL on purpose: the statement shape varies with the tree size, which would
    defeat SQLAlchemy's statement cache and cost more than the query (proof target: 1 ms).
    """
    ph = "?" if conn.dialect.name == "sqlite" else "%s"

    def read(ids: Sequence[merkle.NodeId]) -> Mapping[merkle.NodeId, bytes]:
        if not ids:
            return {}
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
        rows = conn.exec_driver_sql(" UNION ALL ".join(parts), tuple(params))
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}

    return read


def _raw_node_reader(cur: Any, ph: str) -> merkle.NodeReader:
    """``_node_reader`` on a driver cursor (used inside the append transaction)."""

    def read(ids: Sequence[merkle.NodeId]) -> Mapping[merkle.NodeId, bytes]:
        if not ids:
            return {}
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
        cur.execute(" UNION ALL ".join(parts), tuple(params))
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in cur.fetchall()}

    return read


def _tree_size(conn: Connection) -> int:
    m = conn.execute(sa.select(sa.func.max(entry_t.c.idx))).scalar()
    return 0 if m is None else int(m) + 1


class Ledger:
    """A verifiable append-only audit log. Use ``Ledger.open``.

    Args:
        engine: SQLAlchemy engine whose database holds the ledger schema.
        signer: Checkpoint signing key (its name is the origin).
        subject_key: Secret for subject pseudonyms.
        max_batch: At most this many entries per transaction.
        max_pending: Appends waiting beyond this many are refused with pushback.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        signer: NoteSigner,
        subject_key: SubjectKey,
        max_batch: int = 1000,
        max_pending: int = 50_000,
        retired_vkeys: Sequence[str] = (),
    ) -> None:
        if max_batch <= 0 or max_pending <= 0:
            raise InvalidArgumentError("max_batch and max_pending must be positive")
        self._engine = engine
        self._sqlite = is_sqlite(engine)
        self._signer = signer
        self.origin = signer.name
        # Checkpoints signed before a key rotation verify with the retired keys (issue 5.4).
        self._verifiers = [signer.verifier, *(NoteVerifier.parse(v) for v in retired_vkeys)]
        self._pz: Pseudonymizer = subject_key.pseudonymizer()
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._cv = threading.Condition()
        # Batches waiting for the writer, oldest first; appends join the newest while it has
        # room. The writer takes a whole batch at once (group commit).
        self._queue: deque[_Batch] = deque()
        self._pending = 0
        self._closed = False
        self._frontier: merkle.Frontier | None = None
        ph = self._ph = "?" if self._sqlite else "%s"
        self._sql_insert_entry = (
            "INSERT INTO ledger_entry (idx, leaf_hash, data, time_us, partner_id, purpose, "
            f"action, decision) VALUES ({', '.join([ph] * 8)})"
        )
        self._sql_insert_node = (
            f"INSERT INTO ledger_node (level, idx, hash) VALUES ({ph}, {ph}, {ph})"
        )
        self._sql_insert_index = (
            f"INSERT INTO ledger_subject_index (pseudonym, idx, excluded) VALUES ({ph}, {ph}, {ph})"
        )
        self._pg_unnest = {} if self._sqlite else self._pg_unnest_sql()
        self._writer = threading.Thread(target=self._run_writer, name="ledger-writer", daemon=True)
        self._writer.start()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        keys_dir: Path,
        origin: str,
        max_batch: int = 1000,
        max_pending: int = 50_000,
    ) -> Ledger:
        """Open (and on first start create) a ledger.

        Creates tables and triggers if missing, the Ed25519 checkpoint key and the subject
        key under ``keys_dir`` (mode 0600) if missing, and records the origin, verifier key
        and subject key id in the coordinator row; later opens must present the same ones.

        Args:
            url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
            keys_dir: Directory of the key files.
            origin: Log origin, also the signing key's name.
            max_batch: At most this many entries per transaction.
            max_pending: Appends waiting beyond this many are refused with pushback.

        Returns:
            An open ledger; call ``close`` when done.

        Raises:
            LedgerUnavailableError: storage cannot be reached or initialised.
            LedgerKeyError: a key file is unsafe or malformed, or the database was created
                with other keys or another origin.
            InvalidArgumentError: bad URL or limits.
        """
        signer = load_or_create_signer(Path(keys_dir), name=origin)
        subject_key = load_or_create_subject_key(Path(keys_dir))
        retired = retired_vkeys(Path(keys_dir))
        engine = create_ledger_engine(url)
        try:
            create_schema(engine)
            _register(engine, signer, subject_key, retired_vkeys=retired)
        except BaseException:
            engine.dispose()
            raise
        return cls(
            engine=engine,
            signer=signer,
            subject_key=subject_key,
            max_batch=max_batch,
            max_pending=max_pending,
            retired_vkeys=retired,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Finish queued appends, stop the writer and release connections. Idempotent."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._writer.is_alive() and threading.current_thread() is not self._writer:
            self._writer.join()
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The storage engine (for tools and tests; the ledger API has no write path here)."""
        return self._engine

    @property
    def verifier_key(self) -> str:
        """The C2SP signed-note verifier key ``name+keyid+base64`` for auditors."""
        return self._signer.vkey

    # -- append --------------------------------------------------------------------------

    def append(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        """Append disclosures; return their receipts once durably committed. Thread-safe.

        Args:
            disclosures: Entries to log, in order; they get consecutive indexes.

        Returns:
            One receipt per disclosure, in the same order.

        Raises:
            InvalidArgumentError: a disclosure is malformed (nothing appended).
            LedgerPushbackError: more than ``max_pending`` appends are waiting (retry later).
            LedgerClosedError: the ledger is closed.
            LedgerUnavailableError: storage failed; nothing was appended (or, if the failure
                hit COMMIT itself, the outcome is unknown).
            LedgerCorruptionError: stored nodes are missing or inconsistent.
        """
        waiter = _allocate_lock()
        waiter.acquire()
        queued = self._enqueue(disclosures, waiter)
        if queued is None:
            return []
        waiter.acquire()  # released by the writer once the batch is committed (or failed)
        return _receipts(*queued)

    async def append_async(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        """``append`` for asyncio callers: the event loop keeps serving while the batch
        commits. Same receipts, errors and durability; safe to mix with ``append``.

        A cancelled caller stops waiting, but its disclosures stay queued and are committed:
        once queued, a decision is never taken back.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._enqueue(disclosures, done)
        if queued is None:
            return []
        await done
        return _receipts(*queued)

    def _enqueue(
        self, disclosures: Sequence[Disclosure], waiter: Any
    ) -> tuple[_Batch, int, int] | None:
        """Validate and encode in the caller's thread, then join the newest batch.

        Returns ``(batch, start, n)`` (``None`` for nothing to append). Once the batch is
        committed or failed, the writer releases ``waiter`` (a held lock) or resolves it (an
        asyncio future).
        """
        ds = list(disclosures)
        if not ds:
            return None
        for d in ds:
            validate_disclosure(d)
        if len(ds) > self._max_pending:
            raise InvalidArgumentError(f"{len(ds)} disclosures exceed max_pending")
        items = [_Item(d, self._pz) for d in ds]  # encoding work, off the writer's path
        n = len(items)
        with self._cv:
            if self._closed:
                raise LedgerClosedError("ledger is closed")
            if self._pending + n > self._max_pending:
                raise LedgerPushbackError(f"{self._pending} appends already waiting")
            batch = self._queue[-1] if self._queue else None
            if batch is None or (batch.count and batch.count + n > self._max_batch):
                batch = _Batch()
                self._queue.append(batch)
            start = batch.count
            batch.items += items
            batch.count += n
            batch.waiters.append(waiter)
            self._pending += n
            self._cv.notify()
        return batch, start, n

    def _run_writer(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return  # closed and drained
                batch = self._queue.popleft()  # later appends start a new batch
                self._pending -= batch.count
            try:
                batch.receipts = self._write_batch(batch.items)
            except LedgerError as e:
                batch.error = e
            except Exception as e:  # never let the writer die with callers waiting
                err = LedgerError(f"internal error while appending: {type(e).__name__}: {e}")
                err.__cause__ = e
                batch.error = err
            batch.finish()

    @contextmanager
    def _write_txn(self) -> Iterator[Connection]:
        """A write transaction holding the sequencer lock; driver errors become LedgerErrors."""
        try:
            with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
                if not self._sqlite:
                    conn.execute(
                        sa.select(sequencer_t.c.id).where(sequencer_t.c.id == 1).with_for_update()
                    )
                yield conn
        except sa.exc.SQLAlchemyError as e:
            raise LedgerUnavailableError(f"ledger storage failed: {type(e).__name__}") from e

    @contextmanager
    def _append_txn(self) -> Iterator[Any]:
        """``_write_txn`` for the append path, on the driver's own connection and cursor.

        Same lock and durability (SQLite ``BEGIN IMMEDIATE``; PostgreSQL the sequencer row
        ``FOR UPDATE``), without SQLAlchemy's per-statement work (~0.1 ms per statement,
        which at small group-commit batches cost more than the entries themselves). Driver
        errors become ``LedgerUnavailableError``; a connection that fails is not reused.
        """
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        try:
            raw = self._engine.raw_connection()
        except sa.exc.SQLAlchemyError as e:
            raise LedgerUnavailableError(f"ledger storage failed: {type(e).__name__}") from e
        try:
            cur = raw.cursor()
            try:
                if self._sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                else:
                    cur.execute("SELECT id FROM ledger_sequencer WHERE id = 1 FOR UPDATE")
                yield cur
                if self._sqlite:
                    cur.execute("COMMIT")
                else:
                    raw.commit()
            except BaseException:
                try:
                    if self._sqlite:
                        if getattr(raw.driver_connection, "in_transaction", True):
                            cur.execute("ROLLBACK")
                    else:
                        raw.rollback()
                except dbapi_error:
                    raw.invalidate()
                raise
            finally:
                cur.close()
        except dbapi_error as e:
            raise LedgerUnavailableError(f"ledger storage failed: {type(e).__name__}") from e
        finally:
            raw.close()  # back to the pool (or discarded if invalidated)

    def _read(self, fn: Callable[[Connection], _T]) -> _T:
        try:
            with self._engine.connect() as conn, conn.begin():
                return fn(conn)
        except sa.exc.SQLAlchemyError as e:
            raise LedgerUnavailableError(f"ledger storage failed: {type(e).__name__}") from e

    def _write_batch(self, items: list[_Item]) -> list[Receipt]:
        pz = self._pz
        keys: dict[bytes, str] = {}
        for it in items:
            for sid, k in it.salt_keys.items():
                keys[k] = sid
        with self._append_txn() as cur:
            cur.execute("SELECT max(idx) FROM ledger_entry")
            m = cur.fetchone()[0]
            size = 0 if m is None else int(m) + 1
            cached = self._frontier
            if cached is not None and cached.size == size:
                frontier = cached.copy()
            else:
                try:
                    frontier = merkle.Frontier.load(size, _raw_node_reader(cur, self._ph))
                except LookupError as e:
                    raise LedgerCorruptionError(f"cannot load tree frontier: {e}") from e
            salts = self._salts_raw(cur, keys)
            entries: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, int, bytes]] = []
            index_rows: list[tuple[str, int, bool]] = []
            receipts: list[Receipt] = []
            leaf = merkle.leaf_hash
            for offset, it in enumerate(items):
                d = it.disclosure
                idx = size + offset
                disclosed = {pz.pseudonym(salts[s], s) for s in d.subject_ids}
                excluded = {pz.pseudonym(salts[s], s) for s in d.excluded_subject_ids}
                data = fill_template(
                    it.template, index=idx, subjects=disclosed, excluded_subjects=excluded
                )
                lh = leaf(data)
                entries.append(
                    (idx, lh, data, it.time_us, d.partner_id, d.purpose, d.action, d.decision)
                )
                nodes += frontier.append(lh)
                for p in disclosed:
                    index_rows.append((p, idx, False))
                for p in excluded - disclosed:
                    index_rows.append((p, idx, True))
                receipts.append(Receipt(index=idx, leaf_hash=lh, payload_digest=d.payload_digest))
            # Driver executemany: SQLAlchemy's per-row parameter processing would cost more
            # than the INSERT itself at these batch sizes.
            self._insert_rows(cur, self._sql_insert_entry, entries)
            self._insert_rows(cur, self._sql_insert_node, nodes)
            self._insert_rows(cur, self._sql_insert_index, index_rows)
            # Commit happens when the block exits; the frontier is kept only after it.
            self._frontier = None
        self._frontier = frontier
        return receipts

    def _insert_rows(self, cur: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """INSERT ``rows`` with ``sql`` (one ``VALUES`` tuple of placeholders).

        SQLite: the driver's C ``executemany``. PostgreSQL: one ``INSERT ... SELECT FROM
        unnest(<one array per column>)`` statement, because psycopg's pipelined
        ``executemany`` costs ~50 µs of Python per row (three rows per entry), and long
        multi-row ``VALUES`` texts are re-parsed by psycopg on every call.
        """
        if not rows:
            return
        if self._sqlite:
            cur.executemany(sql, rows)
            return
        cols = [list(col) for col in zip(*rows, strict=True)]
        cur.execute(self._pg_unnest[sql], cols)

    def _pg_unnest_sql(self) -> dict[str, str]:
        def unnest(sql: str, types: str) -> str:
            head = sql.rpartition(" VALUES ")[0]
            arrays = ", ".join(f"%b::{t}[]" for t in types.split())  # %b: binary, no escaping
            return f"{head} SELECT * FROM unnest({arrays})"

        return {
            self._sql_insert_entry: unnest(
                self._sql_insert_entry, "bigint bytea bytea bigint text text text text"
            ),
            self._sql_insert_node: unnest(self._sql_insert_node, "smallint bigint bytea"),
            self._sql_insert_index: unnest(self._sql_insert_index, "text bigint boolean"),
        }

    def _salts_raw(self, cur: Any, keys: dict[bytes, str]) -> dict[str, bytes]:
        """``_salts_by_key(..., create=True)`` on a driver cursor inside ``_append_txn``."""
        if not keys:
            return {}
        ph = self._ph
        found: dict[bytes, bytes] = {}
        for part in chunked(list(keys), _IN_CHUNK):
            cur.execute(
                "SELECT salt_key, salt FROM ledger_subject_salt WHERE salt_key IN "
                f"({', '.join([ph] * len(part))})",
                tuple(part),
            )
            found.update({bytes(r[0]): bytes(r[1]) for r in cur.fetchall()})
        new = [(k, os.urandom(SALT_SIZE)) for k in keys if k not in found]
        if new:
            cur.executemany(
                f"INSERT INTO ledger_subject_salt (salt_key, salt) VALUES ({ph}, {ph})", new
            )
            found.update(new)
        return {keys[k]: salt for k, salt in found.items()}

    def _salts_for(
        self, conn: Connection, subject_ids: set[str], *, create: bool
    ) -> dict[str, bytes]:
        """Look up (and with ``create`` make) salts for many subjects in batched queries."""
        return self._salts_by_key(
            conn, {self._pz.salt_key(s): s for s in subject_ids}, create=create
        )

    def _salts_by_key(
        self, conn: Connection, keys: dict[bytes, str], *, create: bool
    ) -> dict[str, bytes]:
        """Salts of subjects given as salt key -> subject id (keys computed by the callers)."""
        if not keys:
            return {}
        found: dict[bytes, bytes] = {}
        for part in chunked(list(keys), _IN_CHUNK):
            rows = conn.execute(
                sa.select(salt_t.c.salt_key, salt_t.c.salt).where(salt_t.c.salt_key.in_(part))
            )
            found.update({bytes(r[0]): bytes(r[1]) for r in rows})
        if create:
            new = [{"salt_key": k, "salt": os.urandom(SALT_SIZE)} for k in keys if k not in found]
            if new:
                conn.execute(salt_t.insert(), new)
                found.update({r["salt_key"]: r["salt"] for r in new})
        return {keys[k]: salt for k, salt in found.items()}

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """Sign and store a checkpoint of the current tree if it grew since the last one.

        Returns:
            The new checkpoint, or the latest one if the tree did not grow.

        Raises:
            InconsistentCheckpointError: the current tree does not extend the last signed
                checkpoint (nothing is signed).
            LedgerCorruptionError: stored checkpoints or nodes are damaged.
            LedgerUnavailableError: storage failed.
        """
        with self._write_txn() as conn:
            size = _tree_size(conn)
            read = _node_reader(conn)
            latest = self._latest(conn)
            try:
                root = merkle.root(size, read)
            except LookupError as e:
                raise LedgerCorruptionError(f"cannot compute root: {e}") from e
            if latest is not None:
                if latest.size > size:
                    raise InconsistentCheckpointError(
                        f"tree has {size} entries but checkpoint covers {latest.size}"
                    )
                if latest.size == size:
                    if latest.root != root:
                        raise InconsistentCheckpointError(
                            f"root at size {size} differs from the signed checkpoint"
                        )
                    return latest
                try:
                    if latest.size == 0:
                        if latest.root != merkle.EMPTY_ROOT:
                            raise VerificationError("empty checkpoint with a non-empty root")
                    else:
                        proof = merkle.consistency_proof(latest.size, size, read)
                        verify_consistency(latest.size, size, latest.root, root, proof)
                except (LookupError, VerificationError) as e:
                    raise InconsistentCheckpointError(
                        f"tree of size {size} is not consistent with checkpoint {latest.size}: {e}"
                    ) from e
            signed = self._signer.sign_checkpoint(
                Checkpoint(origin=self.origin, size=size, root=root)
            )
            conn.execute(
                checkpoint_t.insert().values(
                    size=size, root=root, note=signed.note, created_us=time.time_ns() // 1000
                )
            )
        return signed

    def _latest(self, conn: Connection) -> SignedCheckpoint | None:
        row = conn.execute(
            sa.select(checkpoint_t.c.note).order_by(checkpoint_t.c.size.desc()).limit(1)
        ).first()
        if row is None:
            return None
        try:
            text = open_with_any(self._verifiers, row[0])
            cp = Checkpoint.parse(text)
        except VerificationError as e:
            raise LedgerCorruptionError(f"latest stored checkpoint does not verify: {e}") from e
        return SignedCheckpoint(origin=cp.origin, size=cp.size, root=cp.root, note=row[0])

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """Return the latest signed checkpoint, or None before the first.

        Raises:
            LedgerCorruptionError: it does not verify with this ledger's key.
            LedgerUnavailableError: storage failed.
        """
        return self._read(self._latest)

    # -- reads and proofs ----------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of committed entries (across all processes)."""
        return self._read(_tree_size)

    def root(self, tree_size: int | None = None) -> bytes:
        """Return the root hash of the first ``tree_size`` entries (default: all).

        Raises:
            ProofRangeError: ``tree_size`` exceeds the log.
        """

        def run(conn: Connection) -> bytes:
            n = _tree_size(conn) if tree_size is None else tree_size
            if n < 0:
                raise ProofRangeError(f"tree size {n} is negative")
            return self._proof(conn, n, lambda: merkle.root(n, _node_reader(conn)))

        return self._read(run)

    @staticmethod
    def _proof(conn: Connection, tree_size: int, build: Callable[[], _T]) -> _T:
        # The size is read only when a node is missing: a proof is then one query.
        try:
            return build()
        except LookupError as e:
            size = _tree_size(conn)
            if tree_size > size:
                raise ProofRangeError(f"tree size {tree_size} exceeds log size {size}") from e
            raise LedgerCorruptionError(f"proof needs a missing node: {e}") from e

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """Return the RFC 9162 inclusion proof of ``index`` in the tree of ``tree_size``.

        Raises:
            ProofRangeError: ``not 0 <= index < tree_size <= size``.
            LedgerCorruptionError: a stored node is missing.
            LedgerUnavailableError: storage failed.
        """
        if not 0 <= index < tree_size or tree_size > _MAX_INDEX:
            raise ProofRangeError(f"index {index} not in a tree of size {tree_size}")

        def run(conn: Connection) -> list[bytes]:
            return self._proof(
                conn,
                tree_size,
                lambda: merkle.inclusion_proof(index, tree_size, _node_reader(conn)),
            )

        return self._read(run)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``old_size`` to ``new_size``.

        Raises:
            ProofRangeError: ``not 0 <= old_size <= new_size <= size``.
            LedgerCorruptionError: a stored node is missing.
            LedgerUnavailableError: storage failed.
        """
        if not 0 <= old_size <= new_size or new_size > _MAX_INDEX:
            raise ProofRangeError(f"bad sizes {old_size} -> {new_size}")

        def run(conn: Connection) -> list[bytes]:
            return self._proof(
                conn,
                new_size,
                lambda: merkle.consistency_proof(old_size, new_size, _node_reader(conn)),
            )

        return self._read(run)

    def get_entry(self, index: int) -> StoredEntry:
        """Return the stored entry at ``index``.

        Raises:
            EntryNotFoundError: no such index.
            LedgerCorruptionError: the stored bytes do not match their leaf hash or decode.
            LedgerUnavailableError: storage failed.
        """
        if not 0 <= index <= _MAX_INDEX:  # beyond BIGINT the driver raises OverflowError
            raise EntryNotFoundError(f"no entry at index {index}")
        row = self._read(
            lambda conn: conn.execute(
                sa.select(entry_t.c.idx, entry_t.c.leaf_hash, entry_t.c.data).where(
                    entry_t.c.idx == index
                )
            ).first()
        )
        if row is None:
            raise EntryNotFoundError(f"no entry at index {index}")
        return _stored(row)

    def query(
        self,
        *,
        subject_id: str | None = None,
        partner_id: str | None = None,
        purpose: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_index: int = -1,
        limit: int = 100,
    ) -> list[StoredEntry]:
        """Return entries matching every given filter, ascending by index.

        Args:
            subject_id: Clear subject id; looked up through its pseudonym (no salt => no
                entries, e.g. after ``forget_subject``).
            partner_id: Exact partner id.
            purpose: Exact purpose.
            action: Exact action.
            decision: ``ALLOW`` or ``DENY``.
            since: Entries with ``time >= since`` (aware datetime).
            until: Entries with ``time < until`` (aware datetime).
            after_index: Cursor: only entries with a larger index.
            limit: At most this many entries, 1..1000.

        Returns:
            Matching entries; pass the last one's index as ``after_index`` for the next page.

        Raises:
            InvalidArgumentError: bad limit or naive datetime.
            LedgerCorruptionError: a matching entry does not verify.
            LedgerUnavailableError: storage failed.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise InvalidArgumentError(f"limit must be in 1..{MAX_QUERY_LIMIT}")
        for name, t in (("since", since), ("until", until)):
            if t is not None and t.tzinfo is None:
                raise InvalidArgumentError(f"{name} must be timezone-aware")

        def run(conn: Connection) -> list[StoredEntry]:
            stmt = sa.select(entry_t.c.idx, entry_t.c.leaf_hash, entry_t.c.data)
            if subject_id is not None:
                salts = self._salts_for(conn, {subject_id}, create=False)
                if subject_id not in salts:
                    return []
                p = self._pz.pseudonym(salts[subject_id], subject_id)
                stmt = stmt.join(
                    subject_index_t,
                    sa.and_(
                        subject_index_t.c.idx == entry_t.c.idx, subject_index_t.c.pseudonym == p
                    ),
                )
            conds = [entry_t.c.idx > after_index]
            for col, val in (
                (entry_t.c.partner_id, partner_id),
                (entry_t.c.purpose, purpose),
                (entry_t.c.action, action),
                (entry_t.c.decision, decision),
            ):
                if val is not None:
                    conds.append(col == val)
            if since is not None:
                conds.append(entry_t.c.time_us >= time_micros(since))
            if until is not None:
                conds.append(entry_t.c.time_us < time_micros(until))
            stmt = stmt.where(*conds).order_by(entry_t.c.idx).limit(limit)
            return [_stored(r) for r in conn.execute(stmt)]

        return self._read(run)

    # -- subjects ------------------------------------------------------------------------

    def subject_pseudonym(self, subject_id: str) -> str | None:
        """Return the subject's current pseudonym, or None if it has no salt (never logged,
        or forgotten).

        Raises:
            LedgerUnavailableError: storage failed.
        """
        salts = self._read(lambda conn: self._salts_for(conn, {subject_id}, create=False))
        if subject_id not in salts:
            return None
        return self._pz.pseudonym(salts[subject_id], subject_id)

    def forget_subject(self, subject_id: str) -> bool:
        """Delete the subject's salt: its entries become unlinkable; proofs still verify.

        A later disclosure about the same subject gets a fresh salt, hence a new pseudonym
        unrelated to the old ones.

        Returns:
            True if a salt was deleted, False if the subject had none.

        Raises:
            LedgerUnavailableError: storage failed.
        """
        key = self._pz.salt_key(subject_id)
        with self._write_txn() as conn:
            res = conn.execute(salt_t.delete().where(salt_t.c.salt_key == key))
            return bool(res.rowcount)


def _stored(row: Any) -> StoredEntry:
    idx, lh, data = int(row[0]), bytes(row[1]), bytes(row[2])
    if merkle.leaf_hash(data) != lh:
        raise LedgerCorruptionError(f"entry {idx}: stored leaf hash does not match its bytes")
    entry = decode_entry(data)
    if entry.index != idx:
        raise LedgerCorruptionError(f"entry {idx}: bytes record index {entry.index}")
    return StoredEntry(index=idx, leaf_hash=lh, data=data, entry=entry)


def _register(
    engine: Engine,
    signer: NoteSigner,
    subject_key: SubjectKey,
    *,
    retired_vkeys: Sequence[str] = (),
) -> None:
    """Insert the coordinator row on first start; check origin and keys on later starts."""
    try:
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            row = conn.execute(
                sa.select(sequencer_t.c.origin, sequencer_t.c.vkey, sequencer_t.c.subject_key_id)
            ).first()
            if row is None and not is_sqlite(engine):
                # Two processes starting at once: the second waits, then sees the row.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262701)")
                row = conn.execute(
                    sa.select(
                        sequencer_t.c.origin, sequencer_t.c.vkey, sequencer_t.c.subject_key_id
                    )
                ).first()
            if row is None:
                conn.execute(
                    sequencer_t.insert().values(
                        id=1,
                        origin=signer.name,
                        vkey=signer.vkey,
                        subject_key_id=subject_key.key_id,
                    )
                )
                return
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"cannot open ledger storage: {type(e).__name__}: {e}") from e
    origin, vkey, skid = row
    if origin != signer.name:
        raise LedgerKeyError(f"ledger origin is {origin!r}, not {signer.name!r}")
    if vkey != signer.vkey and vkey not in retired_vkeys:
        raise LedgerKeyError("ledger was created with another checkpoint signing key")
    if skid != subject_key.key_id:
        raise LedgerKeyError("ledger was created with another subject key")
