"""Ledger entries: the disclosure the gateway reports, and its canonical stored encoding.

Encoding, version 2 (``ENTRY_VERSION``; version 1 entries still decode): UTF-8 JSON with
keys sorted, no insignificant whitespace (``separators=(",", ":")``), non-ASCII characters
kept as UTF-8 (no ``\\u`` escapes), integers in decimal, byte strings as lowercase hex, the
time as RFC 3339 UTC with exactly six fraction digits and a ``Z`` suffix, and ``"v": 2``.
Tuples are JSON arrays; the subject pseudonym arrays are sorted and free of duplicates.
``decode_entry`` accepts only the exact bytes ``encode_entry`` would produce, so one entry
has exactly one encoding and thus one leaf hash. A future version adds fields under a new
``v``; decoders reject unknown versions.

Version 2 adds what an auditor needs to answer §三 and §八 of the privacy policy: the
agreement (``agreement_id``, ``agreement_version``) the share relied on, the ids of the
subjects' consents in scope (``consent_ids``, sorted, no repeats), the ``destination_region``
and the cross-border exceptions of §七 used (``cross_border_exceptions``: ``law``,
``consent``, ``transaction``; empty when the data stayed in China), R12. Version 1 entries
have none of these keys and decode with them empty. In both versions ``legal_request_id``
(R10) is an optional key, encoded only when non-empty; ``decision_id`` (the OPA server's id
of the decision, issue 15) is one in version 2 only, so version-1 entries keep their bytes.

The entry carries its own log ``index``, so a stored entry moved to another position (a swap)
is detected by reading it alone. No subject id is ever encoded: only pseudonyms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.errors import InvalidArgumentError, LedgerCorruptionError

ENTRY_VERSION = 2
DECISIONS = frozenset({"ALLOW", "DENY"})
# "evaluate": a decision without disclosure (R18); "registry": a registry change the
# decisions rest on (a legal request registered or revoked, R10).
MODES = frozenset({"", "share", "stage", "pull", "refused_call", "evaluate", "registry"})
#: Longest text (characters) in any string field, list item or subject id a disclosure may
#: carry (issue 14.5): an entry is small whatever a caller sends, so reading it back never
#: exceeds a message limit. The gateway's request limits are tighter and name the request
#: field; this is the ledger's own guard.
MAX_TEXT_CHARS = 256


@dataclass(frozen=True, kw_only=True, slots=True)
class Disclosure:
    """One disclosure decision as the gateway reports it; subject ids are still in clear.

    The ledger pseudonymizes ``subject_ids`` and ``excluded_subject_ids`` before anything is
    stored. Only ``time`` and ``decision`` are required so a refused call is easy to log.
    """

    time: datetime
    decision: str
    request_id: str = ""
    rpc: str = ""
    caller: str = ""
    caller_role: str = ""
    partner_id: str = ""
    purpose: str = ""
    action: str = ""
    mode: str = ""
    legal_basis: str = ""
    legal_reference: str = ""
    exemption_code: str = ""
    legal_request_id: str = ""
    reason_codes: tuple[str, ...] = ()
    policy_revision: str = ""
    decision_id: str = ""
    record_type: str = ""
    categories_disclosed: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    record_count: int = 0
    subject_ids: tuple[str, ...] = ()
    excluded_subject_ids: tuple[str, ...] = ()
    payload_digest: bytes = b""
    pseudonym_key_id: str = ""
    agreement_id: str = ""
    agreement_version: str = ""
    consent_ids: tuple[str, ...] = ()
    destination_region: str = ""
    cross_border_exceptions: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """A decoded ledger entry: a ``Disclosure`` with subjects as pseudonyms."""

    index: int
    time: datetime
    decision: str
    request_id: str = ""
    rpc: str = ""
    caller: str = ""
    caller_role: str = ""
    partner_id: str = ""
    purpose: str = ""
    action: str = ""
    mode: str = ""
    legal_basis: str = ""
    legal_reference: str = ""
    exemption_code: str = ""
    legal_request_id: str = ""
    reason_codes: tuple[str, ...] = ()
    policy_revision: str = ""
    decision_id: str = ""
    record_type: str = ""
    categories_disclosed: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    record_count: int = 0
    subject_count: int = 0
    excluded_count: int = 0
    subjects: tuple[str, ...] = field(default=())
    excluded_subjects: tuple[str, ...] = field(default=())
    payload_digest: bytes = b""
    pseudonym_key_id: str = ""
    subject_key_id: str = ""
    agreement_id: str = ""
    agreement_version: str = ""
    consent_ids: tuple[str, ...] = ()
    destination_region: str = ""
    cross_border_exceptions: tuple[str, ...] = ()
    version: int = ENTRY_VERSION


_STR_FIELDS = (
    "request_id",
    "rpc",
    "caller",
    "caller_role",
    "partner_id",
    "purpose",
    "action",
    "mode",
    "legal_basis",
    "legal_reference",
    "exemption_code",
    "decision",
    "policy_revision",
    "record_type",
    "pseudonym_key_id",
)
# Optional text fields: encoded only when non-empty, so entries without them keep the exact
# version-1 bytes (and leaf hashes) they had before the field existed.
_OPTIONAL_STR_FIELDS = ("legal_request_id",)
_TUPLE_FIELDS = ("reason_codes", "categories_disclosed", "categories_removed")
#: Added in version 2 (§三, §八, R12).
_V2_STR_FIELDS = ("agreement_id", "agreement_version", "destination_region")
_V2_TUPLE_FIELDS = ("consent_ids", "cross_border_exceptions")
#: Optional in version 2 only (issue 15): OPA's decision id, so OPA's decision log and the
#: ledger join. Encoded only when non-empty; a version-1 entry never has it.
_V2_OPTIONAL_STR_FIELDS = ("decision_id",)
_ALL_STR_FIELDS = (*_STR_FIELDS, *_OPTIONAL_STR_FIELDS, *_V2_STR_FIELDS, *_V2_OPTIONAL_STR_FIELDS)
_LIST_FIELDS = (*_TUPLE_FIELDS, *_V2_TUPLE_FIELDS, "subject_ids", "excluded_subject_ids")
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_time(t: datetime) -> str:
    """Render an aware datetime as RFC 3339 UTC with microseconds (``...T12:00:00.000000Z``)."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _parse_time(s: str) -> datetime:
    # Exactness is enforced by the re-encoding check in decode_entry.
    if not s.endswith("Z"):
        raise ValueError("time must end with Z")
    return datetime.fromisoformat(s[:-1]).replace(tzinfo=UTC)


def time_micros(t: datetime) -> int:
    """Return microseconds since the Unix epoch of an aware datetime (exact, no float)."""
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _check_text(name: str, values: list[object]) -> None:
    for v in values:
        if type(v) is not str:
            raise InvalidArgumentError(f"disclosure.{name} must be text")
    try:
        "".join(values).encode("utf-8")  # type: ignore[arg-type]
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(f"disclosure.{name} is not valid Unicode text") from e


def validate_disclosure(d: Disclosure) -> None:
    """Check a disclosure before it is queued, so one bad input cannot fail a whole batch.

    Raises:
        InvalidArgumentError: naming the first bad field (never its value).
    """
    if not isinstance(d, Disclosure):
        raise InvalidArgumentError("append takes Disclosure objects")
    if not isinstance(d.time, datetime) or d.time.tzinfo is None:
        raise InvalidArgumentError("disclosure.time must be a timezone-aware datetime")
    if d.decision not in DECISIONS:
        raise InvalidArgumentError("disclosure.decision must be ALLOW or DENY")
    if d.mode not in MODES:
        raise InvalidArgumentError(f"disclosure.mode must be one of {sorted(MODES - {''})}")
    # One pass over all text (checked per field only when the pass fails): this runs in
    # every caller's thread, so it is kept cheap.
    texts: list[object] = [getattr(d, name) for name in _ALL_STR_FIELDS]
    for name in _LIST_FIELDS:
        values = getattr(d, name)
        if type(values) is not tuple:
            raise InvalidArgumentError(f"disclosure.{name} must be a tuple")
        texts.extend(values)
    try:
        _check_text("text", texts)
    except InvalidArgumentError:
        for name in _ALL_STR_FIELDS:
            _check_text(name, [getattr(d, name)])
        for name in _LIST_FIELDS:
            _check_text(name, list(getattr(d, name)))
        raise
    if max(map(len, texts), default=0) > MAX_TEXT_CHARS:  # type: ignore[arg-type]
        for name in (*_ALL_STR_FIELDS, *_LIST_FIELDS):
            value = getattr(d, name)
            if any(len(v) > MAX_TEXT_CHARS for v in (value if type(value) is tuple else [value])):
                raise InvalidArgumentError(
                    f"disclosure.{name} is longer than {MAX_TEXT_CHARS} characters",
                    reason="ledger.text_length",
                )
    if not isinstance(d.record_count, int) or isinstance(d.record_count, bool):
        raise InvalidArgumentError("disclosure.record_count must be an int")
    if d.record_count < 0:
        raise InvalidArgumentError("disclosure.record_count must be >= 0")
    if not isinstance(d.payload_digest, bytes) or len(d.payload_digest) not in (0, 32):
        raise InvalidArgumentError("disclosure.payload_digest must be 32 bytes or empty")


def entry_from_disclosure(
    d: Disclosure,
    *,
    index: int,
    subjects: tuple[str, ...],
    excluded_subjects: tuple[str, ...],
    subject_key_id: str,
) -> Entry:
    """Build the entry stored for ``d`` at ``index`` with already-computed pseudonyms.

    Pseudonym lists are deduplicated and sorted (so input order leaks nothing); the counts
    are those of distinct subjects.
    """
    disclosed = tuple(sorted(set(subjects)))
    excluded = tuple(sorted(set(excluded_subjects)))
    return Entry(
        index=index,
        time=d.time,
        decision=d.decision,
        request_id=d.request_id,
        rpc=d.rpc,
        caller=d.caller,
        caller_role=d.caller_role,
        partner_id=d.partner_id,
        purpose=d.purpose,
        action=d.action,
        mode=d.mode,
        legal_basis=d.legal_basis,
        legal_reference=d.legal_reference,
        exemption_code=d.exemption_code,
        legal_request_id=d.legal_request_id,
        reason_codes=d.reason_codes,
        policy_revision=d.policy_revision,
        decision_id=d.decision_id,
        record_type=d.record_type,
        categories_disclosed=d.categories_disclosed,
        categories_removed=d.categories_removed,
        record_count=d.record_count,
        subject_count=len(disclosed),
        excluded_count=len(excluded),
        subjects=disclosed,
        excluded_subjects=excluded,
        payload_digest=d.payload_digest,
        pseudonym_key_id=d.pseudonym_key_id,
        subject_key_id=subject_key_id,
        agreement_id=d.agreement_id,
        agreement_version=d.agreement_version,
        consent_ids=d.consent_ids,
        destination_region=d.destination_region,
        cross_border_exceptions=d.cross_border_exceptions,
    )


def _to_json_obj(e: Entry) -> dict[str, Any]:
    obj: dict[str, Any] = {name: getattr(e, name) for name in _STR_FIELDS}
    obj.update((name, v) for name in _OPTIONAL_STR_FIELDS if (v := getattr(e, name)))
    for name in _TUPLE_FIELDS:
        obj[name] = list(getattr(e, name))
    obj.update(
        v=e.version,
        index=e.index,
        time=format_time(e.time),
        record_count=e.record_count,
        subject_count=e.subject_count,
        excluded_count=e.excluded_count,
        subjects=list(e.subjects),
        excluded_subjects=list(e.excluded_subjects),
        payload_digest=e.payload_digest.hex(),
        subject_key_id=e.subject_key_id,
    )
    if e.version >= 2:
        obj.update((name, getattr(e, name)) for name in _V2_STR_FIELDS)
        obj.update((name, list(getattr(e, name))) for name in _V2_TUPLE_FIELDS)
        obj.update((name, v) for name in _V2_OPTIONAL_STR_FIELDS if (v := getattr(e, name)))
    return obj


def encode_entry(e: Entry) -> bytes:
    """Return the canonical encoding of ``e`` in its version (the leaf data)."""
    return _ENCODER.encode(_to_json_obj(e)).encode("utf-8")


_KEYS_V1 = frozenset(
    (
        *_STR_FIELDS,
        *_TUPLE_FIELDS,
        "v",
        "index",
        "time",
        "record_count",
        "subject_count",
        "excluded_count",
        "subjects",
        "excluded_subjects",
        "payload_digest",
        "subject_key_id",
    )
)
#: The exact key set of each version's encoding.
_KEYS_BY_VERSION = {1: _KEYS_V1, 2: _KEYS_V1 | {*_V2_STR_FIELDS, *_V2_TUPLE_FIELDS}}
_KEYS = _KEYS_BY_VERSION[ENTRY_VERSION]


def decode_entry(data: bytes) -> Entry:
    """Decode canonical entry bytes.

    Raises:
        LedgerCorruptionError: the bytes are not the canonical encoding of a known version.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
        version = obj.get("v") if isinstance(obj, dict) else None
        if type(version) is not int or version not in _KEYS_BY_VERSION:
            raise ValueError("unknown entry version")
        optional = {*_OPTIONAL_STR_FIELDS, *(_V2_OPTIONAL_STR_FIELDS if version >= 2 else ())}
        if set(obj) - optional != _KEYS_BY_VERSION[version]:
            raise ValueError("unexpected or missing entry fields")
        kwargs: dict[str, Any] = {name: obj[name] for name in _STR_FIELDS}
        kwargs.update((name, obj[name]) for name in optional if name in obj)
        for name in (*_TUPLE_FIELDS, "subjects", "excluded_subjects"):
            kwargs[name] = tuple(obj[name])
        if version >= 2:
            kwargs.update((name, obj[name]) for name in _V2_STR_FIELDS)
            kwargs.update((name, tuple(obj[name])) for name in _V2_TUPLE_FIELDS)
        entry = Entry(
            version=version,
            index=obj["index"],
            time=_parse_time(obj["time"]),
            record_count=obj["record_count"],
            subject_count=obj["subject_count"],
            excluded_count=obj["excluded_count"],
            payload_digest=bytes.fromhex(obj["payload_digest"]),
            subject_key_id=obj["subject_key_id"],
            **kwargs,
        )
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
        raise LedgerCorruptionError(f"entry does not decode: {e}") from e
    if encode_entry(entry) != data:
        raise LedgerCorruptionError("entry bytes are not in canonical form")
    return entry


# -- fast path: encoding split around what only the writer knows ------------------------

_ORDER = tuple(sorted(_KEYS))
#: Filled in by the writer: pseudonyms need the salts read under the writer lock, and the
#: index is assigned there. Everything else is encoded by the caller's thread beforehand.
TEMPLATE_HOLES = ("excluded_subjects", "index", "subjects")
_enc_str = json.encoder.encode_basestring  # what JSONEncoder(ensure_ascii=False) uses


def _enc_list(values: tuple[str, ...]) -> str:
    return "[" + ",".join(map(_enc_str, values)) + "]"


def entry_template(d: Disclosure, *, subject_key_id: str) -> tuple[str, str, str, str]:
    """The canonical encoding of ``d``'s entry cut at ``TEMPLATE_HOLES``, for ``fill_template``.

    ``fill_template(entry_template(d, ...), index=i, subjects=s, excluded_subjects=x)`` equals
    ``encode_entry(entry_from_disclosure(d, index=i, subjects=s, excluded_subjects=x, ...))``
    whenever ``s``/``x`` are the pseudonyms of ``d.subject_ids``/``d.excluded_subject_ids``
    (distinct ids have distinct pseudonyms, so the counts are those of distinct ids). Pure.
    """
    vals = {name: _enc_str(getattr(d, name)) for name in (*_STR_FIELDS, *_V2_STR_FIELDS)}
    if d.legal_request_id:
        # The optional key sorts right after legal_reference (asserted below _SEGMENTS).
        vals["legal_reference"] += ',"legal_request_id":' + _enc_str(d.legal_request_id)
    if d.decision_id:  # likewise right after decision (version 2 only; this writes v2)
        vals["decision"] += ',"decision_id":' + _enc_str(d.decision_id)
    for name in (*_TUPLE_FIELDS, *_V2_TUPLE_FIELDS):
        vals[name] = _enc_list(getattr(d, name))
    vals["v"] = str(ENTRY_VERSION)
    vals["time"] = _enc_str(format_time(d.time))
    vals["record_count"] = str(int(d.record_count))
    vals["subject_count"] = str(len(set(d.subject_ids)))
    vals["excluded_count"] = str(len(set(d.excluded_subject_ids)))
    vals["payload_digest"] = '"' + d.payload_digest.hex() + '"'
    vals["subject_key_id"] = _enc_str(subject_key_id)
    p0, p1, p2, p3 = (seg % vals for seg in _SEGMENTS)
    return p0, p1, p2, p3


def _segments() -> tuple[str, ...]:
    """``%``-format strings of the four pieces around ``TEMPLATE_HOLES`` (keys in order)."""
    parts: list[str] = []
    buf = "{"
    for i, key in enumerate(_ORDER):
        buf += ("," if i else "") + _enc_str(key) + ":"
        if key in TEMPLATE_HOLES:
            parts.append(buf)
            buf = ""
        else:
            buf += f"%({key})s"
    parts.append(buf + "}")
    return tuple(parts)


_SEGMENTS = _segments()
_ALL_KEYS = sorted((*_KEYS, *_OPTIONAL_STR_FIELDS, *_V2_OPTIONAL_STR_FIELDS))
assert _ALL_KEYS[_ALL_KEYS.index("legal_reference") + 1] == "legal_request_id"
assert _ALL_KEYS[_ALL_KEYS.index("decision") + 1] == "decision_id"


def fill_template(
    template: tuple[str, str, str, str],
    *,
    index: int,
    subjects: tuple[str, ...] | set[str],
    excluded_subjects: tuple[str, ...] | set[str],
) -> bytes:
    """Complete a template with the index and the pseudonym lists (sorted, deduplicated)."""
    p0, p1, p2, p3 = template
    return (
        p0
        + _enc_list(tuple(sorted(set(excluded_subjects))))
        + p1
        + str(index)
        + p2
        + _enc_list(tuple(sorted(set(subjects))))
        + p3
    ).encode("utf-8")
