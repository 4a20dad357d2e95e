"""The share workflow: validate, ask the policy, enforce, write the ledger, then disclose.

Order of operations (R18, §四): the decision — allowed or refused — is appended to the audit
ledger and committed *before* any record is handed back to the caller. A policy engine or
ledger failure raises ``UnavailableError`` and nothing is disclosed (fail closed).

This module is protocol-free: services translate protobuf messages to ``ShareOrder`` and
``Outcome`` back to protobuf.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from gateway import metrics
from gateway.enforcement import (
    EnforcementPlan,
    RecordLayout,
    age_in_years,
    payload_digest,
    plan,
    quasi_digest,
    subject_ref,
)
from gateway.errors import InvalidRequestError
from gateway.inspection import find_identifiers
from gateway.policy import PolicyDecision, PolicyEngine, Reason
from gateway.registry import Recipient, Registry, SubjectFacts
from gateway.registry.legal import LegalRequestFacts
from gateway.security.identity import Principal
from gateway.security.limits import check_order_text
from ledger import Disclosure, Ledger, Receipt

Mode = Literal["share", "stage", "pull", "evaluate"]
CONTRACT_VERSION = "v2"


class KeySource(Protocol):
    """Per-partner pseudonymization keys (``gateway.security.keys.PseudonymKeys``)."""

    def current(self, partner_id: str) -> tuple[str, bytes]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordIn:
    """One record as the caller sent it: subject id and field name -> value."""

    subject_id: str
    fields: Mapping[str, str]
    order_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ShareOrder:
    """A share request in domain terms (enum values already mapped to their names)."""

    recipient_id: str
    purpose: str
    action: str
    legal_basis: str
    legal_reference: str = ""
    exemption_code: str = ""
    legal_request_id: str = ""
    record_type: str
    destination_region: str = ""
    records: Sequence[RecordIn] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class DisclosedRecord:
    """A record after enforcement; ``subject_ref`` is the per-partner subject pseudonym, or
    ``""`` when the decision says records name no subject (R16, DE_IDENTIFIED)."""

    subject_id: str
    subject_ref: str
    fields: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What happened to one share: decision, what left, and the ledger receipt."""

    decision: PolicyDecision
    excluded: Mapping[str, tuple[Reason, ...]]
    records: list[DisclosedRecord] = field(default_factory=list)
    categories_disclosed: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    payload_digest: bytes = b""
    key_id: str = ""
    receipt: Receipt | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Prepared:
    order: ShareOrder
    schema: Mapping[str, str]
    refs: dict[str, str]  # subject id -> batch-local ref
    policy_input: dict[str, Any]
    recipient: Recipient | None
    legal: LegalRequestFacts | None = None


class Sharing:
    """Decides and carries out shares. Thread-safe: the gRPC server calls it from many threads."""

    def __init__(
        self,
        *,
        registry: Registry,
        engine: PolicyEngine,
        ledger: Ledger,
        keys: KeySource,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._engine = engine
        self._ledger = ledger
        self._keys = keys
        self._clock = clock

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    def share(
        self,
        order: ShareOrder,
        principal: Principal,
        *,
        request_id: str,
        rpc: str,
        mode: Mode = "share",
    ) -> Outcome:
        """Decide, enforce, append the decision to the ledger, and return what may leave.

        ``mode="evaluate"`` is a dry run: decided and recorded, nothing enforced or returned.
        A refused share is recorded too and comes back with ``decision.allow`` false and no
        records; the caller turns it into PERMISSION_DENIED.

        Raises:
            InvalidRequestError: the request is malformed (unknown record type or field).
            UnavailableError: the policy engine or the ledger failed; nothing was disclosed.
        """
        outcome, disclosure = self._decide(order, principal, request_id, rpc, mode)
        receipt = self._ledger.append([disclosure])[0]
        return dataclasses.replace(outcome, receipt=receipt)

    async def share_async(
        self,
        order: ShareOrder,
        principal: Principal,
        *,
        request_id: str,
        rpc: str,
        mode: Mode = "share",
        executor: Executor | None = None,
    ) -> Outcome:
        """``share`` for the asyncio server: the event loop serves other calls while the
        ledger commits. With ``executor``, the decision (registry reads, a remote policy
        engine) runs there instead of on the event loop. Same errors as ``share``."""
        if executor is None:
            outcome, disclosure = self._decide(order, principal, request_id, rpc, mode)
        else:
            outcome, disclosure = await asyncio.get_running_loop().run_in_executor(
                executor, self._decide, order, principal, request_id, rpc, mode
            )
        receipt = (await self._ledger.append_async([disclosure]))[0]
        return dataclasses.replace(outcome, receipt=receipt)

    def _decide(
        self, order: ShareOrder, principal: Principal, request_id: str, rpc: str, mode: Mode
    ) -> tuple[Outcome, Disclosure]:
        """Decide and enforce; return the outcome (no receipt yet) and its ledger entry.
        Nothing may leave before that entry is committed."""
        now = self._clock()
        today = now.date()
        prepared = self._prepare(order, principal, mode=mode, today=today)
        decision = self._engine.decide(prepared.policy_input)
        excluded = _excluded_by_subject(decision, prepared.refs)
        outcome = Outcome(decision=decision, excluded=excluded)
        if decision.allow and mode != "evaluate":
            outcome = self._enforce(prepared, decision, excluded, today)
        legal = prepared.legal.request if prepared.legal else None
        disclosure = Disclosure(
            time=now,
            request_id=request_id,
            rpc=rpc,
            caller=principal.id,
            caller_role=str(principal.role),
            partner_id=order.recipient_id,
            purpose=order.purpose,
            action=order.action,
            mode=mode,
            legal_basis=order.legal_basis,
            # Under a registered request (R10) the ledger keeps the registered reference
            # and code, not the caller's free text.
            legal_reference=legal.reference if legal else order.legal_reference,
            exemption_code=legal.exemption_code if legal else order.exemption_code,
            legal_request_id=order.legal_request_id,
            decision="ALLOW" if decision.allow else "DENY",
            reason_codes=tuple(
                sorted(
                    {r.code for r in decision.reasons}
                    | {r.code for rs in excluded.values() for r in rs}
                )
            ),
            policy_revision=decision.revision,
            decision_id=decision.decision_id,
            record_type=order.record_type,
            categories_disclosed=outcome.categories_disclosed,
            categories_removed=outcome.categories_removed,
            record_count=len(outcome.records),
            subject_ids=tuple(dict.fromkeys(r.subject_id for r in outcome.records)),
            excluded_subject_ids=tuple(excluded if decision.allow else prepared.refs),
            payload_digest=outcome.payload_digest,
            pseudonym_key_id=outcome.key_id,
            # §三, §八, R12: what the share relied on, for the auditor.
            agreement_id=prepared.recipient.agreement_id if prepared.recipient else "",
            agreement_version=prepared.recipient.agreement_version if prepared.recipient else "",
            consent_ids=tuple(sorted({c for ids in decision.consents.values() for c in ids}))
            if decision.allow
            else (),
            destination_region=decision.cross_border.region,
            cross_border_exceptions=tuple(sorted(set(decision.cross_border.exceptions.values())))
            if decision.allow
            else (),
        )
        metrics.observe_decision(mode, disclosure.decision, disclosure.reason_codes)
        return outcome, disclosure

    # -- steps ------------------------------------------------------------------------

    def _prepare(
        self, order: ShareOrder, principal: Principal, *, mode: Mode, today: date
    ) -> _Prepared:
        check_order_text(order)  # what the ledger will store: bounded, no free text
        if not order.record_type:
            raise InvalidRequestError(
                "record_type is required", reason="request.record_type_missing"
            )
        if not order.records:
            raise InvalidRequestError(
                "at least one record is required", reason="request.no_records"
            )
        refs = batch_refs(order.records)
        # Schema, recipient and subject facts as of the registry version read first (ADR 0025:
        # a consent withdrawal applies to the next share). Validation order is unchanged.
        schema, recipient, facts = self._registry.share_facts(
            order.record_type, order.recipient_id, [s for s in refs if s]
        )
        if schema is None:
            raise InvalidRequestError(
                f"unknown record type {order.record_type[:64]!r}",
                reason="request.unknown_record_type",
            )
        categories: set[str] = set()
        # Field-name sequence -> the categories of those fields, checked against the schema
        # once per sequence (a share's records mostly have one), not per field of each record.
        layouts: dict[tuple[str, ...], tuple[str, ...]] = {}
        # R19: identifiers found per subject as (field, category, kind); never the value.
        found: dict[str, set[tuple[str, str, str]]] = {}
        for i, record in enumerate(order.records):
            if not record.subject_id:
                raise InvalidRequestError(
                    f"record {i} has no subject_id", reason="request.subject_id_missing"
                )
            fields = record.fields
            names = tuple(fields)
            cats = layouts.get(names)
            if cats is None:
                cats = layouts[names] = _field_categories(names, schema, i, order.record_type)
                categories.update(cats)
            for name, category in zip(names, cats, strict=True):
                kinds = find_identifiers(fields[name])
                if kinds:
                    found.setdefault(record.subject_id, set()).update(
                        (name, category, str(kind)) for kind in kinds
                    )
        legal = (
            self._registry.legal.facts(
                order.legal_request_id, principal=principal.id, subject_ids=refs
            )
            if order.legal_request_id
            else None
        )
        policy_input = build_policy_input(
            order,
            principal,
            mode=mode,
            today=today,
            schema=schema,
            categories=categories,
            recipient=recipient,
            refs=refs,
            facts=facts,
            identifiers=found,
            legal=legal,
        )
        return _Prepared(
            order=order,
            schema=schema,
            refs=refs,
            policy_input=policy_input,
            recipient=recipient,
            legal=legal,
        )

    def _enforce(
        self,
        prepared: _Prepared,
        decision: PolicyDecision,
        excluded: Mapping[str, tuple[Reason, ...]],
        today: date,
    ) -> Outcome:
        key_id, key = self._keys.current(prepared.order.recipient_id)
        # R16: de-identified records name no subject (nothing links batches).
        linkable = decision.subject_ref == "per_recipient"
        records: list[DisclosedRecord] = []
        # One plan per distinct obligations object of this decision (usually one), each
        # compiled once per (schema, obligations, key) across shares; per plan, one layout
        # per field-name sequence (usually one), whose categories count once, not per record.
        default = plan(prepared.schema, decision.obligations, key=key)
        per_subject = decision.subject_obligations
        refs = prepared.refs
        plans: dict[int, EnforcementPlan] = {}
        layouts: dict[int, RecordLayout] = {}
        generalized: set[str] = set()
        for record in prepared.order.records:
            sid = record.subject_id
            if sid in excluded:
                continue
            if per_subject and (obligations := per_subject.get(refs[sid])) is not None:
                p = plans.get(id(obligations))
                if p is None:
                    p = plans[id(obligations)] = plan(prepared.schema, obligations, key=key)
            else:
                p = default
            fields = record.fields
            layout = p.layout(tuple(fields))
            layouts[id(layout)] = layout
            records.append(
                DisclosedRecord(
                    subject_id=sid,
                    subject_ref=subject_ref(key, sid) if linkable else "",
                    fields=layout.apply(fields, today=today, disclosed=generalized),
                )
            )
        disclosed = generalized.union(*(lay.disclosed for lay in layouts.values()))
        removed = set().union(*(lay.removed for lay in layouts.values()))
        return Outcome(
            decision=decision,
            excluded=excluded,
            records=records,
            categories_disclosed=tuple(sorted(disclosed)),
            categories_removed=tuple(sorted(removed)),
            payload_digest=payload_digest((r.subject_ref, r.fields) for r in records)
            if records
            else b"",
            key_id=key_id,
        )


def batch_refs(records: Iterable[RecordIn]) -> dict[str, str]:
    """Subject id -> its batch-local ref ("0", "1", ... in order of first appearance): what
    the policy input names subjects by (never their ids)."""
    refs: dict[str, str] = {}
    for record in records:
        refs.setdefault(record.subject_id, str(len(refs)))
    return refs


def build_policy_input(
    order: ShareOrder,
    principal: Principal,
    *,
    mode: Mode,
    today: date,
    schema: Mapping[str, str],
    categories: Iterable[str],
    recipient: Recipient | None,
    refs: Mapping[str, str],
    facts: Mapping[str, SubjectFacts],
    identifiers: Mapping[str, Iterable[tuple[str, str, str]]],
    legal: LegalRequestFacts | None,
) -> dict[str, Any]:
    """The decision-contract input for one order (``policies_rego/CONTRACT.md``, v2).

    Pure: everything comes from the arguments (the differential test builds its inputs here).

    Args:
        refs: Subject id -> batch-local ref, in batch order.
        facts: Subject id -> registry facts (a subject missing here has no facts).
        categories: The categories of every field of every record.
        identifiers: Subject id -> identifiers found in its records as (field, category,
            kind) (R19; never the value).
        legal: The registered legal request named by the order, if it names one and the
            registry holds it (``None`` otherwise).
    """
    order_ids, outside_orders = _order_ids(order)
    caller: dict[str, Any] = {
        "principal": principal.id,
        "role": str(principal.role),
        "partner_id": principal.partner_id or "",
    }
    # Only the consents that can count for this share: the policy accepts a consent only for
    # the recipient and purpose it names (R6), so the others are neither the policy's
    # business nor worth checking (each costs the input gate a dozen checks per subject).
    consent_scope = (recipient.id if recipient is not None else "", order.purpose)
    subjects = [
        _subject_input(
            ref,
            facts.get(sid),
            order_ids.get(sid, ()),
            all_in_orders=sid not in outside_orders,
            today=today,
            consent_scope=consent_scope,
        )
        for sid, ref in refs.items()
    ]
    if order.legal_request_id:
        # R10: the grant and the scope as booleans; no subject id reaches the policy.
        caller["legal_grant"] = legal is not None and legal.caller_granted
    if order.legal_request_id or identifiers:
        for sid, subject in zip(refs, subjects, strict=True):
            if order.legal_request_id:
                subject["in_legal_scope"] = legal is not None and sid in legal.in_scope
            found = identifiers.get(sid)
            if found:
                subject["identifiers"] = [
                    {"field": f, "category": c, "kind": k} for f, c, k in sorted(found)
                ]
    return {
        "contract": CONTRACT_VERSION,
        "today": today.isoformat(),
        "caller": caller,
        "request": {
            "mode": "pull" if mode == "pull" else "share",
            "action": order.action,
            "purpose": order.purpose,
            "legal_basis": {
                "kind": order.legal_basis,
                "reference": order.legal_reference,
                "exemption_code": order.exemption_code,
            },
            **_legal_request_input(order.legal_request_id, legal),
            "record_type": order.record_type,
            "destination_region": order.destination_region
            or (recipient.region if recipient else ""),
            "categories": sorted(categories),
            "quasi_identifiers": _quasi_identifiers(order, schema, refs),
        },
        "recipient": None
        if recipient is None
        else {
            "id": recipient.id,
            "kind": str(recipient.kind),
            "active": recipient.active,
            "region": recipient.region,
            "agreement": {
                "id": recipient.agreement_id,
                "version": recipient.agreement_version,
                "purposes": list(recipient.agreement_purposes),
                "categories": list(recipient.agreement_categories),
                "expires": recipient.agreement_expires,
                "binds_policy": recipient.agreement_binds_policy,
            },
            "security_review_expires": recipient.security_review_expires,
            "dpa_expires": recipient.dpa_expires,
        },
        "subjects": subjects,
    }


def _field_categories(
    names: tuple[str, ...], schema: Mapping[str, str], i: int, record_type: str
) -> tuple[str, ...]:
    """The category of each field named, for record ``i``.

    Raises:
        InvalidRequestError: a field name the schema does not have.
    """
    out = []
    for name in names:
        category = schema.get(name)
        if category is None:
            raise InvalidRequestError(
                f"record {i}: field {name[:64]!r} is not in schema {record_type!r}",
                reason="request.unknown_field",
            )
        out.append(category)
    return tuple(out)


def _excluded_by_subject(
    decision: PolicyDecision, refs: Mapping[str, str]
) -> dict[str, tuple[Reason, ...]]:
    return {sid: decision.excluded[ref] for sid, ref in refs.items() if ref in decision.excluded}


def _order_ids(order: ShareOrder) -> tuple[dict[str, dict[str, None]], set[str]]:
    """Each subject's order ids in request order, without repeats, and the subjects with a
    record that names no order (one pass over records)."""
    ids: dict[str, dict[str, None]] = {}
    outside: set[str] = set()
    for r in order.records:
        if r.order_id:
            ids.setdefault(r.subject_id, {})[r.order_id] = None
        else:
            outside.add(r.subject_id)
    return ids, outside


#: The facts of a subject the registry does not know (none).
_UNREGISTERED = SubjectFacts(subject_id="")


def _subject_input(
    ref: str,
    facts: SubjectFacts | None,
    order_ids: Collection[str],
    *,
    all_in_orders: bool,
    today: date,
    consent_scope: tuple[str, str],
) -> dict[str, Any]:
    registered = facts is not None
    if facts is None:
        facts = _UNREGISTERED
    orders: list[dict[str, Any]] = []
    if order_ids:
        known = {o.order_id: o for o in facts.orders}
        orders = [
            {
                "id": oid,
                "merchant": known[oid].merchant_id if oid in known else "",
                "fulfilment": list(known[oid].fulfilment_ids) if oid in known else [],
                "cross_border": known[oid].cross_border if oid in known else False,
            }
            for oid in order_ids
        ]
    return {
        "ref": ref,
        "registered": registered,
        "age": age_in_years(facts.birth_date, today) if facts.birth_date else None,
        "ad_opt_out": facts.ad_opt_out,
        "consent_withdrawn": facts.consent_withdrawn,
        "account_deleted": facts.account_deleted,
        "all_records_in_orders": all_in_orders and bool(orders),
        "orders": orders,
        "consents": [
            {
                "id": c.consent_id,
                "recipient": c.recipient_id,
                "purpose": c.purpose,
                "scope": str(c.scope),
                "categories": list(c.categories),
                "all_categories": c.all_categories,
                "given_by": str(c.given_by),
            }
            for c in facts.consents
            if (c.recipient_id, c.purpose) == consent_scope
        ],
        "withdrawals": [
            {
                "recipient": w.recipient_id,
                "purpose": w.purpose,
                "categories": list(w.categories),
                "all_categories": w.all_categories,
            }
            for w in facts.withdrawals
        ],
    }


def _legal_request_input(request_id: str, legal: LegalRequestFacts | None) -> dict[str, Any]:
    """R8/R10 input: the named registered request's facts (``null`` for an unknown id);
    nothing when the order names none. See policies_rego/CONTRACT.md, "Legal requests"."""
    if not request_id:
        return {}
    if legal is None:
        return {"legal_request": None}
    r = legal.request
    return {
        "legal_request": {
            "id": r.id,
            "kind": r.kind,
            "basis": r.basis,
            "authority_kind": r.authority_kind,
            "reference": r.reference,
            "exemption_code": r.exemption_code,
            "recipient": r.recipient_id,
            "all_subjects": r.all_subjects,
            "categories": list(r.categories),
            "valid_from": r.valid_from,
            "valid_until": r.valid_until,
            "revoked": r.revoked,
        }
    }


def _quasi_identifiers(
    order: ShareOrder, schema: Mapping[str, str], refs: Mapping[str, str]
) -> list[dict[str, Any]]:
    """R16 input: per record, the subject's batch ref and keyed digests of its field values,
    for DE_IDENTIFIED shares only (k counts subjects, not records).

    The key is random per request: digests only need to be comparable within one batch, and
    nothing outside the gateway can link them to values.
    """
    if order.legal_basis != "DE_IDENTIFIED":
        return []
    key = os.urandom(32)
    return [
        {
            "ref": refs[r.subject_id],
            "values": {schema[name]: quasi_digest(key, value) for name, value in r.fields.items()},
        }
        for r in order.records
    ]
