"""The decision a policy engine returns, and its strict parser (contract v1).

Invariant: a ``PolicyDecision`` is only ever built from an engine's output by
``parse_decision``, which refuses anything that does not match the contract exactly. A
malformed answer is an engine failure (``PolicyEngineError`` -> UNAVAILABLE), never a
permissive default (R1: fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.errors import PolicyEngineError

#: The decision document every engine evaluates (``policies_rego/CONTRACT.md``).
DECISION_PATH = "data.sharing.decision"
DECISION_HTTP_PATH = "sharing/decision"


@dataclass(frozen=True, slots=True)
class Reason:
    """One refusal or exclusion reason: a stable ``R<n>.<slug>`` code and a message."""

    code: str
    message: str


def _empty_map() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Obligations:
    """What the gateway must do to each field before data leaves (by data category).

    Attributes:
        drop: Categories whose fields are removed.
        pseudonymize: Categories whose values are replaced by per-recipient keyed pseudonyms.
        generalize: Category -> generalizer name (``age_band``, ``city``).
    """

    drop: frozenset[str] = frozenset()
    pseudonymize: frozenset[str] = frozenset()
    generalize: Mapping[str, str] = field(default_factory=_empty_map)

    @property
    def is_empty(self) -> bool:
        """True when the obligations change nothing."""
        return not (self.drop or self.pseudonymize or self.generalize)


NO_OBLIGATIONS = Obligations()


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The answer to one ``data.sharing.decision`` query.

    Attributes:
        allow: False refuses the whole share.
        reasons: Every refusal, sorted by (code, message).
        excluded: Subject ref -> why that subject is left out (sorted reasons).
        obligations: Applies to every remaining subject without its own entry.
        subject_obligations: Subject ref -> obligations replacing ``obligations``.
        revision: The policy revision that produced this decision.
    """

    allow: bool
    reasons: tuple[Reason, ...]
    excluded: Mapping[str, tuple[Reason, ...]]
    obligations: Obligations
    subject_obligations: Mapping[str, Obligations]
    revision: str

    def obligations_for(self, ref: str) -> Obligations:
        """Return the obligations that apply to subject ``ref``."""
        return self.subject_obligations.get(ref, self.obligations)

    def is_excluded(self, ref: str) -> bool:
        """True when subject ``ref`` must be left out of the share."""
        return ref in self.excluded

    def comparable(self) -> dict[str, Any]:
        """A plain, order-independent form (for golden tests and cross-engine comparison)."""
        return {
            "allow": self.allow,
            "reasons": [[r.code, r.message] for r in self.reasons],
            "excluded": {
                ref: [[r.code, r.message] for r in rs] for ref, rs in sorted(self.excluded.items())
            },
            "obligations": _obligations_plain(self.obligations),
            "subject_obligations": {
                ref: _obligations_plain(o) for ref, o in sorted(self.subject_obligations.items())
            },
        }


def _obligations_plain(o: Obligations) -> dict[str, Any]:
    return {
        "drop": sorted(o.drop),
        "pseudonymize": sorted(o.pseudonymize),
        "generalize": dict(sorted(o.generalize.items())),
    }


def _fail(what: str) -> PolicyEngineError:
    return PolicyEngineError(f"malformed policy decision: {what}", reason="policy.malformed")


def _str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise _fail(f"{what} is not a string")
    return v


def _list(v: object, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(f"{what} is not an array")
    return v


def _obj(v: object, what: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise _fail(f"{what} is not an object")
    return v


def _reason(v: object, what: str) -> Reason:
    o = _obj(v, what)
    return Reason(code=_str(o.get("code"), f"{what}.code"), message=_str(o.get("message"), what))


def _obligations(v: object, what: str) -> Obligations:
    o = _obj(v, what)
    if set(o) - {"drop", "pseudonymize", "generalize"}:
        raise _fail(f"{what} has unknown keys")
    drop = frozenset(_str(c, f"{what}.drop[]") for c in _list(o.get("drop", []), f"{what}.drop"))
    pseudo = frozenset(
        _str(c, f"{what}.pseudonymize[]")
        for c in _list(o.get("pseudonymize", []), f"{what}.pseudonymize")
    )
    gen = {
        _str(k, f"{what}.generalize key"): _str(g, f"{what}.generalize[{k}]")
        for k, g in _obj(o.get("generalize", {}), f"{what}.generalize").items()
    }
    return Obligations(
        drop=drop, pseudonymize=pseudo, generalize=MappingProxyType(dict(sorted(gen.items())))
    )


def parse_decision(raw: object, *, revision: str) -> PolicyDecision:
    """Build a ``PolicyDecision`` from the JSON value of ``data.sharing.decision``.

    Args:
        raw: The decoded JSON value (``None`` when the document is undefined).
        revision: The revision of the bundle that produced it.

    Returns:
        The decision, with every list sorted so equal answers compare equal.

    Raises:
        PolicyEngineError: the value is undefined or does not follow contract v1.
    """
    if raw is None:
        raise _fail("data.sharing.decision is undefined")
    doc = _obj(raw, "decision")
    allow = doc.get("allow")
    if not isinstance(allow, bool):
        raise _fail("allow is not a boolean")
    reasons = sorted(
        {_reason(r, "reasons[]") for r in _list(doc.get("reasons"), "reasons")},
        key=lambda r: (r.code, r.message),
    )
    excluded: dict[str, set[Reason]] = {}
    for item in _list(doc.get("excluded", []), "excluded"):
        o = _obj(item, "excluded[]")
        ref = _str(o.get("ref"), "excluded[].ref")
        excluded.setdefault(ref, set()).add(_reason(o, "excluded[]"))
    subject_obligations = {
        _str(ref, "subject_obligations key"): _obligations(o, f"subject_obligations[{ref}]")
        for ref, o in _obj(doc.get("subject_obligations", {}), "subject_obligations").items()
    }
    if allow and reasons:
        # R1: a decision that both allows and refuses is contradictory; fail closed.
        raise _fail("allow is true but reasons are present")
    return PolicyDecision(
        allow=allow,
        reasons=tuple(reasons),
        excluded=MappingProxyType(
            {
                ref: tuple(sorted(rs, key=lambda r: (r.code, r.message)))
                for ref, rs in sorted(excluded.items())
            }
        ),
        obligations=_obligations(doc.get("obligations"), "obligations"),
        subject_obligations=MappingProxyType(dict(sorted(subject_obligations.items()))),
        revision=revision,
    )
