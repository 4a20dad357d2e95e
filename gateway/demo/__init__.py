"""Demo data (registry seed, sample records) and the canned requests of ``share-gateway demo``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from partner_gateway.v1 import share_pb2

DEMO_DIR = Path(__file__).resolve().parent
REGISTRY_SEED = DEMO_DIR / "registry.toml"


def demo_records() -> dict[str, Any]:
    """The fictitious records in ``records.json`` by record type."""
    data: dict[str, Any] = json.loads((DEMO_DIR / "records.json").read_text(encoding="utf-8"))
    return data


def profile(subject_id: str, *fields: str) -> share_pb2.Record:
    """The demo ``customer_profile`` record of ``subject_id``, restricted to ``fields`` (a
    field the record lacks, such as u1010's birth date, is left out)."""
    rec = next(r for r in demo_records()["customer_profile"] if r["subject_id"] == subject_id)
    return share_pb2.Record(
        subject_id=subject_id, fields={f: rec["fields"][f] for f in fields if f in rec["fields"]}
    )


AD_FIELDS = ("account_id", "device_id", "birth_date", "tags")


def _delivery_mode(outbox: bool) -> share_pb2.DeliveryMode.ValueType:
    return share_pb2.DELIVERY_MODE_OUTBOX if outbox else share_pb2.DELIVERY_MODE_INLINE


def profile_request(
    partner: str,
    purpose: str,
    *subjects: str,
    fields: tuple[str, ...],
    basis: share_pb2.LegalBasisKind.ValueType = share_pb2.LEGAL_BASIS_KIND_AUTHORIZED_PARTNER,
    outbox: bool = False,
) -> share_pb2.ShareRequest:
    """A share of the demo customer profiles of ``subjects`` (only ``fields``)."""
    return share_pb2.ShareRequest(
        delivery=_delivery_mode(outbox),
        recipient_id=partner,
        purpose=purpose,
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=basis),
        record_type="customer_profile",
        records=[profile(s, *fields) for s in subjects],
    )


def ad_request(
    partner: str,
    *subjects: str,
    fields: tuple[str, ...] = AD_FIELDS,
    purpose: str = "ad_delivery",
    outbox: bool = False,
) -> share_pb2.ShareRequest:
    """A share of customer profiles to an ad partner under AUTHORIZED_PARTNER."""
    return profile_request(partner, purpose, *subjects, fields=fields, outbox=outbox)


def delivery_request(*, outbox: bool = False) -> share_pb2.ShareRequest:
    """A share of the demo order's delivery details to the logistics vendor."""
    rec = demo_records()["delivery_order"][0]
    return share_pb2.ShareRequest(
        delivery=_delivery_mode(outbox),
        recipient_id="logiship",
        purpose="delivery",
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=share_pb2.LEGAL_BASIS_KIND_AUTHORIZED_PARTNER),
        record_type="delivery_order",
        records=[
            share_pb2.Record(
                subject_id=rec["subject_id"],
                order_id=rec["order_id"],
                fields={k: rec["fields"][k] for k in ("name", "phone", "address", "items")},
            )
        ],
    )


DEMO_LEGAL_REQUEST = "lr-demo-psb-0042"
LEGAL_FIELDS = ("name", "phone", "account_id")


def legal_request(
    partner: str,
    *subjects: str,
    legal_request_id: str = DEMO_LEGAL_REQUEST,
    kind: share_pb2.LegalBasisKind.ValueType = share_pb2.LEGAL_BASIS_KIND_LEGAL_OBLIGATION,
    reference: str = "",
    exemption_code: str = "",
    fields: tuple[str, ...] = LEGAL_FIELDS,
    purpose: str = "legal_request",
) -> share_pb2.ShareRequest:
    """A share of customer profiles under a legal basis naming a registered request (R10)."""
    return share_pb2.ShareRequest(
        recipient_id=partner,
        purpose=purpose,
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(
            kind=kind,
            reference=reference,
            exemption_code=exemption_code,
            legal_request_id=legal_request_id,
        ),
        record_type="customer_profile",
        records=[profile(s, *fields) for s in subjects],
    )


def cross_border_order_request() -> share_pb2.ShareRequest:
    """The data of u1013's cross-border order, to the merchant abroad it bought from (R12)."""
    rec = next(r for r in demo_records()["delivery_order"] if r["order_id"] == "o-7001")
    return share_pb2.ShareRequest(
        recipient_id="globalshop",
        purpose="order_fulfilment",
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=share_pb2.LEGAL_BASIS_KIND_USER_INITIATED),
        record_type="delivery_order",
        records=[
            share_pb2.Record(
                subject_id=rec["subject_id"], order_id=rec["order_id"], fields=rec["fields"]
            )
        ],
    )


#: Five adults whose records a research extract reduces to one city (R16: k = 5).
RESEARCH_SUBJECTS = ("u1001", "u1002", "u1006", "u1007", "u1010")


def de_identified_request() -> share_pb2.ShareRequest:
    """A de-identified research extract: one released attribute, five subjects (R16)."""
    return share_pb2.ShareRequest(
        recipient_id="research-lab",
        purpose="research",
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=share_pb2.LEGAL_BASIS_KIND_DE_IDENTIFIED),
        record_type="customer_profile",
        records=[
            share_pb2.Record(subject_id=s, fields={"city": "Shanghai"}) for s in RESEARCH_SUBJECTS
        ],
    )


#: Name -> (what it shows, request factory).
SCENARIOS: dict[str, tuple[str, Callable[[], share_pb2.ShareRequest]]] = {
    "delivery": ("logistics vendor gets name, phone, address", delivery_request),
    "ads": (
        "ad partner gets tags, age band, pseudonymous ids; opted-out subject left out",
        lambda: ad_request("adco", "u1001", "u1002", "u1007"),
    ),
    "ads-phone": (
        "asking for an ad partner's phone number is refused",
        lambda: ad_request("adco", "u1001", fields=(*AD_FIELDS, "phone")),
    ),
    "legal-request": (
        "a registered police request: the authority gets what the request names, for the "
        "subjects it names (a child and a withdrawn adult: consent rules yield to law)",
        lambda: legal_request("haidian-psb", "u1003", "u1004"),
    ),
    "legal-claimed": (
        "LEGAL_OBLIGATION claimed for the ad partner without a registered request is refused",
        lambda: legal_request(
            "adco",
            "u1003",
            "u1004",
            "u1005",
            legal_request_id="",
            fields=AD_FIELDS,
            purpose="ad_delivery",
        ),
    ),
    "unknown-partner": (
        "an unregistered partner is refused",
        lambda: ad_request("nobody-inc", "u1001"),
    ),
    "minors": (
        "R11: the 12- and 16-year-olds are left out; the 13-year-old's guardian consented",
        lambda: ad_request("adco", "u1003", "u1008", "u1009"),
    ),
    "withdrawn": (
        "R14: the subject who withdrew every consent and the deleted account are left out",
        lambda: ad_request("adco", "u1001", "u1004", "u1005"),
    ),
    "withdrawn-narrowed": (
        "R14: a withdrawal narrowed to AdMetrics leaves u1011 out of AdMetrics shares only",
        lambda: ad_request("admetrics", "u1001", "u1011"),
    ),
    "vendor-analytics": (
        "R5: a vendor measuring ad effectiveness gets pseudonymous ids only",
        lambda: profile_request(
            "measureco",
            "ad_effectiveness",
            "u1001",
            "u1010",
            fields=("account_id", "device_id", "browsing"),
        ),
    ),
    "cross-border": (
        "R12: u1006 authorised the transfer abroad; u1012's consent names no recipient",
        lambda: profile_request(
            "affiliate-cloud",
            "account_security",
            "u1006",
            "u1012",
            fields=("account_id", "location"),
            basis=share_pb2.LEGAL_BASIS_KIND_AFFILIATE_SERVICE,
        ),
    ),
    "cross-border-order": (
        "R12: the data of a cross-border order goes to its merchant abroad",
        cross_border_order_request,
    ),
    "de-identified": (
        "R16: a k-anonymous extract leaves with no subject reference",
        de_identified_request,
    ),
    "unknown-age": (
        "R11: no birth date on record is presumed capable (§六), not a minor",
        lambda: profile_request(
            "logiship", "delivery", "u1010", fields=("name", "phone", "address")
        ),
    ),
}
