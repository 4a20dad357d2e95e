"""AdminService over mTLS: registry changes take effect on the next share."""

from __future__ import annotations

from pathlib import Path

from gateway.demo import ad_request
from gateway.testing import running_gateway
from ledger import Filter
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2_grpc


def test_admin_changes_the_registry_and_the_next_share_follows(tmp_path: Path) -> None:
    """A newly registered partner can receive; a withdrawn consent excludes; a deletion unlinks."""
    with running_gateway(tmp_path) as gw:
        admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
        share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        adco = admin_pb2.Partner(
            id="adnew",
            display_name="AdNew",
            kind=admin_pb2.RECIPIENT_KIND_AD_PARTNER,
            active=True,
            region="CN",
            agreement_purposes=["ad_delivery"],
            agreement_categories=[
                "user.account.id",
                "user.device.id",
                "user.profile.tags",
                "user.demographic.birth_date",
                "user.demographic.age_band",
            ],
            agreement_expires="2030-12-31",
            security_review_expires="2030-06-30",
            dpa_expires="2030-12-31",
        )
        assert admin.UpsertPartner(admin_pb2.UpsertPartnerRequest(partner=adco), timeout=10).id == (
            "adnew"
        )
        resp = share.Share(ad_request("adnew", "u1001", "u1007"), timeout=10)
        assert resp.decision.allowed and len(resp.records) == 2

        admin.WithdrawConsent(admin_pb2.WithdrawConsentRequest(subject_id="u1001"), timeout=10)
        resp = share.Share(ad_request("adnew", "u1001", "u1007"), timeout=10)
        assert [e.subject_id for e in resp.decision.excluded_subjects] == ["u1001"]
        assert gw.gateway.ledger.query(Filter(subject_id="u1007", partner_id="adnew"))

        ack = admin.DeleteSubject(admin_pb2.DeleteSubjectRequest(subject_id="u1007"), timeout=10)
        assert "unlinked" in ack.message
        assert gw.gateway.ledger.query(Filter(subject_id="u1007", partner_id="adnew")) == []
        facts = admin.GetSubject(admin_pb2.GetSubjectRequest(subject_id="u1007"), timeout=10)
        assert facts.account_deleted
