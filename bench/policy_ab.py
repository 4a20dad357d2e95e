"""Two revisions of the policies side by side: µs per uncached decision, same run.

Run: ``python -m bench.policy_ab --before REV [--rounds 9] [--calls 300]``. The policy
directory at git revision ``REV`` (``before``) and the working tree's (``after``) are each
compiled into regorus and OPA's Go evaluator in one process; rounds are interleaved (before,
after, before, ...) so a shared machine's noise hits both alike. Before timing, all golden
cases must decide identically on the four engines (else it exits 1).

Inputs: the share path's own 5-subject ad input (``bench.run``'s seeded registry and
``Sharing._prepare``, the issue-16 target "uncached decision for 5 subjects") and the golden
5-subject ad batch of ``bench.policy_engines``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from bench.policy_engines import _CASES, ROOT, _inputs
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.opa_go import OpaGoEngine


def _export(rev: str, dest: Path) -> Path:
    tar = subprocess.run(
        ["git", "archive", rev, "policies_rego"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest / "policies_rego"


def share_path_input() -> dict[str, Any]:
    """The policy input ``Sharing`` builds for ``bench.run``'s 5-subject ad share."""
    from bench.run import ad_share, seed_registry
    from gateway.security.identity import Principal, Role
    from gateway.server import Gateway
    from gateway.services.share import order_from_request
    from gateway.settings import Settings

    d = Path(tempfile.mkdtemp(prefix="bench-policy-ab-"))
    d.chmod(0o700)
    seed_registry(f"sqlite:///{(d / 'gateway.db').resolve()}", n=5)
    (d / "gateway.db").chmod(0o600)
    gw = Gateway.open(
        Settings.load(env={}, overrides={"listen": "127.0.0.1:0", "data_dir": str(d)})
    )
    try:
        order = order_from_request(ad_share(5))
        principal = Principal(id="svc:checkout", role=Role.SERVICE)
        return gw.sharing._prepare(order, principal, mode="share", today=date.today()).policy_input
    finally:
        gw.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="git revision of the baseline policies")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=300)
    a = p.parse_args()
    before = _export(a.before, Path(tempfile.mkdtemp(prefix="policy-before-")))
    dirs = {"before": before, "after": ROOT / "policies_rego"}
    engines: dict[tuple[str, str], Callable[[Mapping[str, Any]], Any]] = {}
    for name, d in dirs.items():
        engines[(name, "regorus")] = EmbeddedEngine(policy_dir=d).evaluate
        engines[(name, "opa")] = OpaGoEngine(policy_dir=d).evaluate
    cases = _CASES
    expected = [engines[("before", "regorus")](c["input"]).comparable() for c in cases]
    for key, decide in engines.items():
        differ = sum(
            decide(c["input"]).comparable() != e for c, e in zip(cases, expected, strict=True)
        )
        print(f"{key[0]:6s} {key[1]:7s}: {len(cases)} golden cases, {differ} differ")
        if differ:
            return 1
    inputs = {
        "share path ad, 5 subjects": share_path_input(),
        "golden ad batch, 5 subjects": _inputs()["ad batch, 5 subjects"],
    }
    samples: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(a.rounds):
        for (name, engine), decide in engines.items():
            for label, doc in inputs.items():
                decide(doc)
                t = time.perf_counter()
                for _ in range(a.calls):
                    decide(doc)
                us = (time.perf_counter() - t) / a.calls * 1e6
                samples.setdefault((label, engine, name), []).append(us)
    for label in inputs:
        print(f"\n{label}: median µs per uncached decision ({a.rounds} interleaved rounds)")
        for engine in ("regorus", "opa"):
            b, f = (statistics.median(samples[(label, engine, n)]) for n in ("before", "after"))
            print(f"  {engine:8s} before {b:7.1f}  after {f:7.1f}  ({(f / b - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
