"""The gateway benchmark suite: every scenario, side by side, medians of >= 3 rounds.

Run: ``python -m bench.run`` (or ``make bench``); ``--quick`` for short rounds.
Writes ``bench/results/latest.json`` and replaces the ``## Gateway`` section of
``docs/benchmarks.md`` (the ``## Ledger`` section, written by ``bench.ledger_bench``, stays).

All servers are separate processes on 127.0.0.1 with mTLS from one dev PKI:

* ``echo-sync``: raw ``grpc.server`` + thread pool echo (the gateway's server kind), answering
  with as many bytes as the gateway's 5-record ad share response; ``echo-aio`` the same on
  ``grpc.aio`` for reference. Ratios are gateway rps / echo-sync rps *of the same round*.
* gateways started with ``share-gateway serve -c FILE``: SQLite ledger + embedded regorus;
  PostgreSQL ledger; SQLite + the fake OPA server (regopy-backed stand-in, *not OPA*);
  two processes on one port (SO_REUSEPORT) sharing one PostgreSQL ledger, and the same on
  SQLite.

Rounds are interleaved (round 1 of every scenario, then round 2, ...) so that the noise of
a shared machine hits every scenario alike; the table reports each scenario's median round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from bench import procs
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.workload import ad_share, bulk_chunks, logistics_share, seed_registry

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARE = "/partner_gateway.v1.ShareService/Share"
EVALUATE = "/partner_gateway.v1.ShareService/Evaluate"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _pg_database(admin: str) -> str | None:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        return None
    finally:
        eng.dispose()
    return sa.make_url(admin).set(database=name).render_as_string(hide_password=False)


def _drop_pg(admin: str, url: str) -> None:
    name = sa.make_url(url).database
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with eng.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        eng.dispose()


class Bench:
    """Starts the servers once, then runs scenario rounds against them."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.pki = procs.ensure_pki(tmp / "pki")
        self.servers: dict[str, procs.ServerProcess] = {}
        self.addresses: dict[str, str] = {}
        self.pg_urls: list[str] = []
        self.ad5 = ad_share(5).SerializeToString()
        self.logistics = logistics_share().SerializeToString()
        self._bulk_runs = 0

    # -- servers -------------------------------------------------------------------------

    def _gateway(
        self, name: str, *, ledger_url: str | None, opa_url: str | None = None, copies: int = 1
    ) -> None:
        data = self.tmp / name
        (data / "pki").parent.mkdir(parents=True, exist_ok=True)
        if not (data / "pki").exists():
            (data / "pki").symlink_to(self.pki)
        url = ledger_url or f"sqlite:///{(data / 'gateway.db').resolve()}"
        seed_registry(url)
        port = procs.free_port()
        cfg = procs.gateway_config(
            data / "gateway.toml", data_dir=data, port=port, ledger_url=url, opa_url=opa_url
        )
        for i in range(copies):
            p = procs.gateway_process(
                f"{name}#{i}", cfg, port, self.tmp / "logs" / f"{name}-{i}.log"
            )
            p.start()
            p.wait_ready(self.pki, procs.HEALTH_CHECK)
            self.servers[f"{name}#{i}"] = p
        self.addresses[name] = f"{procs.HOST}:{port}"

    def start(self) -> None:
        resp_bytes = self._probe_response_size()
        for kind in ("sync", "aio"):
            port = procs.free_port()
            p = procs.echo_process(
                f"echo-{kind}",
                kind=kind,
                pki=self.pki,
                port=port,
                response_bytes=resp_bytes,
                log=self.tmp / "logs" / f"echo-{kind}.log",
            ).start()
            p.wait_ready(self.pki, procs.ECHO_METHOD)
            self.servers[p.name] = p
            self.addresses[p.name] = p.address
        self._gateway("gw-sqlite", ledger_url=None)
        opa_port = procs.free_port()
        opa = procs.opa_process("fake-opa", opa_port, self.tmp / "logs" / "fake-opa.log").start()
        procs.wait_http(opa_port)
        self.servers["fake-opa"] = opa
        self._gateway("gw-opa", ledger_url=None, opa_url=f"http://127.0.0.1:{opa_port}")
        pg = _pg_database(self.args.pg_admin_url)
        if pg is not None:
            self.pg_urls.append(pg)
            self._gateway("gw-pg", ledger_url=pg)
            pg2 = _pg_database(self.args.pg_admin_url)
            assert pg2 is not None
            self.pg_urls.append(pg2)
            self._gateway("gw-pg-x2", ledger_url=pg2, copies=2)
        self._gateway("gw-sqlite-x2", ledger_url=None, copies=2)

    def _probe_response_size(self) -> int:
        """The byte size of the gateway's answer to the 5-record ad share (echo answers as much)."""
        from gateway.testing import running_gateway
        from partner_gateway.v1 import share_pb2_grpc

        d = self.tmp / "probe"
        d.mkdir()
        seed_registry(f"sqlite:///{(d / 'gateway.db').resolve()}", n=5)
        with running_gateway(d) as gw:
            resp = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout")).Share(
                ad_share(5)
            )
        return int(resp.ByteSize())

    def stop(self) -> None:
        for p in self.servers.values():
            p.stop()
        for url in self.pg_urls:
            _drop_pg(self.args.pg_admin_url, url)

    # -- scenarios -----------------------------------------------------------------------

    def load(self, target: str, method: str, payload: bytes, **kw: Any) -> LoadResult:
        a = self.args
        spec = LoadSpec(
            address=self.addresses[target],
            pki=str(self.pki),
            method=method,
            payload=payload,
            processes=kw.pop("processes", a.processes),
            concurrency=kw.pop("concurrency", a.concurrency),
            duration_s=kw.pop("duration_s", a.duration),
            warmup_s=kw.pop("warmup_s", a.warmup),
            **kw,
        )
        return run_load(spec)

    def bulk(self, target: str) -> dict[str, Any]:
        """One ShareStream of 10,000 records: records/s from first send to last record back,
        with the policy deciding this batch for the first time (no decision-cache hit)."""
        from partner_gateway.v1 import share_pb2_grpc

        # A new rotation per run: the timed share is decided afresh (decision-cache miss).
        self._bulk_runs += 1
        chunks = list(bulk_chunks(rotate=self._bulk_runs * 7))
        with procs.client_channel(self.addresses[target], self.pki) as ch:
            stub = share_pb2_grpc.ShareServiceStub(ch)
            n = sum(
                len(m.records) for m in stub.ShareStream(iter(chunks[:2]), timeout=120)
            )  # warm-up
            t0 = time.perf_counter()
            n = sum(len(m.records) for m in stub.ShareStream(iter(chunks), timeout=120))
            dt = time.perf_counter() - t0
        return {"records": n, "seconds": round(dt, 3), "records_per_s": round(n / dt, 1)}

    def scenarios(self) -> dict[str, Callable[[], dict[str, Any]]]:
        a = self.args
        out: dict[str, Callable[[], dict[str, Any]]] = {
            "echo-sync": lambda: self.load("echo-sync", procs.ECHO_METHOD, self.ad5).as_dict(),
            "echo-aio": lambda: self.load("echo-aio", procs.ECHO_METHOD, self.ad5).as_dict(),
            "share-ad5-sqlite": lambda: self.load("gw-sqlite", SHARE, self.ad5).as_dict(),
            "share-logistics-sqlite": lambda: self.load(
                "gw-sqlite", SHARE, self.logistics
            ).as_dict(),
            "evaluate-ad5": lambda: self.load("gw-sqlite", EVALUATE, self.ad5).as_dict(),
            # fake_opa answers one query at a time (one regopy interpreter): 2 x 2 callers.
            "share-ad5-opa": lambda: self.load("gw-opa", SHARE, self.ad5, concurrency=2).as_dict(),
            "share-ad5-sqlite-x2": lambda: self.load(
                "gw-sqlite-x2", SHARE, self.ad5, channels=2
            ).as_dict(),
            "share-ad5-rate": lambda: self.load(
                "gw-sqlite", SHARE, self.ad5, rate=a.rate, max_outstanding=500
            ).as_dict(),
            "share-ad5-rate-500": lambda: self.load(
                "gw-sqlite", SHARE, self.ad5, rate=500, max_outstanding=500
            ).as_dict(),
            "bulk-10k-sqlite": lambda: self.bulk("gw-sqlite"),
        }
        if "gw-pg" in self.addresses:
            out["share-ad5-pg"] = lambda: self.load("gw-pg", SHARE, self.ad5).as_dict()
            out["share-ad5-pg-x2"] = lambda: self.load(
                "gw-pg-x2", SHARE, self.ad5, channels=2
            ).as_dict()
            out["bulk-10k-pg"] = lambda: self.bulk("gw-pg")
        return out


def policy_micro(n: int) -> dict[str, Any]:
    """Policy evaluation measured directly (in-process), µs per decision for the ad5 input."""
    from gateway.policy.embedded import EmbeddedEngine, evaluate_raw
    from gateway.security.identity import Principal, Role
    from gateway.server import Gateway
    from gateway.services.share import order_from_request
    from gateway.settings import Settings

    d = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    seed_registry(f"sqlite:///{(d / 'gateway.db').resolve()}", n=5)
    gw = Gateway.open(
        Settings.load(env={}, overrides={"listen": "127.0.0.1:0", "data_dir": str(d)})
    )
    try:
        principal = Principal(id="svc:checkout", role=Role.SERVICE)
        order = order_from_request(ad_share(5))
        prepared = gw.sharing._prepare(order, principal, mode="share", today=date.today())
        engine = gw.engine
        assert isinstance(engine, EmbeddedEngine)
        input_json = json.dumps(prepared.policy_input)
        raw_engine = engine._engine_for(engine._current)

        def timed(fn: Callable[[], object]) -> float:
            samples = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                fn()
                samples.append(time.perf_counter_ns() - t0)
            return round(statistics.median(samples) / 1000, 1)

        uncached = getattr(engine, "evaluate", engine.decide)  # older trees: no cache
        res = {
            "regorus_eval_us": timed(lambda: evaluate_raw(raw_engine, input_json)),
            "engine_decide_us": timed(lambda: uncached(prepared.policy_input)),
            # What the share path calls: decide() with its cache (hit after the first call).
            "cached_decide_us": timed(lambda: engine.decide(prepared.policy_input)),
            "prepare_us": timed(
                lambda: gw.sharing._prepare(order, principal, mode="share", today=date.today())
            ),
            "sharing_evaluate_us": timed(lambda: gw.sharing.evaluate(order, principal)),
        }
    finally:
        gw.close()
    return res


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median round per scenario (by rps or records/s), plus ratios to echo-sync per round."""
    out: dict[str, dict[str, Any]] = {}
    echo = rounds.get("echo-sync", [])
    for name, rs in rounds.items():
        key = "records_per_s" if "records_per_s" in rs[0] else "rps"
        ordered = sorted(rs, key=lambda r: r[key])
        med = dict(ordered[len(ordered) // 2])
        med["median_of"] = len(rs)
        med[f"{key}_all"] = [r[key] for r in rs]
        # Open-loop runs get the offered rate, not capacity: no ratio.
        if key == "rps" and echo and name != "echo-sync" and name not in OPEN_LOOP:
            ratios = [_ratio(r["rps"], e["rps"]) for r, e in zip(rs, echo, strict=False)]
            med["ratio_to_echo_sync"] = statistics.median(ratios)
            med["ratio_to_echo_sync_all"] = ratios
        out[name] = med
    return out


#: Scenarios that offer a fixed rate (their rps is the offered rate, not a capacity).
OPEN_LOOP = frozenset({"share-ad5-rate", "share-ad5-rate-500"})

LABELS = {
    "echo-sync": "Raw echo, sync `grpc.server` (reference, same sizes, mTLS)",
    "echo-aio": "Raw echo, `grpc.aio` (reference only)",
    "share-ad5-sqlite": "Share, 5 records to ad partner (SQLite ledger, embedded regorus)",
    "share-logistics-sqlite": "Share, 1 order to logistics partner (SQLite)",
    "evaluate-ad5": "Evaluate only, 5 records (recorded, nothing disclosed)",
    "share-ad5-opa": "Share, 5 records, OPA-server path (fake_opa: regopy stand-in, not OPA)",
    "share-ad5-pg": "Share, 5 records, PostgreSQL ledger",
    "share-ad5-pg-x2": (
        "Share, 5 records, 2 gateway processes (SO_REUSEPORT), one PostgreSQL ledger"
    ),
    "share-ad5-sqlite-x2": (
        "Share, 5 records, 2 gateway processes (SO_REUSEPORT), one SQLite ledger"
    ),
    "share-ad5-rate": "Share, 5 records, open loop at the target rate (SQLite)",
    "share-ad5-rate-500": "Share, 5 records, open loop at 500 rps offered (SQLite)",
    "bulk-10k-sqlite": "ShareStream bulk, 10,000 records, a new batch each run (SQLite)",
    "bulk-10k-pg": "ShareStream bulk, 10,000 records, a new batch each run (PostgreSQL)",
}


def _floats(values: list[float], fmt: str) -> str:
    return ", ".join(format(x, fmt) for x in values)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    s = result["scenarios"]
    a = result["args"]
    lines = [
        "## Gateway",
        "",
        f"Command: `{result['command']}` (or `make bench`). Results: `bench/results/latest.json`.",
        f"Machine: {m['nproc']} vCPUs ({m['cpu']}), Python {m['python']}, grpcio {m['grpcio']}, "
        f"{m['platform']}; load average at start {_floats(m['loadavg_at_start'], '.2f')}. "
        f"Date: {m['date']}.",
        "",
        f"Load: {a['processes']} client processes x {a['concurrency']} closed-loop callers "
        f"(grpc.aio, pre-serialized requests, mTLS as `service-checkout`), {a['duration']} s "
        f"measured after {a['warmup']} s warm-up; every figure is the median of "
        f"{a['rounds']} interleaved rounds. Ratio = scenario rps / raw sync echo rps of the same "
        "round (median of the per-round ratios). Latencies are per call, client side.",
        "",
        "| Scenario | rps or records/s | p50 ms | p99 ms | errors | ratio to echo-sync | rounds |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for name, label in LABELS.items():
        if name not in s:
            continue
        r = s[name]
        if "records_per_s" in r:
            lines.append(
                f"| {label} | {r['records_per_s']:,.0f} rec/s ({r['seconds']} s) | | | | | "
                f"{', '.join(f'{x:,.0f}' for x in r['records_per_s_all'])} |"
            )
            continue
        ratio = r.get("ratio_to_echo_sync")
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        extra = f" at {a['rate']:,} rps offered" if name == "share-ad5-rate" else ""
        lines.append(
            f"| {label}{extra} | {r['rps']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | {errs} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} | {_floats(r['rps_all'], ',.0f')} |"
        )
    p = result.get("policy", {})
    if p:
        lines += [
            "",
            f"Policy evaluation, measured directly in-process (median of {a['policy_n']} calls, ad "
            "share of 5 subjects): "
            f"regorus eval {p['regorus_eval_us']} µs; `EmbeddedEngine.decide` (JSON in/out, "
            f"uncached) {p['engine_decide_us']} µs; decision through the share path's "
            f"decision cache (hit) {p.get('cached_decide_us', '—')} µs; "
            "`Sharing.evaluate` (registry reads + input + decision"
            f") {p['sharing_evaluate_us']} µs; building the input "
            f"(`_prepare`, registry reads) {p['prepare_us']} µs.",
        ]
    return "\n".join(lines) + "\n"


def write_docs(md: str) -> None:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    start = text.find("## Gateway\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        end = len(text) if end < 0 else end + 1
        text = text[:start] + md + ("\n" + text[end:] if end < len(text) else "")
    else:
        head, sep, rest = text.partition("\n## ")
        text = head + "\n" + md + "\n" + sep.lstrip("\n") + rest if sep else text + "\n" + md
    DOCS.write_text(text, encoding="utf-8")


def main() -> None:
    os.umask(0o077)  # data dirs and databases owner-only, as the gateway requires
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short rounds (3 s) for a smoke run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=int, default=2000, help="offered rps of the open-loop run")
    p.add_argument("--policy-n", type=int, default=2000)
    p.add_argument("--only", default="", help="comma-separated scenario names")
    p.add_argument("--pg-admin-url", default=PG_ADMIN)
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--no-docs", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.duration, a.warmup, a.policy_n = 3.0, 1.0, 500
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Bench(a, tmp)
    rounds: dict[str, list[dict[str, Any]]] = {}
    result: dict[str, Any] = {
        "command": "python -m bench.run" + (" --quick" if a.quick else ""),
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
    }
    try:
        bench.start()
        todo = bench.scenarios()
        if a.only:
            todo = {k: v for k, v in todo.items() if k in a.only.split(",")}
        for r in range(a.rounds):
            for name, fn in todo.items():
                res = fn()
                rounds.setdefault(name, []).append(res)
                print(f"round {r + 1} {name}: {json.dumps(res)}", flush=True)
    finally:
        bench.stop()
    result["rounds"] = rounds
    result["scenarios"] = summarize(rounds)
    result["policy"] = policy_micro(a.policy_n)
    result["logs"] = str(tmp / "logs")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = markdown(result)
    print(md)
    if not a.no_docs:
        write_docs(md)


if __name__ == "__main__":
    sys.exit(main())
