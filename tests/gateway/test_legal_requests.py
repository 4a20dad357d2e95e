"""Registered legal requests (R8, R10) and recorded dry runs (R18), end to end over mTLS.

Replays issue 11, items 1 and 3 of "What was measured", as a hostile internal service would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from gateway.demo import DEMO_LEGAL_REQUEST, SCENARIOS, ad_request, legal_request
from gateway.registry.legal import new_legal_request
from gateway.testing import RunningGateway, running_gateway
from partner_gateway.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)
from tests.gateway.test_share_integration import denied

OBLIGATION = share_pb2.LEGAL_BASIS_KIND_LEGAL_OBLIGATION
EXEMPTION = share_pb2.LEGAL_BASIS_KIND_EXEMPTION


@pytest.fixture
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gw-legal")) as running:
        yield running


@pytest.fixture
def share(gw: RunningGateway) -> share_pb2_grpc.ShareServiceStub:
    return share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))


@pytest.fixture
def admin(gw: RunningGateway) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))


def refusal_codes(call: object) -> set[str]:
    """The reason codes of a call that must fail with PERMISSION_DENIED."""
    code, _, details = denied(call)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    [decision] = [d for d in details if isinstance(d, share_pb2.Decision)]
    return {r.code for r in decision.reasons}


def police_request(**over: object) -> admin_pb2.LegalRequest:
    fields: dict[str, object] = {
        "basis": "LEGAL_OBLIGATION",
        "authority": "Haidian District Public Security Bureau",
        "authority_kind": "PUBLIC_SECURITY",
        "reference": "京公海刑调证字2026-0077号",
        "recipient_id": "haidian-psb",
        "subject_ids": ["u1001", "u1003"],
        "categories": ["user.name", "user.contact.phone"],
        "valid_from": "2026-01-01",
        "valid_until": "2099-12-31",
    }
    fields.update(over)
    return admin_pb2.LegalRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "reference", "code"),
    [(OBLIGATION, "", ""), (EXEMPTION, "x", "public_safety")],
    ids=["legal-obligation", "exemption-public-safety-x"],
)
def test_legal_basis_claimed_for_the_ad_partner_is_refused(
    gw: RunningGateway,
    share: share_pb2_grpc.ShareServiceStub,
    kind: share_pb2.LegalBasisKind.ValueType,
    reference: str,
    code: str,
) -> None:
    """Item 1: LEGAL_OBLIGATION without a request, or EXEMPTION public_safety with reference
    "x", to adco for a child, a withdrawn and a deleted subject: PERMISSION_DENIED naming R10,
    and the refusal is recorded."""
    req = SCENARIOS["legal-claimed"][1]()  # u1003 (12), u1004 (withdrew), u1005 (deleted)
    req.legal_basis.kind, req.legal_basis.reference = kind, reference
    req.legal_basis.exemption_code = code
    before = gw.gateway.ledger.size
    codes = refusal_codes(lambda: share.Share(req, timeout=10))
    assert {"R10.no_legal_request", "R10.recipient_kind"} <= codes
    assert gw.gateway.ledger.get_entry(before).entry.decision == "DENY"


def test_court_style_reference_does_not_open_a_childs_data_to_the_ad_partner(
    admin: admin_pb2_grpc.AdminServiceStub, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """Item 1: a court-style reference with an opted-out adult and a 9-year-old is refused,
    and so is naming a real registered request for the ad partner."""
    admin.PutSubject(
        admin_pb2.PutSubjectRequest(
            subject=admin_pb2.SubjectFacts(subject_id="u1009", birth_date="2017-05-05")
        ),
        timeout=10,
    )
    claimed = legal_request(
        "adco",
        "u1002",
        legal_request_id="",
        reference="2026 Jing 0108 Min Chu No. 12345",
        fields=("account_id", "tags"),
        purpose="ad_delivery",
    )
    claimed.records.append(
        share_pb2.Record(subject_id="u1009", fields={"account_id": "acct-1009", "tags": "toys"})
    )
    assert "R10.no_legal_request" in refusal_codes(lambda: share.Share(claimed, timeout=10))
    borrowed = legal_request("adco", "u1003", fields=("account_id",), purpose="ad_delivery")
    codes = refusal_codes(lambda: share.Share(borrowed, timeout=10))
    assert {"R10.recipient_kind", "R10.recipient_mismatch"} <= codes


def test_registered_request_to_the_authority_discloses_and_is_referenced_in_the_ledger(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """The same subjects under the registered request to the AUTHORITY it names: allowed,
    consent rules yield to law, and the entry carries the request id and its reference."""
    resp = share.Share(legal_request("haidian-psb", "u1003", "u1004"), timeout=10)
    assert resp.decision.allowed and not resp.decision.excluded_subjects
    assert sorted(r.fields["name"] for r in resp.records) == ["Chen Jing", "Zhang Xiaoming"]
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).entry
    assert entry.legal_request_id == DEMO_LEGAL_REQUEST
    assert entry.legal_reference.startswith("京公海")
    assert entry.subject_count == 2


def test_registration_and_revocation_are_recorded_and_revocation_applies_at_once(
    gw: RunningGateway,
    admin: admin_pb2_grpc.AdminServiceStub,
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """RegisterLegalRequest writes a ledger entry, the request then opens the share; after
    RevokeLegalRequest (also recorded) the next share is refused as revoked."""
    before = gw.gateway.ledger.size
    registered = admin.RegisterLegalRequest(
        admin_pb2.RegisterLegalRequestRequest(legal_request=police_request()), timeout=10
    )
    assert registered.id.startswith("lr-") and registered.registered_by == "admin:ops"
    assert registered.kind == "legal_request"
    audit = audit_pb2_grpc.AuditServiceStub(gw.channel("auditor", "audit-team"))
    page = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(
            filter=audit_pb2.DisclosureFilter(partner_id="haidian-psb"), page_size=1000
        ),
        timeout=10,
    )
    [seen] = [e for e in page.entries if e.index == before]
    assert seen.legal_request_id == registered.id  # auditors see which request it was
    entry = gw.gateway.ledger.get_entry(before).entry
    assert (entry.mode, entry.legal_request_id, entry.partner_id) == (
        "registry",
        registered.id,
        "haidian-psb",
    )
    req = legal_request(
        "haidian-psb", "u1001", "u1003", legal_request_id=registered.id, fields=("name", "phone")
    )
    assert share.Share(req, timeout=10).decision.allowed
    listed = admin.ListLegalRequests(
        admin_pb2.ListLegalRequestsRequest(recipient_id="haidian-psb"), timeout=10
    )
    assert registered.id in {r.id for r in listed.legal_requests}

    size = gw.gateway.ledger.size
    revoked = admin.RevokeLegalRequest(
        admin_pb2.RevokeLegalRequestRequest(id=registered.id), timeout=10
    )
    assert revoked.revoked and revoked.revoked_by == "admin:ops"
    assert gw.gateway.ledger.get_entry(size).entry.rpc.endswith("/RevokeLegalRequest")
    assert "R10.legal_request_revoked" in refusal_codes(lambda: share.Share(req, timeout=10))


@pytest.mark.parametrize(
    ("subjects", "fields", "code"),
    [
        (("u1003",), ("name", "email"), "R10.out_of_scope_category"),
        (("u1003", "u1001"), ("name",), "R10.out_of_scope_subject"),
    ],
    ids=["other-category", "other-subject"],
)
def test_share_outside_the_requests_scope_is_refused(
    share: share_pb2_grpc.ShareServiceStub,
    subjects: tuple[str, ...],
    fields: tuple[str, ...],
    code: str,
) -> None:
    """Another category or another subject than the request names: refused, naming which."""
    req = legal_request("haidian-psb", *subjects, fields=fields)
    assert code in refusal_codes(lambda: share.Share(req, timeout=10))


def test_expired_request_and_unknown_request_are_refused(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """A request past its validity, and an id nobody registered, open nothing."""
    record = new_legal_request(
        basis="LEGAL_OBLIGATION",
        authority="court",
        authority_kind="COURT",
        reference="(2020)京01刑初1号",
        recipient_id="haidian-psb",
        subject_ids=["u1003"],
        categories=["user.name"],
        valid_from="2020-01-01",
        valid_until="2099-12-31",
        registered_by="test",
        now=datetime.now(UTC),
    )
    record.valid_until = "2021-01-01"  # stored as it would be once its time has passed
    gw.gateway.registry.legal.add(record)
    expired = legal_request("haidian-psb", "u1003", legal_request_id=record.id, fields=("name",))
    assert "R10.legal_request_expired" in refusal_codes(lambda: share.Share(expired, timeout=10))
    unknown = legal_request("haidian-psb", "u1003", legal_request_id="lr-nope", fields=("name",))
    assert "R10.unknown_legal_request" in refusal_codes(lambda: share.Share(unknown, timeout=10))


def test_caller_without_the_grant_is_refused_and_every_grant_change_is_in_the_ledger(
    gw: RunningGateway,
    admin: admin_pb2_grpc.AdminServiceStub,
    share: share_pb2_grpc.ShareServiceStub,
) -> None:
    """Removing the service's legal-request grant refuses its next legal share (R10.no_grant);
    giving it back opens it again. Both changes are ledger entries naming who changed whose
    grant, so an auditor sees when a service could claim a legal basis."""
    size = gw.gateway.ledger.size
    admin.SetLegalGrant(
        admin_pb2.SetLegalGrantRequest(principal="svc:checkout", granted=False), timeout=10
    )
    req = legal_request("haidian-psb", "u1003")
    assert refusal_codes(lambda: share.Share(req, timeout=10)) == {"R10.no_grant"}
    admin.SetLegalGrant(
        admin_pb2.SetLegalGrantRequest(principal="svc:checkout", granted=True), timeout=10
    )
    assert share.Share(req, timeout=10).decision.allowed
    grants = [
        e.entry
        for e in gw.gateway.ledger.query(after_index=size - 1)
        if e.entry.record_type == "legal_grant"
    ]
    assert [(g.caller, g.partner_id, g.reason_codes, g.mode) for g in grants] == [
        ("admin:ops", "svc:checkout", ("legal_grant.removed",), "registry"),
        ("admin:ops", "svc:checkout", ("legal_grant.set",), "registry"),
    ]


def test_a_malformed_grant_is_invalid_and_records_nothing(
    gw: RunningGateway, admin: admin_pb2_grpc.AdminServiceStub
) -> None:
    """An empty or oversized principal is INVALID_ARGUMENT, with no ledger entry."""
    before = gw.gateway.ledger.size
    for principal in ("", "p" * 257):
        code, _, _ = denied(
            lambda p=principal: admin.SetLegalGrant(  # type: ignore[misc]
                admin_pb2.SetLegalGrantRequest(principal=p, granted=True), timeout=10
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert gw.gateway.ledger.size == before


def test_a_service_cannot_grant_itself_the_legal_power(gw: RunningGateway) -> None:
    """SetLegalGrant is admin-only: a service asking for its own grant is PERMISSION_DENIED."""
    stub = admin_pb2_grpc.AdminServiceStub(gw.channel("service", "checkout"))
    code, _, _ = denied(
        lambda: stub.SetLegalGrant(
            admin_pb2.SetLegalGrantRequest(principal="svc:checkout", granted=True), timeout=10
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"reference": ""}, "registry.legal_request_reference"),
        ({"basis": "AUTHORIZED_PARTNER"}, "registry.legal_request_basis"),
        ({"exemption_code": "public_safety"}, "registry.legal_request_exemption_code"),
        ({"subject_ids": []}, "registry.legal_request_scope"),
        ({"categories": []}, "registry.legal_request_categories"),
        ({"valid_until": "2020-01-01"}, "registry.legal_request_validity"),
        ({"valid_from": "tomorrow"}, "registry.legal_request_validity"),
        ({"recipient_id": "nobody"}, "registry.legal_request_recipient_unknown"),
    ],
)
def test_malformed_registration_is_invalid_and_records_nothing(
    gw: RunningGateway,
    admin: admin_pb2_grpc.AdminServiceStub,
    over: dict[str, object],
    reason: str,
) -> None:
    """A registration missing or contradicting a field is INVALID_ARGUMENT naming it; no
    ledger entry and no request are left behind."""
    before = gw.gateway.ledger.size
    code, _, details = denied(
        lambda: admin.RegisterLegalRequest(
            admin_pb2.RegisterLegalRequestRequest(legal_request=police_request(**over)),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [d.reason for d in details if hasattr(d, "reason")] == [reason]
    assert gw.gateway.ledger.size == before
    assert len(gw.gateway.registry.legal.list()) == 1  # the demo request only


def test_only_admins_register_legal_requests(gw: RunningGateway) -> None:
    """A service cannot register its own legal request (AdminService is admin-only)."""
    stub = admin_pb2_grpc.AdminServiceStub(gw.channel("service", "checkout"))
    code, _, _ = denied(
        lambda: stub.RegisterLegalRequest(
            admin_pb2.RegisterLegalRequestRequest(legal_request=police_request()), timeout=10
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_evaluate_is_recorded_and_names_no_subject_when_refused(
    gw: RunningGateway, share: share_pb2_grpc.ShareServiceStub
) -> None:
    """Item 3: a dry run over a child, a withdrawn and a deleted subject is written to the
    ledger and answers counts per reason only, never which subject is which."""
    before = gw.gateway.ledger.size
    resp = share.Evaluate(ad_request("adco", "u1003", "u1004", "u1005"), timeout=10)
    assert not resp.decision.allowed
    assert "R1.all_subjects_excluded" in {r.code for r in resp.decision.reasons}
    assert not resp.decision.excluded_subjects
    assert sum(resp.decision.excluded_by_reason.values()) >= 3
    entry = gw.gateway.ledger.get_entry(resp.receipt.ledger_index).entry
    assert resp.receipt.ledger_index == before
    assert (entry.mode, entry.decision, entry.excluded_count) == ("evaluate", "DENY", 3)
