"""Identifier detectors (R19): every kind found, ordinary business values never tripped."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.inspection import InfoType, detectors, find_identifiers, identifiers_in_record

FOUND = {
    InfoType.PHONE_NUMBER: [
        "13800131001",
        "call +86 138 0013 1001 after 6",
        "+86-138-0013-1001",
        "010-6552 9988",
        "(0755) 8345 6789",
        "+44 20 7946 0958",
        "+1 (415) 555-2671",
        "0044 20 7946 0958",
    ],
    InfoType.EMAIL_ADDRESS: ["li.wei@example.cn", "tags: coffee,x_y+z@mail.example.com.cn"],
    InfoType.CHINA_RESIDENT_ID_NUMBER: [
        "11010519491231002X",
        "110105 19491231 002x",
        "id 440308199901011234 ok",
    ],
    InfoType.CREDIT_CARD_NUMBER: [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "6222021234567890128",
        "3530111333300000",
    ],
    InfoType.IP_ADDRESS: ["192.168.1.20", "from 8.8.8.8 via", "2001:db8::1", "::1", "fe80::1%eth0"],
}

#: Order numbers, prices, SKU codes, dates, timestamps, tracking numbers, UUIDs and the demo
#: records' ordinary values: none may trip a detector.
ORDINARY = [
    "ORD-2026-000123",
    "20261129000123456",
    "202611290001234567",
    "E20261129000123",
    "¥1,299.00",
    "1299.00",
    "$12.50 x 3",
    "SKU-AB12-3456",
    "SKU-20261129-0042",
    "2026-11-29",
    "2026/11/29",
    "29.11.2026",
    "2026-11-29T12:34:56Z",
    "2026-11-29 12:34:56.123456+08:00",
    "1732871696",
    "1732871696123",
    "SF1234567890123",
    "773123456789012",
    "YT2356789012345",
    "JDVA01234567890",
    "1Z999AA10123456784",
    "550e8400-e29b-41d4-a716-446655440000",
    "outdoor,coffee,running",
    "viewed:trail-shoes",
    "Shanghai@31.2304,121.4737",
    "acct-1001",
    "dev-a1b2c3",
    "1990-04-12",
    "12:34:56",
    "00:1A:2B:3C:4D:5E",
    "v1.2.3",
    "size 42, qty 3, 2 x 1299.00",
    "9787111213823",  # an ISBN-13
]


@pytest.mark.parametrize(
    ("kind", "value"),
    [(k, v) for k, vs in FOUND.items() for v in vs],
    ids=[f"{k}-{i}" for k, vs in FOUND.items() for i in range(len(vs))],
)
def test_each_identifier_kind_is_detected(kind: InfoType, value: str) -> None:
    """Every kind is found in its usual written forms, also inside other text."""
    assert kind in find_identifiers(value)


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_business_values_do_not_trip(value: str) -> None:
    """The false-positive set: no identifier is reported."""
    assert find_identifiers(value) == frozenset()


def test_check_digits_are_verified() -> None:
    """A resident id with a wrong check digit and a card failing Luhn are not identifiers."""
    assert find_identifiers("110105194912310021") == frozenset()
    assert find_identifiers("4111 1111 1111 1112") == frozenset()
    assert find_identifiers("999.1.1.1") == frozenset()


def test_record_inspection_names_fields_and_kinds_only() -> None:
    """identifiers_in_record maps each field with a finding to the kinds found."""
    found = identifiers_in_record(
        {"tags": "coffee 13800131001 li.wei@example.cn", "city": "Shanghai"}
    )
    assert found == {"tags": frozenset({InfoType.PHONE_NUMBER, InfoType.EMAIL_ADDRESS})}


@given(st.text(max_size=300))
def test_detection_is_total(value: str) -> None:
    """Any string is inspected without an exception; only known kinds come back."""
    assert find_identifiers(value) <= set(InfoType)


@given(
    st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=40),
    st.sampled_from(["13800131001", "li.wei@example.cn", "10.0.0.7", "4111111111111111"]),
    st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=40),
)
def test_an_identifier_between_words_is_still_found(before: str, hidden: str, after: str) -> None:
    """Hiding an identifier between words (space separated) does not hide it."""
    assert find_identifiers(f"{before} {hidden} {after}")


@given(st.sampled_from(["+", "00", "00 "]), st.from_regex(r"0[0-9]{6,16}", fullmatch=True))
def test_an_international_number_whose_country_code_starts_with_0_is_no_phone(
    prefix: str, rest: str
) -> None:
    """E.164 has no country code starting with 0: the detector says so without a parse, as
    libphonenumber would (INVALID_COUNTRY_CODE)."""
    text = prefix + rest
    assert InfoType.PHONE_NUMBER not in find_identifiers(text)
    with pytest.raises(phonenumbers.NumberParseException):
        phonenumbers.parse("+" + rest, None)


@given(st.text(max_size=60) | st.from_regex(r"[a-z]{0,4}[-+ ]?[0-9 .()-]{4,24}", fullmatch=True))
def test_the_memo_answers_what_a_fresh_scan_finds(value: str) -> None:
    """A value asked twice gets the kinds an uncached scan finds, both times."""
    assert find_identifiers(value) == detectors._scan(value)
    assert find_identifiers(value) == detectors._scan(value)


@given(
    st.text(max_size=40)
    | st.from_regex(r"[a-z]{0,4}[-+ .]?[0-9 .()-]{4,16}", fullmatch=True)
    | st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", fullmatch=True)
)
def test_a_value_the_prefilter_dismisses_holds_nothing_a_scan_finds(value: str) -> None:
    """A value dismissed without a scan (no "@", no ":", fewer than seven digits, or fewer
    than four with a dot) is one in which a full scan finds nothing either."""
    if "@" not in value and ":" not in value:
        digits = sum(c.isdigit() for c in value)
        if digits < 4 or (digits < 7 and "." not in value):
            assert detectors._scan(value) == frozenset()
            assert find_identifiers(value) == frozenset()


@given(st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True))
def test_a_bare_date_holds_nothing_a_scan_finds(value: str) -> None:
    """A bare ISO date (valid or not), dismissed without a memo look-up, is one in which a
    full scan finds nothing either."""
    assert detectors._scan(value) == frozenset()
    assert find_identifiers(value) == frozenset()


def test_short_ids_are_dismissed_without_a_memo_look_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """An account id with six digits and no dot is dismissed by the prefilter: nothing is
    hashed or kept for it; a seven-digit one is inspected (and kept by its digest)."""
    monkeypatch.setattr(detectors, "_MEMO", {})
    assert find_identifiers("acct-000123") == frozenset()
    assert detectors._MEMO == {}
    assert find_identifiers("acct-0001234") == frozenset()
    assert len(detectors._MEMO) == 1


def test_the_memo_keeps_no_value_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo holds 16-byte keyed digests, never value text, and at most ``MEMO_SIZE``
    of them whatever the number of distinct values."""
    monkeypatch.setattr(detectors, "_MEMO", {})
    monkeypatch.setattr(detectors, "MEMO_SIZE", 100)
    for i in range(1_000):
        find_identifiers(f"+86 138 {i:04d} 1001")
    assert 0 < len(detectors._MEMO) <= 100
    assert all(type(k) is bytes and len(k) == 16 for k in detectors._MEMO)
    assert b"1001" not in b"".join(detectors._MEMO)
