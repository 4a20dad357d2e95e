"""A 10,000-record bulk share in process, step by step: the per-record work around the policy.

Run: ``python -m bench.bulk`` (``--runs N`` shares after one warm-up). Opens a SQLite gateway
with the benchmark registry (10,000 bench subjects) and, per run, builds a new bulk order
(``bench.workload.bulk_chunks`` with a new rotation: decided afresh, no decision-cache hit)
and times, on one thread:

- ``order``: ``order_from_request`` (the ShareStream's records into a ``ShareOrder``);
- ``prepare``: ``Sharing._prepare`` (registry reads, R19 inspection, the policy input);
- ``encode``: the input's JSON (what the engine parses and the decision cache keys on);
- ``rego``: regorus alone on that JSON (``set_input_json`` + ``eval_rule_as_json``);
- ``enforce``: ``Sharing._enforce`` on that decision;
- ``share``: ``Sharing.share`` of another rotation, end to end (decide, enforce, ledger
  append and commit);
- ``response``: the ShareStream's record messages for the disclosed records.

``outside_rego`` is ``share`` minus the time the share spent in ``evaluate_raw`` (regorus's
``set_input_json``, ``eval_rule_as_json`` and decoding its answer), timed inside that share:
the share's own work per 10,000 records. The
first run after start (``cold``) reads every subject from the database; the warm-up run
then fills the registry snapshot where it may. Prints one JSON object (milliseconds).

Steps are timed through private methods whose signatures older trees share, so the same
file measures an older tree: ``PYTHONPATH=<worktree> python <this file>`` (run both
alternately for a before/after on a noisy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workload import bulk_chunks, seed_registry
from gateway.policy import embedded
from gateway.policy.decision import DECISION_PATH
from gateway.policy.embedded import compile_bundle
from gateway.security.identity import Principal, Role
from gateway.server import Gateway, tune_gc
from gateway.services.share import order_from_request
from gateway.settings import Settings
from partner_gateway.v1 import share_pb2


def _order(rotate: int) -> Any:
    chunks = list(bulk_chunks(rotate=rotate))
    return chunks[0].header, [r for c in chunks[1:] for r in c.records]


_in_regorus: list[float] = []


def _timed_evaluate_raw(raw: Any) -> Any:
    def timed(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return raw(*args, **kw)
        finally:
            _in_regorus.append(time.perf_counter() - t0)

    return timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--label", default="")
    args = p.parse_args()
    os.umask(0o077)  # databases owner-only, as the gateway requires
    embedded.evaluate_raw = _timed_evaluate_raw(embedded.evaluate_raw)  # type: ignore[assignment]
    steps = ("order", "prepare", "encode", "rego", "enforce", "share", "response")
    times: dict[str, list[float]] = {s: [] for s in (*steps, "outside_rego")}
    cold: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'gateway.db'}"
        seed_registry(url)
        gw = Gateway.open(Settings.load(env={}, overrides={"data_dir": d, "ledger": {"url": url}}))
        tune_gc()  # as ``serve`` does
        sharing = gw.sharing
        regorus = compile_bundle(gw.engine._current.bundle)  # type: ignore[attr-defined]
        principal = Principal(id="service-checkout", role=Role.SERVICE)
        try:
            for run in range(args.runs + 1):
                t: dict[str, float] = {}
                header, records = _order(7 * run + 1)
                share_header, share_records = _order(7 * run + 4)
                today = datetime.now(UTC).date()
                t0 = time.perf_counter()
                order = order_from_request(header, records)
                t["order"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                prepared = sharing._prepare(order, principal, mode="share", today=today)
                t["prepare"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                text = json.dumps(prepared.policy_input, separators=(",", ":"))
                t["encode"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                regorus.set_input_json(text)
                regorus.eval_rule_as_json(DECISION_PATH)
                t["rego"] = time.perf_counter() - t0
                decision = gw.engine.decide(prepared.policy_input)
                t0 = time.perf_counter()
                sharing._enforce(prepared, decision, {}, today)
                t["enforce"] = time.perf_counter() - t0
                share_order = order_from_request(share_header, share_records)
                _in_regorus.clear()
                t0 = time.perf_counter()
                outcome = sharing.share(share_order, principal, request_id=f"b{run}", rpc="bulk")
                t["share"] = time.perf_counter() - t0
                assert outcome.decision.allow and len(outcome.records) == len(share_records)
                t0 = time.perf_counter()
                [
                    share_pb2.Record(subject_id=r.subject_ref, fields=r.fields)
                    for r in outcome.records
                ]
                t["response"] = time.perf_counter() - t0
                t["outside_rego"] = t["share"] - sum(_in_regorus)
                if run == 0:
                    cold = t
                else:
                    for k, v in t.items():
                        times[k].append(v)
        finally:
            gw.close()
    ms = {k: round(v * 1000, 1) for k, v in cold.items()}
    out: dict[str, object] = {"label": args.label, "records": len(share_records), "cold": ms}
    for k, vs in times.items():
        out[k] = {
            "median_ms": round(statistics.median(vs) * 1000, 1),
            "runs_ms": [round(v * 1000, 1) for v in vs],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
