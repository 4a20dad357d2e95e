"""Forgetting a subject (§五.(三)): deleting its salt makes its entries unlinkable.

No entry, leaf or node changes, so every proof and checkpoint still verifies. A later
disclosure about the same subject gets a fresh salt, hence a pseudonym unrelated to the old.

Erasure erases (issue 14.4): on SQLite the connections run with ``secure_delete`` (the
deleted salt is overwritten with zeros) and, once the deletion is committed, a
``wal_checkpoint(TRUNCATE)`` copies the zeroed pages into the database and empties the
write-ahead log, where the salt's older copies were. On PostgreSQL the salt is deleted by
``ledger_forget_salt`` (owner's rights; the gateway's role has no DELETE on ledger tables).
A caller's ``purge`` (the registry's personal data) runs in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.errors import LedgerUnavailableError
from ledger.pseudonym import Pseudonymizer
from ledger.storage import FORGET_FUNCTION, describe_db_error, is_sqlite, salt_t, write_txn

Purge = Callable[[Connection, bool], None]
_CHECKPOINT_ATTEMPTS = 20


def forget_subject(
    engine: Engine, pz: Pseudonymizer, subject_id: str, *, purge: Purge | None = None
) -> bool:
    """Delete the subject's salt; run ``purge(conn, forgotten)`` in the same transaction.

    Args:
        purge: Deletes what else the database holds about the subject, on the ledger's
            connection; told whether a salt was deleted. An exception it raises rolls the
            whole erasure back and propagates.

    Returns:
        True if a salt was deleted, False if the subject had none.

    Raises:
        LedgerUnavailableError: storage failed (nothing erased), or the erasure committed but
            the SQLite write-ahead log could not be emptied (retry: erasure is idempotent).
    """
    key = pz.salt_key(subject_id)
    with write_txn(engine) as conn:
        if is_sqlite(engine):
            forgotten = bool(conn.execute(salt_t.delete().where(salt_t.c.salt_key == key)).rowcount)
        else:
            forget = getattr(sa.func, FORGET_FUNCTION)
            forgotten = bool(conn.execute(sa.select(forget(key))).scalar())
        if purge is not None:
            purge(conn, forgotten)
    if is_sqlite(engine):
        truncate_wal(engine)
    return forgotten


def truncate_wal(engine: Engine) -> None:
    """Checkpoint the SQLite write-ahead log into the database and truncate it to 0 bytes.

    Raises:
        LedgerUnavailableError: readers kept the checkpoint from completing.
    """
    try:
        raw = engine.raw_connection()
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e
    try:
        cur = raw.cursor()
        try:
            for _ in range(_CHECKPOINT_ATTEMPTS):
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, _frames, _copied = cur.fetchone() or (1, 0, 0)
                if not busy:
                    return
                time.sleep(0.05)  # a reader holds an older snapshot: let it finish
        finally:
            cur.close()
    except engine.dialect.loaded_dbapi.Error as e:
        raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e
    finally:
        raw.close()
    raise LedgerUnavailableError(
        "subject erased, but readers kept the write-ahead log from being emptied; retry",
        reason="ledger.erasure_incomplete",
    )
