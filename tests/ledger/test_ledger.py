"""The Ledger API on SQLite and PostgreSQL: append, proofs, checkpoints, queries, subjects."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger import (
    Disclosure,
    EntryNotFoundError,
    Filter,
    InconsistentCheckpointError,
    InvalidArgumentError,
    Ledger,
    LedgerClosedError,
    LedgerKeyError,
    LedgerPushbackError,
    LedgerUnavailableError,
    ProofRangeError,
    open_checkpoint,
)
from ledger.merkle import leaf_hash
from ledger.testing import stalled_writer
from ledger.verify import verify_consistency, verify_inclusion

Factory = Callable[..., Disclosure]


def test_append_returns_dense_receipts_in_order(ledger: Ledger, disclosure: Factory) -> None:
    """Receipts carry consecutive indexes, the leaf hash of the stored bytes and the digest."""
    receipts = ledger.append([disclosure(i, payload_digest=bytes([i]) * 32) for i in range(5)])
    assert [r.index for r in receipts] == list(range(5))
    assert ledger.size == 5
    for r in receipts:
        stored = ledger.get_entry(r.index)
        assert stored.leaf_hash == r.leaf_hash == leaf_hash(stored.data)
        assert r.payload_digest == bytes([r.index]) * 32
        assert stored.entry.request_id == f"req-{r.index}"


def test_no_subject_id_is_stored_in_clear(ledger: Ledger, disclosure: Factory) -> None:
    """Entries hold pseudonyms only; the clear subject id appears nowhere in the database."""
    ledger.append([disclosure(0, subject_ids=("alice-123",), excluded_subject_ids=("bob-9",))])
    e = ledger.get_entry(0)
    assert b"alice-123" not in e.data and b"bob-9" not in e.data
    assert e.entry.subjects == (ledger.subject_pseudonym("alice-123"),)
    assert e.entry.excluded_subjects == (ledger.subject_pseudonym("bob-9"),)
    with ledger.engine.connect() as conn:
        for table in ("ledger_entry", "ledger_subject_index", "ledger_subject_salt"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                assert "alice-123" not in repr(row)


def test_concurrent_appends_are_dense_and_complete(ledger: Ledger, disclosure: Factory) -> None:
    """Many threads appending at once get distinct, gap-free indexes (group commit)."""
    got: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(25):
            (r,) = ledger.append([disclosure(t * 100 + i)])
            with lock:
                got.append(r.index)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(200)) and ledger.size == 200


def test_proofs_verify_against_signed_checkpoints(ledger: Ledger, disclosure: Factory) -> None:
    """Inclusion and consistency proofs verify against roots of verified checkpoints."""
    ledger.append([disclosure(i) for i in range(7)])
    cp1 = open_checkpoint(ledger.checkpoint().note, ledger.verifier_key)
    ledger.append([disclosure(i) for i in range(7, 30)])
    cp2 = open_checkpoint(ledger.checkpoint().note, ledger.verifier_key)
    assert (cp1.size, cp2.size) == (7, 30)
    for i in range(30):
        proof = ledger.inclusion_proof(i, 30)
        verify_inclusion(i, 30, ledger.get_entry(i).leaf_hash, proof, cp2.root)
    verify_consistency(7, 30, cp1.root, cp2.root, ledger.consistency_proof(7, 30))
    assert ledger.latest_checkpoint() == cp2


def test_checkpoint_is_not_resigned_when_tree_did_not_grow(
    ledger: Ledger, disclosure: Factory
) -> None:
    """Calling checkpoint twice without appends returns the same note."""
    ledger.append([disclosure(0)])
    assert ledger.checkpoint().note == ledger.checkpoint().note
    assert ledger.latest_checkpoint() is not None


def test_empty_ledger_checkpoint_then_growth(ledger: Ledger, disclosure: Factory) -> None:
    """An empty tree can be checkpointed and later extended."""
    assert ledger.latest_checkpoint() is None
    assert ledger.checkpoint().size == 0
    ledger.append([disclosure(0)])
    assert ledger.checkpoint().size == 1


def test_inconsistent_tree_is_never_signed(
    open_ledger: Callable[..., Ledger], disclosure: Factory, db_url: str
) -> None:
    """If stored nodes change after a checkpoint, no later checkpoint or append signs them."""
    ledger = open_ledger()
    ledger.append([disclosure(i) for i in range(4)])
    ledger.append([disclosure(4)])
    _superuser_exec(
        db_url, "UPDATE ledger_node SET hash = :h WHERE level = 2 AND idx = 0", h=bytes(32)
    )
    with pytest.raises(InconsistentCheckpointError):
        ledger.checkpoint()
    with pytest.raises(InconsistentCheckpointError):
        open_ledger().append([disclosure(5)])  # a writer that loads the stored tree
    assert ledger.latest_checkpoint().size == 5  # type: ignore[union-attr]


def test_bad_proof_requests_are_refused(ledger: Ledger, disclosure: Factory) -> None:
    """Out-of-range indexes and sizes raise ProofRangeError; unknown entries NOT_FOUND."""
    ledger.append([disclosure(i) for i in range(3)])
    for call in (
        lambda: ledger.inclusion_proof(3, 3),
        lambda: ledger.inclusion_proof(0, 4),
        lambda: ledger.consistency_proof(2, 5),
        lambda: ledger.consistency_proof(3, 2),
    ):
        with pytest.raises(ProofRangeError):
            call()
    with pytest.raises(EntryNotFoundError) as e:
        ledger.get_entry(3)
    assert e.value.grpc_code == "NOT_FOUND"


def test_query_filters_and_pages_by_cursor(ledger: Ledger, disclosure: Factory) -> None:
    """Filters combine; results ascend by index; after_index pages through them."""
    ds = [
        disclosure(
            i,
            partner_id="p-even" if i % 2 == 0 else "p-odd",
            decision="DENY" if i % 3 == 0 else "ALLOW",
        )
        for i in range(12)
    ]
    ledger.append(ds)
    evens = ledger.query(Filter(partner_id="p-even"))
    assert [e.index for e in evens] == [0, 2, 4, 6, 8, 10]
    assert [e.index for e in ledger.query(Filter(partner_id="p-even", decision="DENY"))] == [0, 6]
    page1 = ledger.query(Filter(partner_id="p-even"), limit=4)
    page2 = ledger.query(Filter(partner_id="p-even"), after_index=page1[-1].index, limit=4)
    assert [e.index for e in page1 + page2] == [0, 2, 4, 6, 8, 10]
    since = datetime(2025, 1, 1, 12, 0, 5, tzinfo=UTC)
    until = datetime(2025, 1, 1, 12, 0, 8, tzinfo=UTC)
    assert [e.index for e in ledger.query(Filter(since=since, until=until))] == [5, 6, 7]
    with pytest.raises(InvalidArgumentError):
        ledger.query(limit=0)


def test_subject_query_goes_through_the_pseudonym_index(
    ledger: Ledger, disclosure: Factory
) -> None:
    """A subject's entries (disclosed or excluded) are found by its clear id."""
    ledger.append(
        [
            disclosure(0, subject_ids=("s1", "s2")),
            disclosure(1, subject_ids=("s2",)),
            disclosure(2, subject_ids=(), excluded_subject_ids=("s1",)),
        ]
    )
    assert [e.index for e in ledger.query(Filter(subject_id="s1"))] == [0, 2]
    assert [e.index for e in ledger.query(Filter(subject_id="s2"), after_index=0)] == [1]
    assert ledger.query(Filter(subject_id="never-seen")) == []


def test_bulk_share_of_ten_thousand_subjects(ledger: Ledger, disclosure: Factory) -> None:
    """One entry can carry 10,000 subjects; each is indexed."""
    subjects = tuple(f"bulk-{i}" for i in range(10_000))
    (r,) = ledger.append([disclosure(0, subject_ids=subjects, record_count=10_000)])
    assert ledger.get_entry(r.index).entry.subject_count == 10_000
    assert [e.index for e in ledger.query(Filter(subject_id="bulk-4321"))] == [r.index]


def test_forgotten_subject_is_unlinkable_but_proofs_still_verify(
    ledger: Ledger, disclosure: Factory
) -> None:
    """Deleting the salt unlinks past entries; entries, root and proofs are unchanged."""
    ledger.append([disclosure(i, subject_ids=("gone",)) for i in range(3)])
    cp = ledger.checkpoint()
    old = ledger.subject_pseudonym("gone")
    assert old is not None
    assert ledger.forget_subject("gone") is True
    assert ledger.forget_subject("gone") is False
    assert ledger.subject_pseudonym("gone") is None
    assert ledger.query(Filter(subject_id="gone")) == []
    for i in range(3):
        verify_inclusion(i, 3, ledger.get_entry(i).leaf_hash, ledger.inclusion_proof(i, 3), cp.root)
    ledger.append([disclosure(9, subject_ids=("gone",))])
    new = ledger.subject_pseudonym("gone")
    assert new is not None and new != old
    assert [e.index for e in ledger.query(Filter(subject_id="gone"))] == [3]


def test_pushback_when_too_many_appends_wait(
    open_ledger: Callable[..., Ledger], disclosure: Factory
) -> None:
    """Beyond max_pending waiting entries, append raises a RESOURCE_EXHAUSTED pushback."""
    led = open_ledger(max_pending=5)
    with pytest.raises(InvalidArgumentError):
        led.append([disclosure(i) for i in range(6)])
    with stalled_writer(led) as stall:
        t1 = threading.Thread(target=led.append, args=([disclosure(0)],))
        t1.start()
        assert stall.holding.wait(10)  # the writer took the first request and waits
        t2 = threading.Thread(target=led.append, args=([disclosure(i) for i in range(5)],))
        t2.start()
        while not led._sequencer.queued_batches():
            pass
        with pytest.raises(LedgerPushbackError) as e:
            led.append([disclosure(9)])
        assert e.value.grpc_code == "RESOURCE_EXHAUSTED"
    t1.join()
    t2.join()
    assert led.size == 6


def test_append_after_close_is_refused(
    open_ledger: Callable[..., Ledger], disclosure: Factory
) -> None:
    """A closed ledger refuses appends with an UNAVAILABLE error."""
    led = open_ledger()
    led.close()
    with pytest.raises(LedgerClosedError) as e:
        led.append([disclosure(0)])
    assert e.value.grpc_code == "UNAVAILABLE"


def test_update_and_delete_are_refused_by_triggers(ledger: Ledger, disclosure: Factory) -> None:
    """The database itself refuses UPDATE and DELETE on ledger tables."""
    ledger.append([disclosure(0), disclosure(1)])
    ledger.checkpoint()
    for stmt in (
        "UPDATE ledger_entry SET partner_id = 'x'",
        "DELETE FROM ledger_entry",
        "DELETE FROM ledger_node",
        "UPDATE ledger_checkpoint SET note = 'x'",
        "DELETE FROM ledger_subject_index",
        "UPDATE ledger_subject_salt SET salt = x'00'"
        if ledger.engine.dialect.name == "sqlite"
        else "UPDATE ledger_subject_salt SET salt = '\\x00'",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), ledger.engine.begin() as c:
            c.exec_driver_sql(stmt)
    assert ledger.size == 2


def test_key_files_are_owner_only(ledger: Ledger, keys_dir: Path) -> None:
    """The signing and subject keys are created with mode 0600."""
    files = sorted(p.name for p in keys_dir.iterdir())
    assert files == ["ledger-checkpoint.key", "ledger-subject.key"]
    for p in keys_dir.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert ledger.verifier_key.startswith("test.example/ledger+")


def test_reopen_keeps_keys_and_refuses_other_origin(
    db_url: str, keys_dir: Path, tmp_path: Path, disclosure: Factory
) -> None:
    """Reopening reuses the keys; another origin or another key set is refused."""
    with Ledger.open(db_url, keys_dir=keys_dir, origin="a.example/log") as led:
        vkey = led.verifier_key
        led.append([disclosure(0)])
    with Ledger.open(db_url, keys_dir=keys_dir, origin="a.example/log") as led:
        assert led.verifier_key == vkey and led.size == 1
    with pytest.raises(LedgerKeyError):
        Ledger.open(db_url, keys_dir=keys_dir, origin="b.example/log")
    with pytest.raises(LedgerKeyError):
        Ledger.open(db_url, keys_dir=tmp_path / "other", origin="a.example/log")


def test_group_readable_key_is_refused(db_url: str, keys_dir: Path) -> None:
    """A key file readable by others is refused at open."""
    Ledger.open(db_url, keys_dir=keys_dir, origin="a.example/log").close()
    (keys_dir / "ledger-checkpoint.key").chmod(0o644)
    with pytest.raises(LedgerKeyError):
        Ledger.open(db_url, keys_dir=keys_dir, origin="a.example/log")


def test_storage_failure_surfaces_as_unavailable(
    open_ledger: Callable[..., Ledger], disclosure: Factory, db_url: str
) -> None:
    """When the store refuses writes, append raises UNAVAILABLE and nothing is half-written."""
    led = open_ledger()
    led.append([disclosure(0)])
    _superuser_exec(db_url, "DROP TABLE ledger_subject_index")
    with pytest.raises(LedgerUnavailableError) as e:
        led.append([disclosure(1)])
    assert e.value.grpc_code == "UNAVAILABLE"
    assert led.size == 1


def _superuser_exec(url: str, sql: str, **params: object) -> None:
    """Run SQL as the database owner with the append-only triggers out of the way."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            names = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
            ]
            for n in names:
                conn.exec_driver_sql(f"DROP TRIGGER {n}")
        else:
            conn.exec_driver_sql("SET session_replication_role = replica")
        conn.execute(sa.text(sql), params)
    engine.dispose()
