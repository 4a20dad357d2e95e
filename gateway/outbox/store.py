"""Partner outboxes: staged shares, encrypted at rest, in the gateway's database.

Invariants:
- A row holds the *original* records of the subjects allowed at staging plus the share order,
  sealed with AES-256-GCM (``gateway.outbox.sealing``) under a key of the ``outbox`` key ring
  (``data_dir/keys/outbox``, owner-only files); the row stores the key id, and the associated
  data binds the ciphertext to the row id and the partner. Nothing else about the records is
  stored in clear and nothing about them is logged.
- Rows are read only for the partner they are addressed to (the caller's authenticated
  partner id, R17), in staging order (``seq``).
- A row past its ``expires_at`` is never returned and is purged (retention, §四.(三)).
- ``ack`` removes only rows that were handed out at least once (``delivered_us`` set), so a
  cumulative ack can never remove a row the partner has not seen.
- Outbox rows are not ledger rows: the ledger records every decision; the outbox only holds
  what is still to be delivered, and may delete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Engine, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col, delete, select, update

from gateway.database import GuardedSession, open_engine
from gateway.errors import UnavailableError
from gateway.outbox.errors import OutboxIntegrityError
from gateway.outbox.sealing import seal, unseal
from gateway.security.keys import KeyRing
from gateway.sharing import RecordIn, ShareOrder
from ledger.storage import describe_db_error

KEY_RING = "outbox"
_READ_BATCH = 64


class OutboxRow(SQLModel, table=True):
    """One staged share. Only routing and timing metadata are in clear."""

    __tablename__ = "outbox_items"

    seq: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(index=True)
    # Microseconds since the epoch need 64 bits (PostgreSQL INTEGER is 32).
    staged_us: int = Field(sa_type=BigInteger)
    expires_us: int = Field(sa_type=BigInteger, index=True)
    staged_ledger_index: int = Field(sa_type=BigInteger)
    key_id: str
    sealed: bytes = b""
    delivered_us: int | None = Field(default=None, sa_type=BigInteger)


@dataclass(frozen=True, kw_only=True, slots=True)
class StagedShare:
    """A staged share as read back for its partner."""

    seq: int
    partner_id: str
    staged_at: datetime
    expires_at: datetime
    staged_ledger_index: int
    order: ShareOrder


def _micros(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _from_micros(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def encode_order(order: ShareOrder) -> bytes:
    """The plaintext of a staged share: the order and its records, as compact JSON."""
    return json.dumps(
        {
            "recipient_id": order.recipient_id,
            "purpose": order.purpose,
            "action": order.action,
            "legal_basis": order.legal_basis,
            "legal_reference": order.legal_reference,
            "exemption_code": order.exemption_code,
            "legal_request_id": order.legal_request_id,
            "record_type": order.record_type,
            "destination_region": order.destination_region,
            "records": [
                {"subject_id": r.subject_id, "fields": dict(r.fields), "order_id": r.order_id}
                for r in order.records
            ],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def decode_order(data: bytes) -> ShareOrder:
    """Inverse of ``encode_order``.

    Raises:
        OutboxIntegrityError: the plaintext is not a staged share.
    """
    try:
        obj: dict[str, Any] = json.loads(data.decode("utf-8"))
        return ShareOrder(
            recipient_id=str(obj["recipient_id"]),
            purpose=str(obj["purpose"]),
            action=str(obj["action"]),
            legal_basis=str(obj["legal_basis"]),
            legal_reference=str(obj["legal_reference"]),
            exemption_code=str(obj["exemption_code"]),
            # Absent in shares staged before legal requests existed (R10).
            legal_request_id=str(obj.get("legal_request_id", "")),
            record_type=str(obj["record_type"]),
            destination_region=str(obj["destination_region"]),
            records=[
                RecordIn(
                    subject_id=str(r["subject_id"]),
                    fields={str(k): str(v) for k, v in r["fields"].items()},
                    order_id=str(r["order_id"]),
                )
                for r in obj["records"]
            ],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise OutboxIntegrityError("a staged share does not decode") from e


class OutboxStore:
    """Encrypted partner outboxes. Thread-safe; every storage failure is ``UnavailableError``.

    Args:
        engine: The gateway database (same URL as the ledger and registry).
        keys: The ``outbox`` key ring (current key seals; any kept key opens).
        retention: How long a staged share may wait for its partner.
        clock: Current time (tests move it forward).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        keys: KeyRing,
        retention: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError("retention must be positive")
        self._engine = engine
        self._keys = keys
        self.retention = retention
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str | Engine,
        *,
        keys: KeyRing,
        retention: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> OutboxStore:
        """Connect to ``url`` and create the outbox table if missing.

        Raises:
            UnavailableError: the database cannot be reached.
        """
        engine = open_engine(url) if isinstance(url, str) else url
        try:
            SQLModel.metadata.create_all(engine, tables=[OutboxRow.__table__])  # type: ignore[attr-defined]
        except SQLAlchemyError as e:
            engine.dispose()
            raise UnavailableError(f"outbox store unavailable: {describe_db_error(e)}") from e
        return cls(engine=engine, keys=keys, retention=retention, clock=clock)

    def close(self) -> None:
        self._engine.dispose()

    # -- writes -------------------------------------------------------------------------

    def stage(self, order: ShareOrder, *, staged_ledger_index: int) -> StagedShare:
        """Seal ``order`` into its recipient's outbox; returns the staged share.

        Raises:
            UnavailableError: storage failed (nothing staged).
        """
        now = self._clock()
        expires = now + self.retention
        key_id, key = self._keys.current()
        plaintext = encode_order(order)
        with self._session() as s:
            row = OutboxRow(
                partner_id=order.recipient_id,
                staged_us=_micros(now),
                expires_us=_micros(expires),
                staged_ledger_index=staged_ledger_index,
                key_id=key_id,
            )
            s.add(row)
            s.flush()  # assigns seq inside this transaction; the AD needs it
            assert row.seq is not None
            row.sealed = seal(key, plaintext, row_id=row.seq, partner_id=order.recipient_id)
            s.add(row)
            s.commit()
            seq = row.seq
        return StagedShare(
            seq=seq,
            partner_id=order.recipient_id,
            staged_at=now,
            expires_at=expires,
            staged_ledger_index=staged_ledger_index,
            order=order,
        )

    def mark_delivered(self, partner_id: str, seq: int) -> None:
        """Record that row ``seq`` was handed to ``partner_id`` (an ack may now remove it)."""
        with self._session() as s:
            s.exec(
                update(OutboxRow)
                .where(col(OutboxRow.partner_id) == partner_id, col(OutboxRow.seq) == seq)
                .values(delivered_us=_micros(self._clock()))
            )
            s.commit()

    def ack(self, partner_id: str, cursor: int) -> int:
        """Remove ``partner_id``'s delivered rows up to and including ``cursor``.

        Returns:
            How many rows were removed.
        """
        with self._session() as s:
            res = s.exec(
                delete(OutboxRow).where(
                    col(OutboxRow.partner_id) == partner_id,
                    col(OutboxRow.seq) <= cursor,
                    col(OutboxRow.delivered_us).is_not(None),
                )
            )
            s.commit()
            return int(res.rowcount or 0)

    def purge_expired(self) -> int:
        """Delete every row past its retention (all partners). Returns how many."""
        with self._session() as s:
            res = s.exec(
                delete(OutboxRow).where(col(OutboxRow.expires_us) <= _micros(self._clock()))
            )
            s.commit()
            return int(res.rowcount or 0)

    # -- reads --------------------------------------------------------------------------

    def pending(self, partner_id: str, *, after: int = 0) -> Iterator[StagedShare]:
        """Yield ``partner_id``'s unexpired staged shares with ``seq > after``, in order.

        Rows are read in small batches and decrypted one at a time, so a long outbox is
        never held in memory at once.

        Raises:
            OutboxIntegrityError: a row does not open (altered, misplaced, key lost).
            UnavailableError: storage failed.
        """
        cursor = after
        while True:
            now_us = _micros(self._clock())
            with self._session() as s:
                rows = list(
                    s.exec(
                        select(OutboxRow)
                        .where(
                            col(OutboxRow.partner_id) == partner_id,
                            col(OutboxRow.seq) > cursor,
                            col(OutboxRow.expires_us) > now_us,
                        )
                        .order_by(col(OutboxRow.seq))
                        .limit(_READ_BATCH)
                    )
                )
            for row in rows:
                assert row.seq is not None
                cursor = row.seq
                if row.expires_us <= _micros(self._clock()):
                    continue  # expired while the stream was running: never served
                yield self._open(row)
            if len(rows) < _READ_BATCH:
                return

    def count(self, partner_id: str | None = None) -> int:
        """Rows currently held (for one partner or all), expired or not; for tests and ops."""
        with self._session() as s:
            stmt = select(OutboxRow.seq)
            if partner_id is not None:
                stmt = stmt.where(col(OutboxRow.partner_id) == partner_id)
            return len(list(s.exec(stmt)))

    def depths(self) -> dict[str, int]:
        """Rows currently held per partner (metrics: outbox depth)."""
        with self._session() as s:
            stmt = select(OutboxRow.partner_id, func.count()).group_by(col(OutboxRow.partner_id))
            return {str(partner): int(n) for partner, n in s.exec(stmt)}

    def _open(self, row: OutboxRow) -> StagedShare:
        assert row.seq is not None
        try:
            key = self._keys.get(row.key_id)
        except Exception as e:  # NotFoundError or an unreadable key file
            raise OutboxIntegrityError(f"outbox row {row.seq}: its key is unavailable") from e
        order = decode_order(unseal(key, row.sealed, row_id=row.seq, partner_id=row.partner_id))
        if order.recipient_id != row.partner_id:
            raise OutboxIntegrityError(f"outbox row {row.seq} is addressed to another partner")
        return StagedShare(
            seq=row.seq,
            partner_id=row.partner_id,
            staged_at=_from_micros(row.staged_us),
            expires_at=_from_micros(row.expires_us),
            staged_ledger_index=row.staged_ledger_index,
            order=order,
        )

    def _session(self) -> Session:
        return GuardedSession(self._engine, expire_on_commit=False)
