"""A real gateway with demo data, and consoles in front of it (one honest, one tampering)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import pytest

from gateway.console.app import create_app
from gateway.console.client import AuditClient, client_files
from gateway.console.serving import console_app, running_console
from gateway.demo import ad_request, delivery_request
from gateway.security.identity import Role
from gateway.security.tokens import mint_token
from gateway.settings import Settings
from gateway.testing import RunningGateway, running_gateway
from ledger import Disclosure, Ledger
from partner_gateway.v1 import audit_pb2, partner_pb2, partner_pb2_grpc, share_pb2_grpc


class TamperingAuditClient(AuditClient):
    """A console server that lies: it flips one bit of the first inclusion-proof hash."""

    async def receipt(self, token: str, index: int) -> audit_pb2.Receipt:
        receipt = await super().receipt(token, index)
        first = bytearray(receipt.inclusion_proof[0])
        first[0] ^= 0x01
        receipt.inclusion_proof[0] = bytes(first)
        return receipt


@dataclass(frozen=True)
class Rig:
    gw: RunningGateway
    url: str
    tampering_url: str
    auditor_token: str
    service_token: str

    @property
    def vkey(self) -> str:
        """The ledger's verifier key, as an auditor would get it out of band."""
        return self.gw.gateway.ledger.verifier_key


def backfill(ledger: Ledger, *, revision: str, days: int = 14, seed: int = 7) -> None:
    """A fortnight of earlier decisions, backdated, so the charts have days to show."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    flows = [
        ("logiship", "delivery", ("user.name", "user.contact.address", "user.contact.phone")),
        ("adco", "ad_delivery", ("user.account.id", "user.demographic.age_band")),
        ("admetrics", "ad_delivery", ("user.account.id",)),
        ("shopmall", "marketing", ("user.account.id", "user.profile.tags")),
    ]
    refusals = [
        ("adco", "ad_delivery", ("R4.opted_out",)),
        ("nobody-inc", "ad_delivery", ("R2.unknown_recipient",)),
        ("affiliate-cloud", "analytics", ("R12.cross_border_not_authorised",)),
    ]
    batch = []
    for day in range(days, 0, -1):
        share = partial(
            Disclosure,
            time=now - timedelta(days=day),
            rpc="/partner_gateway.v1.ShareService/Share",
            caller="svc:checkout",
            action="SHARE",
            mode="share",
            policy_revision=revision,
        )
        for partner, purpose, cats in flows:
            for _ in range(rng.randint(0, 4)):
                subject = f"u{rng.randint(2000, 2100)}"
                batch.append(
                    share(
                        decision="ALLOW",
                        partner_id=partner,
                        purpose=purpose,
                        categories_disclosed=cats,
                        record_count=1,
                        subject_ids=(subject,),
                    )
                )
        for partner, purpose, reasons in refusals:
            if rng.random() < 0.5:
                batch.append(
                    share(
                        decision="DENY", partner_id=partner, purpose=purpose, reason_codes=reasons
                    )
                )
    ledger.append(batch)


def _demo_shares(gw: RunningGateway) -> None:
    share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    share.Share(delivery_request())  # u1001 -> logiship
    share.Share(ad_request("adco", "u1001", "u1002"))  # u1001 -> adco; u1002 opted out
    share.Share(ad_request("admetrics", "u1007", outbox=True))  # staged...
    partner = partner_pb2_grpc.PartnerServiceStub(gw.channel("partner", "admetrics"))
    list(partner.Pull(partner_pb2.PullRequest(), timeout=10))  # ...and pulled
    with pytest.raises(grpc.RpcError):
        share.Share(ad_request("nobody-inc", "u1001"))  # refused, recorded


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """Gateway (tokens enabled, demo shares plus a backdated fortnight) and two consoles."""
    data = tmp_path_factory.mktemp("console")
    tokens = data / "tokens.json"
    auditor = mint_token(tokens, principal_id="auditor:alice", role=Role.AUDITOR)
    service = mint_token(tokens, principal_id="svc:checkout", role=Role.SERVICE)
    with running_gateway(data, tokens_file=str(tokens)) as gw:
        backfill(gw.gateway.ledger, revision=gw.gateway.engine.revision)
        _demo_shares(gw)
        settings = Settings.load(
            env={}, overrides={"data_dir": str(data), "console": {"gateway": gw.address}}
        )
        files = client_files(settings.console, pki=settings.pki_dir)

        def tampering() -> AuditClient:
            return TamperingAuditClient.connect(target=gw.address, files=files, timeout_s=10)

        liar = create_app(settings=settings.console, connect=tampering)
        with (
            running_console(console_app(settings, https=False)) as honest,
            running_console(liar) as lying,
        ):
            yield Rig(
                gw=gw,
                url=honest.url,
                tampering_url=lying.url,
                auditor_token=auditor,
                service_token=service,
            )
