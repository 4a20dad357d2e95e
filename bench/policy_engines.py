"""Policy engines side by side: µs per decision, uncached and cached, medians of rounds.

Run: ``python -m bench.policy_engines [--rounds 7] [--calls 300]``. Engines, each on the same
inputs in the same process, rounds interleaved (round 1 of every engine, then round 2, ...)
so the noise of a shared machine hits all alike:

* ``regorus``: the embedded engine (``EmbeddedEngine``): ``evaluate`` (uncached) and
  ``decide`` on a repeated input (cached);
* ``opa``: OPA's Go evaluator in-process (``OpaGoEngine``, ``policy.engine = "opa"``),
  uncached and cached (the same decision cache);
* ``opa-server``: ``OpaServerEngine`` over HTTP to ``fake_opa`` on 127.0.0.1 (OPA's evaluator
  behind OPA's REST API, in this process: the figure includes HTTP and the fake's Python
  server, not a real ``opa`` binary). No cache: each decision must be OPA's own, with its
  ``decision_id``.

Inputs: the golden 5-subject AD_PARTNER batch (ad partner, adults, a minor, an opted-out
subject) and the 1-subject vendor delivery. Prints a table with ratios to regorus (uncached)
of the same run, the load average before and after, and writes
``bench/results/policy_engines.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from gateway.policy import PolicyDecision
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.fake_opa import FakeOpa
from gateway.policy.opa_go import OpaGoEngine
from gateway.policy.opa_server import OpaServerEngine

ROOT = Path(__file__).resolve().parents[1]
POLICY_DIR = ROOT / "policies_rego"
RESULTS = Path(__file__).resolve().parent / "results" / "policy_engines.json"
_CASES = json.loads((ROOT / "tests/policy/golden/cases.json").read_text())["cases"]


def _inputs() -> dict[str, Mapping[str, Any]]:
    ad = next(c["input"] for c in _CASES if c["name"].startswith("ad partner + minor"))
    subjects = [dict(ad["subjects"][0], ref=str(i)) for i in range(3)] + ad["subjects"][1:]
    batch = dict(ad, subjects=[dict(s, ref=str(i)) for i, s in enumerate(subjects)])
    vendor = next(c["input"] for c in _CASES if c["name"] == "vendor delivery allowed")
    return {"ad batch, 5 subjects": batch, "vendor, 1 subject": vendor}


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def run(rounds: int, calls: int) -> dict[str, Any]:
    inputs = _inputs()
    with FakeOpa() as fake:
        regorus = EmbeddedEngine(policy_dir=POLICY_DIR)
        opa = OpaGoEngine(policy_dir=POLICY_DIR)
        server = OpaServerEngine(policy_dir=POLICY_DIR, url=fake.url, timeout_s=30)
        cases: dict[str, Callable[[Mapping[str, Any]], PolicyDecision]] = {
            "regorus uncached": regorus.evaluate,
            "regorus cached": regorus.decide,
            "opa in-process uncached": opa.evaluate,
            "opa in-process cached": opa.decide,
            "opa-server uncached": server.decide,
        }
        # Same decisions everywhere, and warm (compiled per thread, prepared queries, cache).
        for doc in inputs.values():
            decided = [f(doc).comparable() for f in cases.values()]
            assert all(d == decided[0] for d in decided), "engines disagree"
        samples: dict[str, dict[str, list[float]]] = {
            name: {case: [] for case in cases} for name in inputs
        }
        load_before = os.getloadavg()
        for _ in range(rounds):
            for name, doc in inputs.items():
                for case, f in cases.items():
                    n = (
                        max(calls // 4, 20)
                        if case.endswith("uncached") and "opa" in case
                        else calls
                    )
                    samples[name][case].append(_per_call_us(partial(f, doc), n))
        load_after = os.getloadavg()
        server.close()
    table = {
        name: {
            case: {
                "median_us": round(statistics.median(v)),
                "rounds_us": [round(x) for x in v],
                "ratio_to_regorus_uncached": round(
                    statistics.median(v) / statistics.median(per["regorus uncached"]), 2
                ),
            }
            for case, v in per.items()
        }
        for name, per in samples.items()
    }
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "rounds": rounds,
        "calls_per_round": {"OPA uncached": max(calls // 4, 20), "others": calls},
        "results": table,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()
    out = run(args.rounds, args.calls)
    args.output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    m = out["machine"]
    print(f"load average {m['loadavg_before']} -> {m['loadavg_after']} ({m['cpus']} CPUs)")
    for name, per in out["results"].items():
        print(f"\n{name}: median µs per decision ({out['rounds']} rounds)")
        for case, r in per.items():
            print(f"  {case:26s} {r['median_us']:>8} µs  x{r['ratio_to_regorus_uncached']}")


if __name__ == "__main__":
    main()
