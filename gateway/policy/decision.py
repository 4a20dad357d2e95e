"""The decision a policy engine returns, and its strict parser (contract v2).

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

#: How disclosed records name their subject (R16): a per-recipient keyed pseudonym, or
#: nothing at all (DE_IDENTIFIED: nothing the recipient could link across batches).
SUBJECT_REFS = frozenset({"per_recipient", "none"})
#: The exceptions of §七 under which data may leave China (R12).
CROSS_BORDER_EXCEPTIONS = frozenset({"law", "consent", "transaction"})


@dataclass(frozen=True, slots=True)
class CrossBorder:
    """R12: whether data leaves China, where to, and which exception of §七 let each
    remaining subject's data go (subject ref -> ``law``, ``consent`` or ``transaction``)."""

    applies: bool = False
    region: str = ""
    exceptions: Mapping[str, str] = field(default_factory=_empty_map)


DOMESTIC = CrossBorder()


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
        consents: Remaining subject ref -> ids of its consents in scope of the share.
        cross_border: R12 - destination region and the exception per remaining subject.
        subject_ref: ``per_recipient`` or ``none`` (R16: records carry no subject ref).
        decision_id: The OPA server's id of this decision (what its decision log records;
            "" for the in-process engines, whose only decision log is the ledger).
    """

    allow: bool
    reasons: tuple[Reason, ...]
    excluded: Mapping[str, tuple[Reason, ...]]
    obligations: Obligations
    subject_obligations: Mapping[str, Obligations]
    revision: str
    consents: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    cross_border: CrossBorder = DOMESTIC
    subject_ref: str = "per_recipient"
    decision_id: str = ""

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
            "consents": {ref: list(ids) for ref, ids in sorted(self.consents.items())},
            "cross_border": {
                "applies": self.cross_border.applies,
                "region": self.cross_border.region,
                "exceptions": dict(sorted(self.cross_border.exceptions.items())),
            },
            "subject_ref": self.subject_ref,
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


def _str_list(v: object, what: str) -> list[str]:
    """``v`` as an array of strings (one check per element; bulk decisions have one such
    array per subject)."""
    items = _list(v, what)
    for item in items:
        if not isinstance(item, str):
            raise _fail(f"{what}[] is not a string")
    return items


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


def _cross_border(v: object) -> CrossBorder:
    o = _obj(v, "cross_border")
    applies = o.get("applies")
    if not isinstance(applies, bool):
        raise _fail("cross_border.applies is not a boolean")
    exceptions = {
        _str(ref, "cross_border.exceptions key"): _str(e, f"cross_border.exceptions[{ref}]")
        for ref, e in _obj(o.get("exceptions"), "cross_border.exceptions").items()
    }
    if set(exceptions.values()) - CROSS_BORDER_EXCEPTIONS:
        raise _fail("cross_border.exceptions names an unknown exception")
    return CrossBorder(
        applies=applies,
        region=_str(o.get("region"), "cross_border.region"),
        exceptions=MappingProxyType(dict(sorted(exceptions.items()))),
    )


def parse_decision(raw: object, *, revision: str, decision_id: str = "") -> PolicyDecision:
    """Build a ``PolicyDecision`` from the JSON value of ``data.sharing.decision``.

    Args:
        raw: The decoded JSON value (``None`` when the document is undefined).
        revision: The revision of the bundle that produced it.
        decision_id: The engine's id of this decision, if it gives one.

    Returns:
        The decision, with every list sorted so equal answers compare equal.

    Raises:
        PolicyEngineError: the value is undefined or does not follow contract v2.
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
    consents = {
        _str(ref, "consents key"): tuple(sorted(set(_str_list(ids, f"consents[{ref}]"))))
        for ref, ids in _obj(doc.get("consents"), "consents").items()
    }
    subject_ref = doc.get("subject_ref")
    if subject_ref not in SUBJECT_REFS:
        # R16: an unknown answer must not fall back to linkable references.
        raise _fail("subject_ref is missing or unknown")
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
        consents=MappingProxyType(dict(sorted(consents.items()))),
        cross_border=_cross_border(doc.get("cross_border")),
        subject_ref=str(subject_ref),
        decision_id=decision_id,
    )
