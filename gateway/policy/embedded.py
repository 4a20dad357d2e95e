"""The in-process engine: regorus (Microsoft's Rust Rego engine), see docs/adr/0001.

Invariants:
- regorus engines are *unsendable* (pyo3): one may only be used, cloned and dropped on the
  thread that created it. So ``reload`` compiles and probes the new bundle on its own
  thread (and drops that engine there), then one attribute assignment swaps in the
  validated bundle; each thread that decides (the server's event loop, each pool thread)
  compiles that bundle once into its own engine
  (kept in a thread-local, keyed by revision) and evaluates on it for every request.
- A request already running keeps its engine and its revision; the next request on that
  thread compiles the new revision.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy.bundle import PolicyBundle, load_bundle
from gateway.policy.decision import DECISION_PATH, PolicyDecision, parse_decision
from gateway.policy.decision_cache import DecisionCache, encode_input

# Keep Rust panics/errors to one line: the message is what we report, not a backtrace.
os.environ.setdefault("RUST_BACKTRACE", "0")
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

import regorus

_UNDEFINED = '"<undefined>"'

#: Inputs evaluated at load to surface errors that regorus only reports at evaluation
#: (unknown functions, unscheduled comprehensions, a missing entrypoint): an empty one (the
#: input gate's refusal) and a well-formed one that reaches the allowing path and the
#: AD_PARTNER obligations.
PROBE_INPUTS: tuple[Mapping[str, Any], ...] = (
    {"contract": "v2"},
    {
        "contract": "v2",
        "today": "2026-01-01",
        "caller": {"principal": "svc:probe", "role": "service"},
        "request": {
            "mode": "share",
            "action": "SHARE",
            "purpose": "ad_delivery",
            "legal_basis": {"kind": "AUTHORIZED_PARTNER", "reference": "", "exemption_code": ""},
            "destination_region": "CN",
            "categories": ["user.account.id", "user.demographic.birth_date"],
            "quasi_identifiers": [],
        },
        "recipient": {
            "id": "probe",
            "kind": "AD_PARTNER",
            "active": True,
            "region": "CN",
            "agreement": {
                "id": "probe-agreement",
                "version": "1",
                "purposes": ["ad_delivery"],
                "categories": ["user.account.id", "user.demographic.birth_date"],
                "expires": "2099-12-31",
                "binds_policy": False,
            },
            "security_review_expires": "2099-12-31",
            "dpa_expires": "2099-12-31",
        },
        "subjects": [
            {
                "ref": "0",
                "registered": True,
                "age": 30,
                "ad_opt_out": False,
                "consent_withdrawn": False,
                "account_deleted": False,
                "all_records_in_orders": False,
                "orders": [],
                "withdrawals": [],
                "consents": [
                    {
                        "id": "probe-consent",
                        "recipient": "probe",
                        "purpose": "ad_delivery",
                        "scope": "IDENTIFIED_SHARING",
                        "categories": ["user.account.id"],
                        "all_categories": False,
                        "given_by": "subject",
                    }
                ],
            },
            {
                "ref": "1",
                "registered": True,
                "age": 9,
                "ad_opt_out": False,
                "consent_withdrawn": False,
                "account_deleted": False,
                "all_records_in_orders": False,
                "orders": [],
                "consents": [],
                "withdrawals": [],
            },
        ],
    },
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    # regorus appends "Stack backtrace:" when RUST_BACKTRACE was set by someone else.
    return text.split("\n\nStack backtrace:")[0]


def compile_bundle(bundle: PolicyBundle, *, with_tests: bool = False) -> Any:
    """Compile ``bundle`` into a fresh regorus engine.

    Raises:
        PolicyLoadError: a module or the data does not parse, with the compiler's message.
    """
    engine = regorus.Engine()
    failure = _add_bundle(engine, bundle, with_tests)
    if failure is not None:
        del engine  # dropped here, on its own thread: regorus engines are unsendable
        raise PolicyLoadError(failure)
    return engine


# The two helpers below return failures as text instead of raising: an exception's
# traceback would keep the engine alive in its frames, to be dropped later by a garbage
# collection on whatever thread runs it (a pyo3 "unsendable" error).


def _add_bundle(engine: Any, bundle: PolicyBundle, with_tests: bool) -> str | None:
    for m in bundle.modules + (bundle.test_modules if with_tests else ()):
        try:
            engine.add_policy(m.path, m.text)
        except Exception as e:
            return f"{m.path}: {_first_line(e)}"
    try:
        engine.add_data_json(bundle.data_json)
    except Exception as e:
        return f"policy data: {_first_line(e)}"
    return None


def _probe_failure(engine: Any, revision: str) -> str | None:
    """Evaluate the probe inputs; the first failure's message, or None."""
    try:
        for probe_input in PROBE_INPUTS:
            parse_decision(evaluate_raw(engine, json.dumps(probe_input)), revision=revision)
    except PolicyEngineError as e:
        return e.message
    return None


def evaluate_raw(engine: Any, input_json: str, path: str = DECISION_PATH) -> Any:
    """Evaluate rule ``path`` on ``engine`` and return the decoded JSON (None if undefined).

    Raises:
        PolicyEngineError: any evaluation error.
    """
    try:
        engine.set_input_json(input_json)
        out = engine.eval_rule_as_json(path)
    except Exception as e:
        raise PolicyEngineError(f"policy evaluation failed: {_first_line(e)}") from e
    if out == _UNDEFINED:
        return None
    return json.loads(out)


#: Per-thread compiled engines, keyed by ``id(EmbeddedEngine)``. Module-level on purpose: a
#: regorus engine must be dropped on the thread that made it (pyo3 ``unsendable``), so the
#: storage outlives engine instances and is only ever cleared by its own thread (on reload or
#: at thread exit), never by the garbage collector on another thread.
_THREAD_ENGINES = threading.local()


@dataclass(frozen=True, slots=True)
class _Compiled:
    bundle: PolicyBundle  # validated: compiles and evaluates the probe input
    # This revision's decisions (a reload starts a new, empty cache).
    cache: DecisionCache

    @property
    def revision(self) -> str:
        return self.bundle.revision


class EmbeddedEngine:
    """Evaluates ``policies_rego/`` in-process with regorus.

    Args:
        policy_dir: The bundle root.

    Raises:
        PolicyLoadError: the initial bundle does not load or compile.
    """

    def __init__(self, *, policy_dir: Path) -> None:
        self._dir = Path(policy_dir)
        self._reload_lock = threading.Lock()
        self._current: _Compiled = self._build()

    @property
    def revision(self) -> str:
        return self._current.revision

    @property
    def policy_dir(self) -> Path:
        return self._dir

    def _build(self) -> _Compiled:
        bundle = load_bundle(self._dir)
        probe = compile_bundle(bundle)  # created and dropped on this thread
        failure = _probe_failure(probe, bundle.revision)
        del probe
        if failure is not None:
            raise PolicyLoadError(f"policy bundle does not evaluate: {failure}")
        return _Compiled(bundle=bundle, cache=DecisionCache(bundle))

    def _engine_for(self, compiled: _Compiled) -> Any:
        engines: dict[int, tuple[_Compiled, Any]] = _THREAD_ENGINES.__dict__.setdefault(
            "by_instance", {}
        )
        cached = engines.get(id(self))
        if cached is not None and cached[0] is compiled:
            return cached[1]
        try:
            engine = compile_bundle(compiled.bundle)
        except PolicyLoadError as e:  # validated at load: only a broken engine gets here
            raise PolicyEngineError(f"policy engine failed to compile: {e.message}") from e
        engines[id(self)] = (compiled, engine)  # drops this thread's old engine here
        return engine

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        """Decide, answering a repeated input of the same revision from the decision cache
        (``gateway.policy.decision_cache``: why that is correct)."""
        compiled = self._current  # one read: this request stays on this revision
        input_json = encode_input(input)
        if (hit := compiled.cache.get(input_json)) is not None:
            return hit
        decision = self._evaluate(compiled, input_json)
        compiled.cache.put(input_json, decision)
        return decision

    def evaluate(self, input: Mapping[str, Any]) -> PolicyDecision:
        """Decide without the cache (benchmarks, diagnostics)."""
        compiled = self._current
        return self._evaluate(compiled, encode_input(input))

    def _evaluate(self, compiled: _Compiled, input_json: str) -> PolicyDecision:
        raw = evaluate_raw(self._engine_for(compiled), input_json)
        return parse_decision(raw, revision=compiled.revision)

    def reload(self) -> str:
        with self._reload_lock:
            new = self._build()  # raises PolicyLoadError; the old bundle stays
            self._current = new
            return new.revision

    def close(self) -> None:
        # Per-thread engines are released with their threads (they must be dropped on the
        # thread that made them); nothing to do here.
        return None
