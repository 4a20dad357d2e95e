"""Ledger benchmark: durable appends/s vs raw batched INSERTs, proof and verify times.

Run: ``python -m bench.ledger_bench`` (full: 1,000,000-entry ledger) or ``--quick``.
Writes ``bench/results/ledger.json`` and prints a Markdown table for docs/benchmarks.md.

Measured, per backend (SQLite file in a temp dir; PostgreSQL in a throwaway database):

* ``raw_insert_rows_per_s``: rows of the same size as ledger entries inserted with the
  driver's executemany, 1,000 per transaction, each committed durably: the ceiling.
* ``append_concurrent_per_s``: ``Ledger.append([one disclosure])`` from many threads at once
  (the gateway's shape: group commit batches them).
* ``append_async_per_s``: ``await Ledger.append_async([one disclosure])`` from as many
  coroutines on one event loop (how the gateway's Share appends).
* ``append_bulk_per_s``: ``Ledger.append(list of 1,000)`` from one caller.
Medians of ``--runs`` runs (default 3). Then, on SQLite: build a large ledger through
``append``, time inclusion proofs at that size and one full ``verify_storage``.

``--processes 1,2,4`` measures what one database sustains for durable batched appends from
several processes (the shape of several gateway processes or hosts on one PostgreSQL): each
process opens its own ``Ledger`` on the same database and appends from ``--threads``
coroutines (``append_async``, one disclosure each) or, with ``--per-call N``, lists of N; the
rate is all entries over the wall time from the common start to the last process's end.
Afterwards the ledger is checked dense and fully verified. Each process also reports its
transactions, entries per transaction, and how many of its batches found the tree extended
by another process (the writer then reloads the frontier and re-checks the latest signed
checkpoint before appending).

``--compare-signing`` measures what signing a checkpoint in every append transaction costs
(ADR 0010): ``append_async`` and concurrent ``append`` rates with the ledger's writer and with
the same writer signing nothing, alternating runs on one database (before/after in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger import Disclosure, Ledger
from ledger.checkpoint import Checkpoint, NoteSigner
from ledger.fsck import verify_storage

RESULTS = Path(__file__).resolve().parent / "results" / "ledger.json"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _disclosure(i: int) -> Disclosure:
    return Disclosure(
        time=datetime.now(UTC),
        decision="ALLOW",
        request_id=f"req-{i}",
        rpc="/partner_gateway.v1.ShareService/Share",
        caller="svc-crm",
        caller_role="sharer",
        partner_id=f"partner-{i % 10}",
        purpose="fraud-prevention",
        action="SHARE",
        mode="share",
        legal_basis="consent",
        reason_codes=("R1",),
        policy_revision="rev-1",
        record_type="customer",
        categories_disclosed=("email", "name"),
        categories_removed=("national_id",),
        record_count=1,
        subject_ids=(f"subject-{i % 5000}",),
        payload_digest=os.urandom(32),
        pseudonym_key_id="pk1",
    )


@contextmanager
def _database(backend: str, tmp: Path, pg_admin: str) -> Iterator[str]:
    if backend == "sqlite":
        name = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{name}"
        return
    db = f"ledger_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{db}"')
    try:
        yield sa.make_url(pg_admin).set(database=db).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()


def raw_insert_rate(url: str, rows: int, batch: int = 1000) -> float:
    """Rows/s of durable batched INSERTs (driver executemany, commit per batch)."""
    from ledger.storage import create_ledger_engine

    engine = create_ledger_engine(url)  # same durability settings as the ledger
    sqlite = engine.dialect.name == "sqlite"
    ph = "?" if sqlite else "%s"
    blob = "BLOB" if sqlite else "BYTEA"
    table = f"bench_raw_{uuid.uuid4().hex[:6]}"
    payload = os.urandom(600)
    with engine.begin() as c:
        c.exec_driver_sql(
            f"CREATE TABLE {table} (idx BIGINT PRIMARY KEY, h {blob}, data {blob}, p TEXT)"
        )
    sql = f"INSERT INTO {table} VALUES ({ph}, {ph}, {ph}, {ph})"
    t0 = time.perf_counter()
    for start in range(0, rows, batch):
        params = [(i, os.urandom(32), payload, "partner") for i in range(start, start + batch)]
        with engine.connect().execution_options(ledger_write=True) as c, c.begin():
            c.exec_driver_sql(sql, params)
    rate = rows / (time.perf_counter() - t0)
    with engine.begin() as c:
        c.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()
    return rate


def append_concurrent_rate(led: Ledger, total: int, threads: int) -> float:
    """Entries/s of single-disclosure appends from ``threads`` threads (group commit)."""
    per = total // threads
    ds = [_disclosure(i) for i in range(per)]
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for d in ds:
            led.append([d])

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return per * threads / (time.perf_counter() - t0)


def append_async_rate(led: Ledger, total: int, tasks: int) -> float:
    """Entries/s of single-disclosure ``append_async`` from ``tasks`` coroutines on one event
    loop (the gateway's shape since ADR 0005: Share awaits its commit on the loop)."""
    per = total // tasks
    ds = [_disclosure(i) for i in range(per)]

    async def work() -> None:
        for d in ds:
            await led.append_async([d])

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(tasks)))
        return time.perf_counter() - t0

    return per * tasks / asyncio.run(main())


def append_bulk_rate(led: Ledger, total: int, batch: int = 1000) -> float:
    """Entries/s of ``append`` with lists of ``batch`` from one caller."""
    ds = [_disclosure(i) for i in range(batch)]
    t0 = time.perf_counter()
    for _ in range(total // batch):
        led.append(ds)
    return (total // batch) * batch / (time.perf_counter() - t0)


def bench_signing(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Append rates with and without the per-transaction checkpoint signature, alternated."""
    from ledger.writer import BatchWriter

    out: dict[str, Any] = {}
    with (
        _database(backend, tmp, args.pg_admin_url) as url,
        Ledger.open(
            url, keys_dir=tmp / "keys", origin="bench.local/ledger", max_batch=args.max_batch
        ) as led,
    ):
        signing = led._sequencer.write
        unsigned = BatchWriter(
            engine=led.engine, pz=led._pz, signer=None, verifiers=led._verifiers
        ).write
        batches: list[int] = []

        def counting(items: list[Any]) -> Any:
            batches.append(len(items))
            return signing(items)

        for name, rate in (
            ("append_async_per_s", append_async_rate),
            ("append_concurrent_per_s", append_concurrent_rate),
        ):
            runs: dict[str, list[float]] = {"signed": [], "unsigned": []}
            for _ in range(args.runs):
                for label, write in (("unsigned", unsigned), ("signed", counting)):
                    led._sequencer.write = write
                    runs[label].append(rate(led, args.appends, args.threads))
            led._sequencer.write = signing
            med = {k: statistics.median(v) for k, v in runs.items()}
            out[name] = {
                k: {"median": round(med[k]), "runs": [round(v) for v in vs]}
                for k, vs in runs.items()
            }
            out[name]["cost_pct"] = round(100 * (1 - med["signed"] / med["unsigned"]), 1)
        out["entries_per_signed_batch_mean"] = round(statistics.mean(batches), 1)
    # The signature itself, away from I/O noise: one per append transaction.
    signer = NoteSigner.generate("bench.local/ledger")
    cp = Checkpoint(origin=signer.name, size=123_456, root=os.urandom(32))
    per_call = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(2000):
            signer.sign_checkpoint(cp)
        per_call.append((time.perf_counter() - t0) / 2000 * 1e6)
    out["sign_checkpoint_us_median"] = round(statistics.median(per_call), 1)
    out["threads"] = args.threads
    out["entries_per_run"] = args.appends
    return out


def _mp_appender(
    url: str, keys_dir: str, n: int, tasks: int, per_call: int, start_at: float, out: Any
) -> None:
    """One process of ``--processes``: ``n`` entries from ``tasks`` coroutines, then its
    figures (seconds, batches, entries, batches that had to reload the frontier) on ``out``."""
    from ledger.writer import BatchWriter

    reloads = [0]
    original = BatchWriter._load_checked

    def counting(self: BatchWriter, cur: Any, size: int) -> Any:
        reloads[0] += 1
        return original(self, cur, size)

    BatchWriter._load_checked = counting  # type: ignore[method-assign]
    batches: list[tuple[int, float]] = []
    with Ledger.open(url, keys_dir=Path(keys_dir), origin="bench.local/ledger") as led:
        led._sequencer.observers.append(lambda e, _s, secs: batches.append((e, secs)))
        ds = [_disclosure(i) for i in range(per_call)]
        calls = n // per_call // tasks

        async def work() -> None:
            for _ in range(calls):
                await led.append_async(ds)

        async def main() -> tuple[float, float]:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            t0 = time.time()
            await asyncio.gather(*(work() for _ in range(tasks)))
            return t0, time.time()

        t0, t1 = asyncio.run(main())
    commit = sorted(x for _, x in batches)
    out.put(
        {
            "start": t0,
            "end": t1,
            "entries": calls * tasks * per_call,
            "transactions": len(batches),
            "frontier_reloads": reloads[0],
            "commit_ms_p50": round(1000 * commit[len(commit) // 2], 2) if commit else 0,
        }
    )


def bench_processes(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Durable appends/s on one database from 1..N processes (see the module docstring)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    backend = args.backends.split(",")[0]
    for nproc in [int(x) for x in args.processes.split(",")]:
        runs = []
        for _ in range(args.runs):
            with _database(backend, tmp, args.pg_admin_url) as url:
                keys = tmp / f"keys-{uuid.uuid4().hex[:6]}"
                with Ledger.open(url, keys_dir=keys, origin="bench.local/ledger") as led:
                    led.append([_disclosure(0)])  # schema, keys and first checkpoint, once
                    vkey = led.verifier_key
                q = ctx.Queue()
                start_at = time.time() + 2.0 + 0.5 * nproc
                ps = [
                    ctx.Process(
                        target=_mp_appender,
                        args=(
                            url,
                            str(keys),
                            args.appends // nproc,
                            args.threads,
                            args.per_call,
                            start_at,
                            q,
                        ),
                    )
                    for _ in range(nproc)
                ]
                for p in ps:
                    p.start()
                res = [q.get(timeout=900) for _ in ps]
                for p in ps:
                    p.join()
                entries = sum(r["entries"] for r in res)
                wall = max(r["end"] for r in res) - min(r["start"] for r in res)
                txns = sum(r["transactions"] for r in res)
                engine = sa.create_engine(url, poolclass=sa.NullPool)
                try:
                    with engine.connect() as c:
                        n, hi, distinct = c.exec_driver_sql(
                            "SELECT count(*), max(idx), count(DISTINCT idx) FROM ledger_entry"
                        ).one()
                    report = verify_storage(engine, vkey=vkey)
                finally:
                    engine.dispose()
                runs.append(
                    {
                        "entries_per_s": round(entries / wall),
                        "transactions_per_s": round(txns / wall),
                        "entries_per_transaction": round(entries / max(1, txns), 1),
                        "frontier_reload_pct": round(
                            100 * sum(r["frontier_reloads"] for r in res) / max(1, txns), 1
                        ),
                        "commit_ms_p50": [r["commit_ms_p50"] for r in res],
                        "dense": n == hi + 1 == distinct,
                        "verified": report.ok,
                    }
                )
                print(f"[{backend}] {nproc} processes: {json.dumps(runs[-1])}", flush=True)
        med = sorted(runs, key=lambda r: r["entries_per_s"])[len(runs) // 2]
        out[str(nproc)] = {**med, "runs": [r["entries_per_s"] for r in runs]}
    out["backend"] = backend
    out["coroutines_per_process"] = args.threads
    out["entries_per_call"] = args.per_call
    return out


def _median(fn: Callable[[], float], runs: int) -> dict[str, Any]:
    values = [fn() for _ in range(runs)]
    return {"median": round(statistics.median(values)), "runs": [round(v) for v in values]}


def bench_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _database(backend, tmp, args.pg_admin_url) as url:
        out["raw_insert_rows_per_s"] = _median(
            lambda: raw_insert_rate(url, args.appends), args.runs
        )
        with Ledger.open(
            url, keys_dir=tmp / "keys", origin="bench.local/ledger", max_batch=args.max_batch
        ) as led:
            out["append_concurrent_per_s"] = _median(
                lambda: append_concurrent_rate(led, args.appends, args.threads), args.runs
            )
            out["append_async_per_s"] = _median(
                lambda: append_async_rate(led, args.appends, args.threads), args.runs
            )
            out["append_bulk_per_s"] = _median(
                lambda: append_bulk_rate(led, args.appends), args.runs
            )
    out["threads"] = args.threads
    out["entries_per_run"] = args.appends
    return out


def bench_large(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.size
    url = f"sqlite:///{tmp / 'large.db'}"
    with Ledger.open(
        url, keys_dir=tmp / "keys", origin="bench.local/ledger", max_batch=10_000
    ) as led:
        chunk = [_disclosure(i) for i in range(10_000)]
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(10_000, n - done)
            led.append(chunk[:k])
            done += k
        build_s = time.perf_counter() - t0
        led.checkpoint()
        rng = random.Random(1)
        times = []
        for _ in range(args.proofs):
            i = rng.randrange(n)
            t = time.perf_counter()
            led.inclusion_proof(i, n)
            times.append(time.perf_counter() - t)
        times.sort()
        c0 = time.perf_counter()
        for _ in range(200):
            led.consistency_proof(rng.randrange(1, n), n)
        consistency_ms = (time.perf_counter() - c0) / 200 * 1000
        report = verify_storage(led.engine, vkey=led.verifier_key)
    assert report.ok, report.summary()
    return {
        "size": n,
        "build_seconds": round(build_s, 1),
        "build_entries_per_s": round(n / build_s),
        "inclusion_proof_ms_median": round(statistics.median(times) * 1000, 3),
        "inclusion_proof_ms_p99": round(times[int(len(times) * 0.99)] * 1000, 3),
        "consistency_proof_ms_mean": round(consistency_ms, 3),
        "verify_seconds": report.seconds,
    }


def markdown(res: dict[str, Any]) -> str:
    rows = ["| Measure | SQLite | PostgreSQL | Target |", "|---|---:|---:|---|"]
    b = res["backends"]

    def cell(backend: str, key: str) -> str:
        v = b.get(backend, {}).get(key)
        return f"{v['median']:,}" if v else "n/a"

    rows.append(
        f"| Raw batched INSERT, rows/s (ceiling) | {cell('sqlite', 'raw_insert_rows_per_s')}"
        f" | {cell('postgres', 'raw_insert_rows_per_s')} | |"
    )
    rows.append(
        f"| Durable appends/s, {b.get('sqlite', {}).get('threads')} threads x 1 entry"
        f" | {cell('sqlite', 'append_concurrent_per_s')}"
        f" | {cell('postgres', 'append_concurrent_per_s')} | ≥ 20,000 / ≥ 10,000 |"
    )
    rows.append(
        f"| Durable appends/s, {b.get('sqlite', {}).get('threads')} coroutines x 1 entry"
        f" (`append_async`, one event loop) | {cell('sqlite', 'append_async_per_s')}"
        f" | {cell('postgres', 'append_async_per_s')} | ≥ 20,000 / ≥ 10,000 |"
    )
    rows.append(
        f"| Durable appends/s, bulk lists of 1,000 | {cell('sqlite', 'append_bulk_per_s')}"
        f" | {cell('postgres', 'append_bulk_per_s')} | |"
    )
    lg = res.get("large")
    if lg:
        rows.append(
            f"| Inclusion proof at {lg['size']:,} (median / p99 ms) | "
            f"{lg['inclusion_proof_ms_median']} / {lg['inclusion_proof_ms_p99']} | | ≤ 1 ms |"
        )
        rows.append(
            f"| Consistency proof at {lg['size']:,} (mean ms) | "
            f"{lg['consistency_proof_ms_mean']} | | |"
        )
        rows.append(
            f"| Full verify of {lg['size']:,} entries (s) | {lg['verify_seconds']} | | ≤ 60 s |"
        )
        rows.append(
            f"| Building {lg['size']:,} entries via append (s, entries/s) | "
            f"{lg['build_seconds']} ({lg['build_entries_per_s']:,}/s) | | |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--appends", type=int, default=30_000, help="entries per rate run")
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=1000)
    p.add_argument("--size", type=int, default=1_000_000, help="large-ledger size")
    p.add_argument("--proofs", type=int, default=2000)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--pg-admin-url", default=PG_ADMIN)
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument(
        "--compare-signing",
        action="store_true",
        help="only measure appends with vs without the per-commit checkpoint signature",
    )
    p.add_argument(
        "--processes",
        default="",
        help="only measure appends from this many processes on one database, e.g. 1,2,4",
    )
    p.add_argument("--per-call", type=int, default=1, help="disclosures per append call")
    args = p.parse_args()
    if args.processes:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as d:
            res = {
                "command": "python -m bench.ledger_bench " + " ".join(sys.argv[1:]),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "loadavg_at_start": os.getloadavg(),
                "processes": bench_processes(args, Path(d)),
            }
        out = args.output.with_name(f"ledger_processes_{args.per_call}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        return
    if args.quick:
        args.runs, args.appends, args.size, args.proofs = 1, 5_000, 50_000, 300
    res: dict[str, Any] = {
        "command": "python -m bench.ledger_bench" + (" --quick" if args.quick else ""),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "backends": {},
    }
    if args.compare_signing:
        res["command"] += " --compare-signing"
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as d:
            for backend in args.backends.split(","):
                print(f"[{backend}] signing cost ...", flush=True)
                res["backends"][backend] = bench_signing(backend, args, Path(d))
                print(json.dumps(res["backends"][backend]), flush=True)
        out = args.output.with_name("ledger_signing.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as d:
        tmp = Path(d)
        for backend in args.backends.split(","):
            print(f"[{backend}] rates ...", flush=True)
            res["backends"][backend] = bench_backend(backend, args, tmp)
            print(json.dumps(res["backends"][backend]), flush=True)
        if args.size:
            print(f"[sqlite] building {args.size:,} entries ...", flush=True)
            res["large"] = bench_large(args, tmp)
            print(json.dumps(res["large"]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))


if __name__ == "__main__":
    main()
