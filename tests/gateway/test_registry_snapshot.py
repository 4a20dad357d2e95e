"""The share path's registry snapshot (ADR 0025) never outlives a registry write: a change made
through the registry, through plain SQL on another connection, or through another gateway
replica on the same PostgreSQL applies to the very next share; it cannot carry one
partner's or purpose's facts into another's share; and its memory stays bounded."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.workload import seed_registry, subject_id
from gateway.errors import InvalidRequestError
from gateway.policy.embedded import EmbeddedEngine
from gateway.registry import Registry, SchemaRecord, Withdrawal
from gateway.registry import store as registry_store
from gateway.registry.snapshot import Snapshot
from gateway.security.identity import Principal, Role
from gateway.security.keys import PseudonymKeys
from gateway.settings import REPO_ROOT
from gateway.sharing import Outcome, RecordIn, ShareOrder, Sharing
from ledger import Ledger
from tests.inspection.test_share_inspection import ad_order

SERVICE = Principal(id="svc:checkout", role=Role.SERVICE)
SEED = REPO_ROOT / "gateway" / "demo" / "registry.toml"


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(policy_dir=REPO_ROOT / "policies_rego")


@pytest.fixture
def replica(
    tmp_path: Path, engine: EmbeddedEngine
) -> Iterator[Callable[[str], tuple[Registry, Sharing]]]:
    """Factory: a gateway replica (its own registry engine and snapshot) on ``url``."""
    opened: list[tuple[Registry, Ledger]] = []

    def make(url: str) -> tuple[Registry, Sharing]:
        n = len(opened)
        registry = Registry.open(url)
        if registry.is_empty():
            registry.load_seed(SEED)
        ledger = Ledger.open(
            f"sqlite:///{tmp_path / f'ledger{n}.db'}", keys_dir=tmp_path / f"lk{n}", origin="t"
        )
        opened.append((registry, ledger))
        sharing = Sharing(
            registry=registry,
            engine=engine,
            ledger=ledger,
            keys=PseudonymKeys(directory=tmp_path / f"keys{n}"),
        )
        return registry, sharing

    yield make
    for registry, ledger in opened:
        ledger.close()
        registry.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("postgres_url"))


def _ad_order() -> ShareOrder:
    """u1001 and u1007 to AdCo for ad delivery (both disclosed on the demo registry)."""
    return ad_order({"u1001": "music", "u1007": "music"})


def _share(sharing: Sharing, order: ShareOrder | None = None) -> Outcome:
    return sharing.share(order or _ad_order(), SERVICE, request_id="t", rpc="t")


def _disclosed(outcome: Outcome) -> list[str]:
    return [r.subject_id for r in outcome.records]


def _sql(url: str, statement: str) -> None:
    """Run ``statement`` on a connection of its own (as another process would)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _true(url: str) -> str:
    return "1" if url.startswith("sqlite") else "true"


WITHDRAWALS: dict[str, Callable[[Registry, str], None]] = {
    "through the other replica's registry": lambda writer, _url: (
        writer.withdraw_consent("u1001", Withdrawal()) and None
    ),
    # What ``withdraw_consent`` writes for a withdrawal narrowed to nothing.
    "through plain SQL": lambda _writer, url: _sql(
        url,
        f"UPDATE registry_subjects SET consent_withdrawn = {_true(url)} WHERE subject_id = 'u1001'",
    ),
}


@pytest.mark.parametrize("how", list(WITHDRAWALS))
def test_a_withdrawn_consent_is_honoured_by_the_very_next_share(
    url: str, replica: Callable[[str], tuple[Registry, Sharing]], how: str
) -> None:
    """Replica B has u1001's consent cached; a withdrawal written through replica A or by
    plain SQL leaves u1001 out of B's next share."""
    writer, _ = replica(url)
    _, sharing = replica(url)
    assert _disclosed(_share(sharing)) == ["u1001", "u1007"]
    assert _disclosed(_share(sharing)) == ["u1001", "u1007"]  # from the snapshot
    WITHDRAWALS[how](writer, url)
    outcome = _share(sharing)
    assert _disclosed(outcome) == ["u1007"]
    assert "u1001" in outcome.excluded


def test_a_suspended_partner_is_refused_by_the_very_next_share(
    url: str, replica: Callable[[str], tuple[Registry, Sharing]]
) -> None:
    """Suspending the partner on another connection refuses the next share to it."""
    _, sharing = replica(url)
    assert _share(sharing).decision.allow
    false = "0" if url.startswith("sqlite") else "false"
    _sql(url, f"UPDATE registry_partners SET active = {false} WHERE id = 'adco'")
    outcome = _share(sharing)
    assert not outcome.decision.allow and not outcome.records


def test_a_changed_schema_applies_to_the_very_next_share(
    url: str, replica: Callable[[str], tuple[Registry, Sharing]]
) -> None:
    """A field dropped from the schema through another replica is refused at once."""
    writer, _ = replica(url)
    _, sharing = replica(url)
    assert _share(sharing).decision.allow
    fields = dict(writer.schema("customer_profile").fields)  # type: ignore[union-attr]
    del fields["tags"]
    writer.upsert_schema(SchemaRecord(record_type="customer_profile", fields=fields))
    with pytest.raises(InvalidRequestError) as e:
        _share(sharing)
    assert e.value.reason == "request.unknown_field"


def test_a_subject_deleted_on_another_connection_is_unknown_to_the_next_share(
    url: str, replica: Callable[[str], tuple[Registry, Sharing]]
) -> None:
    """Deleting a cached subject on another connection makes it unknown to the next share
    (R1: left out)."""
    _, sharing = replica(url)
    assert _disclosed(_share(sharing)) == ["u1001", "u1007"]
    _sql(url, "DELETE FROM registry_consents WHERE subject_id = 'u1007'")
    _sql(url, "DELETE FROM registry_subjects WHERE subject_id = 'u1007'")
    outcome = _share(sharing)
    assert _disclosed(outcome) == ["u1001"]
    assert [r.code for r in outcome.excluded["u1007"]] == ["R1.unknown_subject"]


def test_the_snapshot_carries_nothing_across_partners_or_purposes(
    sqlite_url: str, replica: Callable[[str], tuple[Registry, Sharing]]
) -> None:
    """u1011 withdrew its consent for AdMetrics only (R14): with its facts cached by a share
    to AdCo, a share to AdMetrics still leaves it out, a purpose outside AdCo's agreement is
    still refused, and AdCo's next share still gets it."""
    _, sharing = replica(sqlite_url)
    with_u1011 = dataclasses.replace(
        _ad_order(),
        records=[*_ad_order().records, RecordIn(subject_id="u1011", fields={"tags": "music"})],
    )
    assert _disclosed(_share(sharing, with_u1011)) == ["u1001", "u1007", "u1011"]
    to_admetrics = dataclasses.replace(with_u1011, recipient_id="admetrics")
    outcome = _share(sharing, to_admetrics)
    assert _disclosed(outcome) == ["u1001", "u1007"]
    assert [r.code for r in outcome.excluded["u1011"]] == ["R14.consent_withdrawn"]
    assert not _share(sharing, dataclasses.replace(with_u1011, purpose="analytics")).records
    assert _disclosed(_share(sharing, with_u1011)) == ["u1001", "u1007", "u1011"]


def test_a_repeated_share_reads_no_registry_row(
    sqlite_url: str,
    replica: Callable[[str], tuple[Registry, Sharing]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once cached, a share's schema, partner and subject facts cost no statement but the
    version read; a registry write makes the next share read them again."""
    registry, sharing = replica(sqlite_url)
    _share(sharing)
    statements: list[str] = []
    rows = registry_store._Reader.rows

    def counted(self: registry_store._Reader, sql: str, params: list[object]) -> object:
        statements.append(sql)
        return rows(self, sql, params)

    monkeypatch.setattr(registry_store._Reader, "rows", counted)
    _share(sharing)
    assert statements == []
    registry.withdraw_consent("u1007", Withdrawal(recipient_id="admetrics"))
    _share(sharing)
    assert statements


def test_memory_stays_bounded_under_many_distinct_subjects(sqlite_url: str) -> None:
    """Shares naming 2,000 distinct subjects (known and unknown) keep at most
    ``max_cached_subjects`` of them; the newest are kept."""
    seed_registry(sqlite_url, n=1_000)
    registry = Registry.open(sqlite_url, max_cached_subjects=64)
    try:
        ids = [subject_id(i) for i in range(2_000)]  # the second thousand are unknown
        for start in range(0, len(ids), 5):
            _, _, facts = registry.share_facts("customer_profile", "adco", ids[start : start + 5])
            assert set(facts) == {s for s in ids[start : start + 5] if s < subject_id(1_000)}
        assert len(registry.snapshot) <= 64 + 2  # subjects + one schema + one partner
        version = registry._version.read()
        _, _, cached, unread = registry.snapshot.lookup(version, "customer_profile", "", ids[-5:])
        assert not unread and set(cached) == set(ids[-5:])
    finally:
        registry.close()


def test_a_share_never_reads_rows_stored_under_another_version() -> None:
    """Share B read version 6 and filled the snapshot; share A, which read version 5 before
    a withdrawal committed, stores what it read under 5. B's next look-up at version 6 must
    not get A's rows (they may predate the withdrawal): the snapshot answers only for the
    version it holds, and empties itself for any other."""
    snap = Snapshot()
    snap.lookup(6, "customer_profile", "adco", ["u1"])
    snap.put(6, schemas={"customer_profile": {"tags": "t"}}, subjects={"u1": "fresh"})
    snap.lookup(5, "customer_profile", "adco", ["u1"])  # A: an older version read
    snap.put(5, schemas={"customer_profile": {"tags": "stale"}}, subjects={"u1": "stale"})
    schema, _, cached, unread = snap.lookup(6, "customer_profile", "adco", ["u1"])
    assert schema is Snapshot.MISSING and cached == {} and unread == ["u1"]
    snap.put(6, subjects={"u1": "fresh"})
    assert snap.lookup(6, "customer_profile", "adco", ["u1"])[2] == {"u1": "fresh"}


def test_a_bulk_share_does_not_push_everyone_else_out() -> None:
    """Subjects of a share naming more than a quarter of the bound go only into free room:
    every subject already cached stays, and the bulk subjects past the free room are not
    kept."""
    snap = Snapshot(max_subjects=100)
    snap.lookup(1, "customer_profile", "", [])
    snap.put(1, subjects={f"u{i}": i for i in range(25)})
    snap.put(1, subjects={f"u{i}": i for i in range(25, 75)})
    snap.put(1, subjects={f"bulk{i}": i for i in range(30)})
    ids = [f"u{i}" for i in range(75)] + [f"bulk{i}" for i in range(30)]
    _, _, cached, unread = snap.lookup(1, "customer_profile", "", ids)
    assert set(cached) == {f"u{i}" for i in range(75)} | {f"bulk{i}" for i in range(25)}
    assert unread == [f"bulk{i}" for i in range(25, 30)]
    assert len(snap) == 100


def test_bulk_subjects_are_the_first_to_go_when_other_shares_need_room() -> None:
    """Bulk subjects kept in free room sit at the least recently used end, and a bulk
    share's look-up does not refresh them: the next shares that need room evict them, not
    the subjects cached before."""
    snap = Snapshot(max_subjects=100)
    snap.lookup(1, "customer_profile", "", [])
    snap.put(1, subjects={f"u{i}": i for i in range(50)})
    bulk = [f"bulk{i}" for i in range(50)]
    snap.put(1, subjects=dict.fromkeys(bulk, 0))
    assert set(snap.lookup(1, "customer_profile", "", bulk)[2]) == set(bulk)  # bulk hit
    snap.put(1, subjects={f"new{i}": i for i in range(20)})  # needs 20 places
    ids = [f"u{i}" for i in range(50)] + bulk
    _, _, cached, unread = snap.lookup(1, "customer_profile", "", ids)
    assert {f"u{i}" for i in range(50)} <= set(cached)
    assert len(unread) == 20 and set(unread) <= set(bulk)


def test_a_repeated_bulk_share_honours_a_withdrawal_made_in_between(
    sqlite_url: str, tmp_path: Path, engine: EmbeddedEngine
) -> None:
    """A bulk share's subjects, kept in the snapshot's free room, are answered from it only
    at the version they were read under: a consent withdrawn by plain SQL between two bulk
    shares of the same 60 subjects leaves that subject out of the second."""
    seed_registry(sqlite_url, n=60)
    registry = Registry.open(sqlite_url, max_cached_subjects=200)  # 60 > 200 / 4: bulk
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", keys_dir=tmp_path / "lk", origin="t")
    sharing = Sharing(
        registry=registry, engine=engine, ledger=ledger, keys=PseudonymKeys(directory=tmp_path)
    )
    ids = [subject_id(i) for i in range(60)]
    bulk = dataclasses.replace(
        _ad_order(), records=[RecordIn(subject_id=s, fields={"tags": "music"}) for s in ids]
    )
    try:
        assert _disclosed(_share(sharing, bulk)) == ids
        _, _, cached, unread = registry.snapshot.lookup(
            registry._version.read(), "customer_profile", "adco", ids
        )
        assert set(cached) == set(ids) and not unread  # the next bulk share reads no row
        _sql(
            sqlite_url,
            "UPDATE registry_subjects SET consent_withdrawn = 1 WHERE subject_id = 'b00042'",
        )
        outcome = _share(sharing, bulk)
        assert _disclosed(outcome) == [s for s in ids if s != "b00042"]
        assert [r.code for r in outcome.excluded["b00042"]] == ["R14.consent_withdrawn"]
    finally:
        ledger.close()
        registry.close()
