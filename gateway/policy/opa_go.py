"""OPA's own Go evaluator in-process (``policy.engine = "opa"``), see docs/adr/0006.

The evaluator is OPA's ``rego`` package compiled into a shared library and reached through
ctypes (PyPI ``opa-golib-python-bindings``, pinned in the Makefile). It is the reference for
Rego semantics here: the test double of the OPA server (``fake_opa``) evaluates with it, and
the differential test compares every other engine against it.

Invariants:
- One ``OpaEngine`` holds exactly one bundle; a reload builds a new one and swaps it in with
  one attribute assignment, so a decision in flight finishes on the bundle it started with.
- OPA compiles lazily (on the first query); ``compile_opa`` runs a query at once so a
  module that parses but does not compile (unsafe variable, unknown function) is refused at
  load, with OPA's message.
- The bindings are imported lazily: only this engine and the tests need them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy.bundle import PolicyBundle, PolicyModule, load_bundle
from gateway.policy.decision import DECISION_PATH, PolicyDecision, parse_decision
from gateway.policy.decision_cache import DecisionCache, encode_input

#: The pinned bindings release (also in the Makefile's dev step).
BINDINGS = "opa-golib-python-bindings==0.4.4"


def _bindings() -> Any:
    try:
        import opa_bindings
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise PolicyLoadError(
            f"OPA's Go evaluator is not installed: pip install --ignore-requires-python {BINDINGS}"
        ) from e
    return opa_bindings


def compile_modules(modules: Mapping[str, str], data: Mapping[str, Any]) -> Any:
    """Compile ``modules`` (id -> Rego text) with ``data`` into a fresh OPA engine.

    Raises:
        PolicyLoadError: a module does not parse or the whole does not compile (OPA's
            message, with the module's path).
    """
    opa = _bindings()
    engine = opa.OpaEngine()
    try:
        for pid, text in sorted(modules.items()):
            engine.add_policy(pid, text)
        engine.add_data(dict(data))
        engine.eval_query("true")  # OPA compiles on the first query: surface errors now
    except opa.OpaError as e:
        engine.close()
        raise PolicyLoadError(e.message.strip()) from e
    return engine


def compile_opa(bundle: PolicyBundle, *, with_tests: bool = False) -> Any:
    """Compile ``bundle`` (and its ``*_test.rego`` modules when asked) into an OPA engine.

    Raises:
        PolicyLoadError: as ``compile_modules``.
    """
    modules: tuple[PolicyModule, ...] = bundle.modules + (bundle.test_modules if with_tests else ())
    return compile_modules({m.path: m.text for m in modules}, bundle.data)


def evaluate_opa(engine: Any, input: Any, path: str = DECISION_PATH) -> Any:
    """Evaluate document ``path`` (``data.a.b``) for ``input``; None when undefined.

    Raises:
        PolicyEngineError: an evaluation error (a built-in's type error, a conflict).
    """
    opa = _bindings()
    try:
        return engine.eval_document(path.removeprefix("data").lstrip("."), input)
    except opa.OpaUndefinedError:
        return None
    except opa.OpaError as e:
        raise PolicyEngineError(f"policy evaluation failed: {e.message.strip()}") from e
    except (TypeError, ValueError) as e:  # the bindings encode the input as JSON
        raise PolicyEngineError(f"policy input is not JSON: {e}") from e


class OpaGoEngine:
    """Evaluates ``policies_rego/`` in-process with OPA's Go evaluator.

    The bindings serialise evaluations on one engine; the Go call releases the GIL, so other
    Python threads keep running while OPA evaluates.

    Args:
        policy_dir: The bundle root.

    Raises:
        PolicyLoadError: the initial bundle does not load, compile or evaluate the probes.
    """

    def __init__(self, *, policy_dir: Path) -> None:
        self._dir = Path(policy_dir)
        self._reload_lock = threading.Lock()
        self._current: tuple[str, Any, DecisionCache] = self._build()

    @property
    def revision(self) -> str:
        return self._current[0]

    @property
    def policy_dir(self) -> Path:
        return self._dir

    def _build(self) -> tuple[str, Any, DecisionCache]:
        from gateway.policy.embedded import PROBE_INPUTS

        bundle = load_bundle(self._dir)
        engine = compile_opa(bundle)
        try:
            for probe in PROBE_INPUTS:
                parse_decision(evaluate_opa(engine, probe), revision=bundle.revision)
        except PolicyEngineError as e:
            engine.close()
            raise PolicyLoadError(f"policy bundle does not evaluate: {e.message}") from e
        return bundle.revision, engine, DecisionCache(bundle)

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        """Decide, answering a repeated input of the same revision from the decision cache."""
        revision, engine, cache = self._current  # one read: this request stays on it
        key = encode_input(input)
        if (hit := cache.get(key)) is not None:
            return hit
        decision = parse_decision(evaluate_opa(engine, dict(input)), revision=revision)
        cache.put(key, decision)
        return decision

    def evaluate(self, input: Mapping[str, Any]) -> PolicyDecision:
        """Decide without the cache (benchmarks, diagnostics)."""
        revision, engine, _ = self._current
        return parse_decision(evaluate_opa(engine, dict(input)), revision=revision)

    def reload(self) -> str:
        with self._reload_lock:
            self._current = self._build()  # raises PolicyLoadError; the old bundle stays
            return self._current[0]

    def close(self) -> None:
        # A decision in flight may still hold the engine; OPA's engine is freed with it.
        return None
