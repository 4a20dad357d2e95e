"""ShareStream decides on the registry as it is when the stream's last chunk has arrived: a
change made while the stream is still sending applies to that stream, also for subjects an
earlier share left in the registry snapshot (ADR 0025)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gateway.demo import AD_FIELDS, ad_request, profile
from gateway.testing import running_gateway
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2, share_pb2_grpc


def test_a_consent_withdrawn_between_chunks_applies_to_that_stream(tmp_path: Path) -> None:
    """A first stream caches u1001 and u1007; a second sends u1001 in its first chunk, then
    u1001's consent is withdrawn through the AdminService, then u1007's chunk follows: the
    second stream leaves u1001 out and discloses u1007 only."""
    with running_gateway(tmp_path) as gw:
        admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
        share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        first = list(
            share.ShareStream(
                iter([share_pb2.ShareChunk(header=ad_request("adco", "u1001", "u1007"))]),
                timeout=30,
            )
        )
        assert first[0].summary.decision.allowed
        assert not first[0].summary.decision.excluded_subjects

        def chunks() -> Iterator[share_pb2.ShareChunk]:
            yield share_pb2.ShareChunk(header=ad_request("adco", "u1001"))
            admin.WithdrawConsent(admin_pb2.WithdrawConsentRequest(subject_id="u1001"), timeout=10)
            yield share_pb2.ShareChunk(records=[profile("u1007", *AD_FIELDS)])

        second = list(share.ShareStream(chunks(), timeout=30))
        decision = second[0].summary.decision
        assert [e.subject_id for e in decision.excluded_subjects] == ["u1001"]
        assert sum(len(m.records) for m in second[1:]) == 1
