"""The share path's own CPU work per call, step by step, without gRPC or the ledger writer.

Run: ``python -m bench.hotpath`` (``--calls N`` repetitions per step). Opens a SQLite gateway
with the benchmark registry (as ``bench.run``'s policy figures do) and times, per 5-record ad
share: building the policy input (``Sharing._prepare``: registry reads and the input),
deciding and enforcing (``Sharing._decide``, decision-cache hit, no ledger append),
enforcement alone (``Sharing._enforce``) and the ledger entry's encoding
(``ledger.entry.entry_template``). Prints one JSON object: per step the median µs of single
calls and the CPU µs per call over the whole loop (``time.process_time``, not inflated by
other processes' time slices).

Steps are timed through private methods whose signatures older trees share too, so the
same script measures an export of an older commit (``PYTHONPATH=<export>``): run both
alternately for a before/after on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.workload import ad_share, seed_registry
from gateway.registry import Registry
from gateway.security.identity import Principal, Role
from gateway.server import Gateway
from gateway.services.share import order_from_request
from gateway.settings import Settings
from ledger.entry import entry_template


def timed(fn: Callable[[], object], calls: int) -> dict[str, float]:
    """Median wall µs of single calls and CPU µs per call over all ``calls``."""
    samples = []
    cpu0 = time.process_time()
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    cpu = time.process_time() - cpu0
    return {
        "median_us": round(statistics.median(samples) / 1000, 2),
        "cpu_us": round(cpu / calls * 1e6, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--label", default="")
    p.add_argument(
        "--registry-url",
        help="also time Registry.share_facts for the 5 subjects on this database (e.g. a "
        "PostgreSQL URL; seeded with the bench subjects if empty)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{(Path(d) / 'gateway.db').resolve()}"
        seed_registry(url, n=100)
        (Path(d) / "gateway.db").chmod(0o600)
        gw = Gateway.open(Settings.load(env={}, overrides={"listen": "127.0.0.1:0", "data_dir": d}))
        try:
            sharing = gw.sharing
            principal = Principal(id="service-checkout", role=Role.SERVICE)
            order = order_from_request(ad_share(5))
            now = datetime.now(UTC)
            today = now.date()

            def prepare() -> object:
                return sharing._prepare(order, principal, mode="share", today=today)

            def decide() -> object:
                return sharing._decide(order, principal, "bench", "Share", "share")

            prepared = prepare()
            decision = gw.engine.decide(prepared.policy_input)  # type: ignore[attr-defined]
            assert decision.allow, decision
            excluded: dict[str, tuple[object, ...]] = {}

            def enforce() -> object:
                return sharing._enforce(prepared, decision, excluded, today)

            _outcome, disclosure = decide()

            def encode() -> object:
                return entry_template(disclosure, subject_key_id="bench")

            for fn in (prepare, decide, enforce, encode):  # warm caches
                for _ in range(50):
                    fn()
            out: dict[str, object] = {"label": args.label, "calls": args.calls}
            for name, fn in (
                ("prepare", prepare),
                ("decide_and_enforce", decide),
                ("enforce", enforce),
                ("entry_template", encode),
            ):
                out[name] = timed(fn, args.calls)
        finally:
            gw.close()
    if args.registry_url:
        out["share_facts_on_registry_url"] = share_facts_timing(args.registry_url, args.calls)
    print(json.dumps(out))


def share_facts_timing(url: str, calls: int) -> dict[str, float]:
    """``Registry.share_facts`` for the ad share's 5 subjects on ``url`` (same signature in
    older trees: there, five statements per call)."""
    seed_registry(url, n=100)
    registry = Registry.open(url)
    try:
        ids = [r.subject_id for r in order_from_request(ad_share(5)).records]
        for _ in range(50):
            registry.share_facts("customer_profile", "adco", ids)
        return timed(lambda: registry.share_facts("customer_profile", "adco", ids), calls)
    finally:
        registry.close()


if __name__ == "__main__":
    main()
