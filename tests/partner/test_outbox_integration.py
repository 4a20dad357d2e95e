"""Partner outboxes end to end (R17): staging, pull-time re-decision, ack, resume, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gateway.demo import AD_FIELDS, ad_request, delivery_request, demo_records, profile
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)

DEMO = demo_records()


def ad_outbox_request(partner: str, *subjects: str) -> share_pb2.ShareRequest:
    return ad_request(partner, *subjects, outbox=True)


def delivery_outbox_request() -> share_pb2.ShareRequest:
    return delivery_request(outbox=True)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path) as running:
        yield running


def share_stub(gw: RunningGateway) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))


def partner_stub(gw: RunningGateway, name: str) -> partner_pb2_grpc.PartnerServiceStub:
    return partner_pb2_grpc.PartnerServiceStub(gw.channel("partner", name))


def pull(gw: RunningGateway, name: str, **kw: object) -> list[partner_pb2.OutboxItem]:
    return list(partner_stub(gw, name).Pull(partner_pb2.PullRequest(**kw), timeout=10))  # type: ignore[arg-type]


def test_staging_returns_decision_and_receipt_but_no_records(gw: RunningGateway) -> None:
    """A share to an outbox is decided and recorded as 'stage'; the caller gets no records."""
    resp = share_stub(gw).Share(ad_outbox_request("adco", "u1001"))
    assert resp.decision.allowed
    assert not resp.records
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).entry
    assert (entry.mode, entry.decision, entry.partner_id) == ("stage", "ALLOW", "adco")


def test_partner_pulls_only_its_own_outbox(gw: RunningGateway) -> None:
    """Each partner receives exactly the shares addressed to it, with its own pseudonyms."""
    share = share_stub(gw)
    share.Share(ad_outbox_request("adco", "u1001", "u1007"))
    share.Share(ad_outbox_request("admetrics", "u1001"))
    share.Share(delivery_outbox_request())
    adco = pull(gw, "adco")
    admetrics = pull(gw, "admetrics")
    assert len(adco) == 1 and len(adco[0].records) == 2
    assert len(admetrics) == 1 and len(admetrics[0].records) == 1
    adco_refs = {r.fields["account_id"] for r in adco[0].records}
    assert admetrics[0].records[0].fields["account_id"] not in adco_refs  # no joins across partners
    for item, partner in ((adco[0], "adco"), (admetrics[0], "admetrics")):
        assert all("name" not in r.fields for r in item.records)  # never logiship's share
        entry = gw.gateway.ledger.get_entry(item.receipt.ledger_index).entry
        assert (entry.mode, entry.partner_id, entry.caller) == (
            "pull",
            partner,
            f"partner:{partner}",
        )
        assert item.receipt.ledger_index > item.staged_ledger_index


def test_consent_withdrawn_after_staging_leaves_subject_out_at_pull(gw: RunningGateway) -> None:
    """A subject who withdraws consent between staging and pull is not delivered; the ledger
    holds the pull-time decision naming the exclusion."""
    staged = share_stub(gw).Share(ad_outbox_request("adco", "u1001", "u1007"))
    assert not staged.decision.excluded_subjects
    admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
    admin.WithdrawConsent(admin_pb2.WithdrawConsentRequest(subject_id="u1007"))
    [item] = pull(gw, "adco")
    assert item.allowed
    assert len(item.records) == 1 and item.excluded_count == 1
    entry = gw.gateway.ledger.get_entry(item.receipt.ledger_index).entry
    assert (entry.mode, entry.decision) == ("pull", "ALLOW")
    assert entry.subject_count == 1 and entry.excluded_count == 1
    assert any(code.startswith("R14") for code in entry.reason_codes)
    assert gw.gateway.ledger.subject_pseudonym("u1007") in entry.excluded_subjects


def test_partner_with_expired_agreement_gets_nothing_at_pull(gw: RunningGateway) -> None:
    """If the agreement expires after staging, the pull is refused, recorded, and empty."""
    share_stub(gw).Share(ad_outbox_request("adco", "u1001"))
    registry = gw.gateway.registry
    adco = registry.partner("adco")
    assert adco is not None
    registry.upsert_partner(adco.model_copy(update={"agreement_expires": "2020-01-01"}))
    [item] = pull(gw, "adco")
    assert not item.allowed and not item.records
    assert item.reasons
    entry = gw.gateway.ledger.get_entry(item.receipt.ledger_index).entry
    assert (entry.mode, entry.decision, entry.record_count) == ("pull", "DENY", 0)


def test_staging_refused_by_policy_is_permission_denied_and_recorded(gw: RunningGateway) -> None:
    """Staging to a partner whose agreement ended is refused like an inline share, and logged."""
    before = gw.gateway.ledger.size
    req = ad_outbox_request("expired-ads", "u1001")
    del req.records[:]
    req.records.append(profile("u1001", "account_id", "tags"))
    with pytest.raises(grpc.RpcError) as info:
        share_stub(gw).Share(req)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    entry = gw.gateway.ledger.get_entry(before).entry
    assert (entry.mode, entry.decision) == ("stage", "DENY")
    assert gw.gateway.outbox is not None and gw.gateway.outbox.store.count() == 0


def test_pull_resumes_after_a_cursor_and_acked_items_are_not_served_again(
    gw: RunningGateway,
) -> None:
    """Pull is ordered and resumable from a cursor; Ack removes what was received."""
    share = share_stub(gw)
    for _ in range(3):
        share.Share(ad_outbox_request("adco", "u1001"))
    first = pull(gw, "adco", max_items=2)
    assert len(first) == 2
    rest = pull(gw, "adco", cursor=first[-1].cursor)
    assert len(rest) == 1
    cursors = [int(i.cursor) for i in (*first, *rest)]
    assert cursors == sorted(cursors)
    ack = partner_stub(gw, "adco").Ack(partner_pb2.AckRequest(cursor=rest[-1].cursor))
    assert ack.acknowledged == 3
    assert pull(gw, "adco") == []


def test_ack_never_removes_an_item_the_partner_has_not_received(gw: RunningGateway) -> None:
    """A cumulative ack leaves alone staged items that were never pulled."""
    share = share_stub(gw)
    share.Share(ad_outbox_request("adco", "u1001"))
    [item] = pull(gw, "adco")
    share.Share(ad_outbox_request("adco", "u1001"))
    stub = partner_stub(gw, "adco")
    assert stub.Ack(partner_pb2.AckRequest(cursor=str(int(item.cursor) + 1))).acknowledged == 1
    assert len(pull(gw, "adco")) == 1


def test_service_and_auditor_cannot_pull(gw: RunningGateway) -> None:
    """Only the partner role may call Pull."""
    for kind, name in (("service", "checkout"), ("auditor", "audit-team")):
        stub = partner_pb2_grpc.PartnerServiceStub(gw.channel(kind, name))
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Pull(partner_pb2.PullRequest(), timeout=10))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_staged_rows_hold_no_plaintext(gw: RunningGateway, tmp_path: Path) -> None:
    """The database files contain none of the staged names, phones or addresses."""
    share_stub(gw).Share(delivery_outbox_request())
    fields = DEMO["delivery_order"][0]["fields"]
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    assert blob
    for value in (fields["name"], fields["phone"], fields["address"]):
        assert value.encode() not in blob
    [item] = pull(gw, "logiship")
    assert item.records[0].fields["name"] == fields["name"]  # it does decrypt for its partner
    key_files = list((tmp_path / "keys" / "outbox").glob("*.key"))
    assert key_files and all(p.stat().st_mode & 0o077 == 0 for p in key_files)


def test_expired_rows_are_never_served_and_are_purged(tmp_path: Path) -> None:
    """A staged share past its retention is not delivered and is deleted."""
    with running_gateway(tmp_path, outbox={"retention_hours": 0.5 / 3600}) as gw:
        share_stub(gw).Share(ad_outbox_request("adco", "u1001"))
        assert gw.gateway.outbox is not None and gw.gateway.outbox.store.count() == 1
        time.sleep(0.6)
        assert pull(gw, "adco") == []
        assert gw.gateway.outbox.store.count() == 0


def test_share_stream_can_stage_a_bulk_batch_to_an_outbox(gw: RunningGateway) -> None:
    """A ShareStream whose header asks for the outbox stages the batch and returns no records."""
    header = ad_outbox_request("adco", "u1001")
    chunks = [
        share_pb2.ShareChunk(header=header),
        share_pb2.ShareChunk(records=[profile("u1007", *AD_FIELDS)]),
    ]
    [resp] = list(share_stub(gw).ShareStream(iter(chunks), timeout=10))
    assert resp.summary.decision.allowed and not resp.summary.records
    [item] = pull(gw, "adco")
    assert len(item.records) == 2 and (item.part, item.parts) == (0, 1)


def test_large_staged_share_arrives_in_parts_with_one_cursor() -> None:
    """A pulled share with more records than a chunk is split into numbered parts."""
    from datetime import UTC, datetime

    from gateway.outbox import Pulled, StagedShare
    from gateway.policy import PolicyDecision
    from gateway.policy.decision import NO_OBLIGATIONS
    from gateway.services.partner import item_messages
    from gateway.sharing import DisclosedRecord, Outcome, ShareOrder

    now = datetime.now(UTC)
    staged = StagedShare(
        seq=9,
        partner_id="adco",
        staged_at=now,
        expires_at=now,
        staged_ledger_index=1,
        order=ShareOrder(
            recipient_id="adco",
            purpose="p",
            action="SHARE",
            legal_basis="X",
            record_type="customer_profile",
        ),
    )
    records = [DisclosedRecord(subject_id=str(i), subject_ref=f"r{i}", fields={}) for i in range(5)]
    decision = PolicyDecision(
        allow=True,
        reasons=(),
        excluded={},
        obligations=NO_OBLIGATIONS,
        subject_obligations={},
        revision="r",
    )
    outcome = Outcome(decision=decision, excluded={}, records=records)
    parts = list(item_messages(Pulled(staged=staged, outcome=outcome), chunk=2))
    assert [(p.cursor, p.part, p.parts, len(p.records)) for p in parts] == [
        ("9", 0, 3, 2),
        ("9", 1, 3, 2),
        ("9", 2, 3, 1),
    ]
