"""The decision cache of the in-process engines: one per bundle revision, keyed by input JSON.

Correct because a decision is a pure function of (revision, input): the input holds
everything that can change it (today's date, caller, request, the recipient's agreement,
every subject's facts and consents as read for this request), so a consent withdrawal
changes the key. The input has batch-local refs, not identifiers, so requests of the same
shape share entries. A bundle that calls an impure built-in is never cached. The OPA-server
engine has none: each decision there must be OPA's own, with its own ``decision_id``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import PolicyEngineError
from gateway.policy.bundle import PolicyBundle
from gateway.policy.decision import PolicyDecision

#: Rego built-ins whose result depends on something other than input and bundle data.
IMPURE_BUILTINS = ("time.now_ns", "http.send", "rand.", "uuid.", "opa.runtime", "net.lookup")
#: Decisions kept per revision (cleared when full).
DECISION_CACHE_SIZE = 8_192
#: Inputs longer than this (bulk shares: ~300 bytes per subject) are decided without the
#: cache: they rarely repeat, and 8,192 keys of megabytes would be gigabytes.
DECISION_CACHE_MAX_INPUT = 16_384


def encode_input(input: Mapping[str, Any]) -> str:
    """The input as compact JSON: what the engine evaluates, and the cache key.

    Raises:
        PolicyEngineError: the input is not JSON (fail closed).
    """
    try:
        return json.dumps(input, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise PolicyEngineError(f"policy input is not JSON: {e}") from e


class DecisionCache:
    """Decisions of one bundle revision by input JSON (a new revision gets a new cache)."""

    __slots__ = ("_decisions", "_enabled")

    def __init__(self, bundle: PolicyBundle) -> None:
        self._enabled = not any(b in m.text for m in bundle.modules for b in IMPURE_BUILTINS)
        self._decisions: dict[str, PolicyDecision] = {}

    def get(self, input_json: str) -> PolicyDecision | None:
        """The cached decision for this input, if any."""
        return self._decisions.get(input_json) if self._enabled else None

    def put(self, input_json: str, decision: PolicyDecision) -> None:
        """Keep ``decision`` unless the bundle is impure or the input bulk-sized."""
        if not self._enabled or len(input_json) > DECISION_CACHE_MAX_INPUT:
            return
        if len(self._decisions) >= DECISION_CACHE_SIZE:
            self._decisions.clear()
        self._decisions[input_json] = decision
