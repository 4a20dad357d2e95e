"""Dependencies down: fail closed with UNAVAILABLE, disclose nothing, recover by themselves.

* Ledger database (PostgreSQL) refusing connections, or switched to read-only (what a
  failover to a standby looks like) → Share is UNAVAILABLE with no records; when the
  database is back the gateway serves again without a restart.
* OPA server down, or slower than ``policy.opa_timeout_s`` (fake_opa's switches) →
  UNAVAILABLE; then it recovers.
* Overload (few workers, tiny concurrency limit, tiny ledger queue) → RESOURCE_EXHAUSTED or
  UNAVAILABLE pushback; every OK response's receipt is in the ledger (no dropped audit record).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from gateway.demo import ad_request, delivery_request
from gateway.policy.fake_opa import FakeOpa
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import share_pb2_grpc
from tests.faults.support import ReceiptSeen, missing_receipts

FAIL_CLOSED = (grpc.StatusCode.UNAVAILABLE,)


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def _eventually_ok(stub: share_pb2_grpc.ShareServiceStub, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            resp = stub.Share(delivery_request(), timeout=5)
            assert resp.decision.allowed and resp.records
            return
        except grpc.RpcError as e:
            assert e.code() in FAIL_CLOSED, e
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _admin(admin_url: str, *sql: str) -> None:
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as c:
            for s in sql:
                c.exec_driver_sql(s)
    finally:
        eng.dispose()


def _kick(db: str) -> str:
    return (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    )


@pytest.fixture
def pg_gateway(tmp_path: Path, postgres_url: str) -> Iterator[tuple[RunningGateway, str]]:
    with running_gateway(tmp_path, ledger={"url": postgres_url}) as gw:
        yield gw, postgres_url


@pytest.mark.postgres
def test_ledger_database_unreachable_is_unavailable_then_recovers(
    pg_gateway: tuple[RunningGateway, str], postgres_admin_url: str
) -> None:
    """With the ledger database refusing connections Share is UNAVAILABLE; then it recovers."""
    gw, url = pg_gateway
    db = sa.make_url(url).database
    stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    assert stub.Share(delivery_request(), timeout=10).records
    _admin(postgres_admin_url, f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false', _kick(db))
    try:
        for _ in range(3):
            assert _code(lambda: stub.Share(delivery_request(), timeout=10)) in FAIL_CLOSED
    finally:
        _admin(postgres_admin_url, f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
    _eventually_ok(stub)


@pytest.mark.postgres
def test_read_only_ledger_database_is_unavailable_with_no_records_then_recovers(
    pg_gateway: tuple[RunningGateway, str], postgres_admin_url: str
) -> None:
    """A read-only ledger database (failover to a standby) fails closed, then recovers."""
    gw, url = pg_gateway
    db = sa.make_url(url).database
    stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    size = gw.gateway.ledger.size
    _admin(
        postgres_admin_url,
        f'ALTER DATABASE "{db}" SET default_transaction_read_only = on',
        _kick(db),
    )
    try:
        for req in (delivery_request(), ad_request("adco", "u1001")):
            try:
                resp = stub.Share(req, timeout=10)
            except grpc.RpcError as e:
                assert e.code() in FAIL_CLOSED
            else:  # pragma: no cover - would be a disclosure without an audit record
                pytest.fail(f"disclosed {len(resp.records)} records with a read-only ledger")
    finally:
        _admin(
            postgres_admin_url,
            f'ALTER DATABASE "{db}" SET default_transaction_read_only = off',
            _kick(db),
        )
    _eventually_ok(stub)
    assert gw.gateway.ledger.size == size + 1


def test_opa_down_or_slow_is_unavailable_then_recovers(tmp_path: Path) -> None:
    """The OPA-server path fails closed when OPA drops connections or misses its deadline."""
    opa = FakeOpa().start()
    try:
        _opa_case(tmp_path, opa)
    finally:
        # FakeOpa.close can hang in socketserver's accept loop (seen once; reported to the
        # policy owner): never let it hang the suite.
        closer = threading.Thread(target=opa.close, daemon=True)
        closer.start()
        closer.join(10)


def _opa_case(tmp_path: Path, opa: FakeOpa) -> None:
    with running_gateway(
        tmp_path, policy={"opa_url": opa.url, "opa_timeout_s": 0.3, "watch_interval_s": 0}
    ) as gw:
        stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        # The first decision warms OPA up and can exceed 0.3 s on a loaded machine: retried.
        _eventually_ok(stub)
        size = gw.gateway.ledger.size
        opa.down = True
        assert _code(lambda: stub.Share(delivery_request(), timeout=10)) in FAIL_CLOSED
        assert _code(lambda: stub.Evaluate(delivery_request(), timeout=10)) in FAIL_CLOSED
        opa.down = False
        _eventually_ok(stub)
        opa.delay_s = 1.0
        assert _code(lambda: stub.Share(delivery_request(), timeout=10)) in FAIL_CLOSED
        opa.delay_s = 0.0
        _eventually_ok(stub)
        # Nothing was decided while OPA was away, so nothing was logged for those calls.
        assert gw.gateway.ledger.size == size + 2


def test_overload_pushes_back_and_never_drops_an_audit_record(tmp_path: Path) -> None:
    """Beyond its limits the gateway answers RESOURCE_EXHAUSTED/UNAVAILABLE; each OK is logged."""
    with running_gateway(
        tmp_path,
        worker_threads=4,
        limits={"max_concurrent_rpcs": 6},
        ledger={"max_pending": 2},
    ) as gw:
        seen: list[ReceiptSeen] = []
        codes: dict[str, int] = {}
        lock = threading.Lock()

        def client() -> None:
            stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
            for _ in range(25):
                try:
                    r = stub.Share(ad_request("adco", "u1001"), timeout=10)
                except grpc.RpcError as e:
                    with lock:
                        codes[e.code().name] = codes.get(e.code().name, 0) + 1
                    continue
                with lock:
                    codes["OK"] = codes.get("OK", 0) + 1
                    seen.append(
                        ReceiptSeen(
                            index=r.receipt.ledger_index,
                            leaf_hash=r.receipt.leaf_hash,
                            payload_digest=r.receipt.payload_digest,
                        )
                    )

        threads = [threading.Thread(target=client) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}, codes
        assert codes.get("RESOURCE_EXHAUSTED", 0) + codes.get("UNAVAILABLE", 0) > 0, codes
        assert codes.get("OK", 0) > 0, codes
        assert missing_receipts(gw.gateway.settings.ledger_url, seen) == []
