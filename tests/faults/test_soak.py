"""Soak: ten minutes at half of peak load, no error and RSS growth under 10 %.

A real gateway process (``share-gateway serve``, SQLite ledger) is first driven closed-loop
for a few seconds to find its peak rate on this machine; then the bench load generator
offers half of it open-loop for ``SOAK_S`` seconds while the gateway's resident set size is
sampled. RSS is compared between the end of the first minute (caches, pools and per-thread
engines are warm by then) and the end. Only in the ``slow`` run (see docs/faults.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psutil
import pytest

from bench.loadgen import LoadSpec, run_load
from bench.workload import ad_share, seed_registry
from tests.faults.support import GatewayProc

SOAK_S = float(os.environ.get("SOAK_SECONDS", "600"))
SHARE = "/partner_gateway.v1.ShareService/Share"


@pytest.mark.slow
def test_half_peak_for_ten_minutes_has_no_error_and_bounded_rss(
    gateway_proc: Callable[..., GatewayProc],
) -> None:
    """At half of peak for 10 minutes every call succeeds and RSS grows less than 10 %."""
    gw = gateway_proc()
    seed_registry(gw.ledger_url, n=5)
    payload = ad_share(5).SerializeToString()

    def spec(**kw: object) -> LoadSpec:
        return LoadSpec(address=gw.address, pki=str(gw.pki), method=SHARE, payload=payload, **kw)  # type: ignore[arg-type]

    peak = run_load(spec(duration_s=8, warmup_s=2))
    assert peak.rps > 0 and not peak.errors, peak
    proc = psutil.Process(gw.process.pid if gw.process else 0)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.wait(5):
            samples.append((time.monotonic() - t0, proc.memory_info().rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        soak = run_load(spec(duration_s=SOAK_S, warmup_s=0, rate=peak.rps / 2, max_outstanding=200))
    finally:
        stop.set()
        sampler.join()
    warm = next(rss for t, rss in samples if t >= min(60.0, SOAK_S / 4))
    end = samples[-1][1]
    growth = (end - warm) / warm
    print(
        f"soak: peak {peak.rps:.0f} rps; offered {peak.rps / 2:.0f} rps for {SOAK_S:.0f} s: "
        f"{soak.ok} OK, errors {soak.errors}, p50 {soak.p50_ms} ms, p99 {soak.p99_ms} ms; "
        f"RSS {warm / 2**20:.1f} MiB -> {end / 2**20:.1f} MiB ({growth:+.1%})"
    )
    assert not soak.errors, soak.errors
    assert growth < 0.10
    verify = gw.verify_ledger()
    assert verify.returncode == 0, verify.stdout + verify.stderr
