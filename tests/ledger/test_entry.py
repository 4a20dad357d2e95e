"""Canonical entry encoding and disclosure validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Disclosure
from ledger.entry import (
    decode_entry,
    encode_entry,
    entry_from_disclosure,
    validate_disclosure,
)
from ledger.errors import InvalidArgumentError, LedgerCorruptionError


def _entry(d: Disclosure, index: int = 7) -> bytes:
    return encode_entry(
        entry_from_disclosure(
            d, index=index, subjects=("bb", "aa", "bb"), excluded_subjects=(), subject_key_id="k"
        )
    )


def test_encoding_is_sorted_compact_json_with_version(
    disclosure: Callable[..., Disclosure],
) -> None:
    """The encoding is compact JSON with sorted keys, v=2, hex digest and a Z timestamp."""
    data = _entry(disclosure(1))
    assert data.startswith(b'{"action":"SHARE",')
    assert b'"v":2}' in data and b" " not in data.replace(b"fraud-prevention", b"")
    assert b'"time":"2025-01-01T12:00:01.000001Z"' in data
    assert b'"subjects":["aa","bb"]' in data and b'"subject_count":2' in data


def test_roundtrip_is_exact(disclosure: Callable[..., Disclosure]) -> None:
    """Decoding then re-encoding yields the same bytes and the same index."""
    data = _entry(disclosure(3), index=42)
    e = decode_entry(data)
    assert e.index == 42 and e.partner_id == "partner-a" and encode_entry(e) == data


def test_time_zone_does_not_change_the_encoding(disclosure: Callable[..., Disclosure]) -> None:
    """The same instant in another zone encodes identically (UTC)."""
    d = disclosure(0)
    other = replace(d, time=d.time.astimezone(timezone(timedelta(hours=8))))
    assert _entry(d) == _entry(other)


def test_non_canonical_bytes_are_rejected(disclosure: Callable[..., Disclosure]) -> None:
    """Whitespace, reordered keys or an unknown version make decoding fail."""
    data = _entry(disclosure(0))
    for bad in (
        data.replace(b",", b", ", 1),
        data.replace(b'"v":2', b'"v":3'),
        data.replace(b'"v":2', b'"v":1'),  # a version-1 entry has no version-2 keys
        b'{"v":1}',
        b"\xff",
    ):
        with pytest.raises(LedgerCorruptionError):
            decode_entry(bad)


@given(
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=4),
    st.integers(0, 10**6),
    st.datetimes(timezones=st.just(UTC)),
)
@settings(max_examples=100, deadline=None)
def test_any_disclosure_roundtrips(
    partner: str, codes: list[str], count: int, when: datetime
) -> None:
    """Arbitrary Unicode text, lists, counts and times roundtrip exactly."""
    try:
        d = Disclosure(
            time=when,
            decision="DENY",
            partner_id=partner,
            reason_codes=tuple(codes),
            record_count=count,
        )
        validate_disclosure(d)
    except InvalidArgumentError:
        return  # lone surrogates are refused up front
    data = _entry(d)
    assert encode_entry(decode_entry(data)) == data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", datetime(2025, 1, 1)),
        ("decision", "MAYBE"),
        ("mode", "steal"),
        ("payload_digest", b"short"),
        ("record_count", -1),
        ("subject_ids", ["list-not-tuple"]),
        ("partner_id", "\ud800"),
        ("categories_disclosed", (1,)),
    ],
)
def test_malformed_disclosure_is_refused_naming_the_field(
    disclosure: Callable[..., Disclosure], field: str, value: object
) -> None:
    """Each malformed field is refused with InvalidArgumentError naming it."""
    with pytest.raises(InvalidArgumentError, match=field.split("_")[0]):
        validate_disclosure(disclosure(0, **{field: value}))


def test_minimal_refused_call_is_valid() -> None:
    """Only time and decision are needed to log a refused call."""
    validate_disclosure(Disclosure(time=datetime.now(UTC), decision="DENY", mode="refused_call"))


#: A version-1 entry exactly as a gateway before entry version 2 wrote it.
V1_ENTRY = (
    b'{"action":"SHARE","caller":"svc:checkout","caller_role":"service",'
    b'"categories_disclosed":["user.name"],"categories_removed":[],"decision":"ALLOW",'
    b'"excluded_count":0,"excluded_subjects":[],"exemption_code":"","index":3,'
    b'"legal_basis":"AUTHORIZED_PARTNER","legal_reference":"","mode":"share",'
    b'"partner_id":"logiship","payload_digest":"","policy_revision":"abc",'
    b'"pseudonym_key_id":"k1","purpose":"delivery","reason_codes":[],"record_count":1,'
    b'"record_type":"delivery_order","request_id":"r1","rpc":"/Share","subject_count":1,'
    b'"subject_key_id":"s1","subjects":["aa"],"time":"2025-01-01T12:00:00.000000Z","v":1}'
)


def test_version_1_entries_still_decode_exactly() -> None:
    """An entry written before version 2 decodes with the new fields empty and re-encodes
    to the same bytes (same leaf hash)."""
    e = decode_entry(V1_ENTRY)
    assert e.version == 1 and e.index == 3 and e.partner_id == "logiship"
    assert (e.agreement_id, e.consent_ids, e.destination_region) == ("", (), "")
    assert encode_entry(e) == V1_ENTRY


def test_version_2_records_agreement_consents_and_region(
    disclosure: Callable[..., Disclosure],
) -> None:
    """Agreement id and version, consent ids, destination region and the cross-border
    exceptions used are encoded and decoded (§三, §八, R12)."""
    d = replace(
        disclosure(2),
        agreement_id="agr-logiship",
        agreement_version="4",
        consent_ids=("c-1", "c-2"),
        destination_region="SG",
        cross_border_exceptions=("consent", "transaction"),
    )
    data = _entry(d)
    assert b'"agreement_id":"agr-logiship","agreement_version":"4"' in data
    assert b'"consent_ids":["c-1","c-2"]' in data
    assert b'"cross_border_exceptions":["consent","transaction"]' in data
    e = decode_entry(data)
    assert (e.version, e.destination_region, e.consent_ids) == (2, "SG", ("c-1", "c-2"))
    assert encode_entry(e) == data


def test_version_2_records_opa_decision_id_only_when_present(
    disclosure: Callable[..., Disclosure],
) -> None:
    """OPA's decision id is an optional version-2 key: encoded when non-empty, absent
    otherwise (entries without it keep their bytes), and refused in a version-1 entry."""
    plain = _entry(disclosure(2))
    assert b"decision_id" not in plain
    data = _entry(replace(disclosure(2), decision_id="4f1c9c2e-0d7f-4b83-9c1e-6f3d0a1b2c3d"))
    assert b'"decision":"ALLOW","decision_id":"4f1c9c2e-0d7f-4b83-9c1e-6f3d0a1b2c3d"' in data
    e = decode_entry(data)
    assert e.decision_id == "4f1c9c2e-0d7f-4b83-9c1e-6f3d0a1b2c3d"
    assert encode_entry(e) == data
    with pytest.raises(LedgerCorruptionError):
        decode_entry(V1_ENTRY.replace(b'"ALLOW"', b'"ALLOW","decision_id":"x"'))
    with pytest.raises(LedgerCorruptionError):  # an empty one is never written
        decode_entry(data.replace(b"4f1c9c2e-0d7f-4b83-9c1e-6f3d0a1b2c3d", b""))
