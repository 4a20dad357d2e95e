"""Input limits (issue 5.5): pure checks against ``LimitsSettings``.

Each breach raises a ``GatewayError`` whose message names the limit and the counts, never a
value. Quantity limits (message size, records per request or stream) are
``ResourceExhaustedError`` ("send less"); shape limits of one record (fields per record,
field value length) and a missing deadline are ``InvalidRequestError``.

Protocol-agnostic: a "request" is anything with ``records`` whose items have a ``fields``
mapping (``ShareRequest``, ``ShareChunk``); ``ByteSize()`` is used when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.errors import InvalidRequestError, ResourceExhaustedError
from gateway.settings import LimitsSettings


class _RecordLike(Protocol):
    @property
    def fields(self) -> Mapping[str, str]: ...


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
        InvalidRequestError: a record has too many fields or a value that is too long
            (reason ``limits.fields_per_record`` / ``limits.field_value_bytes``).
    """
    count = 0
    for index, record in enumerate(records):
        count += 1
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
