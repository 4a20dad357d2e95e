"""What reaches the ledger is bounded and free of caller text (issue 14.5), on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_status import rpc_status

from gateway.demo import ad_request, delivery_request
from gateway.interceptors import REQUEST_ID_HEADER
from gateway.services.share import REFUSAL_SUBJECTS
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import share_pb2, share_pb2_grpc

SEVEN_MB = "x" * (7 * 1024 * 1024)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(
        tmp_path_factory.mktemp("gw"), limits={"max_message_bytes": 16 * 1024 * 1024}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def share(gw: RunningGateway) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))


def _invalid(call: object) -> tuple[str, str]:
    """Code name and message of a call that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code().name, info.value.details() or ""


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("legal_basis.reference", lambda r: setattr(r.legal_basis, "reference", SEVEN_MB)),
        (
            "legal_basis.exemption_code",
            lambda r: setattr(r.legal_basis, "exemption_code", SEVEN_MB),
        ),
        ("recipient_id", lambda r: setattr(r, "recipient_id", SEVEN_MB)),
        ("purpose", lambda r: setattr(r, "purpose", SEVEN_MB)),
        ("record_type", lambda r: setattr(r, "record_type", SEVEN_MB)),
        ("records[0].subject_id", lambda r: setattr(r.records[0], "subject_id", SEVEN_MB)),
    ],
)
def test_seven_megabyte_text_is_invalid_argument_naming_the_field(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub, field: str, mutate: object
) -> None:
    """A 7 MB string in any stored field is refused by name and never reaches the ledger."""
    request = delivery_request()
    mutate(request)  # type: ignore[operator]
    size = gw.gateway.ledger.size
    code, message = _invalid(lambda: share.Share(request, timeout=30))
    assert code == "INVALID_ARGUMENT"
    assert message.startswith(field) and "the limit is 128" in message
    assert SEVEN_MB[:200] not in message
    assert gw.gateway.ledger.size == size


def test_reference_with_a_name_and_an_email_is_refused(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A legal reference holding a name and an e-mail address is INVALID_ARGUMENT, unstored."""
    request = delivery_request()
    request.legal_basis.reference = "Zhang Wei zhang.wei@example.com"
    size = gw.gateway.ledger.size
    code, message = _invalid(lambda: share.Share(request, timeout=30))
    assert code == "INVALID_ARGUMENT" and "legal_basis.reference" in message
    assert "zhang" not in message.lower()
    assert gw.gateway.ledger.size == size


def test_reference_holding_a_phone_number_is_refused(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A reference in reference-number syntax that is a mobile number is refused by kind."""
    request = delivery_request()
    request.legal_basis.reference = "case 13800131001"
    size = gw.gateway.ledger.size
    code, message = _invalid(lambda: share.Share(request, timeout=30))
    assert code == "INVALID_ARGUMENT" and "PHONE_NUMBER" in message
    assert "13800131001" not in message
    assert gw.gateway.ledger.size == size


def test_reference_number_is_accepted_and_stored(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A reference number ("court order 2026-118") passes and is what the ledger holds."""
    request = delivery_request()
    request.legal_basis.reference = "court order 2026-118"
    receipt = share.Share(request, timeout=30).receipt
    entry = gw.gateway.ledger.get_entry(receipt.ledger_index).entry
    assert entry.legal_reference == "court order 2026-118"


def test_request_id_in_strict_format_is_kept(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """An ``x-request-id`` of letters, digits and ``._-`` is echoed and stored."""
    response = share.Share(
        delivery_request(), metadata=((REQUEST_ID_HEADER, "order-42.retry_1"),), timeout=30
    )
    assert response.request_id == "order-42.retry_1"
    entry = gw.gateway.ledger.get_entry(response.receipt.ledger_index).entry
    assert entry.request_id == "order-42.retry_1"


@pytest.mark.parametrize(
    "given", ["Zhang Wei <zhang.wei@example.com>", "a" * 65, "id with spaces", "../../etc/passwd"]
)
def test_request_id_in_any_other_form_is_replaced_and_dropped(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub, given: str
) -> None:
    """Any other ``x-request-id`` is replaced by a generated id; the ledger never sees it."""
    response = share.Share(delivery_request(), metadata=((REQUEST_ID_HEADER, given),), timeout=30)
    assert response.request_id and response.request_id != given
    entry = gw.gateway.ledger.get_entry(response.receipt.ledger_index)
    assert entry.entry.request_id == response.request_id
    assert given.encode() not in entry.data


def test_refusal_naming_a_thousand_subjects_fits_the_trailer(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A refusal leaving out 1,000 subjects is PERMISSION_DENIED with a decodable status:
    the first subjects by name, every one counted, and all of them in the ledger entry."""
    request = ad_request("adco")
    for i in range(1_000):
        request.records.add(subject_id=f"nobody-{i:04d}", fields={"tags": "coffee"})
    for _attempt in range(2):  # a retry gets the same answer
        with pytest.raises(grpc.RpcError) as info:
            share.Share(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        status = rpc_status.from_call(info.value)
        assert status is not None
        decisions = [d for d in status.details if d.Is(share_pb2.Decision.DESCRIPTOR)]
        receipts = [d for d in status.details if d.Is(share_pb2.DisclosureReceipt.DESCRIPTOR)]
        decision, receipt = share_pb2.Decision(), share_pb2.DisclosureReceipt()
        decisions[0].Unpack(decision)
        receipts[0].Unpack(receipt)
        assert len(decision.excluded_subjects) == REFUSAL_SUBJECTS
        assert decision.excluded_total == 1_000
        assert sum(decision.excluded_by_reason.values()) >= 1_000
        entry = gw.gateway.ledger.get_entry(receipt.ledger_index).entry
        assert entry.decision == "DENY" and entry.excluded_count == 1_000
