"""Input limits (issue 5.5): pure checks against ``LimitsSettings``.

Each breach raises a ``GatewayError`` whose message names the limit and the counts, never a
value. Quantity limits (message size, records per request or stream) are
``ResourceExhaustedError`` ("send less"); shape limits of one record (fields per record,
field value length) and a missing deadline are ``InvalidRequestError``.

Protocol-agnostic: a "request" is anything with ``records`` whose items have a ``fields``
mapping (``ShareRequest``, ``ShareChunk``); ``ByteSize()`` is used when present.

Text the ledger stores (issue 14.5) is bounded here, where the request is validated, with
``INVALID_ARGUMENT`` naming the field (never its value): every such field has at most
``MAX_TEXT_CHARS`` characters, and a legal reference must be a reference number
(``REFERENCE_FORMAT``), so no name, e-mail address or other free text reaches the ledger.
The ledger checks a larger bound of its own (``ledger.entry.MAX_TEXT_CHARS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.errors import InvalidRequestError, ResourceExhaustedError
from gateway.inspection import find_identifiers
from gateway.settings import LimitsSettings

#: Longest text (characters) accepted in a share's fields that reach the ledger or key its
#: lookups: recipient_id, purpose, record_type, destination_region, the legal basis's
#: reference and exemption_code, and each record's subject_id and order_id.
MAX_TEXT_CHARS = 128
#: A legal basis reference is a reference number ("court order 2026-118", "GB/T 35273-2020
#: 5.6(c)"): a letter or digit, then letters, digits, spaces and ``./:()-_#``; no ``@``.
REFERENCE_FORMAT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./:()\-_#]{0,127}")


class _RecordLike(Protocol):
    @property
    def fields(self) -> Mapping[str, str]: ...

    @property
    def subject_id(self) -> str: ...

    @property
    def order_id(self) -> str: ...


class _OrderLike(Protocol):
    @property
    def recipient_id(self) -> str: ...

    @property
    def purpose(self) -> str: ...

    @property
    def record_type(self) -> str: ...

    @property
    def destination_region(self) -> str: ...

    @property
    def legal_reference(self) -> str: ...

    @property
    def exemption_code(self) -> str: ...


def _text_too_long(field: str, value: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{field} is {len(value)} characters; the limit is {MAX_TEXT_CHARS}",
        reason="limits.text_length",
    )


def check_order_text(order: _OrderLike) -> None:
    """Check the share's text fields that the ledger stores (lengths, reference syntax).

    Raises:
        InvalidRequestError: a field is longer than ``MAX_TEXT_CHARS`` (reason
            ``limits.text_length``) or the reference is not a reference number (reason
            ``request.legal_reference_format``); the message names the field only.
    """
    for field, value in (
        ("recipient_id", order.recipient_id),
        ("purpose", order.purpose),
        ("record_type", order.record_type),
        ("destination_region", order.destination_region),
        ("legal_basis.exemption_code", order.exemption_code),
        ("legal_basis.reference", order.legal_reference),
    ):
        if len(value) > MAX_TEXT_CHARS:
            raise _text_too_long(field, value)
    if order.legal_reference and not REFERENCE_FORMAT.fullmatch(order.legal_reference):
        raise InvalidRequestError(
            "legal_basis.reference must be a reference number: a letter or digit, then "
            "letters, digits, spaces and ./:()-_# (no names, no e-mail addresses)",
            reason="request.legal_reference_format",
        )
    # The syntax lets digits through: a phone or identity number is still an identifier
    # (R19's content inspector names its kind, never the value).
    kinds = find_identifiers(order.legal_reference) if order.legal_reference else frozenset()
    if kinds:
        raise InvalidRequestError(
            f"legal_basis.reference holds an identifier ({', '.join(sorted(kinds))}); "
            "give the reference number only",
            reason="request.legal_reference_identifier",
        )


def server_options(limits: LimitsSettings) -> list[tuple[str, int]]:
    """gRPC server options enforcing the message size limit in the transport.

    gRPC itself answers RESOURCE_EXHAUSTED to a larger message before any handler runs.
    """
    return [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
    ]


def check_records(records: Iterable[_RecordLike], limits: LimitsSettings) -> int:
    """Check per-record limits; return how many records there were.

    Raises:
        InvalidRequestError: a record has too many fields, a value that is too long, or a
            subject or order id longer than ``MAX_TEXT_CHARS`` (reason
            ``limits.fields_per_record`` / ``limits.field_value_bytes`` /
            ``limits.text_length``).
    """
    count = 0
    for index, record in enumerate(records):
        count += 1
        if len(record.subject_id) > MAX_TEXT_CHARS:
            raise _text_too_long(f"records[{index}].subject_id", record.subject_id)
        if len(record.order_id) > MAX_TEXT_CHARS:
            raise _text_too_long(f"records[{index}].order_id", record.order_id)
        fields = record.fields
        if len(fields) > limits.max_fields_per_record:
            raise InvalidRequestError(
                f"record {index} has {len(fields)} fields; the limit is "
                f"max_fields_per_record={limits.max_fields_per_record}",
                reason="limits.fields_per_record",
            )
        for name, value in fields.items():
            # A str of n characters is at most 4n bytes of UTF-8: encode only when it matters.
            if len(value) * 4 <= limits.max_field_value_bytes:
                continue
            size = len(value.encode("utf-8"))
            if size > limits.max_field_value_bytes:
                # A field *name* is schema vocabulary, not personal data; never the value.
                raise InvalidRequestError(
                    f"record {index} field {name[:64]!r} is {size} bytes; the limit is "
                    f"max_field_value_bytes={limits.max_field_value_bytes}",
                    reason="limits.field_value_bytes",
                )
    return count


def check_request(request: Any, limits: LimitsSettings) -> None:
    """Check one unary request (``ShareRequest``-like) against every per-request limit.

    Raises:
        ResourceExhaustedError: too large or too many records.
        InvalidRequestError: a record breaks a per-record limit.
    """
    size = request.ByteSize() if hasattr(request, "ByteSize") else None
    if size is not None and size > limits.max_message_bytes:
        raise ResourceExhaustedError(
            f"message is {size} bytes; the limit is max_message_bytes={limits.max_message_bytes}",
            reason="limits.message_bytes",
        )
    n = len(request.records)
    if n > limits.max_records_per_request:
        raise ResourceExhaustedError(
            f"request has {n} records; the limit is "
            f"max_records_per_request={limits.max_records_per_request}",
            reason="limits.records_per_request",
        )
    check_records(request.records, limits)


class StreamBudget:
    """Counts records across the messages of one stream (``max_records_per_stream``).

    Call ``add(message)`` for every incoming message; it also applies the per-message limits.
    """

    def __init__(self, *, limits: LimitsSettings) -> None:
        self._limits = limits
        self.records = 0

    def add(self, message: Any) -> None:
        """Account for one stream message.

        Raises:
            ResourceExhaustedError: the stream exceeded ``max_records_per_stream``, or the
                message a per-message limit.
            InvalidRequestError: a record breaks a per-record limit.
        """
        check_request(message, self._limits)
        self.records += len(message.records)
        if self.records > self._limits.max_records_per_stream:
            raise ResourceExhaustedError(
                f"stream has more than max_records_per_stream="
                f"{self._limits.max_records_per_stream} records",
                reason="limits.records_per_stream",
            )


def require_deadline(context: Any, *, max_seconds: float | None = None) -> None:
    """Refuse a long stream without a client deadline (or with one beyond ``max_seconds``).

    Args:
        context: A ``grpc.ServicerContext`` (anything with ``time_remaining()``).

    Raises:
        InvalidRequestError: no deadline, or a deadline too far away (reason
            ``limits.deadline_required``).
    """
    remaining = context.time_remaining()
    # gRPC reports "no deadline" as None or as a huge number, depending on the version.
    if remaining is None or remaining > 365 * 24 * 3600:
        raise InvalidRequestError(
            "this streaming RPC requires a deadline (grpc timeout)",
            reason="limits.deadline_required",
        )
    if max_seconds is not None and remaining > max_seconds:
        raise InvalidRequestError(
            f"deadline is beyond the limit of {max_seconds:g} seconds",
            reason="limits.deadline_required",
        )
