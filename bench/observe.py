"""Run ``share-gateway`` with tail-latency instruments, or with one tuning to measure.

``python -m bench.observe --stats FILE [tuning...] -- serve --config CFG`` runs the gateway's
own CLI in this process after installing:

* ``gc.callbacks``: every collection's pause, by generation;
* an event-loop lag probe: a task that sleeps ``LAG_TICK_S`` and records how late it woke
  (a stalled loop — GC, a long callback, the GIL held by another thread — shows up here);
* a ledger commit observer: entries per batch and seconds per ``BatchWriter.write``;
* per-thread CPU seconds (``/proc/self/task``), named by Python thread name.

``SIGUSR1`` writes the figures gathered since the previous ``SIGUSR1`` to ``FILE`` (JSON) and
starts a new window, so the benchmark can bracket one load round.

Tunings (each a variant measured side by side against the plain gateway, bench/tail.py):
``--switch-interval S`` (``sys.setswitchinterval``), ``--gc-threshold A,B,C`` (after the
gateway's own ``tune_gc``), ``--gc-freeze-only`` (no automatic collection at all after
start-up: a measurement of what GC costs, not a setting to ship), ``--writer-on-loop`` (a
prototype: the ledger's group commit runs as a callback on the event loop instead of the
writer thread, so no future is resolved across threads; Share/Evaluate only — the sync
``append`` of bulk streams is not served by it).

None of this changes what is written or when a caller is answered: the same
``BatchWriter.write`` commits every batch before any waiter is resolved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LAG_TICK_S = 0.002


class Stats:
    """One observation window (reset by each dump)."""

    def __init__(self) -> None:
        # Re-entrant: the SIGUSR1 handler and GC callbacks may run in the middle of a holder.
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.t0 = time.perf_counter()
        self.gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.lag: list[float] = []
        self.batches: list[tuple[int, float]] = []
        self.cpu0 = thread_cpu()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            window = time.perf_counter() - self.t0
            cpu1 = thread_cpu()
            cpu = {
                name: round(cpu1[name] - self.cpu0.get(name, 0.0), 3)
                for name in sorted(cpu1)
                if cpu1[name] - self.cpu0.get(name, 0.0) > 0.005
            }
            out: dict[str, Any] = {"window_s": round(window, 3), "thread_cpu_s": cpu}
            out["gc"] = {
                str(gen): _dist(pauses) | {"total_ms": round(sum(pauses) * 1000, 3)}
                for gen, pauses in self.gc.items()
            }
            out["loop_lag"] = _dist(self.lag)
            sizes = [n for n, _ in self.batches]
            out["ledger"] = {
                "batches": len(self.batches),
                "entries": sum(sizes),
                "mean_batch": round(statistics.fmean(sizes), 2) if sizes else 0,
                "commit": _dist([s for _, s in self.batches]),
            }
            self.reset()
            return out


def _dist(xs: list[float]) -> dict[str, Any]:
    """Count, p50, p99 and max in milliseconds."""
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    return {
        "n": len(s),
        "p50_ms": round(s[len(s) // 2] * 1000, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 3),
        "max_ms": round(s[-1] * 1000, 3),
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) per live thread, keyed ``name`` (numbered if repeated)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue
        name = names.get(int(task.name), f"native:{comm}")
        # grpc.aio pollers and the pool's threads repeat names: sum them per name.
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def install(stats: Stats, args: argparse.Namespace) -> None:
    """Patch the gateway's start-up to add the probes and the chosen tuning."""
    import gateway.server as server
    from ledger.sequencer import Sequencer

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            on_gc.started = time.perf_counter()  # type: ignore[attr-defined]
        else:
            pause = time.perf_counter() - on_gc.started  # type: ignore[attr-defined]
            with stats.lock:
                stats.gc[int(info["generation"])].append(pause)

    gc.callbacks.append(on_gc)

    original_tune = server.tune_gc

    def tune_gc() -> None:
        original_tune()
        if args.gc_threshold:
            a, b, c = (int(x) for x in args.gc_threshold.split(","))
            gc.set_threshold(a, b, c)
        if args.gc_freeze_only:
            gc.disable()

    server.tune_gc = tune_gc

    original_serve = server._serve

    async def serve(settings: Any, **kw: Any) -> None:
        lag_task = asyncio.get_running_loop().create_task(_lag_probe(stats))
        try:
            await original_serve(settings, **kw)
        finally:
            lag_task.cancel()

    server._serve = serve  # type: ignore[assignment]

    original_init = Sequencer.__init__

    def init(self: Sequencer, **kw: Any) -> None:
        original_init(self, **kw)

        def observe(entries: int, _size: int, seconds: float) -> None:
            with stats.lock:
                stats.batches.append((entries, seconds))

        self.observers.append(observe)

    Sequencer.__init__ = init  # type: ignore[method-assign]
    if args.writer_on_loop:
        _writer_on_loop(Sequencer)


async def _lag_probe(stats: Stats) -> None:
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        late = time.perf_counter() - t0 - LAG_TICK_S
        with stats.lock:
            stats.lag.append(max(0.0, late))


def _writer_on_loop(cls: Any) -> None:
    """Prototype: commit batches in a loop callback; no writer thread, no cross-thread wake-up.

    Appends made while a commit blocks the loop cannot run (the loop is busy), so a batch holds
    the appends of the handlers that ran since the last commit; the next commit is scheduled
    with ``call_soon`` after them.
    """

    def no_thread(self: Any) -> None:
        return None

    cls._run = no_thread

    async def append_async(self: Any, disclosures: Sequence[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        queued = self._enqueue(disclosures, done)
        if queued is None:
            return []
        if not getattr(self, "_flush_scheduled", False):
            self._flush_scheduled = True
            loop.call_soon(flush, self)
        await done
        batch, start, n = queued
        if batch.error is not None:
            raise batch.error
        return list(batch.receipts[start : start + n])

    def flush(self: Any) -> None:
        self._flush_scheduled = False
        while True:
            with self._cv:
                if not self._queue:
                    return
                batch = self._queue.popleft()
                self._pending -= batch.count
            self._commit(batch)
            for f in batch.waiters:
                if not f.done():
                    f.set_result(None)

    cls.append_async = append_async


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stats", type=Path, required=True, help="JSON file SIGUSR1 writes")
    p.add_argument("--switch-interval", type=float, default=0.0)
    p.add_argument("--gc-threshold", default="")
    p.add_argument("--gc-freeze-only", action="store_true")
    p.add_argument("--writer-on-loop", action="store_true")
    p.add_argument("cli", nargs=argparse.REMAINDER, help="-- share-gateway arguments")
    args = p.parse_args(argv)
    cli = [a for a in args.cli if a != "--"] if args.cli[:1] == ["--"] else args.cli
    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval)
    stats = Stats()

    def dump(_sig: int, _frame: Any) -> None:
        snap = stats.snapshot()
        tmp = args.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(snap), encoding="utf-8")
        tmp.replace(args.stats)

    signal.signal(signal.SIGUSR1, dump)
    install(stats, args)
    from gateway.cli import main as cli_main

    sys.argv = ["share-gateway", *cli]
    with contextlib.suppress(SystemExit):
        cli_main()


if __name__ == "__main__":
    main()
