"""Policy reload in a running gateway: the next ledger entry carries the new revision."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from gateway.demo import delivery_request
from gateway.policy import PolicyWatcher
from gateway.settings import REPO_ROOT
from gateway.testing import running_gateway
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2_grpc


def test_changed_policy_is_recorded_in_the_next_entry_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    """Editing a policy file changes the revision in the next ledger entry without a restart;
    a syntactically broken file is refused and the previous policy keeps serving."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies_rego", policies)
    with running_gateway(tmp_path / "gw", policy={"dir": str(policies)}) as gw:
        watcher = PolicyWatcher(engine=gw.gateway.engine, policy_dir=policies, interval_s=0.1)
        share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        first = share.Share(delivery_request(), timeout=10)
        entry = gw.gateway.ledger.get_entry(first.receipt.ledger_index).entry
        assert entry.policy_revision == first.decision.policy_revision

        decision = policies / "sharing" / "decision.rego"
        decision.write_text(decision.read_text() + "\n# reviewed 2026-11-29\n")
        assert watcher.check_once()
        second = share.Share(delivery_request(), timeout=10)
        revision = gw.gateway.ledger.get_entry(second.receipt.ledger_index).entry.policy_revision
        assert revision == second.decision.policy_revision != first.decision.policy_revision

        decision.write_text(decision.read_text() + "\nthis is not rego {\n")
        assert not watcher.check_once()  # refused; the old bundle stays
        admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
        with pytest.raises(grpc.RpcError) as info:
            admin.ReloadPolicy(admin_pb2.ReloadPolicyRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "decision.rego" in (info.value.details() or "")
        third = share.Share(delivery_request(), timeout=10)
        assert third.decision.allowed
        assert third.decision.policy_revision == second.decision.policy_revision
