"""The share path end to end: a real server on port 0, real mTLS channels, the demo registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from structlog.testing import capture_logs

from gateway.demo import AD_FIELDS, ad_request, delivery_request, profile
from gateway.testing import RunningGateway, running_gateway
from ledger import open_checkpoint
from ledger.testing import stalled_writer
from ledger.verify import verify_inclusion
from partner_gateway.v1 import audit_pb2, audit_pb2_grpc, share_pb2, share_pb2_grpc


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as running:
        yield running


@pytest.fixture(scope="module")
def share(gw: RunningGateway) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))


def denied(call: Any) -> tuple[grpc.StatusCode, str, list[Any]]:
    """Code, message and unpacked rich details of a failed call."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    status = rpc_status.from_call(err)
    details: list[Any] = []
    for d in status.details if status else []:
        for cls in (share_pb2.Decision, share_pb2.DisclosureReceipt, error_details_pb2.ErrorInfo):
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                details.append(msg)
    return err.code(), err.details() or "", details


def test_gateway_answers_health_serving(gw: RunningGateway) -> None:
    """The server reports SERVING over gRPC health checking."""
    stub = health_pb2_grpc.HealthStub(gw.channel("service", "checkout"))
    assert (
        stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    )


def test_logistics_vendor_gets_name_phone_and_address(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A logistics vendor receives what delivery needs, and the decision is in the ledger."""
    resp = share.Share(delivery_request())
    assert resp.decision.allowed
    [record] = resp.records
    assert {"name", "phone", "address"} <= set(record.fields)
    assert record.fields["name"] == "Li Wei"
    assert record.subject_id != "u1001"  # the subject id always leaves as a per-partner pseudonym
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index)
    assert entry.leaf_hash == resp.receipt.leaf_hash
    assert entry.entry.partner_id == "logiship"
    assert entry.entry.decision == "ALLOW"
    assert entry.entry.payload_digest == resp.receipt.payload_digest


def test_share_receipt_carries_a_signed_checkpoint_covering_its_entry(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """The acknowledged entry is never in an unsigned tail: the receipt's checkpoint is signed
    by the ledger key and its tree contains the entry (inclusion proof to its root)."""
    resp = share.Share(delivery_request())
    ledger = gw.gateway.ledger
    cp = open_checkpoint(resp.receipt.checkpoint, ledger.verifier_key)
    assert cp.size > resp.receipt.ledger_index
    proof = ledger.inclusion_proof(resp.receipt.ledger_index, cp.size)
    verify_inclusion(resp.receipt.ledger_index, cp.size, resp.receipt.leaf_hash, proof, cp.root)


def test_ad_partner_gets_tags_age_band_and_pseudonyms_only(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """An ad partner gets tags, an age band and pseudonymous ids, never name, phone or address."""
    resp = share.Share(ad_request("adco", "u1001"))
    assert resp.decision.allowed
    [record] = resp.records
    fields = dict(record.fields)
    assert fields["tags"] == "outdoor,coffee,running"
    assert fields["age_band"] == "35-44"
    assert "birth_date" not in fields
    assert fields["account_id"].startswith("ps_") and fields["account_id"] != "acct-1001"
    assert fields["device_id"].startswith("ps_") and fields["device_id"] != "dev-a1b2c3"
    assert not {"name", "phone", "address"} & set(fields)
    assert resp.receipt.pseudonym_key_id


def test_pseudonyms_are_stable_per_partner_and_differ_between_partners(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """Two shares to one ad partner give the same pseudonym; another ad partner gets another."""
    first = share.Share(ad_request("adco", "u1001")).records[0].fields["account_id"]
    again = share.Share(ad_request("adco", "u1001")).records[0].fields["account_id"]
    other = share.Share(ad_request("admetrics", "u1001")).records[0].fields["account_id"]
    assert first == again
    assert first != other


def test_asking_an_ad_partner_for_phone_is_refused_naming_the_category(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """Requesting the phone number for an ad partner is PERMISSION_DENIED and names the category."""
    code, message, details = denied(
        lambda: share.Share(ad_request("adco", "u1001", fields=(*AD_FIELDS, "phone")))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "user.contact.phone" in message
    decision = next(d for d in details if isinstance(d, share_pb2.Decision))
    receipt = next(d for d in details if isinstance(d, share_pb2.DisclosureReceipt))
    assert not decision.allowed
    assert any(r.code.startswith("R4.") for r in decision.reasons)
    entry = gw.gateway.ledger.get_entry(receipt.ledger_index)
    assert entry.entry.decision == "DENY"
    assert entry.entry.record_count == 0


def test_opted_out_subject_is_left_out_of_an_ad_share(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A subject who opted out of personalised ads is excluded, the others are shared."""
    resp = share.Share(ad_request("adco", "u1001", "u1002"))
    assert resp.decision.allowed
    assert len(resp.records) == 1
    [excluded] = resp.decision.excluded_subjects
    assert excluded.subject_id == "u1002"
    assert any(r.code.startswith("R13") for r in excluded.reasons)
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).entry
    assert entry.subject_count == 1
    assert len(entry.excluded_subjects) == 1


def test_unknown_partner_is_refused_and_recorded(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A share to an unregistered partner is refused (R2) and the refusal is in the ledger."""
    code, message, details = denied(lambda: share.Share(ad_request("nobody-inc", "u1001")))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "R2." in message
    receipt = next(d for d in details if isinstance(d, share_pb2.DisclosureReceipt))
    assert gw.gateway.ledger.get_entry(receipt.ledger_index).entry.partner_id == "nobody-inc"


def test_unknown_field_is_invalid_argument_with_a_reason(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """A field outside the record schema is INVALID_ARGUMENT naming the field."""
    req = ad_request("adco", "u1001")
    req.records[0].fields["shoe_size"] = "42"
    code, message, details = denied(lambda: share.Share(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "shoe_size" in message
    info = next(d for d in details if isinstance(d, error_details_pb2.ErrorInfo))
    assert info.reason == "request.unknown_field"


def test_evaluate_decides_without_disclosing_and_is_recorded(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """Evaluate returns the decision only, after writing it to the ledger (mode evaluate, R18)."""
    before = gw.gateway.ledger.size
    resp = share.Evaluate(ad_request("adco", "u1001", "u1002"))
    assert resp.decision.allowed
    assert [e.subject_id for e in resp.decision.excluded_subjects] == ["u1002"]
    assert gw.gateway.ledger.size == before + 1
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).entry
    assert (entry.mode, entry.decision, entry.record_count) == ("evaluate", "ALLOW", 0)
    assert entry.subjects == ()


def test_share_stream_decides_once_for_the_whole_batch(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A bulk stream gets one decision, one ledger entry, and every allowed record back."""
    header = ad_request("adco", "u1001")
    chunks = [share_pb2.ShareChunk(header=header)] + [
        share_pb2.ShareChunk(records=[profile(s, *AD_FIELDS)]) for s in ("u1007", "u1002")
    ]
    responses = list(share.ShareStream(iter(chunks), timeout=30))
    summary = responses[0].summary
    assert summary.decision.allowed
    records = [r for resp in responses[1:] for r in resp.records]
    assert len(records) == 2  # u1001 and u1007; u1002 opted out
    assert gw.gateway.ledger.get_entry(summary.receipt.ledger_index).entry.record_count == 2


def test_caller_without_identity_is_unauthenticated(gw: RunningGateway) -> None:
    """A TLS client without a client certificate cannot even reach the service."""
    from gateway.security.tls import channel_credentials

    channel = grpc.secure_channel(gw.address, channel_credentials(ca=gw.pki / "ca.crt"))
    stub = share_pb2_grpc.ShareServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Share(ad_request("adco", "u1001"), timeout=5)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_opa_server_engine_gives_the_same_decisions_as_the_embedded_one(
    share: share_pb2_grpc.ShareServiceStub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A gateway deciding through an OPA Data API server answers every demo scenario alike.

    No OPA binary can be installed here: the server is ``FakeOpa``, which speaks OPA's REST
    API and evaluates with OPA's own Go evaluator, a different engine from the embedded regorus.
    """
    from gateway.demo import SCENARIOS
    from gateway.policy.fake_opa import FakeOpa

    with (
        FakeOpa() as opa,
        running_gateway(
            tmp_path_factory.mktemp("gw-opa"), policy={"opa_url": opa.url, "opa_timeout_s": 30}
        ) as via_opa,
    ):
        remote = share_pb2_grpc.ShareServiceStub(via_opa.channel("service", "checkout"))
        requests = [make() for _, make in SCENARIOS.values()]
        requests.append(ad_request("adco", "u1001", "u1002", "u1003", "u1004", "u1005", "u1007"))
        for req in requests:
            assert remote.Evaluate(req).decision == share.Evaluate(req).decision


def test_opa_bundle_revision_and_decision_id_reach_the_ledger(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """OPA runs the built bundle: the ledger entry holds its revision and OPA's decision id,
    so OPA's decision log and the ledger join."""
    from gateway.policy import load_bundle
    from gateway.policy.fake_opa import FakeOpa
    from gateway.policy.opa_bundle import write_archive
    from gateway.settings import PolicySettings

    tmp = tmp_path_factory.mktemp("gw-opa-bundle")
    bundle = load_bundle(PolicySettings().dir)
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(bundle, tmp / "bundle.tar.gz"))
        with running_gateway(
            tmp, policy={"opa_url": opa.url, "opa_timeout_s": 30, "opa_bundle": True}
        ) as gw_opa:
            stub = share_pb2_grpc.ShareServiceStub(gw_opa.channel("service", "checkout"))
            receipt = stub.Share(delivery_request(), timeout=30).receipt
            entry = gw_opa.gateway.ledger.get_entry(receipt.ledger_index).entry
            audit = audit_pb2_grpc.AuditServiceStub(gw_opa.channel("auditor", "audit-team"))
            page = audit.QueryDisclosures(audit_pb2.QueryDisclosuresRequest(), timeout=10)
    assert entry.policy_revision == bundle.revision
    [seen] = [e for e in page.entries if e.index == receipt.ledger_index]
    assert seen.decision_id == entry.decision_id  # auditors see it too
    logged = {d["decision_id"]: d for d in opa.decision_log}
    assert entry.decision_id in logged
    assert logged[entry.decision_id]["path"] == "sharing/decision"
    assert logged[entry.decision_id]["revisions"] == {
        "bundle.tar.gz": {"revision": bundle.revision}
    }


def test_gateway_refuses_to_start_on_an_opa_serving_another_bundle(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Attacker's test: OPA runs a bundle of another revision (here a one-rule permissive
    policy): the gateway does not start, and the error names both revisions."""
    from gateway.errors import PolicyLoadError
    from gateway.policy import load_bundle
    from gateway.policy.fake_opa import FakeOpa
    from gateway.policy.opa_bundle import write_archive

    tmp = tmp_path_factory.mktemp("gw-opa-foreign")
    (tmp / "policy" / "sharing").mkdir(parents=True)
    (tmp / "policy" / "sharing" / "decision.rego").write_text(
        'package sharing\n\nimport rego.v1\n\ndecision := {"allow": true}\n'
    )
    foreign = load_bundle(tmp / "policy")
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(foreign, tmp / "foreign.tar.gz"))
        with (
            pytest.raises(PolicyLoadError, match=f"serves bundle revision.*{foreign.revision}"),
            running_gateway(
                tmp / "gw", policy={"opa_url": opa.url, "opa_timeout_s": 30, "opa_bundle": True}
            ),
        ):
            pass
    assert not opa.decision_log  # nothing was ever decided there


def test_a_share_waiting_for_its_ledger_commit_blocks_no_other_call(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """Share waits for the durable append without holding the server: while the ledger
    writer is stalled, other calls are still answered; the share completes once it commits.
    (Evaluate is recorded too since issue 11, so it waits for the writer like Share.)"""
    ledger = gw.gateway.ledger
    health = health_pb2_grpc.HealthStub(gw.channel("service", "checkout"))
    with stalled_writer(ledger):
        pending = [share.Share.future(delivery_request(), timeout=20) for _ in range(8)]
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        assert not any(f.done() for f in pending)  # nothing leaves before its commit
    indexes = [f.result().receipt.ledger_index for f in pending]
    assert len(set(indexes)) == 8
    assert all(ledger.get_entry(i).entry.partner_id == "logiship" for i in indexes)


def test_a_share_whose_caller_cancels_is_still_recorded(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A caller that gives up while its share waits for the commit gets nothing, but the
    decision is committed anyway (once queued, never taken back) and the access log says
    CANCELLED."""
    ledger = gw.gateway.ledger
    size = ledger.size
    with capture_logs() as logs, stalled_writer(ledger) as stall:
        call = share.Share.future(delivery_request(), timeout=20)
        assert stall.holding.wait(10)  # decided, enforced, its entry held at the writer
        call.cancel()
        _wait_for(lambda: any(e.get("code") == "CANCELLED" for e in logs))
    _wait_for(lambda: ledger.size == size + 1)
    assert ledger.get_entry(size).entry.partner_id == "logiship"
    assert call.cancelled()


def _wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
