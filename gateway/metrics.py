"""Prometheus metrics of one gateway process (issue 13.5): every definition is here.

Events are counted by small hooks, each called from one place: ``observe_rpc`` (the
``CallInterceptor``'s access log), ``observe_decision`` (``Sharing``, for every recorded
decision), ``observe_commit`` (the ledger's commit observer) and ``observe_checkpoint`` (the
checkpoint publisher). States (pending appends, outbox depth, policy revision, checkpoint
age) are read when Prometheus scrapes, by ``GatewayCollector``. Nothing here holds a record
value or a subject id: labels are method names, status codes, policy reason codes, partner
ids and the policy revision.

The endpoint (``metrics_listen``, off by default) is a plain-HTTP ``/metrics`` served by
``prometheus-client`` on its own port (``serve_metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

RPCS = Counter(
    "share_gateway_rpcs",
    "RPCs served, by full method name and final status code.",
    ["method", "code"],
    registry=REGISTRY,
)
RPC_SECONDS = Histogram(
    "share_gateway_rpc_duration_seconds",
    "Time from the first interceptor to the final status, by method and status code.",
    ["method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DECISIONS = Counter(
    "share_gateway_decisions",
    "Recorded policy decisions by mode (share, stage, pull), outcome (ALLOW, DENY) and "
    "reason code; a decision counts once per reason code, once with reason='' if it has none.",
    ["mode", "outcome", "reason"],
    registry=REGISTRY,
)
LEDGER_BATCH = Histogram(
    "share_gateway_ledger_batch_entries",
    "Entries per committed ledger batch (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
LEDGER_COMMIT_SECONDS = Histogram(
    "share_gateway_ledger_commit_seconds",
    "Time to commit one ledger batch (one transaction).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
LEDGER_TREE_SIZE = Gauge(
    "share_gateway_ledger_tree_size",
    "Entries in the ledger after the last batch this process committed.",
    registry=REGISTRY,
)
_last_checkpoint: list[float] = []  # monotonic time of the last checkpoint published


def observe_rpc(method: str, code: str, seconds: float) -> None:
    RPCS.labels(method, code).inc()
    RPC_SECONDS.labels(method, code).observe(seconds)


def observe_decision(mode: str, outcome: str, reasons: Iterable[str]) -> None:
    counted = False
    for reason in reasons:
        DECISIONS.labels(mode, outcome, reason).inc()
        counted = True
    if not counted:
        DECISIONS.labels(mode, outcome, "").inc()


def observe_commit(entries: int, tree_size: int, seconds: float) -> None:
    LEDGER_BATCH.observe(entries)
    LEDGER_COMMIT_SECONDS.observe(seconds)
    LEDGER_TREE_SIZE.set(tree_size)
    # Every append transaction signs the checkpoint that covers it (ADR 0010).
    observe_checkpoint()


def observe_checkpoint() -> None:
    _last_checkpoint[:] = [time.monotonic()]


class GatewayCollector(Collector):
    """Gauges read at scrape time from a running gateway (``gateway.server.Gateway``)."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self._gateway
        pending = GaugeMetricFamily(
            "share_gateway_ledger_pending_entries",
            "Ledger appends queued and not yet taken by the writer.",
        )
        pending.add_metric([], gw.ledger.pending)
        yield pending
        age = GaugeMetricFamily(
            "share_gateway_ledger_last_checkpoint_age_seconds",
            "Seconds since this process last signed a checkpoint (NaN before).",
        )
        age.add_metric(
            [], time.monotonic() - _last_checkpoint[0] if _last_checkpoint else float("nan")
        )
        yield age
        revision = InfoMetricFamily("share_gateway_policy", "The policy revision deciding now.")
        revision.add_metric([], {"revision": gw.engine.revision})
        yield revision
        if gw.outbox is not None:
            depth = GaugeMetricFamily(
                "share_gateway_outbox_depth",
                "Staged shares held in each partner's outbox (not yet acknowledged).",
                labels=["partner"],
            )
            for partner, count in sorted(gw.outbox.store.depths().items()):
                depth.add_metric([partner], count)
            yield depth


class MetricsEndpoint:
    """``/metrics`` for ``gateway`` on ``address`` (HOST:PORT; port 0 picks one).

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(self, gateway: Any, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._server, self._thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=REGISTRY
        )
        self.port: int = self._server.server_address[1]
        self._collector = GatewayCollector(gateway)
        REGISTRY.register(self._collector)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        REGISTRY.unregister(self._collector)
