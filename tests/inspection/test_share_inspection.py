"""R19 on the share path: identifiers hidden in ordinary fields never reach the partner.

Replays issue 11, item 2 of "What was measured": a name, a phone number and an e-mail address
put into the ``tags`` field of an ad share to ``adco``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo import ad_request
from gateway.policy.embedded import EmbeddedEngine
from gateway.registry import Registry
from gateway.security.identity import Principal, Role
from gateway.security.keys import PseudonymKeys
from gateway.settings import REPO_ROOT
from gateway.sharing import RecordIn, ShareOrder, Sharing
from gateway.testing import running_gateway
from ledger import Ledger
from partner_gateway.v1 import share_pb2_grpc
from tests.gateway.test_share_integration import denied

SERVICE = Principal(id="svc:checkout", role=Role.SERVICE)
HIDDEN = "Li Wei 13800131001 li.wei@example.cn"


@pytest.fixture(scope="module")
def sharing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharing]:
    root = tmp_path_factory.mktemp("inspect")
    registry = Registry.open(f"sqlite:///{root / 'r.db'}")
    registry.load_seed(REPO_ROOT / "gateway" / "demo" / "registry.toml")
    ledger = Ledger.open(f"sqlite:///{root / 'l.db'}", keys_dir=root / "lk", origin="test")
    yield Sharing(
        registry=registry,
        engine=EmbeddedEngine(policy_dir=REPO_ROOT / "policies_rego"),
        ledger=ledger,
        keys=PseudonymKeys(directory=root / "keys"),
    )
    ledger.close()
    registry.close()


def ad_order(tags: dict[str, str]) -> ShareOrder:
    return ShareOrder(
        recipient_id="adco",
        purpose="ad_delivery",
        action="SHARE",
        legal_basis="AUTHORIZED_PARTNER",
        record_type="customer_profile",
        records=[
            RecordIn(subject_id=sid, fields={"account_id": f"acct-{sid}", "tags": t})
            for sid, t in tags.items()
        ],
    )


def test_identifiers_hidden_in_tags_leave_their_subject_out(sharing: Sharing) -> None:
    """u1001's tags carry a name, a phone and an e-mail: u1001 is left out naming field and
    kinds; u1007's ordinary tags go through."""
    outcome = sharing.share(
        ad_order({"u1001": HIDDEN, "u1007": "gadgets,music"}), SERVICE, request_id="t", rpc="t"
    )
    assert outcome.decision.allow
    assert [r.subject_id for r in outcome.records] == ["u1007"]
    [reason] = outcome.excluded["u1001"]
    assert reason.code == "R19.identifier_in_field"
    assert "tags (user.profile.tags): EMAIL_ADDRESS" in reason.message
    assert "tags (user.profile.tags): PHONE_NUMBER" in reason.message
    assert "13800131001" not in reason.message and "li.wei" not in reason.message


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    hidden=st.one_of(
        st.from_regex(r"1(3[0-9]|5[0-35-9]|8[0-9])[0-9]{8}", fullmatch=True),
        st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}@[a-z]{2,8}\.(cn|com)", fullmatch=True),
        st.from_regex(r"(10|172|192)\.[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True),
    ),
    words=st.text(alphabet="abcdefghij ,", max_size=20),
)
def test_a_refusal_or_exclusion_never_names_the_value(
    sharing: Sharing, hidden: str, words: str
) -> None:
    """Whatever identifier is hidden, the decision's reasons never contain it."""
    outcome = sharing.share(
        ad_order({"u1001": f"{words} {hidden}"}), SERVICE, request_id="t", rpc="t"
    )
    assert not outcome.decision.allow  # the only subject was left out
    messages = [r.message for r in outcome.decision.reasons] + [
        r.message for rs in outcome.excluded.values() for r in rs
    ]
    assert any("R19" in r.code for rs in outcome.excluded.values() for r in rs)
    assert not any(hidden in m for m in messages)


def test_hidden_identifiers_do_not_reach_the_ad_partner_over_grpc(tmp_path: Path) -> None:
    """Over mTLS: the ad share with identifiers in tags is refused (only subject left out),
    naming R19, the field and the kind, never the value."""
    with running_gateway(tmp_path) as gw:
        share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        req = ad_request("adco", "u1001", fields=("account_id", "tags"))
        req.records[0].fields["tags"] = HIDDEN
        code, message, details = denied(lambda: share.Share(req, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "R1.all_subjects_excluded" in message
        [decision] = [d for d in details if hasattr(d, "excluded_by_reason")]
        assert dict(decision.excluded_by_reason) == {"R19.identifier_in_field": 1}
        assert "13800131001" not in message and "li.wei" not in message
