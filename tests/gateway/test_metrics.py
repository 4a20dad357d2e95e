"""Prometheus metrics (issue 13.5): scrape /metrics after real calls and see them counted."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.demo import ad_request
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import share_pb2_grpc

SHARE = "/partner_gateway.v1.ShareService/Share"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    data = tmp_path_factory.mktemp("metrics")
    with running_gateway(data, metrics_listen="127.0.0.1:0") as running:
        yield running


def scrape(gw: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: ``(name, sorted labels) -> value``."""
    assert gw.bound.metrics is not None
    url = f"http://127.0.0.1:{gw.bound.metrics.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def test_a_share_moves_the_rpc_decision_and_ledger_counters(gw: RunningGateway) -> None:
    """After one allowed and one refused Share, every counter it touches moved by one."""
    before = scrape(gw)
    stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    stub.Share(ad_request("adco", "u1001"), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.Share(ad_request("adco", "u1001", purpose="credit_scoring"), timeout=10)
    # The interceptor counts a call when its handler returns, which can be just after the
    # client has its status: scrape until the refused call is counted (or 5 s have passed).
    deadline = time.monotonic() + 5
    while True:
        after = scrape(gw)
        counted = value(after, "share_gateway_rpcs_total", method=SHARE, code="PERMISSION_DENIED")
        settled = counted > value(
            before, "share_gateway_rpcs_total", method=SHARE, code="PERMISSION_DENIED"
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.02)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("share_gateway_rpcs_total", method=SHARE, code="OK") == 1
    assert moved("share_gateway_rpcs_total", method=SHARE, code="PERMISSION_DENIED") == 1
    assert moved("share_gateway_rpc_duration_seconds_count", method=SHARE, code="OK") == 1
    assert moved("share_gateway_decisions_total", mode="share", outcome="ALLOW", reason="") == 1
    denied = {
        labels: v - before.get((name, labels), 0.0)
        for (name, labels), v in after.items()
        if name == "share_gateway_decisions_total" and ("outcome", "DENY") in labels
    }
    assert sum(denied.values()) >= 1  # one per reason code of the refusal
    assert moved("share_gateway_ledger_batch_entries_count") == 2
    assert moved("share_gateway_ledger_commit_seconds_count") == 2
    assert value(after, "share_gateway_ledger_tree_size") == gw.gateway.ledger.size
    # Each commit signs the checkpoint covering it, so the age restarts with every share.
    assert 0 <= value(after, "share_gateway_ledger_last_checkpoint_age_seconds") < 5


def test_states_are_read_at_scrape_time(gw: RunningGateway) -> None:
    """Pending appends, outbox depth per partner and the policy revision are exported."""
    stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    stub.Share(ad_request("adco", "u1001", outbox=True), timeout=10)
    samples = scrape(gw)
    assert value(samples, "share_gateway_ledger_pending_entries") == 0
    assert value(samples, "share_gateway_outbox_depth", partner="adco") >= 1
    revision = gw.gateway.engine.revision
    assert value(samples, "share_gateway_policy_info", revision=revision) == 1


def test_metrics_are_off_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without metrics_listen no endpoint is started."""
    with running_gateway(tmp_path_factory.mktemp("nometrics")) as running:
        assert running.bound.metrics is None
