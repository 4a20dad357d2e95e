"""Reads of stored entries: by index, by filters, by subject (through its pseudonym).

Every entry returned is checked against its leaf hash and its recorded index first, so a
query never hands out bytes that a proof would not back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import merkle
from ledger.entry import Entry, decode_entry, time_micros
from ledger.errors import EntryNotFoundError, InvalidArgumentError, LedgerCorruptionError
from ledger.proofs import MAX_INDEX
from ledger.pseudonym import Pseudonymizer
from ledger.storage import chunked, entry_t, salt_t, subject_index_t

MAX_QUERY_LIMIT = 1000
IN_CHUNK = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredEntry:
    """An entry as stored: index, leaf hash, canonical bytes and the decoded entry."""

    index: int
    leaf_hash: bytes
    data: bytes
    entry: Entry


@dataclass(frozen=True, kw_only=True, slots=True)
class Filter:
    """What an auditor asks the ledger for; every criterion given must match, None = any."""

    subject_id: str | None = None
    partner_id: str | None = None
    purpose: str | None = None
    action: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None


ANY = Filter()


def _validate(f: Filter, limit: int) -> None:
    """Raises:
    InvalidArgumentError: bad limit or naive datetime.
    """
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidArgumentError(f"limit must be in 1..{MAX_QUERY_LIMIT}")
    for name, t in (("since", f.since), ("until", f.until)):
        if t is not None and t.tzinfo is None:
            raise InvalidArgumentError(f"{name} must be timezone-aware")


def stored(row: Any) -> StoredEntry:
    """Decode an ``(idx, leaf_hash, data)`` row, checking hash and recorded index.

    Raises:
        LedgerCorruptionError: the bytes do not match the leaf hash, or record another index.
    """
    idx, lh, data = int(row[0]), bytes(row[1]), bytes(row[2])
    if merkle.leaf_hash(data) != lh:
        raise LedgerCorruptionError(f"entry {idx}: stored leaf hash does not match its bytes")
    entry = decode_entry(data)
    if entry.index != idx:
        raise LedgerCorruptionError(f"entry {idx}: bytes record index {entry.index}")
    return StoredEntry(index=idx, leaf_hash=lh, data=data, entry=entry)


def get_entry(conn: Connection, index: int) -> StoredEntry:
    """The stored entry at ``index``.

    Raises:
        EntryNotFoundError: no such index.
        LedgerCorruptionError: the stored bytes do not match their leaf hash or decode.
    """
    if not 0 <= index <= MAX_INDEX:  # beyond BIGINT the driver raises OverflowError
        raise EntryNotFoundError(f"no entry at index {index}")
    row = conn.execute(
        sa.select(entry_t.c.idx, entry_t.c.leaf_hash, entry_t.c.data).where(entry_t.c.idx == index)
    ).first()
    if row is None:
        raise EntryNotFoundError(f"no entry at index {index}")
    return stored(row)


def salts_for(conn: Connection, pz: Pseudonymizer, subject_ids: set[str]) -> dict[str, bytes]:
    """Salts of the subjects that have one, by subject id, in batched queries."""
    keys = {pz.salt_key(s): s for s in subject_ids}
    found: dict[bytes, bytes] = {}
    for part in chunked(list(keys), IN_CHUNK):
        rows = conn.execute(
            sa.select(salt_t.c.salt_key, salt_t.c.salt).where(salt_t.c.salt_key.in_(part))
        )
        found.update({bytes(r[0]): bytes(r[1]) for r in rows})
    return {keys[k]: salt for k, salt in found.items()}


def subject_pseudonym(conn: Connection, pz: Pseudonymizer, subject_id: str) -> str | None:
    """The subject's current pseudonym, or None if it has no salt."""
    salts = salts_for(conn, pz, {subject_id})
    if subject_id not in salts:
        return None
    return pz.pseudonym(salts[subject_id], subject_id)


def query(
    conn: Connection, pz: Pseudonymizer, f: Filter, *, after_index: int, limit: int
) -> list[StoredEntry]:
    """At most ``limit`` entries after ``after_index`` matching ``f``, ascending by index.

    Raises:
        InvalidArgumentError: bad limit or naive datetime.
        LedgerCorruptionError: a matching entry does not verify.
    """
    _validate(f, limit)
    stmt = sa.select(entry_t.c.idx, entry_t.c.leaf_hash, entry_t.c.data)
    if f.subject_id is not None:
        p = subject_pseudonym(conn, pz, f.subject_id)
        if p is None:
            return []
        stmt = stmt.join(
            subject_index_t,
            sa.and_(subject_index_t.c.idx == entry_t.c.idx, subject_index_t.c.pseudonym == p),
        )
    conds = [entry_t.c.idx > after_index]
    for col, val in (
        (entry_t.c.partner_id, f.partner_id),
        (entry_t.c.purpose, f.purpose),
        (entry_t.c.action, f.action),
        (entry_t.c.decision, f.decision),
    ):
        if val is not None:
            conds.append(col == val)
    if f.since is not None:
        conds.append(entry_t.c.time_us >= time_micros(f.since))
    if f.until is not None:
        conds.append(entry_t.c.time_us < time_micros(f.until))
    stmt = stmt.where(*conds).order_by(entry_t.c.idx).limit(limit)
    return [stored(r) for r in conn.execute(stmt)]
