"""Issue 5 on the real gateway: roles over mTLS, refusals in the ledger, key rotation, logs.

One gateway (demo registry, dev PKI, mTLS) on port 0 for the module.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import structlog

from gateway.demo import AD_FIELDS, ad_request, delivery_request, demo_records, profile
from gateway.enforcement import payload_digest, subject_ref
from gateway.logs import configure_logging
from gateway.testing import RunningGateway, running_gateway
from ledger.verify import verify_inclusion
from partner_gateway.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)

SHARE = "/partner_gateway.v1.ShareService/Share"

DEMO = demo_records()


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as running:
        yield running


def _share_stub(gw: RunningGateway, kind: str, name: str) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel(kind, name))


@pytest.mark.parametrize(("kind", "name"), [("partner", "adco"), ("auditor", "audit-team")])
def test_partner_and_auditor_cannot_share_and_the_refusal_is_in_the_ledger(
    gw: RunningGateway, kind: str, name: str
) -> None:
    """Share by a partner or an auditor is PERMISSION_DENIED and written as a refused call."""
    stub = _share_stub(gw, kind, name)
    code = _code(lambda: stub.Share(ad_request("adco", "u1001"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    last = gw.gateway.ledger.get_entry(gw.gateway.ledger.size - 1).entry
    assert last.mode == "refused_call" and last.decision == "DENY"
    assert last.caller == ("partner:adco" if kind == "partner" else "auditor:audit-team")
    assert last.rpc == SHARE


def test_service_cannot_call_admin(gw: RunningGateway) -> None:
    """The service role cannot reload policies (admin only)."""
    stub = admin_pb2_grpc.AdminServiceStub(gw.channel("service", "checkout"))
    code = _code(lambda: stub.ReloadPolicy(admin_pb2.ReloadPolicyRequest(), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_partner_cannot_pull_another_partners_outbox(gw: RunningGateway) -> None:
    """A share staged for logiship is pulled by logiship only; adco's Pull never sees it."""
    staged = delivery_request()
    staged.delivery = share_pb2.DELIVERY_MODE_OUTBOX
    receipt = _share_stub(gw, "service", "checkout").Share(staged, timeout=10).receipt

    def pull(partner: str) -> list[Any]:
        stub = partner_pb2_grpc.PartnerServiceStub(gw.channel("partner", partner))
        return list(stub.Pull(partner_pb2.PullRequest(), timeout=10))

    assert [i.staged_ledger_index for i in pull("adco")] == []
    assert receipt.ledger_index in [i.staged_ledger_index for i in pull("logiship")]


def test_partner_cannot_call_audit_service_but_auditor_can(gw: RunningGateway) -> None:
    """AuditService is the auditor's: a partner or a service is PERMISSION_DENIED."""
    request = audit_pb2.GetCheckpointRequest()
    for kind, name in (("partner", "adco"), ("service", "checkout")):
        stub = audit_pb2_grpc.AuditServiceStub(gw.channel(kind, name))
        code = _code(lambda s=stub: s.GetCheckpoint(request, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    auditor = audit_pb2_grpc.AuditServiceStub(gw.channel("auditor", "audit-team"))
    assert auditor.GetCheckpoint(request, timeout=10).origin


def test_service_cannot_pull_a_partner_outbox(gw: RunningGateway) -> None:
    """Pull is for partners only."""
    stub = partner_pb2_grpc.PartnerServiceStub(gw.channel("service", "checkout"))
    code = _code(lambda: list(stub.Pull(partner_pb2.PullRequest(), timeout=10)))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_key_rotation_new_shares_use_new_key_and_old_receipt_still_verifies(
    gw: RunningGateway,
) -> None:
    """After rotating adco's key, new shares name the new key; an old receipt still checks out."""
    share = _share_stub(gw, "service", "checkout")
    old = share.Share(ad_request("adco", "u1001"), timeout=10)
    old_key_id = old.receipt.pseudonym_key_id
    assert old.decision.allowed and old_key_id

    new_key_id = gw.gateway.keys.rotate("adco")
    new = share.Share(ad_request("adco", "u1001"), timeout=10)

    assert new.receipt.pseudonym_key_id == new_key_id != old_key_id
    assert new.records[0].subject_id != old.records[0].subject_id
    # The old receipt: its entry is in the ledger, included in today's tree ...
    ledger = gw.gateway.ledger
    entry = ledger.get_entry(old.receipt.ledger_index)
    assert entry.leaf_hash == old.receipt.leaf_hash
    assert entry.entry.pseudonym_key_id == old_key_id
    size = ledger.size
    proof = ledger.inclusion_proof(old.receipt.ledger_index, size)
    verify_inclusion(old.receipt.ledger_index, size, entry.leaf_hash, proof, ledger.root(size))
    # ... its payload digest matches what was disclosed ...
    disclosed = [(r.subject_id, dict(r.fields)) for r in old.records]
    assert payload_digest(disclosed) == old.receipt.payload_digest == entry.entry.payload_digest
    # ... and the retired key still explains its pseudonyms.
    old_key = gw.gateway.keys.get("adco", old_key_id)
    assert subject_ref(old_key, "u1001") == old.records[0].subject_id


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """structlog output (JSON lines) and stdlib logging of the test, as one string."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="debug", json=True, stream=stream)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: stream.getvalue() + "\n" + caplog.text
    finally:
        structlog.configure(**saved)


def test_demo_run_logs_no_subject_name_or_phone(
    gw: RunningGateway, captured_logs: Callable[[], str]
) -> None:
    """A full demo flow (allowed, denied, malformed, refused calls) logs no name or phone."""
    share = _share_stub(gw, "service", "checkout")
    all_subjects = [r["subject_id"] for r in DEMO["customer_profile"]]
    share.Share(delivery_request(), timeout=10)
    share.Share(ad_request("adco", *all_subjects), timeout=10)
    share.Evaluate(ad_request("admetrics", *all_subjects), timeout=10)
    chunks = [share_pb2.ShareChunk(header=ad_request("adco", "u1001"))] + [
        share_pb2.ShareChunk(records=[profile(s, *AD_FIELDS)]) for s in all_subjects
    ]
    list(share.ShareStream(iter(chunks), timeout=10))
    everything = tuple(DEMO["customer_profile"][0]["fields"])
    for request in (
        ad_request("adco", *all_subjects, fields=everything),  # policy denial (R4)
        ad_request("nobody-inc", "u1001", fields=everything),  # unknown partner
    ):
        _code(lambda r=request: share.Share(r, timeout=10))
    bad = ad_request("adco", "u1001", fields=("name", "phone"))
    bad.records[0].fields["shoe_size"] = DEMO["customer_profile"][0]["fields"]["phone"]
    _code(lambda: share.Share(bad, timeout=10))  # unknown field carrying a phone number
    partner = _share_stub(gw, "partner", "adco")
    _code(lambda: partner.Share(delivery_request(), timeout=10))  # wrong role

    text = captured_logs()
    assert "rpc.end" in text or "auth.refused" in text, "nothing was captured"
    records = DEMO["customer_profile"] + DEMO["delivery_order"]
    for record in records:
        for field in ("name", "phone", "email", "address"):
            value = record["fields"].get(field)
            if value:
                assert value not in text, f"{field} of {record['subject_id']} leaked into logs"
