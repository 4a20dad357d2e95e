"""A multi-process gRPC load generator over mTLS.

Each worker process opens its own ``grpc.aio`` channel(s) and either

* runs ``concurrency`` closed-loop callers (each sends, waits for the answer, sends again), or
* paces calls open-loop at ``rate / processes`` per second; latency is then measured from the
  *scheduled* send time, so a stalled server cannot hide its queueing (no coordinated
  omission), and calls that cannot be sent because ``max_outstanding`` are already in flight
  count as errors (``OVERRUN``).

Requests are pre-serialized bytes and responses stay bytes: the client does no protobuf work,
so it steals as little CPU from the server as possible on a small machine. Only calls that
*start* after the warm-up count. Results: rps, p50, p99, errors by status code.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """What to send where, how hard and for how long."""

    address: str
    pki: str
    method: str
    payload: bytes
    #: When set, calls send these in turn instead of ``payload`` (each process starting at
    #: its own offset): requests that differ call to call, as real traffic does.
    rotation: tuple[bytes, ...] = ()
    identity: str = "service-checkout"
    processes: int = 2
    concurrency: int = 16  # per process (closed loop)
    channels: int = 1  # per process
    duration_s: float = 5.0
    warmup_s: float = 1.0
    rate: float = 0.0  # total calls/s; 0 = closed loop
    max_outstanding: int = 1000  # per process, open loop
    timeout_s: float = 10.0
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass
class LoadResult:
    """Aggregated over all processes (latencies in milliseconds)."""

    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _channel(spec: LoadSpec, n: int) -> grpc.aio.Channel:
    pki = Path(spec.pki)
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.crt").read_bytes(),
        private_key=(pki / f"{spec.identity}.key").read_bytes(),
        certificate_chain=(pki / f"{spec.identity}.crt").read_bytes(),
    )
    # A distinct channel arg keeps channels from sharing one subchannel (one TCP connection).
    return grpc.aio.secure_channel(
        spec.address, creds, options=[("bench.channel", f"{os.getpid()}-{n}")]
    )


async def _worker(spec: LoadSpec, start_at: float) -> tuple[list[float], Counter[str], float]:
    channels = [_channel(spec, n) for n in range(spec.channels)]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 30)
    calls = [ch.unary_unary(spec.method) for ch in channels]
    lat: list[float] = []
    errors: Counter[str] = Counter()
    md = spec.metadata or None
    await asyncio.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    measure_from = t0 + spec.warmup_s
    end = measure_from + spec.duration_s

    rotation = spec.rotation or (spec.payload,)
    sent = itertools.count(random.randrange(len(rotation)))

    async def one(i: int, scheduled: float) -> None:
        payload = rotation[next(sent) % len(rotation)]
        try:
            await calls[i % len(calls)](payload, timeout=spec.timeout_s, metadata=md)
            code = "OK"
        except grpc.aio.AioRpcError as e:
            code = e.code().name
        if scheduled >= measure_from:
            if code == "OK":
                lat.append(time.perf_counter() - scheduled)
            else:
                errors[code] += 1

    if spec.rate <= 0:

        async def loop(i: int) -> None:
            while True:
                now = time.perf_counter()
                if now >= end:
                    return
                await one(i, now)

        await asyncio.gather(*(loop(i) for i in range(spec.concurrency)))
    else:
        interval = spec.processes / spec.rate
        pending: set[asyncio.Task[None]] = set()
        i = 0
        while True:
            scheduled = t0 + i * interval
            if scheduled >= end:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= spec.max_outstanding:
                if scheduled >= measure_from:
                    errors["OVERRUN"] += 1
            else:
                task = asyncio.create_task(one(i, scheduled))
                pending.add(task)
                task.add_done_callback(pending.discard)
            i += 1
        if pending:
            await asyncio.wait(pending)
    elapsed = time.perf_counter() - measure_from  # includes calls still in flight at end
    for ch in channels:
        await ch.close()
    return lat, errors, elapsed


def _process_main(spec: LoadSpec, start_at: float, out: Any) -> None:
    try:
        lat, errors, elapsed = asyncio.run(_worker(spec, start_at))
        out.put(("ok", lat, dict(errors), elapsed))
    except BaseException as e:
        out.put(("error", repr(e), {}, 0.0))


def run_load(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` in ``spec.processes`` fresh processes and aggregate their measurements."""
    ctx = mp.get_context("spawn")  # never fork a process that holds gRPC state
    out = ctx.Queue()
    start_at = time.time() + 1.5 + 0.3 * spec.processes  # time for spawn + TLS handshakes
    procs = [
        ctx.Process(target=_process_main, args=(spec, start_at, out)) for _ in range(spec.processes)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=spec.duration_s + spec.warmup_s + 120) for _ in procs]
    for p in procs:
        p.join()
    lat: list[float] = []
    errors: Counter[str] = Counter()
    seconds = 0.0
    for status, values, errs, elapsed in results:
        if status != "ok":
            raise RuntimeError(f"load worker failed: {values}")
        lat.extend(values)
        errors.update(errs)
        seconds = max(seconds, elapsed)
    res = LoadResult(ok=len(lat), errors=dict(errors), seconds=round(seconds, 3))
    if lat and seconds > 0:
        lat.sort()
        res.rps = round(len(lat) / seconds, 1)
        res.p50_ms = round(statistics.median(lat) * 1000, 3)
        res.p99_ms = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 3)
        res.max_ms = round(lat[-1] * 1000, 3)
    return res
