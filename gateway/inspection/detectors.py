"""Detectors for identifiers hidden in field values (R19). Pure functions, no I/O (the
findings of values past the prefilter are memoized by a keyed digest: same results, and no
value is kept).

Kinds are named after Google Sensitive Data Protection infoTypes. A prefilter of C-level
checks (``@`` present, ``:`` present; at least four digits with a dot, seven without;
not a bare ISO date) dismisses most values without a scan; the rest get one compiled scan
per signal, and each candidate is then confirmed by the check that makes it an identifier
rather than a number that merely looks like one:

- ``EMAIL_ADDRESS``: local part, ``@``, a domain with a letter TLD.
- ``PHONE_NUMBER``: ``phonenumbers`` (libphonenumber) says it is a valid number, and it is
  written like one: international (``+`` or ``00``), a CN trunk-prefixed landline (``0``),
  or an 11-digit CN mobile number (``1[3-9]``). Bare digit runs that would only be a CN
  landline without its trunk prefix (dates, timestamps, order numbers) are not phones.
- ``CHINA_RESIDENT_ID_NUMBER``: 18 characters, ISO 7064 MOD 11-2 check digit, a real birth
  date and region code (``stdnum.cn.ric``).
- ``CREDIT_CARD_NUMBER``: 13-19 digits, a card scheme's IIN and length, and the Luhn check.
- ``IP_ADDRESS``: an IPv4 dotted quad or IPv6 address that ``ipaddress`` accepts.

Person names are not detected: without a dictionary of names every capitalised word or
pair of hanzi would be a candidate, and this detector must not trip on ordinary text.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
import secrets

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric


class InfoType(enum.StrEnum):
    """Identifier kinds (Google Sensitive Data Protection infoType names)."""

    PHONE_NUMBER = "PHONE_NUMBER"
    EMAIL_ADDRESS = "EMAIL_ADDRESS"
    CHINA_RESIDENT_ID_NUMBER = "CHINA_RESIDENT_ID_NUMBER"
    CREDIT_CARD_NUMBER = "CREDIT_CARD_NUMBER"
    IP_ADDRESS = "IP_ADDRESS"


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f:.]*::|(?:[0-9A-Fa-f]{1,4}:){7})[0-9A-Fa-f:.]{2,45}(?![\w:])"
)
#: Dotted quads, and digit runs with at most two separators between digits (phone numbers,
#: resident ids, card numbers); a run glued to a letter ("SF1234567890123") or starting with
#: an ISO date ("2026-11-29 ...") is not one.
_NUMERIC = re.compile(
    r"(?P<ipv4>(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]))"
    r"|(?P<number>(?<![\w+])(?!\d{4}-\d\d-\d\d(?!\d))"
    r"(?:\+|00)?\d(?:[ \-().]{0,2}\d){6,22}[Xx]?(?!\w))"
)
_NOT_DIGIT = re.compile(r"[^0-9Xx]")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
#: Four digits: the fewest any numeric identifier has (an IPv4 address "1.2.3.4").
_FOUR_DIGITS = re.compile(r"\d\D*\d\D*\d\D*\d")
#: A bare ISO date, ASCII digits only ("1990-04-12").
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Seven digits: the fewest a numeric identifier without a dot has (``_NUMERIC``'s digit
#: run: one digit and six more), so an id such as "acct-000123" needs no memo look-up.
_SEVEN_DIGITS = re.compile(r"\d\D*\d\D*\d\D*\d\D*\d\D*\d\D*\d")


def find_identifiers(value: str) -> frozenset[InfoType]:
    """The kinds of identifier ``value`` contains (empty for ordinary text). Total: never
    raises on any string."""
    # Prefilter with C-level checks: most values have no "@", no ":" and too few digits to
    # be any identifier, and are done here without a regex scan. Without those, only an
    # IPv4 address (four digits, dots) or a digit run (seven digits at least) can be found.
    if (
        "@" not in value
        and ":" not in value
        and not (_FOUR_DIGITS if "." in value else _SEVEN_DIGITS).search(value)
    ):
        return _NOTHING
    if _ISO_DATE.fullmatch(value):
        # A bare date (a birth date field): no digit run can start inside it (``_NUMERIC``
        # skips a run starting with an ISO date, and the month and day alone are too short).
        return _NOTHING
    # The rest (1-25 µs each: regex scans, check digits, libphonenumber) recur across shares
    # (birth dates, account and device ids, a repeat customer's phone): their findings are
    # kept by a keyed digest of the value, never the value (see ``_memo_key``).
    key = _memo_key(value)
    kinds = _MEMO.get(key)
    if kinds is None:
        kinds = _scan(value)
        if len(_MEMO) >= MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = kinds
    return kinds


#: Findings kept by ``find_identifiers`` (~100 bytes each), emptied when full.
MEMO_SIZE = 65_536
_MEMO: dict[bytes, frozenset[InfoType]] = {}
#: Keyed BLAKE2b-128 with the key block already absorbed (copied per value: ~0.45 µs
#: instead of ~1.1 µs for a keyed hash set up per call).
_MEMO_HASH = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=16)


def _memo_key(value: str) -> bytes:
    """BLAKE2b-128 of ``value`` under a random per-process key: the memo holds no personal
    data, and nothing outside this process can test a guessed value against it."""
    h = _MEMO_HASH.copy()
    h.update(value.encode("utf-8", "surrogatepass"))
    return h.digest()


def _scan(value: str) -> frozenset[InfoType]:
    """``find_identifiers`` without the memo."""
    found: set[InfoType] = set()
    if "@" in value and _EMAIL.search(value):
        found.add(InfoType.EMAIL_ADDRESS)
    if ":" in value and any(_is_ip(m.group()) for m in _IPV6.finditer(value)):
        found.add(InfoType.IP_ADDRESS)
    if _FOUR_DIGITS.search(value):
        for m in _NUMERIC.finditer(value):
            text = m.group()
            if m.lastgroup == "ipv4":
                # Leading zeros ("10.0.0.07") still name an address to a reader; ipaddress
                # rejects them as ambiguous, so they are dropped first.
                if _is_ip(".".join(str(int(octet)) for octet in text.split("."))):
                    found.add(InfoType.IP_ADDRESS)
            else:
                _add_number_kinds(text, found)
    return frozenset(found) if found else _NOTHING


_NOTHING: frozenset[InfoType] = frozenset()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _add_number_kinds(text: str, found: set[InfoType]) -> None:
    """Add the kinds the digit run ``text`` is (resident id, card, phone) to ``found``."""
    digits = _NOT_DIGIT.sub("", text).upper()  # separators and "+" dropped; X kept
    n = len(digits)
    if n == 18 and ric.is_valid(digits):
        found.add(InfoType.CHINA_RESIDENT_ID_NUMBER)
        return
    if 13 <= n <= 19 and digits.isdigit() and _card_scheme_fits(digits) and luhn.is_valid(digits):
        found.add(InfoType.CREDIT_CARD_NUMBER)
    # Written like a phone number: international, trunk-prefixed, or a CN mobile number.
    international = text[0] == "+" or text.startswith("00")
    if (international or digits[0] == "0" or _CN_MOBILE.fullmatch(digits)) and _is_phone(
        text, digits, international=international
    ):
        found.add(InfoType.PHONE_NUMBER)


def _is_phone(text: str, digits: str, *, international: bool) -> bool:
    if international and digits[0 if text[0] == "+" else 2] == "0":
        # E.164: no country code starts with 0, so libphonenumber would refuse it
        # (INVALID_COUNTRY_CODE); said here without its ~50 µs parse ("dev-00000042").
        return False
    try:
        number = phonenumbers.parse(
            "+" + digits[2:] if text.startswith("00") else text, None if international else "CN"
        )
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _card_scheme_fits(d: str) -> bool:
    """IIN ranges and lengths of the card schemes (Visa, Mastercard, Amex, UnionPay, JCB,
    Discover, Diners): a Luhn-valid run of digits outside them is not taken for a card."""
    n, p2, p3, p4 = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p2 in (62, 81) or 3528 <= p4 <= 3589 or p4 == 6011 or p2 == 65 or 644 <= p3 <= 649:
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return n == 14
    return False
