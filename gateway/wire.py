"""Validated parsers for values that arrive in requests: cursors, timestamps, enum numbers.

Every service parses these through here, so each kind of value has one parser and every bad
value is ``InvalidRequestError`` (INVALID_ARGUMENT) with a stable reason, never a ``ValueError``
or ``OverflowError`` deep in a library (INTERNAL). Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import InvalidRequestError

#: Indexes and sequence numbers are SQL BIGINTs.
MAX_INDEX = 2**63 - 1
#: ``google.protobuf.Timestamp``'s documented range: 0001-01-01T00:00:00Z to
#: 9999-12-31T23:59:59.999999999Z, nanos in [0, 999,999,999].
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999


def parse_index(text: str, *, field: str, reason: str) -> int | None:
    """A decimal cursor this gateway issued (a ledger index, an outbox sequence number).

    Returns:
        The number, or ``None`` for an empty string (start from the beginning).

    Raises:
        InvalidRequestError: anything but 1-19 ASCII digits up to ``MAX_INDEX`` (``"²"`` is
            a digit to ``str.isdigit`` but not to ``int``).
    """
    if not text:
        return None
    if not (text.isascii() and text.isdecimal() and len(text) <= 19) or int(text) > MAX_INDEX:
        raise InvalidRequestError(f"{field} is not a cursor this gateway issued", reason=reason)
    return int(text)


def parse_timestamp(ts: Timestamp, *, field: str) -> datetime:
    """An aware UTC datetime from a ``Timestamp`` inside its documented range.

    Raises:
        InvalidRequestError: seconds before year 1 or after 9999, or nanos outside
            [0, 999,999,999] (reason ``request.bad_timestamp``).
    """
    if not (
        MIN_TIMESTAMP_SECONDS <= ts.seconds <= MAX_TIMESTAMP_SECONDS and 0 <= ts.nanos <= MAX_NANOS
    ):
        raise InvalidRequestError(
            f"{field} is outside 0001-01-01..9999-12-31 or has nanos outside 0..999999999",
            reason="request.bad_timestamp",
        )
    return ts.ToDatetime(tzinfo=UTC)


def enum_name(enum: EnumDescriptor, value: int, *, prefix: str, field: str) -> str:
    """The bare name of an enum value (``ACTION_SHARE`` -> ``SHARE``); ``""`` if unspecified.

    Args:
        enum: The enum's descriptor (``share_pb2.Action.DESCRIPTOR``).

    Raises:
        InvalidRequestError: a number the enum does not define (proto3 enums are open on the
            wire; reason ``request.bad_enum``).
    """
    known = enum.values_by_number.get(value)
    if known is None:
        raise InvalidRequestError(
            f"{field} is not a known value ({value})", reason="request.bad_enum"
        )
    name = known.name
    return "" if name.endswith("_UNSPECIFIED") else name.removeprefix(prefix)
