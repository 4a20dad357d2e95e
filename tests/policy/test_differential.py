"""Differential test: regorus (embedded) against OPA's own Go evaluator (the reference).

Inputs: the golden cases, inputs the gateway builds (``contract_inputs.built_input``, through
``gateway.sharing.build_policy_input``) and mutations of them (missing keys, nulls, wrong
types, empty strings, unknown enum names, huge lists). Required:

- identical decisions (allow, reasons and messages, exclusions, obligations) on every golden
  and gateway-built input, and on every well-formed mutation;
- a malformed input (the gate's model, ``contract_problems``, finds a problem) is refused by
  every engine with exactly the gate's ``R1.malformed_input`` messages and nothing else;
- a narrowing mutation (emptied string, unknown enum name) never makes OPA's decision more
  permissive than on the input it came from (allow, and no more remaining subjects).

regorus is compiled once and decides input by input; OPA decides each batch of ``BATCH``
inputs in one query, on a second thread (the Go call releases the GIL) while regorus runs.
The counts are printed; a failure also prints the first mismatch, minimised. The default run
draws ``DEFAULT_INPUTS`` inputs from a fixed seed (``DIFFERENTIAL_N`` changes the number for a
quick local run); the ``slow`` run draws ``SLOW_INPUTS`` from another (``DIFFERENTIAL_SEED``
overrides both seeds).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.policy.bundle import load_bundle
from gateway.policy.decision import parse_decision
from gateway.policy.embedded import compile_bundle, evaluate_raw
from gateway.policy.opa_go import compile_modules, compile_opa, evaluate_opa

from .conftest import POLICY_DIR
from .contract_inputs import built_input, contract_problems, mutate

CASES = json.loads((Path(__file__).parent / "golden" / "cases.json").read_text())["cases"]
#: Gateway-built inputs and their mutations in the default run (half each).
DEFAULT_INPUTS = int(os.environ.get("DIFFERENTIAL_N", 10_000))
SLOW_INPUTS = 100_000

Outcome = dict[str, Any]  # comparable decision, or {"error": message}


#: OPA decides a batch as one query over inputs loaded as data: handing OPA each input
#: through the bindings costs more than the decision (measured: ~1.3 ms of CPU for 3.5 KB).
_BATCH_MODULE = """package differential

import rego.v1

decisions := [d | some x in data.differential_inputs; d := data.sharing.decision with input as x]
"""
BATCH = 2_000


class Engines:
    """regorus and OPA, each compiled once, deciding a batch side by side."""

    def __init__(self) -> None:
        self.bundle = load_bundle(POLICY_DIR)
        self.revision = self.bundle.revision
        self._regorus = compile_bundle(self.bundle)
        self._opa = compile_opa(self.bundle)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="opa-eval")

    def _outcome(self, evaluate: Callable[[], Any]) -> Outcome:
        try:
            return parse_decision(evaluate(), revision=self.revision).comparable()
        except GatewayError as e:
            return {"error": e.message}

    def regorus(self, doc: Any) -> Outcome:
        return self._outcome(lambda: evaluate_raw(self._regorus, json.dumps(doc)))

    def opa(self, doc: Any) -> Outcome:
        return self._outcome(lambda: evaluate_opa(self._opa, doc))

    def _opa_batch(self, docs: list[Any]) -> list[Outcome]:
        modules = {m.path: m.text for m in self.bundle.modules}
        modules["differential/batch.rego"] = _BATCH_MODULE
        engine = compile_modules(modules, {**self.bundle.data, "differential_inputs": docs})
        try:
            raw = evaluate_opa(engine, None, "data.differential.decisions")
        except GatewayError:  # one input failed the whole query: decide one by one
            return [self.opa(d) for d in docs]
        finally:
            engine.close()
        return [self._outcome(lambda r=r: r) for r in raw]

    def both(self, docs: list[Any]) -> list[tuple[Outcome, Outcome]]:
        """(regorus, OPA) outcomes; OPA's batch runs in Go (GIL released) meanwhile."""
        batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]
        opa = [self._pool.submit(self._opa_batch, b) for b in batches]
        regorus = [self.regorus(d) for d in docs]
        return list(zip(regorus, [o for f in opa for o in f.result()], strict=True))


@pytest.fixture(scope="module")
def engines() -> Engines:
    return Engines()


def _remaining(o: Outcome, doc: Any) -> int:
    if o.get("error") or not o["allow"]:
        return 0
    return len(doc["subjects"]) - len(o["excluded"])


def minimise(doc: Any, failing: Callable[[Any], bool]) -> Any:
    """Greedy shrink: drop keys and list items, and simplify values, while ``failing`` holds."""
    changed = True
    while changed:
        changed = False
        for candidate in _smaller(doc):
            if failing(candidate):
                doc, changed = candidate, True
                break
    return doc


def _smaller(x: Any) -> Iterable[Any]:
    if isinstance(x, dict):
        for k in x:
            yield {kk: v for kk, v in x.items() if kk != k}
        for k, v in x.items():
            for smaller in _smaller(v):
                yield {**x, k: smaller}
    elif isinstance(x, list):
        if len(x) > 1:
            yield x[: len(x) // 2]
        for i in range(len(x)):
            yield x[:i] + x[i + 1 :]
        for i, v in enumerate(x):
            for smaller in _smaller(v):
                yield [*x[:i], smaller, *x[i + 1 :]]
    elif isinstance(x, str) and x:
        yield ""


@dataclass
class Tally:
    """What the run saw, printed whatever the outcome."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, Any, Callable[[Any], bool]]] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, what: str, doc: Any, failing: Callable[[Any], bool]) -> None:
        self.add(what)
        self.failures.append((what, doc, failing))

    def report(self) -> str:
        lines = [f"{k}: {v}" for k, v in sorted(self.counts.items())]
        if self.failures:
            what, doc, failing = self.failures[0]
            small = doc if len(json.dumps(doc)) > 200_000 else minimise(doc, failing)
            lines.append(f"first failure ({what}), minimised input:\n{json.dumps(small)}")
        return "\n".join(lines)


def _differs(e: Engines) -> Callable[[Any], bool]:
    return lambda d: e.regorus(d) != e.opa(d)


def _reasons(o: Outcome) -> list[str] | None:
    """The messages of a refusal made only of ``R1.malformed_input`` reasons, else None."""
    if "error" in o or o["allow"] or {c for c, _ in o["reasons"]} != {"R1.malformed_input"}:
        return None
    return sorted(m for _, m in o["reasons"])


def _wrong(e: Engines) -> Callable[[Any], bool]:
    """True when an input the gate's model finds malformed is not refused with its messages."""

    def wrong(d: Any) -> bool:
        want = sorted(contract_problems(d))
        return bool(want) and not (_reasons(e.regorus(d)) == _reasons(e.opa(d)) == want)

    return wrong


def run(engines: Engines, seed: int, n: int) -> Tally:
    """Decide the golden cases and ``n`` generated inputs on both engines; tally the checks."""
    rng = random.Random(seed)
    tally = Tally()
    differs = _differs(engines)
    golden = [c["input"] for c in CASES]
    for doc, (r, o) in zip(golden, engines.both(golden), strict=True):
        tally.add("golden")
        if r != o:
            tally.fail("golden: engines differ", doc, differs)
    built = [built_input(rng) for _ in range(n // 2)]
    built_out = engines.both(built)
    mutated = [mutate(rng, d) for d in built]
    mutated_out = engines.both([m for m, _ in mutated])
    for doc, (r, o) in zip(built, built_out, strict=True):
        tally.add("built")
        tally.add("built: allowed", r.get("allow") is True)
        if r != o or "error" in r:
            tally.fail("built: engines differ or fail", doc, differs)
    for base_doc, (_, base), (doc, narrowing), (r, o) in zip(
        built, built_out, mutated, mutated_out, strict=True
    ):
        problems = contract_problems(doc)
        if problems:
            tally.add("malformed")
            permissive = sum(_remaining(x, doc) > 0 for x in (r, o))
            tally.add("malformed: more permissive", permissive)
            if permissive or r != o or "error" in r or _reasons(r) != sorted(problems):
                tally.fail("malformed: not refused with the gate's reasons", doc, _wrong(engines))
            continue
        tally.add("well-formed mutation")
        if r != o or "error" in r:
            tally.fail("well-formed mutation: engines differ or fail", doc, differs)
        if narrowing:
            tally.add("narrowing mutation")

            def widens(d: Any, base: Outcome = base, base_doc: Any = base_doc) -> bool:
                return _remaining(engines.opa(d), d) > _remaining(base, base_doc)

            if widens(doc):
                tally.fail("narrowing mutation: more permissive", doc, widens)
    return tally


def _seed(default: int) -> int:
    return int(os.environ.get("DIFFERENTIAL_SEED", default))


def _assert_clean(tally: Tally, capsys: pytest.CaptureFixture[str]) -> None:
    report = tally.report()
    with capsys.disabled():
        print("\ndifferential (regorus vs OPA):\n" + report)
    assert not tally.failures, report
    assert tally.counts.get("malformed: more permissive", 0) == 0


def test_engines_agree_and_malformed_input_is_refused(
    engines: Engines, capsys: pytest.CaptureFixture[str]
) -> None:
    """Golden + 10,000 seeded inputs: identical decisions; malformed ones refused with R1."""
    tally = run(engines, _seed(15), DEFAULT_INPUTS)
    _assert_clean(tally, capsys)
    assert (
        tally.counts["built"]
        + tally.counts.get("malformed", 0)
        + tally.counts.get("well-formed mutation", 0)
        >= DEFAULT_INPUTS
    )
    assert tally.counts["malformed"] > DEFAULT_INPUTS // 4
    assert tally.counts["built: allowed"] > DEFAULT_INPUTS // 100  # the allowing path is exercised


@pytest.mark.slow
def test_engines_agree_on_a_long_run(engines: Engines, capsys: pytest.CaptureFixture[str]) -> None:
    """The same checks on 100,000 inputs from another seed."""
    _assert_clean(run(engines, _seed(1915), SLOW_INPUTS), capsys)


def test_a_divergence_is_reported_minimised(engines: Engines) -> None:
    """The shrinker keeps only what makes the check fail (here: a subject's missing age)."""
    doc = built_input(random.Random(3))
    doc["subjects"][0].pop("age")

    def failing(d: Any) -> bool:
        return "input.subjects[0].age is missing or not number or null" in contract_problems(d)

    small = minimise(doc, failing)
    assert failing(small)
    assert small == {"subjects": [{}]}
