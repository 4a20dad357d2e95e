"""The append transaction: one group-committed batch of entries, written in one transaction.

Under the writer lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL the ``ledger_sequencer`` row
``FOR UPDATE``) the writer reads the size, assigns the next indexes, creates missing salts,
inserts entries, completed Merkle nodes and subject-index rows, and signs and stores the
checkpoint of the new tree (ADR 0010: one Ed25519 signature per batch). It returns receipts,
each carrying that checkpoint, only after COMMIT returned; a failure raises ``LedgerError``
and nothing of the batch is kept. So no acknowledged entry is ever in an unsigned tail.

Before extending a tree it did not write itself, the writer checks that the stored tree
extends the latest stored checkpoint; and a tree smaller than one it already signed is a
rollback: it refuses to append (and so to sign a fork).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    open_with_any,
)
from ledger.entry import Disclosure, entry_template, fill_template, time_micros
from ledger.errors import (
    InconsistentCheckpointError,
    LedgerCorruptionError,
    LedgerUnavailableError,
    VerificationError,
)
from ledger.proofs import check_extends, raw_node_reader
from ledger.pseudonym import SALT_SIZE, Pseudonymizer
from ledger.queries import IN_CHUNK
from ledger.storage import chunked, describe_db_error, is_sqlite


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipt:
    """Proof of acceptance: the durably assigned index, the entry's leaf hash, and the signed
    checkpoint of the batch that committed it (its tree contains the entry)."""

    index: int
    leaf_hash: bytes
    payload_digest: bytes
    checkpoint: SignedCheckpoint


class Item:
    """One disclosure, prepared in the caller's thread (while the writer waits on fsync):
    its entry encoded around the writer-assigned parts, and the salt keys of its subjects."""

    __slots__ = ("disclosure", "salt_keys", "template", "time_us")

    def __init__(self, d: Disclosure, pz: Pseudonymizer) -> None:
        self.disclosure = d
        self.template = entry_template(d, subject_key_id=pz.key_id)
        self.time_us = time_micros(d.time)
        self.salt_keys = {s: pz.salt_key(s) for s in (*d.subject_ids, *d.excluded_subject_ids)}


class BatchWriter:
    """Writes batches of ``Item`` in one transaction each; keeps the tree frontier cached.

    Args:
        engine: The ledger database.
        pz: Subject pseudonymizer (the ledger's subject key).
        signer: Checkpoint signing key; its name is the origin. None signs nothing: only
            for measuring what signing costs (``bench/ledger_bench.py --compare-signing``).
        verifiers: Keys stored checkpoints may be signed with (current and retired).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        pz: Pseudonymizer,
        signer: NoteSigner | None,
        verifiers: Sequence[NoteVerifier],
    ) -> None:
        self._engine = engine
        self._sqlite = is_sqlite(engine)
        self._pz = pz
        self._signer = signer
        self._verifiers = list(verifiers)
        # The tree as of the last batch this writer committed: reused while nobody else
        # appended, and the floor below which the stored tree must never shrink.
        self._frontier: merkle.Frontier | None = None
        self._signed_size = 0
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
        self._sql_insert_checkpoint = (
            "INSERT INTO ledger_checkpoint (size, root, note, created_us) "
            f"VALUES ({ph}, {ph}, {ph}, {ph})"
        )
        self._pg_unnest = {} if self._sqlite else self._pg_unnest_sql()

    @contextmanager
    def _append_txn(self) -> Iterator[Any]:
        """``storage.write_txn`` for the append path, on the driver's own connection and cursor.

        Same lock and durability (SQLite ``BEGIN IMMEDIATE``; PostgreSQL the sequencer row
        ``FOR UPDATE``), without SQLAlchemy's per-statement work (~0.1 ms per statement,
        which at small group-commit batches cost more than the entries themselves). Driver
        errors become ``LedgerUnavailableError``; a connection that fails is not reused.
        """
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        try:
            raw = self._engine.raw_connection()
        except sa_exc.SQLAlchemyError as e:
            raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e
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
            raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e
        finally:
            raw.close()  # back to the pool (or discarded if invalidated)

    def write(self, items: list[Item]) -> list[Receipt]:
        """Append ``items`` with consecutive indexes in one transaction.

        Returns:
            One receipt per item, after COMMIT returned.

        Raises:
            LedgerUnavailableError: storage failed; nothing was appended (or, if the failure
                hit COMMIT itself, the outcome is unknown).
            LedgerCorruptionError: stored nodes are missing or inconsistent.
        """
        pz = self._pz
        keys: dict[bytes, str] = {}
        for it in items:
            for sid, k in it.salt_keys.items():
                keys[k] = sid
        with self._append_txn() as cur:
            cur.execute("SELECT max(idx) FROM ledger_entry")
            m = cur.fetchone()[0]
            size = 0 if m is None else int(m) + 1
            if size < self._signed_size:
                raise InconsistentCheckpointError(
                    f"the log shrank: it has {size} entries, but this writer signed a "
                    f"checkpoint of {self._signed_size} (rollback; refusing to append)"
                )
            cached = self._frontier
            if cached is not None and cached.size == size:
                frontier = cached.copy()
            else:
                frontier = self._load_checked(cur, size)
            salts = self._salts(cur, keys)
            entries: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, int, bytes]] = []
            index_rows: list[tuple[str, int, bool]] = []
            receipts: list[tuple[int, bytes, bytes]] = []
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
                receipts.append((idx, lh, d.payload_digest))
            # Driver executemany: SQLAlchemy's per-row parameter processing would cost more
            # than the INSERT itself at these batch sizes.
            self._insert_rows(cur, self._sql_insert_entry, entries)
            self._insert_rows(cur, self._sql_insert_node, nodes)
            self._insert_rows(cur, self._sql_insert_index, index_rows)
            new_size = size + len(items)
            signed = None
            if self._signer is not None:
                signed = self._signer.sign_checkpoint(
                    Checkpoint(origin=self._signer.name, size=new_size, root=frontier.root())
                )
                cur.execute(
                    self._sql_insert_checkpoint,
                    (new_size, signed.root, signed.note, time.time_ns() // 1000),
                )
            # Commit happens when the block exits; the frontier is kept only after it.
            self._frontier = None
        self._frontier = frontier
        self._signed_size = max(self._signed_size, new_size)
        if signed is None:
            signed = SignedCheckpoint(origin="", size=new_size, root=frontier.root(), note="")
        return [
            Receipt(index=r[0], leaf_hash=r[1], payload_digest=r[2], checkpoint=signed)
            for r in receipts
        ]

    def _load_checked(self, cur: Any, size: int) -> merkle.Frontier:
        """Load the stored tree's frontier and check it extends the latest stored checkpoint.

        Raises:
            InconsistentCheckpointError: it does not (truncated, rewritten, or forged).
            LedgerCorruptionError: nodes are missing or the checkpoint does not verify.
        """
        read = raw_node_reader(cur, self._ph)
        try:
            frontier = merkle.Frontier.load(size, read)
        except LookupError as e:
            raise LedgerCorruptionError(f"cannot load tree frontier: {e}") from e
        cur.execute("SELECT size, note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return frontier
        try:
            cp = Checkpoint.parse(open_with_any(self._verifiers, str(row[1])))
        except VerificationError as e:
            raise LedgerCorruptionError(f"latest stored checkpoint does not verify: {e}") from e
        if cp.size != int(row[0]):
            raise LedgerCorruptionError(f"checkpoint row {row[0]} holds size {cp.size}")
        check_extends(cp, size, frontier.root(), read)
        return frontier

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

    def _salts(self, cur: Any, keys: dict[bytes, str]) -> dict[str, bytes]:
        """Salts by subject id for salt keys ``keys`` (key -> subject id), creating missing
        ones, on the driver cursor inside ``_append_txn``."""
        if not keys:
            return {}
        ph = self._ph
        found: dict[bytes, bytes] = {}
        for part in chunked(list(keys), IN_CHUNK):
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
