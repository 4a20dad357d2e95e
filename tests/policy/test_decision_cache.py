"""The in-process engines' decision cache: a pure function of (revision, input), nothing else."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from gateway.policy.decision_cache import DECISION_CACHE_MAX_INPUT
from gateway.policy.embedded import PROBE_INPUTS, EmbeddedEngine
from gateway.policy.opa_go import OpaGoEngine
from gateway.settings import REPO_ROOT


def engine_on_copy(tmp_path: Path) -> tuple[EmbeddedEngine, Path]:
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies_rego", policies)
    return EmbeddedEngine(policy_dir=policies), policies


def test_a_repeated_input_is_answered_from_the_cache_and_equals_evaluation(tmp_path: Path) -> None:
    """The same input gets the cached decision, identical to an uncached evaluation."""
    engine, _ = engine_on_copy(tmp_path)
    first = engine.decide(PROBE_INPUTS[1])
    assert engine.decide(copy.deepcopy(PROBE_INPUTS[1])) is first
    assert engine.evaluate(PROBE_INPUTS[1]) == first


def test_changed_facts_change_the_key(tmp_path: Path) -> None:
    """A changed subject fact is a different input: decided afresh, never served stale."""
    engine, _ = engine_on_copy(tmp_path)
    base = copy.deepcopy(PROBE_INPUTS[1])
    before = engine.decide(base)
    changed = copy.deepcopy(base)
    changed["subjects"][0]["consent_withdrawn"] = True
    after = engine.decide(changed)
    assert after is not before
    assert after == engine.evaluate(changed)


def test_a_reload_starts_an_empty_cache_under_the_new_revision(tmp_path: Path) -> None:
    """After a policy change the decision carries the new revision."""
    engine, policies = engine_on_copy(tmp_path)
    old = engine.decide(PROBE_INPUTS[1])
    path = policies / "sharing" / "decision.rego"
    path.write_text(path.read_text() + "\n# touched\n")
    engine.reload()
    new = engine.decide(PROBE_INPUTS[1])
    assert new.revision != old.revision and new is not old


def test_a_bundle_with_impure_builtins_is_never_cached(tmp_path: Path) -> None:
    """A module calling time.now_ns makes every decision a fresh evaluation."""
    _, policies = engine_on_copy(tmp_path)
    (policies / "sharing" / "clock.rego").write_text(
        "package sharing\n\nnow_ns := time.now_ns()\n", encoding="utf-8"
    )
    engine = EmbeddedEngine(policy_dir=policies)
    assert engine.decide(PROBE_INPUTS[1]) is not engine.decide(PROBE_INPUTS[1])


def test_a_bulk_sized_input_is_decided_without_the_cache(tmp_path: Path) -> None:
    """Inputs beyond DECISION_CACHE_MAX_INPUT (bulk shares) are never kept: the cache's
    memory stays bounded by entries times that size."""
    engine, _ = engine_on_copy(tmp_path)
    bulk = copy.deepcopy(PROBE_INPUTS[1])
    subject = bulk["subjects"][0]
    bulk["subjects"] = [dict(subject, ref=str(i)) for i in range(200)]
    assert len(json.dumps(bulk)) > DECISION_CACHE_MAX_INPUT
    first = engine.decide(bulk)
    assert engine.decide(bulk) is not first
    assert engine.decide(bulk) == first


def test_opa_in_process_engine_caches_the_same_way(tmp_path: Path) -> None:
    """OPA in-process: a repeat is the cached decision, equal to evaluation; a change is not."""
    _, policies = engine_on_copy(tmp_path)
    engine = OpaGoEngine(policy_dir=policies)
    first = engine.decide(PROBE_INPUTS[1])
    assert engine.decide(copy.deepcopy(PROBE_INPUTS[1])) is first
    assert engine.evaluate(PROBE_INPUTS[1]) == first
    changed = copy.deepcopy(PROBE_INPUTS[1])
    changed["subjects"][0]["consent_withdrawn"] = True
    assert engine.decide(changed) == engine.evaluate(changed) != first
