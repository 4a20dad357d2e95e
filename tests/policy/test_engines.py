"""Engine behaviour: revision and reload, fail-closed errors, the Rego test runner, the CLI."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy import PolicyEngine, PolicyWatcher, compute_revision, engine_from_settings
from gateway.policy.embedded import EmbeddedEngine
from gateway.policy.fake_opa import FakeOpa
from gateway.policy.opa_go import OpaGoEngine
from gateway.policy.opa_server import OpaServerEngine
from gateway.policy.rego_tests import run_tests, summary
from gateway.settings import PolicySettings

from .conftest import POLICY_DIR

CASES = json.loads((Path(__file__).parent / "golden" / "cases.json").read_text())["cases"]
ALLOWED = next(c["input"] for c in CASES if c["name"] == "vendor delivery allowed")
BROKEN = "package sharing\n\nimport rego.v1\n\nbroken if {\n"


def _tighten(policy_dir: Path) -> None:
    """Change a data file so the allowed vendor case is refused (k stays, delivery purpose goes)."""
    path = policy_dir / "params" / "data.json"
    data = json.loads(path.read_text())
    data["recipient_kinds"]["VENDOR"]["purposes"].remove("delivery")
    path.write_text(json.dumps(data))


def _engines(policy_dir: Path, opa: FakeOpa) -> list[PolicyEngine]:
    return [
        EmbeddedEngine(policy_dir=policy_dir),
        OpaGoEngine(policy_dir=policy_dir),
        OpaServerEngine(policy_dir=policy_dir, url=opa.url, timeout_s=5.0),
    ]


def test_decision_carries_revision_of_served_files() -> None:
    """The revision is the hash of the served files, the same for both engines' inputs."""
    engine = EmbeddedEngine(policy_dir=POLICY_DIR)
    assert engine.decide(ALLOWED).revision == compute_revision(POLICY_DIR) == engine.revision
    assert len(engine.revision) == 16


def test_test_files_do_not_change_the_revision(policy_copy: Path) -> None:
    """Editing a *_test.rego file is not a policy change."""
    before = compute_revision(policy_copy)
    (policy_copy / "sharing" / "extra_test.rego").write_text("package sharing_test\n")
    assert compute_revision(policy_copy) == before


def test_reload_applies_a_changed_policy_without_restart(
    policy_copy: Path, private_opa: FakeOpa
) -> None:
    """Changing a data file changes the revision and the next decision on every engine."""
    for engine in _engines(policy_copy, private_opa):
        old = engine.revision
        assert engine.decide(ALLOWED).allow
        _tighten(policy_copy)
        new = engine.reload()
        assert new != old == engine.decide(ALLOWED).revision or new == engine.revision
        decision = engine.decide(ALLOWED)
        assert not decision.allow and decision.revision == new
        assert "R3.purpose_not_for_kind" in {r.code for r in decision.reasons}
        engine.close()
        # restore for the next engine
        (policy_copy / "params" / "data.json").write_text(
            (POLICY_DIR / "params" / "data.json").read_text()
        )


def test_broken_policy_is_refused_and_old_one_keeps_serving(
    policy_copy: Path, private_opa: FakeOpa
) -> None:
    """A syntactically broken module raises PolicyLoadError with the compiler's message."""
    for engine in _engines(policy_copy, private_opa):
        old = engine.revision
        bad = policy_copy / "sharing" / "broken.rego"
        bad.write_text(BROKEN)
        with pytest.raises(PolicyLoadError) as info:
            engine.reload()
        assert "broken.rego" in info.value.message
        assert info.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert engine.revision == old
        decision = engine.decide(ALLOWED)
        assert decision.allow and decision.revision == old
        bad.unlink()
        engine.close()


def test_in_flight_requests_are_unaffected_by_reload(policy_copy: Path) -> None:
    """Decisions running on other threads during reloads all succeed on a whole bundle."""
    engine = EmbeddedEngine(policy_dir=policy_copy)
    first = engine.revision
    errors: list[BaseException] = []
    seen: set[tuple[str, bool]] = set()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                d = engine.decide(ALLOWED)
                seen.add((d.revision, d.allow))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    _tighten(policy_copy)
    second = engine.reload()
    (policy_copy / "params" / "data.json").write_text(
        (POLICY_DIR / "params" / "data.json").read_text()
    )
    engine.reload()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    # every decision is consistent with the revision it reports
    assert seen <= {(first, True), (second, False)}


def test_watcher_reloads_on_file_change_and_survives_a_bad_file(policy_copy: Path) -> None:
    """The watcher picks up a change, and logs and keeps serving on a broken policy."""
    engine = EmbeddedEngine(policy_dir=policy_copy)
    watcher = PolicyWatcher(engine=engine, policy_dir=policy_copy, interval_s=0.05)
    old = engine.revision
    assert watcher.check_once() is False
    _tighten(policy_copy)
    assert watcher.check_once() is True
    assert engine.revision == compute_revision(policy_copy) != old
    good = engine.revision
    (policy_copy / "sharing" / "broken.rego").write_text(BROKEN)
    assert watcher.check_once() is False
    assert watcher.last_error is not None and "broken.rego" in watcher.last_error
    assert engine.revision == good
    (policy_copy / "sharing" / "broken.rego").unlink()
    watcher.start()
    try:
        for _ in range(100):
            if engine.revision != good:
                break
            threading.Event().wait(0.05)
    finally:
        watcher.stop()
    # the directory is back to `good` content, so nothing changed
    assert engine.revision == good


def test_opa_down_is_an_engine_error(private_opa: FakeOpa) -> None:
    """An OPA server that drops connections -> PolicyEngineError (UNAVAILABLE)."""
    engine = OpaServerEngine(policy_dir=POLICY_DIR, url=private_opa.url, timeout_s=1.0)
    private_opa.down = True
    with pytest.raises(PolicyEngineError) as info:
        engine.decide(ALLOWED)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_opa_slower_than_timeout_is_an_engine_error(private_opa: FakeOpa) -> None:
    """An answer slower than opa_timeout_s -> PolicyEngineError."""
    engine = OpaServerEngine(policy_dir=POLICY_DIR, url=private_opa.url, timeout_s=0.2)
    private_opa.delay_s = 0.6
    with pytest.raises(PolicyEngineError):
        engine.decide(ALLOWED)


def test_opa_5xx_and_unreachable_are_engine_errors(private_opa: FakeOpa) -> None:
    """A 500 answer, and a server that is gone, are engine errors too."""
    engine = OpaServerEngine(policy_dir=POLICY_DIR, url=private_opa.url, timeout_s=1.0)
    private_opa.status = 500
    with pytest.raises(PolicyEngineError):
        engine.decide(ALLOWED)
    private_opa.status = None
    private_opa.down = True
    with pytest.raises(PolicyEngineError):
        engine.decide(ALLOWED)


def test_opa_undefined_decision_fails_closed(private_opa: FakeOpa) -> None:
    """A server without the decision document answers {} -> PolicyEngineError, not allow."""
    engine = OpaServerEngine(policy_dir=POLICY_DIR, url=private_opa.url, timeout_s=1.0)
    for pid in list(private_opa.modules):
        private_opa.delete_policy(pid)
    with pytest.raises(PolicyEngineError):
        engine.decide(ALLOWED)


def test_opa_decision_id_is_kept_and_a_malformed_one_fails_closed(private_opa: FakeOpa) -> None:
    """OPA's decision_id reaches the decision; an oversized one never reaches the ledger."""
    engine = OpaServerEngine(policy_dir=POLICY_DIR, url=private_opa.url, timeout_s=5.0)
    decision = engine.decide(ALLOWED)
    assert decision.decision_id == private_opa.decision_log[-1]["decision_id"]
    real_query = private_opa.query

    def huge_id(path: list[str], input: Any, *, provenance: bool = False) -> Any:
        status, answer = real_query(path, input, provenance=provenance)
        return status, dict(answer, decision_id="x" * 10_000)

    private_opa.query = huge_id  # type: ignore[method-assign]
    with pytest.raises(PolicyEngineError, match="decision_id"):
        engine.decide(ALLOWED)


def test_unreachable_opa_at_start_is_an_engine_error() -> None:
    """Starting against a port nobody listens on -> PolicyEngineError."""
    with FakeOpa() as gone:
        url = gone.url
    with pytest.raises(PolicyEngineError):
        OpaServerEngine(policy_dir=POLICY_DIR, url=url, timeout_s=0.5)


def test_engine_from_settings_picks_the_engine(fake_opa: FakeOpa) -> None:
    """opa_url set -> OPA server engine; unset -> embedded regorus, or OPA in-process."""
    assert isinstance(engine_from_settings(PolicySettings(dir=POLICY_DIR)), EmbeddedEngine)
    opa_go = engine_from_settings(PolicySettings(dir=POLICY_DIR, engine="opa"))
    assert isinstance(opa_go, OpaGoEngine) and opa_go.decide(ALLOWED).allow
    engine = engine_from_settings(PolicySettings(dir=POLICY_DIR, opa_url=fake_opa.url))
    assert isinstance(engine, OpaServerEngine)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"allow": "yes", "reasons": []},
        {
            "allow": True,
            "reasons": [{"code": "R1.x", "message": "m"}],
            "obligations": {"drop": [], "pseudonymize": [], "generalize": {}},
        },
        {"allow": False},
    ],
)
def test_malformed_decision_fails_closed(raw: Any) -> None:
    """Anything that is not a contract-v1 decision is a PolicyEngineError."""
    from gateway.policy import parse_decision

    with pytest.raises(PolicyEngineError):
        parse_decision(raw, revision="r")


def test_rego_unit_tests_all_pass() -> None:
    """Every test_* rule in policies_rego/**/*_test.rego passes on the embedded engine."""
    results = run_tests(POLICY_DIR)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert failed == []
    names = " ".join(r.name for r in results)
    for n in range(1, 18):
        assert f"test_r{n}_" in names, f"no Rego test for R{n}"
    assert summary(results).endswith(" 0 failed")


def test_rego_unit_tests_all_pass_on_opa() -> None:
    """Every test_* rule also passes on OPA's own Go evaluator (the reference)."""
    results = run_tests(POLICY_DIR, engine="opa")
    assert [f"{r.name}: {r.detail}" for r in results if not r.passed] == []
    assert len(results) == len(run_tests(POLICY_DIR))


def test_opa_refuses_a_module_that_does_not_compile(policy_copy: Path) -> None:
    """An unsafe variable parses but does not compile: OPA's message names the module."""
    (policy_copy / "sharing" / "unsafe.rego").write_text(
        "package sharing\n\nimport rego.v1\n\nbad if {\n\tx == 1\n}\n"
    )
    with pytest.raises(PolicyLoadError) as info:
        OpaGoEngine(policy_dir=policy_copy)
    assert "unsafe.rego" in info.value.message and "unsafe" in info.value.message


def _cli() -> ModuleType:
    # gateway/cli/__init__.py imports sibling apps that may not exist yet: load ours alone.
    spec = importlib.util.spec_from_file_location(
        "_policy_cli", POLICY_DIR.parent / "gateway" / "cli" / "policy.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_test_prints_summary_and_fails_on_failure(policy_copy: Path) -> None:
    """`policy test` ends with 'N passed, M failed' and exits 1 when a test fails."""
    app = _cli().app
    ok = CliRunner().invoke(app, ["test", "--dir", str(policy_copy)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().splitlines()[-1].endswith(" passed, 0 failed")
    (policy_copy / "sharing" / "zz_test.rego").write_text(
        "package sharing_test\n\nimport rego.v1\n\ntest_fails if {\n\tfalse\n}\n"
    )
    bad = CliRunner().invoke(app, ["test", "--dir", str(policy_copy)])
    assert bad.exit_code == 1
    assert "FAIL data.sharing_test.test_fails" in bad.output
    assert bad.output.strip().splitlines()[-1].endswith(" passed, 1 failed")


def test_cli_revision_and_eval(tmp_path: Path) -> None:
    """`policy revision` prints the revision; `policy eval` prints the decision."""
    app = _cli().app
    rev = CliRunner().invoke(app, ["revision", "--dir", str(POLICY_DIR)])
    assert rev.output.strip() == compute_revision(POLICY_DIR)
    f = tmp_path / "in.json"
    f.write_text(json.dumps(ALLOWED))
    out = CliRunner().invoke(app, ["eval", "--input", str(f), "--dir", str(POLICY_DIR)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["allow"] is True  # the revision line goes to stderr
