"""Crash safety: ``kill -9`` under load never loses an acknowledged share's ledger entry.

A real gateway process (``share-gateway serve``, SQLite ledger) serves Share calls from
several client threads; at random moments it is killed with SIGKILL and restarted. Every
share whose OK response a client received must then have its ledger entry (same index,
leaf hash and payload digest), ``share-gateway ledger verify`` must pass, and the restarted
gateway must serve again. Short version: 3 kills; ``slow``: 20 kills.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from gateway.demo import ad_request, delivery_request
from partner_gateway.v1 import share_pb2_grpc
from tests.faults.support import GatewayProc, ReceiptSeen, missing_receipts

CLIENT_THREADS = 6


def _crash_cycles(gw: GatewayProc, kills: int, rng: random.Random) -> tuple[list[ReceiptSeen], int]:
    seen: list[ReceiptSeen] = []
    lock = threading.Lock()
    stop = threading.Event()
    failures = 0
    requests = [
        delivery_request(),
        ad_request("adco", "u1001"),
        ad_request("adco", "u1001", "u1002"),
    ]

    def client(n: int) -> None:
        nonlocal failures
        with gw.channel() as ch:
            stub = share_pb2_grpc.ShareServiceStub(ch)
            i = n
            while not stop.is_set():
                i += 1
                try:
                    resp = stub.Share(requests[i % len(requests)], timeout=5)
                except grpc.RpcError as e:
                    # While the gateway is down or draining: UNAVAILABLE, never a wrong answer.
                    assert e.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    ), e
                    with lock:
                        failures += 1
                    time.sleep(0.02)
                    continue
                with lock:
                    seen.append(
                        ReceiptSeen(
                            index=resp.receipt.ledger_index,
                            leaf_hash=resp.receipt.leaf_hash,
                            payload_digest=resp.receipt.payload_digest,
                        )
                    )

    threads = [
        threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENT_THREADS)
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(kills):
            before = len(seen)
            time.sleep(rng.uniform(0.3, 1.5))
            gw.kill()
            gw.start()  # waits until it answers health checks
            deadline = time.monotonic() + 30
            while len(seen) <= before and time.monotonic() < deadline:
                time.sleep(0.05)  # the restarted gateway serves shares again
            assert len(seen) > before, "no share succeeded after a restart"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return seen, failures


def _check_after_crashes(gw: GatewayProc, kills: int, seed: int) -> None:
    seen, _failures = _crash_cycles(gw, kills, random.Random(seed))
    gw.stop()
    assert seen
    assert missing_receipts(gw.ledger_url, seen) == []
    assert len({r.index for r in seen}) == len(seen)  # no index handed out twice
    verify = gw.verify_ledger()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    gw.start()
    with gw.channel() as ch:
        assert (
            share_pb2_grpc.ShareServiceStub(ch)
            .Share(delivery_request(), timeout=10)
            .decision.allowed
        )


def test_kill_9_three_times_loses_no_acknowledged_share(
    gateway_proc: Callable[..., GatewayProc],
) -> None:
    """After 3 SIGKILLs under load every acknowledged share is in the ledger and it verifies."""
    _check_after_crashes(gateway_proc(), kills=3, seed=6)


@pytest.mark.slow
def test_kill_9_twenty_times_loses_no_acknowledged_share(
    gateway_proc: Callable[..., GatewayProc],
) -> None:
    """After 20 SIGKILLs at random moments nothing acknowledged is lost and the ledger verifies."""
    _check_after_crashes(gateway_proc(), kills=20, seed=20)
