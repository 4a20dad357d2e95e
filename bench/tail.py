"""Where the open-loop latency tail comes from: gateway variants side by side, interleaved.

Run: ``python -m bench.tail`` (``--quick`` for short rounds). Every variant is its own
SQLite gateway process started under ``bench.observe`` (GC pauses, event-loop lag, ledger
batches and per-thread CPU of each round's window) with one tuning applied; rounds are
interleaved (round 1 of every variant and rate, then round 2, ...), so the machine's noise
hits them alike. Results: ``bench/results/tail.json`` and a markdown table on stdout.

Variants (``--variants`` picks some):

* ``base``: the gateway as shipped (writer thread, 5 ms switch interval, ``tune_gc``);
* ``si-1ms`` / ``si-0.2ms``: ``sys.setswitchinterval`` 1 ms / 0.2 ms (the writer thread
  gets the GIL sooner once it has work; the loop is interrupted more often);
* ``gc-off``: no automatic collection after start-up (what GC costs; not shippable);
* ``gc-200k`` / ``gc-5k``: young collections every 200,000 / 5,000 net allocations instead
  of 50,000; ``gc-700``: CPython's default thresholds (700, 10, 10), after the same freeze;
* ``writer-on-loop``: group commit in a loop callback, no writer thread (prototype).

With ``--py-spy``, one extra 1,000 rps run against ``base`` is sampled by
``py-spy record --threads --gil`` (collapsed stacks in the results folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import SHARE, Bench, _floats
from bench.workload import ad_share

RESULTS = Path(__file__).resolve().parent / "results" / "tail.json"

VARIANTS: dict[str, list[str]] = {
    "base": [],
    "si-1ms": ["--switch-interval", "0.001"],
    "si-0.2ms": ["--switch-interval", "0.0002"],
    "gc-off": ["--gc-freeze-only"],
    "gc-200k": ["--gc-threshold", "200000,20,100"],
    "gc-5k": ["--gc-threshold", "5000,20,100"],
    "gc-700": ["--gc-threshold", "700,10,10"],
    "writer-on-loop": ["--writer-on-loop"],
}


def _signal_stats(bench: Bench, name: str) -> dict[str, Any]:
    """Ask variant ``name``'s gateway for its window's figures (and start a new window)."""
    path = bench.tmp / f"observe-{name}.json"
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(bench.servers[f"{name}#0"].pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != before:
            return dict(json.loads(path.read_text()))
        time.sleep(0.02)
    return {}


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    args.all = False
    bench = Bench(args, tmp)
    payload = ad_share(5).SerializeToString()
    rows: list[dict[str, Any]] = []
    try:
        for name in args.variants:
            observe = ["--stats", str(tmp / f"observe-{name}.json"), *VARIANTS[name]]
            bench._gateway(name, ledger_url=None, observe=observe)
        for r in range(args.rounds):
            for rate in args.rates:
                for name in args.variants:
                    _signal_stats(bench, name)  # start the window
                    load = bench.load(name, SHARE, payload, rate=rate, max_outstanding=500)
                    obs = _signal_stats(bench, name)
                    row = {"round": r + 1, "rate": rate, "variant": name, **load.as_dict()}
                    row["observed"] = obs
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        profile = None
        if args.py_spy and "base" in args.variants:
            profile = py_spy(bench, payload, tmp)
    finally:
        for p in bench.servers.values():
            p.stop()
    return {"rows": rows, "py_spy": profile, "logs": str(tmp / "logs")}


def py_spy(bench: Bench, payload: bytes, tmp: Path) -> dict[str, Any]:
    """Sample ``base`` under 1,000 rps with py-spy (threads, GIL holder only) into folded stacks."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = tmp / "py-spy-base-1000.txt"
    secs = int(bench.args.duration + bench.args.warmup + 3)
    pid = str(bench.servers["base#0"].pid)
    argv = [exe, "record", "--threads", "--gil", "-r", "250", "-d", str(secs), "-f", "raw"]
    spy = subprocess.Popen(
        [*argv, "-o", str(out), "-p", pid],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    load = bench.load("base", SHARE, payload, rate=1000, max_outstanding=500)
    spy.wait(60)
    keep = RESULTS.parent / "tail-py-spy-base-1000.txt"
    if out.exists():
        shutil.copy(out, keep)
    return {"load": load.as_dict(), "folded": str(keep) if out.exists() else None}


def markdown(res: dict[str, Any]) -> str:
    rows = res["rows"]
    lines = [
        "| rate | variant | p50 ms | p99 ms (each round) | max ms | GC pauses (gen0/1/2 n, "
        "max ms) | loop lag p99 / max ms | batch | commit p99 ms | CPU s: loop / writer |",
        "|---:|---|---:|---|---:|---|---|---:|---:|---|",
    ]
    for rate in sorted({r["rate"] for r in rows}):
        for name in dict.fromkeys(r["variant"] for r in rows):
            rs = [r for r in rows if r["rate"] == rate and r["variant"] == name]
            if not rs:
                continue
            p99s = [r["p99_ms"] for r in rs]
            med = sorted(rs, key=lambda r: r["p99_ms"])[len(rs) // 2]
            o = med.get("observed") or {}
            g = o.get("gc", {})
            gcs = "; ".join(
                f"{g.get(k, {}).get('n', 0)}, {g.get(k, {}).get('max_ms', 0)}" for k in "012"
            )
            lag = o.get("loop_lag", {})
            led = o.get("ledger", {})
            cpu = o.get("thread_cpu_s", {})
            lines.append(
                f"| {rate:,} | {name} | {statistics.median(r['p50_ms'] for r in rs):.2f} | "
                f"**{statistics.median(p99s):.1f}** ({_floats(p99s, '.1f')}) | "
                f"{med['max_ms']:.0f} | {gcs} | {lag.get('p99_ms', '-')} / "
                f"{lag.get('max_ms', '-')} | {led.get('mean_batch', '-')} | "
                f"{led.get('commit', {}).get('p99_ms', '-')} | "
                f"{cpu.get('MainThread', '-')} / {cpu.get('ledger-writer', '-')} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    os.umask(0o077)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rates", default="500,1000")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--py-spy", action="store_true")
    p.add_argument("--output", type=Path, default=RESULTS)
    a = p.parse_args()
    a.rates = [int(x) for x in a.rates.split(",")]
    a.variants = [v for v in a.variants.split(",") if v]
    unknown = set(a.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants: {sorted(unknown)}")
    if a.quick:
        a.duration, a.warmup, a.rounds = 2.0, 1.0, min(a.rounds, 2)
    a.processes, a.concurrency = 2, 16
    a.pg_admin_url = ""
    res = run(a)
    res["command"] = "python -m bench.tail " + " ".join(sys.argv[1:])
    res["loadavg_at_end"] = os.getloadavg()
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(markdown(res))


if __name__ == "__main__":
    main()
