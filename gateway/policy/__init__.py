"""Policy engines behind one interface (issue 2 item 3, issue 3).

The policy decides *what* may leave and *how* (``policies_rego/``, contract in
``policies_rego/CONTRACT.md``); engines only evaluate it:

- ``EmbeddedEngine``: regorus in-process (default).
- ``OpaServerEngine``: a real OPA reached over its REST Data API (``policy.opa_url``).

Every engine failure is a ``PolicyEngineError`` (UNAVAILABLE, fail closed); a bundle that
does not compile is a ``PolicyLoadError`` and the previous bundle keeps serving.
"""

from gateway.policy.bundle import PolicyBundle, compute_revision, load_bundle
from gateway.policy.decision import (
    DECISION_PATH,
    NO_OBLIGATIONS,
    Obligations,
    PolicyDecision,
    Reason,
    parse_decision,
)
from gateway.policy.engine import PolicyEngine, engine_from_settings
from gateway.policy.watcher import PolicyWatcher

__all__ = [
    "DECISION_PATH",
    "NO_OBLIGATIONS",
    "Obligations",
    "PolicyBundle",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyWatcher",
    "Reason",
    "compute_revision",
    "engine_from_settings",
    "load_bundle",
    "parse_decision",
]
