"""The encrypted outbox store on its own: sealing binds rows, retention, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.outbox import OutboxIntegrityError, OutboxStore
from gateway.outbox.sealing import seal, unseal
from gateway.outbox.store import OutboxRow
from gateway.security.keys import KeyRing
from gateway.sharing import RecordIn, ShareOrder

KEY = bytes(range(32))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def order(partner: str, name: str = "Li Wei") -> ShareOrder:
    return ShareOrder(
        recipient_id=partner,
        purpose="delivery",
        action="SHARE",
        legal_basis="AUTHORIZED_PARTNER",
        record_type="delivery_order",
        records=[RecordIn(subject_id="u1001", fields={"name": name}, order_id="o-1")],
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> OutboxStore:
    ring = KeyRing(directory=tmp_path / "keys" / "outbox", name="outbox")
    s = OutboxStore.open(
        f"sqlite:///{tmp_path / 'db.sqlite'}", keys=ring, retention=timedelta(hours=1), clock=clock
    )
    yield s  # type: ignore[misc]
    s.close()


def test_sealed_blob_opens_only_for_its_row_and_partner() -> None:
    """The associated data binds a ciphertext to its row id and partner."""
    blob = seal(KEY, b"secret", row_id=7, partner_id="adco")
    assert unseal(KEY, blob, row_id=7, partner_id="adco") == b"secret"
    for row_id, partner in ((8, "adco"), (7, "admetrics")):
        with pytest.raises(OutboxIntegrityError):
            unseal(KEY, blob, row_id=row_id, partner_id=partner)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(OutboxIntegrityError):
        unseal(KEY, tampered, row_id=7, partner_id="adco")


def test_staged_share_round_trips_in_staging_order(store: OutboxStore) -> None:
    """Shares come back for their partner only, in staging order, equal to what was staged."""
    a = store.stage(order("adco", "A"), staged_ledger_index=1)
    store.stage(order("logiship"), staged_ledger_index=2)
    b = store.stage(order("adco", "B"), staged_ledger_index=3)
    got = list(store.pending("adco"))
    assert [s.seq for s in got] == [a.seq, b.seq]
    assert [s.order.records[0].fields["name"] for s in got] == ["A", "B"]
    assert [s.seq for s in store.pending("adco", after=a.seq)] == [b.seq]


def test_ciphertext_moved_to_another_row_fails_to_open(store: OutboxStore) -> None:
    """Copying one partner's sealed row into another's is detected."""
    a = store.stage(order("adco"), staged_ledger_index=1)
    b = store.stage(order("logiship"), staged_ledger_index=2)
    with Session(store._engine) as s:
        rows = {r.seq: r for r in s.exec(select(OutboxRow))}
        rows[b.seq].sealed = rows[a.seq].sealed
        s.add(rows[b.seq])
        s.commit()
    with pytest.raises(OutboxIntegrityError):
        list(store.pending("logiship"))


def test_rows_past_retention_are_not_returned_and_are_purged(
    store: OutboxStore, clock: Clock
) -> None:
    """After the retention period a row is invisible, then deleted by purge."""
    store.stage(order("adco"), staged_ledger_index=1)
    clock.now += timedelta(hours=1, seconds=1)
    assert list(store.pending("adco")) == []
    assert store.purge_expired() == 1
    assert store.count() == 0
