"""Input limits: each breach is a named GatewayError, never a crash, never a value."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequestError, ResourceExhaustedError
from gateway.security.limits import (
    StreamBudget,
    check_request,
    require_deadline,
    server_options,
)
from gateway.settings import LimitsSettings
from partner_gateway.v1 import share_pb2

LIMITS = LimitsSettings(
    max_message_bytes=2_000,
    max_records_per_request=3,
    max_records_per_stream=5,
    max_fields_per_record=2,
    max_field_value_bytes=16,
)
SECRET = "+86 138 0013 1001"


def _request(n: int = 1, fields: dict[str, str] | None = None) -> share_pb2.ShareRequest:
    record = share_pb2.Record(subject_id="u1", fields=fields or {"city": "Shanghai"})
    return share_pb2.ShareRequest(recipient_id="adco", records=[record] * n)


def test_request_within_limits_passes() -> None:
    """A request inside every limit is accepted."""
    check_request(_request(3, {"city": "Shanghai", "tags": "coffee"}), LIMITS)


def test_too_many_records_is_resource_exhausted() -> None:
    """More records than max_records_per_request is RESOURCE_EXHAUSTED naming the limit."""
    with pytest.raises(ResourceExhaustedError, match="max_records_per_request"):
        check_request(_request(4), LIMITS)


def test_too_many_fields_is_invalid_argument() -> None:
    """A record with more fields than allowed is INVALID_ARGUMENT naming the limit."""
    with pytest.raises(InvalidRequestError, match="max_fields_per_record"):
        check_request(_request(1, {"a": "1", "b": "2", "c": "3"}), LIMITS)


def test_long_value_is_refused_without_echoing_it() -> None:
    """An over-long field value is refused; the message names the field, not the value."""
    with pytest.raises(InvalidRequestError, match="max_field_value_bytes") as info:
        check_request(_request(1, {"phone": SECRET + SECRET}), LIMITS)
    assert SECRET not in str(info.value) and "phone" in str(info.value)
    assert info.value.reason == "limits.field_value_bytes"


def test_oversized_message_is_resource_exhausted() -> None:
    """A message larger than max_message_bytes is RESOURCE_EXHAUSTED."""
    big = LimitsSettings(max_message_bytes=50)
    with pytest.raises(ResourceExhaustedError, match="max_message_bytes"):
        check_request(_request(3), big)


def test_stream_budget_counts_records_across_messages() -> None:
    """max_records_per_stream applies to the sum over a stream's messages."""
    budget = StreamBudget(limits=LIMITS)
    budget.add(_request(3))
    with pytest.raises(ResourceExhaustedError, match="max_records_per_stream"):
        budget.add(_request(3))


class _Ctx:
    def __init__(self, remaining: float | None) -> None:
        self._remaining = remaining

    def time_remaining(self) -> float | None:
        return self._remaining


@pytest.mark.parametrize("remaining", [None, 1e12])
def test_stream_without_deadline_is_invalid_argument(remaining: float | None) -> None:
    """A long stream without a client deadline is refused."""
    with pytest.raises(InvalidRequestError, match="deadline"):
        require_deadline(_Ctx(remaining))


def test_deadline_beyond_maximum_is_invalid_argument() -> None:
    """A deadline further away than max_seconds is refused; a near one passes."""
    require_deadline(_Ctx(30.0), max_seconds=60)
    with pytest.raises(InvalidRequestError):
        require_deadline(_Ctx(3600.0), max_seconds=60)


def test_server_options_carry_message_size() -> None:
    """The transport enforces max_message_bytes in both directions."""
    assert ("grpc.max_receive_message_length", 2_000) in server_options(LIMITS)
