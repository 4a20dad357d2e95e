"""Executing a policy decision's obligations: pure, total functions with no I/O.

The policy decides *which* categories are dropped, pseudonymized or generalized (R4, R5,
§三.(一).5.(1)); this module only carries that out on one record at a time. It keeps no list
of identity fields of its own.

Invariants (tested with Hypothesis):
- no field whose category is dropped survives;
- a pseudonymized value never appears in the output, and the pseudonym is stable per
  (key, category, value) and differs between keys (two partners cannot join their data);
- applying the same obligations to an already-transformed record changes nothing further
  for dropped categories (removal is idempotent).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

#: Category of the record's ``subject_id``; it always leaves as a per-partner pseudonym.
SUBJECT_REF_CATEGORY = "user.account.id"

_AGE_BANDS: tuple[tuple[int, str], ...] = (
    (13, "0-13"),
    (17, "14-17"),
    (24, "18-24"),
    (34, "25-34"),
    (44, "35-44"),
    (54, "45-54"),
    (64, "55-64"),
)


class ObligationSet(Protocol):
    """What to do with each category of one subject's records (``gateway.policy.Obligations``)."""

    @property
    def drop(self) -> frozenset[str]: ...
    @property
    def pseudonymize(self) -> frozenset[str]: ...
    @property
    def generalize(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Transformed:
    """One record after enforcement, plus what happened to its categories."""

    fields: dict[str, str]
    disclosed: frozenset[str]
    removed: frozenset[str]


def pseudonym(key: bytes, category: str, value: str) -> str:
    """Keyed pseudonym of ``value``: HMAC-SHA256(key, category ‖ 0x00 ‖ value), 128 bits, hex.

    The category is part of the MAC input so equal values of different categories do not
    match; the key is per partner so two partners' pseudonyms cannot be joined (R5).
    """
    return _mac(_keyed_prefix(key, category), value)


def _mac(keyed: hmac.HMAC, value: str) -> str:
    h = keyed.copy()
    h.update(value.encode())
    return "ps_" + h.digest()[:16].hex()


@functools.lru_cache(maxsize=1024)
def _keyed_prefix(key: bytes, category: str) -> hmac.HMAC:
    """HMAC-SHA256 under ``key`` that has absorbed ``category ‖ 0x00``: copied per value,
    never updated (the key schedule and the category run once per (key, category))."""
    return hmac.new(key, category.encode() + b"\x00", hashlib.sha256)


def age_in_years(birth_date: str, today: date) -> int | None:
    """Whole years between an ISO ``birth_date`` and ``today``; None if not a valid date."""
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return None
    if born > today:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_band(birth_date: str, today: date) -> str | None:
    """Generalize an ISO birth date to an age band at ``today`` (None if not a date)."""
    age = age_in_years(birth_date, today)
    if age is None:
        return None
    for upper, band in _AGE_BANDS:
        if age <= upper:
            return band
    return "65+"


def city(location: str, _today: date) -> str | None:
    """Generalize a precise location ``City@lat,lng`` to ``City`` (None if it has no city)."""
    name, sep, _coords = location.partition("@")
    name = name.strip()
    return name if sep and name else None


#: Generalizer name (as the policy names it) -> (function, category of the output value).
GENERALIZERS: Mapping[str, tuple[Callable[[str, date], str | None], str]] = {
    "age_band": (age_band, "user.demographic.age_band"),
    "city": (city, "user.location.city"),
}


_KEEP, _DROP, _PSEUDONYMIZE, _GENERALIZE = range(4)


#: Field-name sequences compiled per plan (records of one share mostly have one); past
#: this, further sequences are compiled per record and not kept (an order with endless
#: field subsets cannot grow a plan).
MAX_LAYOUTS = 256


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """A plan's steps for records with one sequence of field names, and the categories that
    sequence discloses and removes whatever the values are.

    ``ops`` holds, in field order, ``(op, name, arg, out)`` for each field that is not
    dropped: keep; pseudonymize (``arg``: the key's HMAC state); generalize (``arg``: the
    function, ``out``: output field and category, disclosed only when it gives a value).
    """

    ops: tuple[tuple[int, str, Any, Any], ...]
    disclosed: frozenset[str]
    removed: frozenset[str]

    def apply(
        self, fields: Mapping[str, str], *, today: date, disclosed: set[str]
    ) -> dict[str, str]:
        """The record's disclosed fields; adds to ``disclosed`` the output category of each
        generalization that gave a value (``self.disclosed`` holds the rest)."""
        out: dict[str, str] = {}
        for op, name, arg, o in self.ops:
            if op == _KEEP:
                out[name] = fields[name]
            elif op == _PSEUDONYMIZE:
                out[name] = _mac(arg, fields[name])
            else:
                general = arg(fields[name], today)
                if general is not None:  # a value the generalizer cannot handle is removed
                    out[o[0]] = general
                    disclosed.add(o[1])
        return out


@dataclass(frozen=True, slots=True)
class EnforcementPlan:
    """What enforcement does to each field of a record type under one set of obligations
    and one recipient key, decided once (``plan``) instead of per field of every record.

    ``steps`` maps a field name to ``(op, category, …)``: keep, drop, pseudonymize (with the
    key's HMAC states) or generalize (function, output field, output category).
    ``layouts`` keeps the ``RecordLayout`` of each field-name sequence seen (``layout``).
    """

    steps: Mapping[str, tuple[Any, ...]]
    layouts: dict[tuple[str, ...], RecordLayout] = field(
        default_factory=dict, compare=False, repr=False
    )

    def layout(self, names: tuple[str, ...]) -> RecordLayout:
        """The layout for records whose fields are ``names``, in that order.

        Raises:
            KeyError: a field name the schema does not have.
        """
        found = self.layouts.get(names)
        if found is None:
            found = _layout(self.steps, names)
            if len(self.layouts) < MAX_LAYOUTS:
                self.layouts[names] = found
        return found


def _layout(steps: Mapping[str, tuple[Any, ...]], names: tuple[str, ...]) -> RecordLayout:
    ops: list[tuple[int, str, Any, Any]] = []
    disclosed: set[str] = set()
    removed: set[str] = set()
    for name in names:
        step = steps[name]
        op = step[0]
        if op == _KEEP:
            ops.append((_KEEP, name, None, None))
            disclosed.add(step[1])
        elif op == _PSEUDONYMIZE:
            ops.append((_PSEUDONYMIZE, name, step[2], None))
            disclosed.add(step[1])
        elif op == _DROP:
            removed.add(step[1])
        else:
            removed.add(step[1])
            ops.append((_GENERALIZE, name, step[2], (step[3], step[4])))
    return RecordLayout(ops=tuple(ops), disclosed=frozenset(disclosed), removed=frozenset(removed))


def plan(schema: Mapping[str, str], obligations: ObligationSet, *, key: bytes) -> EnforcementPlan:
    """The plan for ``schema`` under ``obligations`` and ``key``, compiled once per distinct
    combination (a bounded cache; the arguments' contents are the cache key). Pure."""
    return _plan(
        tuple(schema.items()),
        obligations.drop,
        obligations.pseudonymize,
        tuple(obligations.generalize.items()),
        key,
    )


@functools.lru_cache(maxsize=512)
def _plan(
    schema: tuple[tuple[str, str], ...],
    drop: frozenset[str],
    pseudonymize: frozenset[str],
    generalize: tuple[tuple[str, str], ...],
    key: bytes,
) -> EnforcementPlan:
    general = dict(generalize)
    steps: dict[str, tuple[Any, ...]] = {}
    for name, category in schema:
        # Removal wins over every other obligation; an unknown generalizer removes.
        if category in drop:
            steps[name] = (_DROP, category)
        elif category in general:
            generalizer = GENERALIZERS.get(general[category])
            steps[name] = (
                (_DROP, category)
                if generalizer is None
                else (_GENERALIZE, category, generalizer[0], general[category], generalizer[1])
            )
        elif category in pseudonymize:
            steps[name] = (_PSEUDONYMIZE, category, _keyed_prefix(key, category))
        else:
            steps[name] = (_KEEP, category)
    return EnforcementPlan(steps=steps)


def apply_plan(p: EnforcementPlan, fields: Mapping[str, str], *, today: date) -> Transformed:
    """Carry out plan ``p`` on one record's ``fields`` (every name in the plan's schema).

    Raises:
        KeyError: a field name the schema does not have.
    """
    layout = p.layout(tuple(fields))
    disclosed = set(layout.disclosed)
    out = layout.apply(fields, today=today, disclosed=disclosed)
    return Transformed(fields=out, disclosed=frozenset(disclosed), removed=layout.removed)


def transform_record(
    fields: Mapping[str, str],
    schema: Mapping[str, str],
    obligations: ObligationSet,
    *,
    key: bytes,
    today: date,
) -> Transformed:
    """Apply ``obligations`` to one record's ``fields``.

    Removal wins over every other obligation; an unknown generalizer or a value a generalizer
    cannot handle removes the field (fail closed). A generalized value is written under the
    generalizer's name (``birth_date`` -> ``age_band``). Same as ``apply_plan(plan(...))``.

    Args:
        fields: field name -> value, every name present in ``schema``.
        schema: field name -> data category.
        obligations: the decision's obligations for this record's subject.
        key: the recipient's pseudonymization key.
        today: reference date for generalizations.
    """
    return apply_plan(plan(schema, obligations, key=key), fields, today=today)


def subject_ref(key: bytes, subject_id: str) -> str:
    """The per-partner reference that replaces a record's subject id in every disclosure."""
    return pseudonym(key, SUBJECT_REF_CATEGORY, subject_id)


def payload_digest(records: Iterable[tuple[str, Mapping[str, str]]]) -> bytes:
    """SHA-256 over the canonical encoding of exactly what is disclosed.

    Canonical encoding: UTF-8 JSON of ``[{"subject": ref, "fields": {...}}, ...]`` in disclosure
    order, keys sorted, no insignificant whitespace. A recipient recomputes it from what it got.
    Written here without ``json.dumps``'s generic pass (same bytes; tested against it).
    """
    enc = _enc_str
    canonical = (
        "["
        + ",".join(
            '{"fields":{'
            + ",".join([enc(k) + ":" + enc(f[k]) for k in sorted(f)])
            + '},"subject":'
            + enc(ref)
            + "}"
            for ref, f in records
        )
        + "]"
    )
    return hashlib.sha256(canonical.encode("utf-8")).digest()


#: JSON string encoding as ``json.dumps(..., ensure_ascii=False)`` writes it.
_enc_str: Callable[[str], str] = json.encoder.encode_basestring


def quasi_digest(key: bytes, value: str) -> str:
    """Keyed digest of a quasi-identifier value for R16 (equal values ⇔ equal digests)."""
    return hmac.digest(key, value.encode(), "sha256")[:8].hex()
