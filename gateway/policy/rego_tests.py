"""Run the Rego unit tests (``*_test.rego``) without the OPA binary.

Discovers every ``test_*`` rule (as ``opa test`` does) in the test modules of a policy
directory and evaluates each through the embedded engine (regorus) or OPA's Go evaluator
(``engine="opa"``) with the served modules and data loaded. A test passes when its rule
evaluates to ``true``; false, undefined or an evaluation error is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.errors import GatewayError
from gateway.policy.bundle import load_bundle
from gateway.policy.embedded import compile_bundle, evaluate_raw
from gateway.policy.opa_go import compile_opa, evaluate_opa

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoTestResult:
    """The outcome of one test rule."""

    file: str
    name: str  # data path, e.g. data.sharing_test.test_r2_refuses_inactive
    passed: bool
    detail: str = ""


def discover(text: str) -> list[str]:
    """Return the data paths of the ``test_*`` rules of one module, in source order."""
    pkg = _PACKAGE.search(text)
    if pkg is None:
        return []
    seen: dict[str, None] = {}
    for name in _TEST_RULE.findall(text):
        seen.setdefault(f"data.{pkg.group(1)}.{name}", None)
    return list(seen)


def run_tests(
    policy_dir: Path,
    *,
    match: str | None = None,
    on_result: Callable[[RegoTestResult], None] | None = None,
    engine: Literal["regorus", "opa"] = "regorus",
) -> list[RegoTestResult]:
    """Run every test rule under ``policy_dir`` (optionally only names containing ``match``).

    Raises:
        PolicyLoadError: the policies or tests do not compile.
    """
    bundle = load_bundle(policy_dir, include_tests=True)
    evaluate: Callable[[str], Any]
    if engine == "opa":
        opa = compile_opa(bundle, with_tests=True)
        evaluate = lambda path: evaluate_opa(opa, {}, path)  # noqa: E731
    else:
        compiled = compile_bundle(bundle, with_tests=True)
        evaluate = lambda path: evaluate_raw(compiled, "{}", path)  # noqa: E731
    results: list[RegoTestResult] = []
    for module in bundle.test_modules:
        for path in discover(module.text):
            if match and match not in path:
                continue
            try:
                value = evaluate(path)
            except GatewayError as e:
                result = RegoTestResult(module.path, path, False, f"error: {e.message}")
            else:
                if value is True:
                    result = RegoTestResult(module.path, path, True)
                elif value is None:
                    result = RegoTestResult(module.path, path, False, "undefined")
                else:
                    result = RegoTestResult(module.path, path, False, f"value {value!r}")
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def summary(results: list[RegoTestResult]) -> str:
    """The last line of a run: ``N passed, M failed``."""
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"
