"""The share path without gRPC: the ceiling the gateway's own work puts on throughput.

Run: ``python -m bench.inprocess``. Drives ``ShareServicer.Share`` and ``Evaluate`` (the same
coroutines the server runs) with 32 concurrent tasks on one event loop, on a SQLite gateway
with the benchmark registry, for ``--calls`` calls after a warm-up; prints calls/s and µs per
call (median of ``--runs`` runs) and writes them to ``bench/results/inprocess.json``.
Compare with ``bench.run``'s figures: the difference is gRPC, the interceptors, the access
log and the load generator sharing the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.workload import ad_share, seed_registry
from gateway.security.identity import Principal, Role, bind_principal
from gateway.server import Gateway, tune_gc
from gateway.services.share import ShareServicer
from gateway.settings import LimitsSettings, Settings

TASKS = 32
RESULTS = Path(__file__).resolve().parent / "results" / "inprocess.json"


def rate(servicer: ShareServicer, method: str, calls: int) -> float:
    """Calls/s of ``method`` from ``TASKS`` concurrent tasks."""
    principal = Principal(id="service-checkout", role=Role.SERVICE)
    request = ad_share(5)
    behaviour = getattr(servicer, method)

    async def task(n: int) -> None:
        with bind_principal(principal):
            for _ in range(n):
                await behaviour(request, None)

    async def main() -> float:
        await asyncio.gather(*(task(10) for _ in range(TASKS)))  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(task(calls // TASKS) for _ in range(TASKS)))
        return (calls // TASKS) * TASKS / (time.perf_counter() - t0)

    return asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=6400)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()
    os.umask(0o077)  # databases owner-only, as the gateway requires (as bench.run does)
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'gateway.db'}"
        seed_registry(url)
        gateway = Gateway.open(
            Settings.load(env={}, overrides={"data_dir": d, "ledger": {"url": url}})
        )
        tune_gc()  # as ``serve`` does
        servicer = ShareServicer(sharing=gateway.sharing, limits=LimitsSettings())
        out = {}
        for method in ("Share", "Evaluate"):
            runs = [rate(servicer, method, args.calls) for _ in range(args.runs)]
            med = statistics.median(runs)
            out[method] = {
                "calls_per_s": round(med),
                "us_per_call": round(1e6 / med),
                "runs": [round(r) for r in runs],
            }
        gateway.close()
    args.output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
