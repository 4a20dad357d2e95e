"""Enforcement: pure functions that execute a decision's obligations."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from gateway.enforcement import (
    GENERALIZERS,
    MAX_LAYOUTS,
    age_band,
    age_in_years,
    apply_plan,
    city,
    payload_digest,
    plan,
    pseudonym,
    subject_ref,
    transform_record,
)

TODAY = date(2026, 11, 29)
SCHEMA = {
    "name": "user.name",
    "phone": "user.contact.phone",
    "account_id": "user.account.id",
    "birth_date": "user.demographic.birth_date",
    "tags": "user.profile.tags",
    "location": "user.location.precise",
}


@dataclass(frozen=True)
class Obl:
    drop: frozenset[str] = frozenset()
    pseudonymize: frozenset[str] = frozenset()
    generalize: Mapping[str, str] = field(default_factory=dict)


AD = Obl(
    drop=frozenset({"user.name", "user.contact.phone"}),
    pseudonymize=frozenset({"user.account.id"}),
    generalize={"user.demographic.birth_date": "age_band", "user.location.precise": "city"},
)
RECORD = {
    "name": "Li Wei",
    "phone": "+86 138 0013 1001",
    "account_id": "acct-1001",
    "birth_date": "1990-04-12",
    "tags": "outdoor,coffee",
    "location": "Shanghai@31.2304,121.4737",
}


def test_ad_obligations_strip_identity_and_generalize() -> None:
    """An ad share keeps tags, age band and city, pseudonymizes the account id, drops the rest."""
    t = transform_record(RECORD, SCHEMA, AD, key=b"k" * 32, today=TODAY)
    assert t.fields == {
        "account_id": pseudonym(b"k" * 32, "user.account.id", "acct-1001"),
        "age_band": "35-44",
        "tags": "outdoor,coffee",
        "city": "Shanghai",
    }
    assert t.removed == {
        "user.name",
        "user.contact.phone",
        "user.demographic.birth_date",
        "user.location.precise",
    }
    assert t.disclosed == {
        "user.account.id",
        "user.demographic.age_band",
        "user.profile.tags",
        "user.location.city",
    }


def test_no_obligations_discloses_the_record_unchanged() -> None:
    """Without obligations every field leaves as it came."""
    t = transform_record(RECORD, SCHEMA, Obl(), key=b"k" * 32, today=TODAY)
    assert t.fields == RECORD
    assert t.removed == frozenset()


def test_removal_wins_over_pseudonymization_and_generalization() -> None:
    """A category both dropped and pseudonymized/generalized is dropped."""
    obl = Obl(
        drop=frozenset({"user.account.id", "user.demographic.birth_date"}),
        pseudonymize=frozenset({"user.account.id"}),
        generalize={"user.demographic.birth_date": "age_band"},
    )
    t = transform_record(RECORD, SCHEMA, obl, key=b"k" * 32, today=TODAY)
    assert "account_id" not in t.fields and "age_band" not in t.fields


def test_unknown_generalizer_removes_the_field() -> None:
    """A generalizer the gateway does not know fails closed: the field is removed."""
    obl = Obl(generalize={"user.demographic.birth_date": "zodiac_sign"})
    t = transform_record(RECORD, SCHEMA, obl, key=b"k" * 32, today=TODAY)
    assert "birth_date" not in t.fields and "zodiac_sign" not in t.fields
    assert "user.demographic.birth_date" in t.removed


def test_age_bands_follow_birthdays() -> None:
    """Age is counted in whole years at today; bands cover children, adults and 65+."""
    assert age_in_years("2012-11-29", TODAY) == 14
    assert age_in_years("2012-11-30", TODAY) == 13
    assert age_band("2012-11-30", TODAY) == "0-13"
    assert age_band("2010-01-01", TODAY) == "14-17"
    assert age_band("1950-01-01", TODAY) == "65+"
    assert age_band("not-a-date", TODAY) is None
    assert age_band("2030-01-01", TODAY) is None


def test_city_needs_a_city_part() -> None:
    """A precise location generalizes to its city; a bare coordinate cannot and is dropped."""
    assert city("Shenzhen@22.5,114.0", TODAY) == "Shenzhen"
    assert city("22.5,114.0", TODAY) is None
    assert city("@22.5,114.0", TODAY) is None


@given(st.text(), st.binary(min_size=16, max_size=64), st.binary(min_size=16, max_size=64))
def test_pseudonyms_are_stable_per_key_and_differ_between_keys(
    value: str, k1: bytes, k2: bytes
) -> None:
    """Same key and value give the same pseudonym; two partners' keys give different ones."""
    assert pseudonym(k1, "user.account.id", value) == pseudonym(k1, "user.account.id", value)
    if k1 != k2:
        assert pseudonym(k1, "user.account.id", value) != pseudonym(k2, "user.account.id", value)
    assert subject_ref(k1, value) == pseudonym(k1, "user.account.id", value)


_fields = st.dictionaries(st.sampled_from(sorted(SCHEMA)), st.text(max_size=20))
_cats = st.frozensets(st.sampled_from(sorted(set(SCHEMA.values()))))


@given(_fields, _cats, _cats)
def test_dropped_categories_never_survive_and_removal_is_idempotent(
    fields: dict[str, str], drop: frozenset[str], pseudo: frozenset[str]
) -> None:
    """No field of a dropped category survives; applying the obligations again changes nothing."""
    obl = Obl(drop=drop, pseudonymize=pseudo - drop)
    once = transform_record(fields, SCHEMA, obl, key=b"k" * 32, today=TODAY)
    assert not any(SCHEMA[n] in drop for n in once.fields)
    for name, value in once.fields.items():
        if SCHEMA[name] in obl.pseudonymize:
            assert value != fields[name] or value.startswith("ps_")
    kept = {n: v for n, v in once.fields.items() if n in SCHEMA}
    again = transform_record(kept, SCHEMA, Obl(drop=drop), key=b"k" * 32, today=TODAY)
    assert again.fields == kept


def test_payload_digest_is_canonical() -> None:
    """The digest ignores key order but not values or record order."""
    a = payload_digest([("r1", {"a": "1", "b": "2"}), ("r2", {"c": "3"})])
    b = payload_digest([("r1", {"b": "2", "a": "1"}), ("r2", {"c": "3"})])
    c = payload_digest([("r2", {"c": "3"}), ("r1", {"a": "1", "b": "2"})])
    assert a == b and a != c and len(a) == 32


def test_pseudonym_is_the_documented_hmac() -> None:
    """A pseudonym is "ps_" + the first 128 bits of HMAC-SHA256(key, category ‖ 0x00 ‖ value),
    so a partner's auditor can recompute it from the key (known answer, computed here
    independently with hashlib)."""
    key = bytes(range(32))
    expected = hmac.new(key, b"user.device.id\x00dev-42", hashlib.sha256).hexdigest()[:32]
    assert pseudonym(key, "user.device.id", "dev-42") == "ps_" + expected
    assert pseudonym(key, "user.account.id", "dev-42") != "ps_" + expected


@given(st.binary(max_size=200), st.text(max_size=40), st.text(max_size=80))
def test_pseudonym_equals_hmac_for_keys_of_any_length(
    key: bytes, category: str, value: str
) -> None:
    """The precomputed HMAC states give ``hmac``'s result for every key length (longer than a
    SHA-256 block: hashed first, RFC 2104)."""
    mac = hmac.new(key, category.encode() + b"\x00" + value.encode(), hashlib.sha256)
    assert pseudonym(key, category, value) == "ps_" + mac.digest()[:16].hex()


def test_a_plan_is_compiled_once_per_schema_obligations_and_key() -> None:
    """Equal schema, obligations and key give the same plan object; another key or other
    obligations another plan (a partner's key never serves another partner)."""
    obl = Obl(drop=frozenset({"user.name"}), pseudonymize=frozenset({"user.account.id"}))
    first = plan(SCHEMA, obl, key=b"k1")
    assert plan(dict(SCHEMA), Obl(obl.drop, obl.pseudonymize), key=b"k1") is first
    assert plan(SCHEMA, obl, key=b"k2") is not first
    assert plan(SCHEMA, Obl(), key=b"k1") is not first
    record = {"name": "Li", "account_id": "a1", "tags": "x"}
    assert apply_plan(first, record, today=TODAY) == transform_record(
        record, SCHEMA, obl, key=b"k1", today=TODAY
    )
    assert apply_plan(plan(SCHEMA, obl, key=b"k2"), record, today=TODAY).fields[
        "account_id"
    ] == pseudonym(b"k2", "user.account.id", "a1")


@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.dictionaries(st.text(max_size=10), st.text())),
        max_size=5,
    )
)
def test_payload_digest_is_sha256_of_the_documented_json(
    records: list[tuple[str, dict[str, str]]],
) -> None:
    """The digest is SHA-256 of ``json.dumps`` with sorted keys, compact separators and
    UTF-8 text, byte for byte, whatever the values hold (quotes, escapes, non-ASCII)."""
    doc = [{"subject": ref, "fields": f} for ref, f in records]
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert payload_digest(records) == hashlib.sha256(canonical.encode("utf-8")).digest()


def _field_by_field(
    fields: Mapping[str, str], schema: Mapping[str, str], obl: Obl, *, key: bytes
) -> tuple[dict[str, str], set[str], set[str]]:
    """The obligations carried out one field at a time, straight from the rules (removal
    wins; an unknown generalizer, or a value it cannot handle, removes): the reference every
    compiled plan and layout must equal, output order included."""
    out: dict[str, str] = {}
    disclosed: set[str] = set()
    removed: set[str] = set()
    for name, value in fields.items():
        category = schema[name]
        if category in obl.drop:
            removed.add(category)
        elif category in obl.generalize:
            removed.add(category)
            generalizer = GENERALIZERS.get(obl.generalize[category])
            general = None if generalizer is None else generalizer[0](value, TODAY)
            if generalizer is not None and general is not None:
                out[obl.generalize[category]] = general
                disclosed.add(generalizer[1])
        elif category in obl.pseudonymize:
            out[name] = pseudonym(key, category, value)
            disclosed.add(category)
        else:
            out[name] = value
            disclosed.add(category)
    return out, disclosed, removed


_CATEGORIES = st.sampled_from(sorted(set(SCHEMA.values())))
_OBLIGATIONS = st.builds(
    Obl,
    drop=st.frozensets(_CATEGORIES),
    pseudonymize=st.frozensets(_CATEGORIES),
    generalize=st.dictionaries(_CATEGORIES, st.sampled_from(["age_band", "city", "blur"])),
)
_VALUES = st.one_of(
    st.text(max_size=20), st.sampled_from(["1990-04-12", "2030-01-01", "Shanghai@31,121", "@1,2"])
)


@given(
    _OBLIGATIONS,
    st.lists(
        st.lists(st.sampled_from(list(SCHEMA)), unique=True).flatmap(
            lambda names: st.fixed_dictionaries({n: _VALUES for n in names})
        ),
        max_size=6,
    ),
)
def test_a_plan_gives_what_the_rules_give_field_by_field(
    obl: Obl, records: list[dict[str, str]]
) -> None:
    """For any obligations and records of any field subset in any order (one plan, its
    layouts reused across them), each record's output, in order, and its disclosed and
    removed categories equal the field-by-field reference."""
    p = plan(SCHEMA, obl, key=b"k" * 32)
    for record in records:
        t = apply_plan(p, record, today=TODAY)
        out, disclosed, removed = _field_by_field(record, SCHEMA, obl, key=b"k" * 32)
        assert (list(t.fields.items()), t.disclosed, t.removed) == (
            list(out.items()),
            disclosed,
            removed,
        )


def test_a_plan_keeps_a_bounded_number_of_layouts() -> None:
    """Records in every one of the 720 orders of six fields each get the reference result,
    and the plan keeps at most ``MAX_LAYOUTS`` field sequences (an order cannot grow it)."""
    p = plan(SCHEMA, AD, key=b"k" * 32)
    for names in itertools.permutations(SCHEMA):
        record = {n: RECORD[n] for n in names}
        t = apply_plan(p, record, today=TODAY)
        out, disclosed, removed = _field_by_field(record, SCHEMA, AD, key=b"k" * 32)
        assert (list(t.fields.items()), t.disclosed, t.removed) == (
            list(out.items()),
            disclosed,
            removed,
        )
    assert len(p.layouts) == MAX_LAYOUTS
