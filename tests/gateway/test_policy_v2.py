"""POLICY_SPEC v2 end to end: the demo scenarios, the registry's scoped consents and narrowed
withdrawals, and the ledger fields an auditor needs for §三 and §八 (issue 12's "measured"
items, replayed through a real gateway)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from gateway.demo import SCENARIOS, ad_request, profile_request
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2, share_pb2_grpc


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as running:
        yield running


@pytest.fixture(scope="module")
def share(gw: RunningGateway) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))


@pytest.fixture(scope="module")
def admin(gw: RunningGateway) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))


def _excluded(resp: share_pb2.ShareResponse) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in resp.decision.excluded_subjects:
        out.setdefault(e.subject_id, set()).update(r.code for r in e.reasons)
    return out


def _entry(gw: RunningGateway, resp: share_pb2.ShareResponse) -> dict[str, object]:
    data = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).data
    entry: dict[str, object] = json.loads(data)
    return entry


#: Scenario -> (allowed, subject id -> exclusion codes) expected from the demo registry.
EXPECTED: dict[str, tuple[bool, dict[str, set[str]]]] = {
    "minors": (
        True,
        {
            "u1003": {"R11.no_guardian_consent", "R6.sensitive_without_consent"},
            "u1008": {"R11.no_guardian_consent"},
        },
    ),
    "withdrawn": (
        True,
        {"u1004": {"R14.consent_withdrawn"}, "u1005": {"R14.account_deleted"}},
    ),
    "withdrawn-narrowed": (True, {"u1011": {"R14.consent_withdrawn"}}),
    "vendor-analytics": (True, {}),
    "cross-border": (
        True,
        {"u1012": {"R12.cross_border_not_authorised", "R6.sensitive_without_consent"}},
    ),
    "cross-border-order": (True, {}),
    "de-identified": (True, {}),
    "unknown-age": (True, {}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_scenario_shows_its_rule(share: share_pb2_grpc.ShareServiceStub, name: str) -> None:
    """Each v2 demo scenario gives the decision its description promises."""
    allowed, excluded = EXPECTED[name]
    resp = share.Share(SCENARIOS[name][1](), timeout=10)
    assert resp.decision.allowed is allowed
    assert _excluded(resp) == excluded


def test_minor_with_guardian_consent_alone_gets_through(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """A 13-year-old's data reaches the ad partner with the guardian's scoped consent only,
    as pseudonyms and an age band (R11, R5)."""
    resp = share.Share(ad_request("adco", "u1009"), timeout=10)
    [record] = resp.records
    assert record.fields["account_id"].startswith("ps_") and "birth_date" not in record.fields


def test_vendor_doing_ad_work_gets_no_account_id_in_clear(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """R5 keys on the purpose too: a VENDOR measuring ad effectiveness gets pseudonyms."""
    resp = share.Share(SCENARIOS["vendor-analytics"][1](), timeout=10)
    assert {r.fields["account_id"][:3] for r in resp.records} == {"ps_"}
    assert all(not r.fields["account_id"].startswith("acct-") for r in resp.records)


def test_de_identified_records_carry_no_subject_reference(
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """R16: two de-identified batches to the same recipient cannot be linked by a ref."""
    first = share.Share(SCENARIOS["de-identified"][1](), timeout=10)
    second = share.Share(SCENARIOS["de-identified"][1](), timeout=10)
    assert len(first.records) == 5
    assert {r.subject_id for r in (*first.records, *second.records)} == {""}


def test_ledger_names_agreement_consents_region_and_exception(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """The entry of a cross-border share names the agreement and version, the consent ids,
    the destination region and the exception of §七 used (§三, §八, R12)."""
    resp = share.Share(SCENARIOS["cross-border"][1](), timeout=10)
    entry = _entry(gw, resp)
    assert entry["v"] == 2
    assert (entry["agreement_id"], entry["agreement_version"]) == (
        "agr-affiliate-cloud-2026",
        "1",
    )
    assert entry["consent_ids"] == ["c-1006-loc", "c-1006-xb"]
    assert entry["destination_region"] == "SG"
    assert entry["cross_border_exceptions"] == ["consent"]
    order = share.Share(SCENARIOS["cross-border-order"][1](), timeout=10)
    assert _entry(gw, order)["cross_border_exceptions"] == ["transaction"]
    home = share.Share(SCENARIOS["unknown-age"][1](), timeout=10)
    assert (_entry(gw, home)["destination_region"], _entry(gw, home)["consent_ids"]) == ("CN", [])


def test_consent_without_recipient_never_means_any(
    admin: admin_pb2_grpc.AdminServiceStub, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A consent stored with an empty recipient covers no recipient (R6)."""
    any_recipient = admin_pb2.Consent(
        recipient_id="", purpose="account_security", scope="SHARE", all_categories=True
    )
    admin.PutSubject(
        admin_pb2.PutSubjectRequest(
            subject=admin_pb2.SubjectFacts(
                subject_id="u2001", birth_date="1980-01-01", consents=[any_recipient]
            )
        ),
        timeout=10,
    )
    request = profile_request(
        "affiliate-cloud", "account_security", "u1006", fields=("account_id", "location")
    )
    request.records.append(share_pb2.Record(subject_id="u2001", fields={"location": "A@1,2"}))
    request.legal_basis.kind = share_pb2.LEGAL_BASIS_KIND_AFFILIATE_SERVICE
    resp = share.Share(request, timeout=10)
    assert "R6.sensitive_without_consent" in _excluded(resp)["u2001"]


def test_withdrawal_narrowed_by_admin_leaves_subject_out_of_matching_shares(
    admin: admin_pb2_grpc.AdminServiceStub, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """WithdrawConsent narrowed to a partner and a category excludes the subject from
    shares that match it and from no other (R14, §五.(四))."""
    admin.PutSubject(
        admin_pb2.PutSubjectRequest(
            subject=admin_pb2.SubjectFacts(subject_id="u2002", birth_date="1980-01-01")
        ),
        timeout=10,
    )

    def ad(partner: str, field: str) -> share_pb2.ShareRequest:
        r = ad_request(partner, "u1001", fields=(field,))
        r.records.append(share_pb2.Record(subject_id="u2002", fields={field: "x"}))
        return r

    tags, account = "tags", "account_id"
    assert "u2002" not in _excluded(share.Share(ad("adco", tags), timeout=10))
    ack = admin.WithdrawConsent(
        admin_pb2.WithdrawConsentRequest(
            subject_id="u2002", recipient_id="adco", categories=["user.profile.tags"]
        ),
        timeout=10,
    )
    assert ack.message == "0 consent(s) withdrawn"
    assert _excluded(share.Share(ad("adco", tags), timeout=10))["u2002"] == {
        "R14.consent_withdrawn"
    }
    assert "u2002" not in _excluded(share.Share(ad("adco", account), timeout=10))
    assert "u2002" not in _excluded(share.Share(ad("admetrics", tags), timeout=10))
    facts = admin.GetSubject(admin_pb2.GetSubjectRequest(subject_id="u2002"), timeout=10)
    assert [(w.recipient_id, list(w.categories)) for w in facts.withdrawals] == [
        ("adco", ["user.profile.tags"])
    ]


def test_unknown_consent_giver_is_invalid_argument(
    admin: admin_pb2_grpc.AdminServiceStub,
) -> None:
    """An unknown consent giver is INVALID_ARGUMENT naming the field, not a silent default."""
    bad = admin_pb2.Consent(recipient_id="adco", purpose="ad_delivery", scope="SHARE")
    bad.given_by = "parent"
    with pytest.raises(grpc.RpcError) as info:
        admin.PutSubject(
            admin_pb2.PutSubjectRequest(
                subject=admin_pb2.SubjectFacts(subject_id="u2003", consents=[bad])
            ),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "consent giver" in (info.value.details() or "")
