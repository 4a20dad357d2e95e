"""The benchmark's workload: what each scenario really asks the gateway to do."""

from __future__ import annotations

from bench.workload import BULK_SUBJECTS, distinct_ad_shares
from gateway.policy.decision_cache import DECISION_CACHE_SIZE


def test_distinct_shares_outnumber_the_decision_cache_so_every_call_is_decided_afresh() -> None:
    """share-ad5-distinct sends these in turn: more distinct subject batches than the
    decision cache keeps, each naming registered bench subjects only."""
    shares = distinct_ad_shares(5)
    batches = {tuple(r.subject_id for r in s.records) for s in shares}
    assert len(batches) == len(shares) > DECISION_CACHE_SIZE
    assert all(len(b) == len(set(b)) == 5 for b in batches)
    assert {sid for b in batches for sid in b} == {f"b{i:05d}" for i in range(BULK_SUBJECTS)}
