"""Seeded decision inputs for the differential test, and an exact model of the input gate.

- ``built_input``: an input made by the gateway's own builder (``gateway.sharing.
  build_policy_input``) from a random order, caller, registry recipient and subject facts, so
  it is something the gateway can really send.
- ``mutate``: the same input with keys deleted, values nulled or of the wrong type, strings
  emptied or replaced by unknown enum names, or lists made huge.
- ``contract_problems``: the messages ``policies_rego/sharing/input.rego`` must give for an
  input (empty when it is well formed) — the contract's key tables, written a second time.

Everything is drawn from one ``random.Random(seed)``: a seed reproduces its inputs (only the
keyed quasi-identifier digests differ per run; their equality pattern, which is all the
policy reads, does not).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.inspection import InfoType
from gateway.registry import (
    Consent,
    ConsentGiver,
    ConsentScope,
    Order,
    Recipient,
    RecipientKind,
    SubjectFacts,
    Withdrawal,
)
from gateway.registry.legal import LegalRequestFacts
from gateway.registry.models import LegalRequestRecord
from gateway.security.identity import Principal, Role
from gateway.sharing import Mode, RecordIn, ShareOrder, batch_refs, build_policy_input

_PARAMS_DIR = Path(__file__).resolve().parents[2] / "policies_rego" / "params"
PARAMS: dict[str, Any] = json.loads((_PARAMS_DIR / "data.json").read_text())
LEGAL: dict[str, Any] = json.loads((_PARAMS_DIR / "legal_requests" / "data.json").read_text())
CATEGORIES: list[str] = PARAMS["categories"]
PURPOSES: list[str] = list(PARAMS["purposes"])
BASES: list[str] = list(PARAMS["legal_bases"])
UNKNOWN = "NOT_A_KNOWN_NAME"

# -- the gate, modelled (input.rego) ------------------------------------------------------

_S, _B, _O, _A = "string", "boolean", "object", "array"
_STRS, _NUM_NULL, _OBJ_NULL = "array of strings", "number or null", "object or null"
INPUT_KEYS = {"contract": _S, "today": _S, "caller": _O, "request": _O, "subjects": _A}
CALLER_KEYS = {"principal": _S, "role": _S}
CALLER_OPTIONAL = {"partner_id": _S, "legal_grant": _B}
REQUEST_KEYS = {
    "mode": _S,
    "action": _S,
    "purpose": _S,
    "legal_basis": _O,
    "destination_region": _S,
    "categories": _STRS,
    "quasi_identifiers": _A,
}
REQUEST_OPTIONAL = {"record_type": _S, "legal_request": _OBJ_NULL}
LEGAL_BASIS_KEYS = {"kind": _S, "reference": _S, "exemption_code": _S}
LEGAL_REQUEST_KEYS = {
    "id": _S,
    "kind": _S,
    "basis": _S,
    "authority_kind": _S,
    "reference": _S,
    "exemption_code": _S,
    "recipient": _S,
    "all_subjects": _B,
    "categories": _STRS,
    "valid_from": _S,
    "valid_until": _S,
    "revoked": _B,
}
QUASI_IDENTIFIER_KEYS = {"ref": _S, "values": "object of strings"}
RECIPIENT_KEYS = {
    "id": _S,
    "kind": _S,
    "active": _B,
    "region": _S,
    "agreement": _O,
    "security_review_expires": _S,
    "dpa_expires": _S,
}
AGREEMENT_KEYS = {
    "id": _S,
    "version": _S,
    "purposes": _STRS,
    "categories": _STRS,
    "expires": _S,
    "binds_policy": _B,
}
SUBJECT_KEYS = {
    "ref": _S,
    "registered": _B,
    "age": _NUM_NULL,
    "ad_opt_out": _B,
    "consent_withdrawn": _B,
    "account_deleted": _B,
    "all_records_in_orders": _B,
    "orders": _A,
    "consents": _A,
    "withdrawals": _A,
}
ORDER_KEYS = {"id": _S, "merchant": _S, "fulfilment": _STRS, "cross_border": _B}
CONSENT_KEYS = {
    "id": _S,
    "recipient": _S,
    "purpose": _S,
    "scope": _S,
    "categories": _STRS,
    "all_categories": _B,
    "given_by": _S,
}
WITHDRAWAL_KEYS = {"recipient": _S, "purpose": _S, "categories": _STRS, "all_categories": _B}
#: Each subject's arrays of objects and the keys of their elements.
SUBJECT_ARRAYS = {"orders": ORDER_KEYS, "consents": CONSENT_KEYS, "withdrawals": WITHDRAWAL_KEYS}


def _is_type(x: Any, t: str) -> bool:
    if t == _S:
        return isinstance(x, str)
    if t == _B:
        return isinstance(x, bool)
    if t == _O:
        return isinstance(x, dict)
    if t == _A:
        return isinstance(x, list)
    if t == _NUM_NULL:
        return x is None or (isinstance(x, int | float) and not isinstance(x, bool))
    if t == _OBJ_NULL:
        return x is None or isinstance(x, dict)
    if t == _STRS:
        return isinstance(x, list) and all(isinstance(e, str) for e in x)
    assert t == "object of strings"
    return isinstance(x, dict) and all(isinstance(v, str) for v in x.values())


def _check(
    out: set[str], path: str, obj: dict[str, Any], keys: dict[str, str], opt: dict[str, str]
) -> None:
    for k, t in keys.items():
        if not (k in obj and _is_type(obj[k], t)):
            out.add(f"{path}.{k} is missing or not {t}")
    for k, t in opt.items():
        if k in obj and not _is_type(obj[k], t):
            out.add(f"{path}.{k} is not {t}")


def _objects(out: set[str], path: str, items: Any, keys: dict[str, str]) -> None:
    """Check each element of an array of objects (a non-array is ``_check``'s to report)."""
    if not isinstance(items, list):
        return
    for i, x in enumerate(items):
        if isinstance(x, dict):
            _check(out, f"{path}[{i}]", x, keys, {})
        else:
            out.add(f"{path}[{i}] is not object")


def contract_problems(doc: Any) -> set[str]:
    """The ``R1.malformed_input`` messages the gate gives for ``doc`` (empty: well formed)."""
    out: set[str] = set()
    if not isinstance(doc, dict):
        return {"input is not an object"}
    _check(out, "input", doc, INPUT_KEYS, {})
    recipient = doc.get("recipient", "missing")
    if not (recipient is None or isinstance(recipient, dict)):
        out.add("input.recipient is missing or not an object or null")
    caller, request = doc.get("caller"), doc.get("request")
    if isinstance(caller, dict):
        _check(out, "input.caller", caller, CALLER_KEYS, CALLER_OPTIONAL)
    if isinstance(request, dict):
        _check(out, "input.request", request, REQUEST_KEYS, REQUEST_OPTIONAL)
        if isinstance(request.get("legal_basis"), dict):
            _check(out, "input.request.legal_basis", request["legal_basis"], LEGAL_BASIS_KEYS, {})
        if isinstance(request.get("legal_request"), dict):
            lr = request["legal_request"]
            _check(out, "input.request.legal_request", lr, LEGAL_REQUEST_KEYS, {})
        qis = request.get("quasi_identifiers")
        _objects(out, "input.request.quasi_identifiers", qis, QUASI_IDENTIFIER_KEYS)
    if isinstance(recipient, dict):
        _check(out, "input.recipient", recipient, RECIPIENT_KEYS, {})
        if isinstance(recipient.get("agreement"), dict):
            _check(out, "input.recipient.agreement", recipient["agreement"], AGREEMENT_KEYS, {})
    subjects = doc.get("subjects")
    _objects(out, "input.subjects", subjects, SUBJECT_KEYS)
    for i, s in enumerate(subjects if isinstance(subjects, list) else []):
        if isinstance(s, dict):
            for name, keys in SUBJECT_ARRAYS.items():
                _objects(out, f"input.subjects[{i}].{name}", s.get(name), keys)
    return out


# -- inputs the gateway builds -------------------------------------------------------------

_RECIPIENT_IDS = ["adco", "shipco", "affil", "shop", "gov", "buyer"]
_REGIONS = ["CN"] * 12 + ["US", "DE", ""]


def _day(rng: random.Random, today: date) -> str:
    """An ISO date near today (mostly in the future), or "" (none)."""
    if rng.random() < 0.08:
        return ""
    return (today + timedelta(days=rng.randint(-60, 900))).isoformat()


def _some(rng: random.Random, pool: list[str], p: float) -> list[str]:
    return [x for x in pool if rng.random() < p]


def _pick(rng: random.Random, likely: list[str], other: list[str], p: float = 0.85) -> str:
    return rng.choice(likely) if likely and rng.random() < p else rng.choice(other)


def built_input(rng: random.Random) -> dict[str, Any]:
    """One input exactly as ``gateway.sharing`` builds it, from random domain objects."""
    today = date(2026, 1, 1) + timedelta(days=rng.randrange(730))
    rid = rng.choice(_RECIPIENT_IDS)
    kind = rng.choice(list(RecipientKind))
    kind_purposes = list(PARAMS["recipient_kinds"][kind]["purposes"])
    purpose = _pick(rng, kind_purposes, [*PURPOSES, "", UNKNOWN])
    action = _pick(rng, ["SHARE"], [*PARAMS["actions"], "", UNKNOWN], 0.7)
    fitting = [b for b in BASES if kind in PARAMS["legal_bases"][b].get(action, [])]
    basis = _pick(rng, fitting, [*BASES, "", UNKNOWN])
    needed = list(PARAMS["purposes"].get(purpose, [])) or CATEGORIES
    schema = {f"f{i}": _pick(rng, needed, CATEGORIES, 0.9) for i in range(rng.randint(1, 4))}
    subject_ids = [f"s{i}" for i in range(rng.choice([1, 1, 2, 2, 3, 5]))]
    records = [
        RecordIn(
            subject_id=sid,
            fields={f: "v" for f in schema if rng.random() < 0.8} or {"f0": "v"},
            order_id=rng.choice(["", f"o{sid}", "o-unknown"]),
        )
        for sid in subject_ids
        for _ in range(rng.randint(1, 2))
    ]
    categories = {schema[f] for r in records for f in r.fields}
    # R8/R10: bases that need a registered request mostly name one (sometimes unknown).
    legal_request_id = ""
    if (basis in _REQUEST_BASES and rng.random() < 0.9) or rng.random() < 0.03:
        legal_request_id = rng.choice(["lr-1", "lr-1", "lr-1", "lr-unknown"])
    order = ShareOrder(
        recipient_id=rid,
        purpose=purpose,
        action=action,
        legal_basis=basis,
        legal_reference=rng.choice(["", "", "case-42"]),
        exemption_code=_pick(
            rng, list(PARAMS["exemption_codes"]), ["", UNKNOWN], 0.6 if basis == "EXEMPTION" else 0
        ),
        legal_request_id=legal_request_id,
        record_type="order",
        destination_region=_pick(rng, ["", "CN"], ["US", "DE"], 0.9),
        records=records,
    )
    mode: Mode = rng.choice(["share", "share", "stage", "pull"])
    # R17: a pull is mostly the recipient's own partner pulling.
    role = _pick(rng, [Role.PARTNER if mode == "pull" else Role.SERVICE], list(Role), 0.8)
    principal = Principal(
        id=_pick(rng, [f"partner:{rid}"], ["svc:checkout", "partner:other"], 0.5),
        role=role,
        partner_id=_pick(rng, [rid], ["other", None], 0.7) if role is Role.PARTNER else None,
    )
    recipient = None
    if rng.random() > 0.05:
        recipient = Recipient(
            id=rid,
            kind=kind,
            active=rng.random() < 0.93,
            region=rng.choice(_REGIONS),
            agreement_id=rng.choice(["", f"agr-{rid}"]),
            agreement_version=rng.choice(["", "1", "3"]),
            agreement_purposes=tuple(
                {purpose, *_some(rng, PURPOSES, 0.1)}
                if rng.random() < 0.9
                else _some(rng, PURPOSES, 0.2)
            ),
            agreement_categories=tuple(
                (categories | set(_some(rng, CATEGORIES, 0.1)))
                if rng.random() < 0.85
                else set(_some(rng, CATEGORIES, 0.5))
            ),
            agreement_expires=_day(rng, today),
            agreement_binds_policy=rng.random() < 0.7,
            security_review_expires=_day(rng, today),
            dpa_expires=_day(rng, today),
        )
    facts = {
        sid: _facts(rng, sid, rid, purpose, action, today)
        for sid in subject_ids
        if rng.random() < 0.95
    }
    legal = None
    if legal_request_id == "lr-1":
        legal = _legal(rng, order, categories, subject_ids, today)
    # R19: an identifier found in a field now and then (kinds a category may or may not carry).
    identifiers = {
        sid: {
            (f, schema[f], str(rng.choice(list(InfoType)))) for f in _some(rng, list(schema), 0.5)
        }
        for sid in subject_ids
        if rng.random() < 0.05
    }
    refs = batch_refs(records)
    return build_policy_input(
        order,
        principal,
        mode=mode,
        today=today,
        schema=schema,
        categories=categories,
        recipient=recipient,
        refs=refs,
        facts=facts,
        identifiers=identifiers,
        legal=legal,
    )


_REQUEST_BASES = ("LEGAL_OBLIGATION", "EXEMPTION", "MERGER")


def _legal(
    rng: random.Random,
    order: ShareOrder,
    categories: set[str],
    subject_ids: list[str],
    today: date,
) -> LegalRequestFacts:
    """A registered legal request (or transfer) that mostly fits the order."""
    rid, basis = order.recipient_id, order.legal_basis
    kind = LEGAL["kind_by_basis"].get(basis, "legal_request")
    authority_kinds = LEGAL["authority_kinds"][kind]
    return LegalRequestFacts(
        request=LegalRequestRecord(
            id="lr-1",
            kind=_pick(rng, [kind], ["legal_request", "transfer", UNKNOWN], 0.9),
            basis=_pick(rng, [basis], [*BASES, ""], 0.9),
            authority="a court",
            authority_kind=_pick(rng, authority_kinds, ["COURT", "ACQUIRER", UNKNOWN], 0.9),
            reference=_pick(rng, ["case-42"], ["京公海(刑)调证字0042号", ""], 0.9),
            exemption_code=order.exemption_code
            or _pick(rng, list(PARAMS["exemption_codes"]), [""], 0.5),
            recipient_id=_pick(rng, [rid], ["other"], 0.9),
            all_subjects=rng.random() < 0.3,
            subject_ids=_some(rng, subject_ids, 0.8),
            categories=sorted(
                categories | set(_some(rng, CATEGORIES, 0.1))
                if rng.random() < 0.85
                else set(_some(rng, CATEGORIES, 0.3))
            ),
            valid_from=(today - timedelta(days=rng.randint(-10, 400))).isoformat(),
            valid_until=_day(rng, today),
            registered_by="admin:1",
            registered_at=today.isoformat(),
            revoked=rng.random() < 0.05,
        ),
        caller_granted=rng.random() < 0.85,
        in_scope=frozenset(_some(rng, subject_ids, 0.85)),
    )


def _facts(
    rng: random.Random, sid: str, rid: str, purpose: str, action: str, today: date
) -> SubjectFacts:
    scope = PARAMS["action_consent_scope"].get(action, "SHARE")
    birth = ""
    if rng.random() < 0.9:
        birth = (today - timedelta(days=rng.randint(5 * 365, 80 * 365))).isoformat()
    consents = tuple(
        Consent(
            consent_id=f"c-{sid}-{i}",
            recipient_id=rng.choice(["", rid, rid, "other"]),
            purpose=rng.choice(["", purpose, purpose, "other"]),
            scope=_pick(rng, [scope], list(ConsentScope), 0.6),
            categories=tuple(_some(rng, CATEGORIES, 0.4)),
            all_categories=rng.random() < 0.5,
            given_by=_pick(rng, [ConsentGiver.SUBJECT], list(ConsentGiver), 0.7),
        )
        for i in range(rng.choice([0, 1, 1, 2, 3]))
    )
    withdrawals = tuple(
        Withdrawal(
            recipient_id=rng.choice(["", rid, "other"]),
            purpose=rng.choice(["", purpose, "other"]),
            categories=tuple(_some(rng, CATEGORIES, 0.3)),
            all_categories=rng.random() < 0.5,
        )
        for _ in range(rng.choice([0, 0, 0, 1, 2]))
    )
    orders = tuple(
        Order(
            order_id=f"o{sid}",
            merchant_id=rng.choice([rid, "other", ""]),
            fulfilment_ids=tuple(_some(rng, [rid, "other"], 0.4)),
            cross_border=b,
        )
        for b in ([rng.random() < 0.5] if rng.random() < 0.6 else [])
    )
    return SubjectFacts(
        subject_id=sid,
        birth_date=birth,
        ad_opt_out=rng.random() < 0.15,
        consent_withdrawn=rng.random() < 0.1,
        account_deleted=rng.random() < 0.05,
        consents=consents,
        withdrawals=withdrawals,
        orders=orders,
    )


# -- mutations ------------------------------------------------------------------------------

#: One mutated input in this many also gets a list of 500-1,500 more elements.
HUGE_EVERY = 500
_WRONG_TYPES: list[Any] = [None, 7, 1.5, True, "x", [], {}, ["x"], {"x": 1}]
#: Strings whose "" means "any" (a consent's recipient or purpose): emptying them widens.
_WIDENING = ("].recipient", "].purpose")
#: Strings where a known name grants something an unknown one does not.
_ENUMS = (".mode", ".action", ".kind", ".role", ".scope", ".purpose", ".exemption_code")


def _nodes(x: Any, path: str = "input") -> Iterator[tuple[str, Any, Any, Any]]:
    """(path, parent, key, value) for every value below the root."""
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        p = f"{path}.{k}" if isinstance(x, dict) else f"{path}[{k}]"
        yield p, x, k, v
        yield from _nodes(v, p)


def mutate(rng: random.Random, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Apply 1-3 random mutations; returns the new input and whether every mutation was a
    *narrowing* one (emptied string, unknown enum name) that may never widen the decision.

    One input in ``HUGE_EVERY`` also gets a huge list (appended last, elements shared).
    """
    out = copy.deepcopy(doc)
    narrowing = True
    for _ in range(rng.randint(1, 3)):
        path, parent, key, value = rng.choice(list(_nodes(out)))
        op = rng.random()
        if isinstance(value, str) and op < 0.4:
            if rng.random() < 0.5 and path.endswith(_ENUMS) and not path.endswith(_WIDENING):
                parent[key] = UNKNOWN
            else:
                parent[key] = ""
                narrowing = narrowing and not path.endswith(_WIDENING)
            continue
        narrowing = False
        if isinstance(parent, dict) and op < 0.7:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(_WRONG_TYPES))
    if rng.randrange(HUGE_EVERY) == 0:
        lists = [(p, k, v) for _, p, k, v in _nodes(out) if isinstance(v, list)]
        if lists:
            parent, key, value = rng.choice(lists)
            filler = value[0] if value else rng.choice(["x", {"x": "y"}])
            parent[key] = value + [filler] * rng.choice([500, 1500])
            narrowing = False
    return out, narrowing
