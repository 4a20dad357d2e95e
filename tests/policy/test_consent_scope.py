"""The policy input carries only the consents that can count for the share.

R6 accepts a consent only for the recipient and the purpose it names, so the gateway leaves
a subject's consents to other recipients or for other purposes out of the input (less for
the input gate to check per subject, and no partner's consents in another partner's
decision log). These tests pin both halves: the builder drops exactly those consents, and no
such consent ever changes a decision (so dropping them cannot change one either).
"""

from __future__ import annotations

import copy
import json
import random
from datetime import date
from typing import Any

import pytest

from gateway.demo import ad_request
from gateway.policy.embedded import EmbeddedEngine
from gateway.registry import (
    Consent,
    ConsentGiver,
    ConsentScope,
    Recipient,
    RecipientKind,
    SubjectFacts,
    Withdrawal,
)
from gateway.security.identity import Principal, Role
from gateway.services.share import order_from_request
from gateway.sharing import batch_refs, build_policy_input

from .conftest import POLICY_DIR
from .contract_inputs import built_input
from .test_differential import CASES


def _consent(cid: str, recipient: str, purpose: str) -> Consent:
    return Consent(
        consent_id=cid,
        recipient_id=recipient,
        purpose=purpose,
        scope=ConsentScope.SHARE,
        categories=("user.profile.tags",),
        all_categories=False,
        given_by=ConsentGiver.SUBJECT,
    )


def test_the_input_carries_only_consents_naming_this_recipient_and_purpose() -> None:
    recipient = Recipient(
        id="adco",
        kind=RecipientKind.AD_PARTNER,
        active=True,
        region="CN",
        agreement_id="agr-adco",
        agreement_version="1",
        agreement_purposes=("ad_delivery",),
        agreement_categories=("user.profile.tags",),
        agreement_expires="2099-12-31",
        agreement_binds_policy=False,
        security_review_expires="2099-12-31",
        dpa_expires="2099-12-31",
    )
    facts = SubjectFacts(
        subject_id="u1001",
        birth_date="1990-01-01",
        consents=(
            _consent("c-this", "adco", "ad_delivery"),
            _consent("c-other-partner", "admetrics", "ad_delivery"),
            _consent("c-other-purpose", "adco", "ad_measurement"),
            _consent("c-any", "", ""),
        ),
        withdrawals=(
            Withdrawal(recipient_id="admetrics", purpose="", categories=(), all_categories=True),
        ),
    )
    order = order_from_request(ad_request("adco", "u1001", fields=("tags",)))
    doc = build_policy_input(
        order,
        Principal(id="svc:checkout", role=Role.SERVICE),
        mode="share",
        today=date(2026, 12, 2),
        schema={"tags": "user.profile.tags"},
        categories=["user.profile.tags"],
        recipient=recipient,
        refs=batch_refs(order.records),
        facts={"u1001": facts},
        identifiers={},
        legal=None,
    )
    (subject,) = doc["subjects"]
    assert [c["id"] for c in subject["consents"]] == ["c-this"]
    # Withdrawals reach other recipients and purposes too (R14): all of them stay.
    assert subject["withdrawals"] == [
        {"recipient": "admetrics", "purpose": "", "categories": [], "all_categories": True}
    ]


def _with_decoys(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``doc`` with, for each subject, copies of its consents (and of a template) naming
    another recipient or another purpose, in random positions."""
    out = copy.deepcopy(doc)
    request, recipient_doc = out.get("request"), out.get("recipient")
    if not isinstance(request, dict) or not isinstance(request.get("purpose"), str):
        return out  # malformed golden cases: refused by the gate whatever they carry
    recipient = recipient_doc.get("id", "") if isinstance(recipient_doc, dict) else ""
    purpose = request["purpose"]
    template = {
        "id": "decoy",
        "recipient": recipient,
        "purpose": purpose,
        "scope": "SHARE",
        "categories": list(request.get("categories") or []),
        "all_categories": True,
        "given_by": "subject",
    }
    for s in out["subjects"]:
        if not isinstance(s, dict) or not isinstance(s.get("consents"), list):
            continue
        for i, c in enumerate([*s["consents"], template, dict(template, given_by="guardian")]):
            if not isinstance(c, dict):
                continue
            for field, other in (("recipient", f"{recipient}-other"), ("purpose", purpose + "x")):
                decoy = dict(c, id=f"decoy-{i}-{field}", **{field: other})
                s["consents"].insert(rng.randrange(len(s["consents"]) + 1), decoy)
    return out


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(policy_dir=POLICY_DIR)


def test_consents_naming_another_recipient_or_purpose_never_change_a_decision(
    engine: EmbeddedEngine,
) -> None:
    """On every golden case and 500 gateway-built inputs, decoy consents (every consent of
    each subject, and an all-categories one, copied with another recipient or purpose) leave
    the decision exactly as it was: allow, reasons, exclusions, obligations, consent ids."""
    rng = random.Random(20261202)
    inputs = [c["input"] for c in CASES] + [built_input(rng) for _ in range(500)]
    changed = [
        json.dumps(doc)[:300]
        for doc in inputs
        if engine.evaluate(_with_decoys(doc, rng)).comparable() != engine.evaluate(doc).comparable()
    ]
    assert changed == []
