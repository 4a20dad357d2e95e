"""Benchmark workload: bench subjects in the registry and the requests the scenarios send.

The demo registry has seven subjects; the benchmark adds ``BULK_SUBJECTS`` adults shaped like
the demo's ``u1001`` (consent to ad delivery, no opt-out) so that a 5-record ad share
discloses five distinct subjects and the 10,000-record bulk share has 10,000 distinct ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from gateway.demo import REGISTRY_SEED, delivery_request, profile
from gateway.registry import Registry
from partner_gateway.v1 import share_pb2

BULK_SUBJECTS = 10_000
AD_CATEGORIES = [
    "user.profile.tags",
    "user.account.id",
    "user.device.id",
    "user.demographic.birth_date",
]
STREAM_CHUNK = 1_000


def subject_id(i: int) -> str:
    return f"b{i:05d}"


def seed_registry(url: str, n: int = BULK_SUBJECTS) -> None:
    """Load the demo seed (if empty) and ``n`` bench subjects with bulk INSERTs (idempotent)."""
    registry = Registry.open(url)
    try:
        if registry.is_empty():
            registry.load_seed(REGISTRY_SEED)
    finally:
        registry.close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            have = conn.execute(
                sa.text("SELECT count(*) FROM registry_subjects WHERE subject_id = :s"),
                {"s": subject_id(0)},
            ).scalar()
            if have:
                return
            subjects = sa.table(
                "registry_subjects",
                sa.column("subject_id"),
                sa.column("birth_date"),
                sa.column("ad_opt_out"),
                sa.column("consent_withdrawn"),
                sa.column("account_deleted"),
            )
            consents = sa.table(
                "registry_consents",
                sa.column("consent_id"),
                sa.column("subject_id"),
                sa.column("recipient_id"),
                sa.column("purpose"),
                sa.column("scope"),
                sa.column("categories", sa.JSON),
                sa.column("all_categories"),
                sa.column("given_by"),
                sa.column("withdrawn"),
            )
            conn.execute(
                subjects.insert(),
                [
                    {
                        "subject_id": subject_id(i),
                        "birth_date": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
                        "ad_opt_out": False,
                        "consent_withdrawn": False,
                        "account_deleted": False,
                    }
                    for i in range(n)
                ],
            )
            conn.execute(
                consents.insert(),
                [
                    {
                        "consent_id": f"bench-consent-{i}",
                        "subject_id": subject_id(i),
                        "recipient_id": partner,
                        "purpose": "ad_delivery",
                        "scope": "SHARE",
                        "categories": AD_CATEGORIES,
                        "all_categories": False,
                        "given_by": "subject",
                        "withdrawn": False,
                    }
                    for i in range(n)
                    for partner in ("adco", "admetrics")
                ],
            )
    finally:
        engine.dispose()


def ad_record(i: int) -> share_pb2.Record:
    """A customer profile of bench subject ``i`` (the fields an ad share asks for)."""
    return share_pb2.Record(
        subject_id=subject_id(i),
        fields={
            "account_id": f"acct-{i:06d}",
            "device_id": f"dev-{i:08x}",
            "birth_date": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
            "tags": "outdoor,coffee,running",
        },
    )


def ad_share(n: int = 5, *, offset: int = 0, partner: str = "adco") -> share_pb2.ShareRequest:
    """Share of ``n`` customer profiles to an ad partner (strip + pseudonymize + ledger)."""
    return share_pb2.ShareRequest(
        recipient_id=partner,
        purpose="ad_delivery",
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=share_pb2.LEGAL_BASIS_KIND_AUTHORIZED_PARTNER),
        record_type="customer_profile",
        records=[ad_record((offset + i) % BULK_SUBJECTS) for i in range(n)],
    )


def distinct_ad_shares(n: int = 5) -> list[share_pb2.ShareRequest]:
    """``ad_share(n)`` of every run of ``n`` consecutive bench subjects: each a different
    policy input, more of them than the decision cache keeps (8,192), so a load sending them
    in turn is decided afresh on every call, as real traffic is."""
    return [ad_share(n, offset=k) for k in range(BULK_SUBJECTS)]


def logistics_share() -> share_pb2.ShareRequest:
    """The demo delivery share to the logistics vendor (one order: name, phone, address)."""
    return delivery_request()


def demo_ad_share() -> share_pb2.ShareRequest:
    """The demo's u1001 profile to adco (a registry subject from the demo seed)."""
    req = ad_share(0)
    req.records.append(profile("u1001", "account_id", "device_id", "birth_date", "tags"))
    return req


def bulk_chunks(n: int = BULK_SUBJECTS, *, rotate: int = 0) -> Iterator[share_pb2.ShareChunk]:
    """A ShareStream of ``n`` ad records: header first, then chunks of ``STREAM_CHUNK``.

    ``rotate`` starts the records at subject ``rotate``: another order is another policy
    input, so each rotation is decided afresh (no decision-cache hit), like a new batch.
    """
    header = ad_share(0)
    yield share_pb2.ShareChunk(header=header)
    order = [(rotate + i) % n for i in range(n)]
    for start in range(0, n, STREAM_CHUNK):
        yield share_pb2.ShareChunk(
            records=[ad_record(i) for i in order[start : start + STREAM_CHUNK]]
        )
