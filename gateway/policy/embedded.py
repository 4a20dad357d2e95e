"""The in-process engine: regorus (Microsoft's Rust Rego engine), see docs/adr/0001.

Invariants:
- A bundle is compiled once per revision into a prototype ``regorus.Engine``; each thread
  evaluates on its own ``clone()`` of the prototype of the revision it picked up, so no
  engine object is ever used by two threads at once.
- ``reload`` builds and probes the new prototype completely before one attribute
  assignment swaps it in; a request already running keeps its clone and its revision.
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

# Keep Rust panics/errors to one line: the message is what we report, not a backtrace.
os.environ.setdefault("RUST_BACKTRACE", "0")
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

import regorus  # noqa: E402

_UNDEFINED = '"<undefined>"'

#: A contract-v1 input with nothing in it: evaluated at load to surface errors that
#: regorus only reports at evaluation (unknown functions, type errors, missing entrypoint).
PROBE_INPUT: Mapping[str, Any] = {"contract": "v1"}


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
    modules = bundle.modules + (bundle.test_modules if with_tests else ())
    for m in modules:
        try:
            engine.add_policy(m.path, m.text)
        except Exception as e:
            raise PolicyLoadError(f"{m.path}: {_first_line(e)}") from e
    try:
        engine.add_data_json(bundle.data_json)
    except Exception as e:
        raise PolicyLoadError(f"policy data: {_first_line(e)}") from e
    return engine


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


@dataclass(frozen=True, slots=True)
class _Compiled:
    bundle: PolicyBundle
    prototype: Any  # regorus.Engine; only cloned after the swap, never evaluated on

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
        self._local = threading.local()
        self._current: _Compiled = self._build()

    @property
    def revision(self) -> str:
        return self._current.revision

    @property
    def policy_dir(self) -> Path:
        return self._dir

    def _build(self) -> _Compiled:
        bundle = load_bundle(self._dir)
        prototype = compile_bundle(bundle)
        probe = prototype.clone()
        try:
            parse_decision(
                evaluate_raw(probe, json.dumps(PROBE_INPUT)), revision=bundle.revision
            )
        except PolicyEngineError as e:
            raise PolicyLoadError(f"policy bundle does not evaluate: {e.message}") from e
        return _Compiled(bundle=bundle, prototype=prototype)

    def _engine_for(self, compiled: _Compiled) -> Any:
        cached = getattr(self._local, "engine", None)
        if cached is not None and cached[0] is compiled:
            return cached[1]
        engine = compiled.prototype.clone()
        self._local.engine = (compiled, engine)
        return engine

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        compiled = self._current  # one read: this request stays on this revision
        try:
            input_json = json.dumps(input)
        except (TypeError, ValueError) as e:
            raise PolicyEngineError(f"policy input is not JSON: {e}") from e
        raw = evaluate_raw(self._engine_for(compiled), input_json)
        return parse_decision(raw, revision=compiled.revision)

    def reload(self) -> str:
        with self._reload_lock:
            new = self._build()  # raises PolicyLoadError; the old bundle stays
            self._current = new
            return new.revision

    def close(self) -> None:
        self._local = threading.local()
