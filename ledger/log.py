"""The ledger: a verifiable append-only log of disclosure decisions over SQL storage.

``Ledger`` is the facade; the work is done by:

* ``ledger.sequencer``: group commit. Concurrent callers are batched by one writer thread:
  while one transaction commits, newly arriving disclosures queue up for the next one.
* ``ledger.writer``: the append transaction. Indexes are dense and gap-free: each batch
  takes the writer lock (PostgreSQL: the ``ledger_sequencer`` row ``FOR UPDATE``; SQLite:
  ``BEGIN IMMEDIATE``), reads the size under it, and writes entries, completed Merkle nodes,
  subject-index rows and new salts in one transaction. Any number of processes may append.
* ``ledger.proofs``: roots, inclusion and consistency proofs, signed checkpoints.
* ``ledger.queries``: entries by index and by filters.
* ``ledger.erasure``: forgetting a subject.

Invariants:

* ``append`` returns only after COMMIT returned (durable), or raises a ``LedgerError``.
  A commit whose outcome is unknown (connection lost during COMMIT) is reported as
  ``LedgerUnavailableError``: the gateway then fails closed, so an entry may exist for a
  disclosure that never happened, never the reverse.
* No update or delete path exists, except deleting a subject's salt (``forget_subject``).
* A checkpoint is signed only if the tree is consistent with the last signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import erasure, proofs, queries
from ledger.checkpoint import NoteSigner, NoteVerifier, SignedCheckpoint
from ledger.entry import Disclosure
from ledger.errors import (
    InvalidArgumentError,
    LedgerKeyError,
    LedgerUnavailableError,
    VerificationError,
)
from ledger.keys import load_or_create_signer, load_or_create_subject_key, retired_vkeys
from ledger.pseudonym import Pseudonymizer, SubjectKey
from ledger.queries import ANY, MAX_QUERY_LIMIT, Filter, StoredEntry
from ledger.sequencer import CommitObserver, Sequencer
from ledger.storage import (
    WRITE,
    create_ledger_engine,
    create_schema,
    is_sqlite,
    read_txn,
    sequencer_t,
    write_txn,
)
from ledger.witness.client import WitnessClient, WitnessConfig
from ledger.witness.publisher import WitnessPublisher
from ledger.writer import BatchWriter, Receipt

__all__ = ["MAX_QUERY_LIMIT", "Ledger", "Receipt", "StoredEntry"]


class Ledger:
    """A verifiable append-only audit log. Use ``Ledger.open``.

    Args:
        engine: SQLAlchemy engine whose database holds the ledger schema.
        signer: Checkpoint signing key (its name is the origin).
        subject_key: Secret for subject pseudonyms.
        max_batch: At most this many entries per transaction.
        max_pending: Appends waiting beyond this many are refused with pushback.
        retired_vkeys: Verifier keys of signing keys retired by rotation.
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
        self._engine = engine
        self._signer = signer
        self.origin = signer.name
        # Checkpoints signed before a key rotation verify with the retired keys (issue 5.4).
        self._verifiers = [signer.verifier, *(NoteVerifier.parse(v) for v in retired_vkeys)]
        self._pz: Pseudonymizer = subject_key.pseudonymizer()
        writer = BatchWriter(engine=engine, pz=self._pz, signer=signer, verifiers=self._verifiers)
        self._sequencer = Sequencer(
            write=writer.write, pz=self._pz, max_batch=max_batch, max_pending=max_pending
        )
        self.witness_publisher: WitnessPublisher | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        keys_dir: Path,
        origin: str,
        max_batch: int = 1000,
        max_pending: int = 50_000,
        witnesses: Sequence[WitnessConfig] = (),
        witness_quorum: int = 1,
        witness_interval_s: float = 1.0,
        witness_check: bool = True,
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
            witnesses: Witnesses to submit checkpoints to (c2sp.org/tlog-witness).
            witness_quorum: Cosignatures that make a checkpoint published (k of n).
            witness_interval_s: Pause between submission rounds (0: no background thread;
                call ``witness_publisher.publish()``).
            witness_check: Before returning, submit the current checkpoint to every witness
                and refuse to open if one of them has cosigned a larger or another tree: the
                database was rolled back or forked (an unreachable witness does not stop it).

        Returns:
            An open ledger; call ``close`` when done.

        Raises:
            LedgerUnavailableError: storage cannot be reached or initialised.
            LedgerKeyError: a key file is unsafe or malformed, or the database was created
                with other keys or another origin.
            InvalidArgumentError: bad URL, limits or witness settings.
            WitnessRefusedError: ``witness_check`` found the log rolled back or forked.
        """
        if witnesses and not 1 <= witness_quorum <= len(witnesses):
            raise InvalidArgumentError(f"witness quorum must be in 1..{len(witnesses)}")
        try:
            clients = [WitnessClient(config=w) for w in witnesses]
        except VerificationError as e:
            raise InvalidArgumentError(f"bad witness verifier key: {e.message}") from e
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
        led = cls(
            engine=engine,
            signer=signer,
            subject_key=subject_key,
            max_batch=max_batch,
            max_pending=max_pending,
            retired_vkeys=retired,
        )
        if clients:
            try:
                led._start_witnessing(
                    clients, witness_quorum, witness_interval_s, check=witness_check
                )
            except BaseException:
                led.close()
                raise
        return led

    def _start_witnessing(
        self, clients: list[WitnessClient], quorum: int, interval_s: float, *, check: bool
    ) -> None:
        known = read_txn(self._engine, proofs.cosigned_sizes)
        for c in clients:
            c.known_size = known.get(c.name)
        self.witness_publisher = WitnessPublisher(
            ledger=self, witnesses=clients, quorum=quorum, interval_s=interval_s
        )
        if check:
            self.witness_publisher.check_not_rolled_back(self.checkpoint())
        if interval_s > 0:
            self.witness_publisher.start()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries queued for the writer and not yet committed (a metrics gauge)."""
        return self._sequencer.pending

    def observe_commits(self, observer: CommitObserver) -> None:
        """Call ``observer(entries, tree_size, seconds)`` in the writer thread after each
        committed batch (metrics). It must be quick; its exceptions are ignored."""
        self._sequencer.observers.append(observer)

    def close(self) -> None:
        """Finish queued appends, stop the writer and release connections. Idempotent."""
        if self.witness_publisher is not None:
            self.witness_publisher.stop()
        self._sequencer.close()
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
        return self._sequencer.append(disclosures)

    async def append_async(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        """``append`` for asyncio callers: the event loop keeps serving while the batch
        commits. Same receipts, errors and durability; safe to mix with ``append``.

        A cancelled caller stops waiting, but its disclosures stay queued and are committed:
        once queued, a decision is never taken back.
        """
        return await self._sequencer.append_async(disclosures)

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
        with write_txn(self._engine) as conn:
            return proofs.sign_checkpoint(conn, self._signer, self._verifiers)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """Return the latest signed checkpoint, or None before the first.

        Raises:
            LedgerCorruptionError: it does not verify with this ledger's key.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(self._engine, lambda c: proofs.latest_checkpoint(c, self._verifiers))

    def add_cosignatures(self, size: int, lines: Mapping[str, str]) -> None:
        """Store witnesses' cosignature lines (by witness name) on the checkpoint of ``size``.

        Raises:
            LedgerUnavailableError: storage failed.
        """
        with write_txn(self._engine) as conn:
            proofs.add_cosignatures(conn, size, lines)

    def cosigned_checkpoint(self, quorum: int = 1) -> SignedCheckpoint | None:
        """The latest checkpoint with at least ``quorum`` stored cosignatures (its note
        carries them), or None. Check the cosignatures with the witnesses' keys.

        Raises:
            LedgerCorruptionError: its log signature does not verify.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(
            self._engine, lambda c: proofs.cosigned_checkpoint(c, self._verifiers, quorum)
        )

    # -- reads and proofs ----------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of committed entries (across all processes)."""
        return read_txn(self._engine, proofs.tree_size)

    def root(self, tree_size: int | None = None) -> bytes:
        """Return the root hash of the first ``tree_size`` entries (default: all).

        Raises:
            ProofRangeError: ``tree_size`` exceeds the log.
        """
        return read_txn(self._engine, lambda conn: proofs.root(conn, tree_size))

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """Return the RFC 9162 inclusion proof of ``index`` in the tree of ``tree_size``.

        Raises:
            ProofRangeError: ``not 0 <= index < tree_size <= size``.
            LedgerCorruptionError: a stored node is missing.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(self._engine, lambda conn: proofs.inclusion_proof(conn, index, tree_size))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``old_size`` to ``new_size``.

        Raises:
            ProofRangeError: ``not 0 <= old_size <= new_size <= size``.
            LedgerCorruptionError: a stored node is missing.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(
            self._engine, lambda conn: proofs.consistency_proof(conn, old_size, new_size)
        )

    def get_entry(self, index: int) -> StoredEntry:
        """Return the stored entry at ``index``.

        Raises:
            EntryNotFoundError: no such index.
            LedgerCorruptionError: the stored bytes do not match their leaf hash or decode.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(self._engine, lambda conn: queries.get_entry(conn, index))

    def query(
        self, flt: Filter = ANY, *, after_index: int = -1, limit: int = 100
    ) -> list[StoredEntry]:
        """Return entries matching every criterion of ``flt``, ascending by index.

        A ``subject_id`` is looked up through its pseudonym: no salt (never logged, or
        forgotten with ``forget_subject``) means no entries. ``since`` is inclusive,
        ``until`` exclusive; both must be timezone-aware.

        Args:
            after_index: Cursor: only entries with a larger index.
            limit: At most this many entries, 1..1000.

        Returns:
            Matching entries; pass the last one's index as ``after_index`` for the next page.

        Raises:
            InvalidArgumentError: bad limit or naive datetime.
            LedgerCorruptionError: a matching entry does not verify.
            LedgerUnavailableError: storage failed.
        """
        return read_txn(
            self._engine,
            lambda conn: queries.query(conn, self._pz, flt, after_index=after_index, limit=limit),
        )

    # -- subjects ------------------------------------------------------------------------

    def subject_pseudonym(self, subject_id: str) -> str | None:
        """Return the subject's current pseudonym, or None if it has no salt (never logged,
        or forgotten).

        Raises:
            LedgerUnavailableError: storage failed.
        """
        return read_txn(
            self._engine, lambda conn: queries.subject_pseudonym(conn, self._pz, subject_id)
        )

    def forget_subject(self, subject_id: str, *, purge: erasure.Purge | None = None) -> bool:
        """Delete the subject's salt: its entries become unlinkable; proofs still verify.

        A later disclosure about the same subject gets a fresh salt, hence a new pseudonym
        unrelated to the old ones. On SQLite the deleted bytes are zeroed and the
        write-ahead log emptied before this returns (``ledger.erasure``).

        Args:
            purge: ``purge(conn, forgotten)`` deletes the subject's other data (the
                registry's) in the same transaction; an exception from it rolls back.

        Returns:
            True if a salt was deleted, False if the subject had none.

        Raises:
            LedgerUnavailableError: storage failed, or the erasure committed but the
                write-ahead log could not be emptied yet (retry).
        """
        return erasure.forget_subject(self._engine, self._pz, subject_id, purge=purge)


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
