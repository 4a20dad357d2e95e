"""Unauthenticated refusals are counted per peer and window: none lost, few entries (14.5)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from gateway.demo import delivery_request
from gateway.security.refusals import OTHER_PEERS, RefusalCounter, peer_address
from gateway.server import Gateway, create_server
from gateway.settings import Settings
from gateway.testing import LoopThread
from ledger import Disclosure, LedgerUnavailableError
from partner_gateway.v1 import share_pb2_grpc


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class _Sink:
    """Collects appended disclosures; fails while ``down``."""

    def __init__(self) -> None:
        self.entries: list[Disclosure] = []
        self.down = False

    def __call__(self, ds: Sequence[Disclosure]) -> None:
        if self.down:
            raise LedgerUnavailableError("down")
        self.entries.extend(ds)


def test_peer_address_drops_the_port() -> None:
    """The port (new per connection) is not part of the peer, so one host is one count."""
    assert peer_address("ipv4:10.0.0.7:51234") == "peer:ipv4:10.0.0.7"
    assert peer_address("ipv6:[::1]:5") == "peer:ipv6:[::1]"
    assert peer_address("unix:/run/gw.sock") == "peer:unix:/run/gw.sock"
    assert len(peer_address("ipv6:[" + "f" * 500 + "]:1")) <= 96


def test_one_entry_per_peer_reason_and_window_with_the_count() -> None:
    """Calls in one window become one entry per (peer, reason) whose counts add up."""
    clock, sink = _Clock(), _Sink()
    counter = RefusalCounter(append=sink, window_s=10, clock=clock)
    for _ in range(700):
        counter.add(peer="ipv4:10.0.0.7:1", reason="auth.bad_token")
    for _ in range(300):
        counter.add(peer="ipv4:10.0.0.8:2", reason="auth.unauthenticated")
    assert counter.flush() == 0  # the window has not ended
    clock.now += 10
    assert counter.flush() == 2
    assert {(e.caller, e.reason_codes, e.record_count) for e in sink.entries} == {
        ("peer:ipv4:10.0.0.7", ("auth.bad_token",), 700),
        ("peer:ipv4:10.0.0.8", ("auth.unauthenticated",), 300),
    }
    assert all(e.mode == "refused_call" and e.decision == "DENY" for e in sink.entries)


def test_many_peers_share_one_count_beyond_the_bound() -> None:
    """Past ``max_peers`` the peers of a window share ``peer:*``: bounded, nothing dropped."""
    clock, sink = _Clock(), _Sink()
    counter = RefusalCounter(append=sink, window_s=10, max_peers=3, clock=clock)
    for i in range(50):
        counter.add(peer=f"ipv4:10.0.0.{i}:1", reason="auth.bad_token")
    counter.close()
    assert len(sink.entries) == 4
    assert sum(e.record_count for e in sink.entries) == 50
    assert OTHER_PEERS in {e.caller for e in sink.entries}


def test_counts_survive_a_ledger_outage() -> None:
    """A failed append keeps the counts; they are written with a later window."""
    clock, sink = _Clock(), _Sink()
    counter = RefusalCounter(append=sink, window_s=10, clock=clock)
    for _ in range(5):
        counter.add(peer="ipv4:10.0.0.7:1", reason="auth.bad_token")
    clock.now += 10
    sink.down = True
    assert counter.flush() == 0 and counter.pending() == 5
    sink.down = False
    counter.close()
    assert sum(e.record_count for e in sink.entries) == 5 and counter.pending() == 0


def test_four_thousand_bad_token_calls_write_a_handful_of_entries(tmp_path: Path) -> None:
    """An attacker's 4,000 bad-token calls are each refused, and the ledger grows by a few
    entries whose counts sum to 4,000 (was: one durable entry per call)."""
    settings = Settings.load(
        env={},
        overrides={"listen": "127.0.0.1:0", "data_dir": str(tmp_path), "plaintext": True},
    )
    gateway = Gateway.open(settings)
    size = gateway.ledger.size
    loop = LoopThread()
    try:
        bound = loop.run(create_server(gateway))
        port = bound.port
        loop.run(bound.server.start())

        async def flood() -> list[grpc.StatusCode]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = share_pb2_grpc.ShareServiceStub(channel)
                request = delivery_request()

                async def call() -> grpc.StatusCode:
                    try:
                        await stub.Share(
                            request, metadata=(("authorization", "Bearer bad"),), timeout=60
                        )
                    except grpc.aio.AioRpcError as e:
                        return e.code()
                    return grpc.StatusCode.OK

                codes: list[grpc.StatusCode] = []
                for _ in range(40):
                    codes += await asyncio.gather(*(call() for _ in range(100)))
                return codes

        codes = asyncio.run(flood())
        loop.run(bound.stop(None))
    finally:
        loop.close()
        gateway.close()  # flushes the current window
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4_000
    reopened = Gateway.open(settings)
    try:
        entries = [reopened.ledger.get_entry(i).entry for i in range(size, reopened.ledger.size)]
    finally:
        reopened.close()
    assert 1 <= len(entries) <= 5
    assert sum(e.record_count for e in entries) == 4_000
    assert {e.reason_codes for e in entries} == {("auth.bad_token",)}


@pytest.mark.parametrize("window_s", [0.0, -1.0])
def test_window_must_be_positive(window_s: float) -> None:
    """A counter without a positive window is refused at construction."""
    with pytest.raises(ValueError, match="window_s"):
        RefusalCounter(append=_Sink(), window_s=window_s)
