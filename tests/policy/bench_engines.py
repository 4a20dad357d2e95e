"""Median µs per evaluation of data.sharing.decision, 5-subject input, regorus vs regopy.

Run: python tests/policy/bench_engines.py [N]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RUST_BACKTRACE", "0")

import regopy

from gateway.policy.bundle import load_bundle
from gateway.policy.embedded import compile_bundle

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests/policy/golden/cases.json").read_text())["cases"]
_NAME = "ad partner + minor + opted-out subject in one batch"
base = next(c["input"] for c in CASES if c["name"] == _NAME)
subjects = [dict(base["subjects"][0], ref=str(i)) for i in range(3)] + base["subjects"][1:]
INPUT = dict(base, subjects=[dict(s, ref=str(i)) for i, s in enumerate(subjects)])
assert len(INPUT["subjects"]) == 5


def median_us(fn: object, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    bundle = load_bundle(ROOT / "policies_rego")
    text = json.dumps(INPUT)
    rg = compile_bundle(bundle)
    rg.set_input_json(text)
    rg.eval_rule_as_json("data.sharing.decision")
    eval_only = median_us(lambda: rg.eval_rule_as_json("data.sharing.decision"), n)

    def rg_full() -> None:
        rg.set_input_json(text)
        rg.eval_rule_as_json("data.sharing.decision")

    full = median_us(rg_full, n)
    rp = regopy.Interpreter()
    for m in bundle.modules:
        rp.add_module(m.path, m.text)
    rp.add_data_json(bundle.data_json)

    def rp_full() -> None:
        rp.set_input(regopy.Input(INPUT))
        rp.query("data.sharing.decision")

    rp_full()
    rpm = median_us(rp_full, max(n // 10, 50))
    print(f"regorus eval_rule_as_json only (input already set): {eval_only:.0f} us")
    print(f"regorus set_input_json + eval_rule_as_json: {full:.0f} us")
    print(f"regopy  set_input + query:                  {rpm:.0f} us")


if __name__ == "__main__":
    main()
