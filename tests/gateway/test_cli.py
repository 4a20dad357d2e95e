"""The operator's command line: every client command works from any folder, against a gateway
that is up or down, with one-line errors, validated options and nothing created by reads."""

from __future__ import annotations

import json
import re
import socket
import sys
import tomllib
import warnings
from collections.abc import Iterator
from concurrent import futures
from importlib.metadata import packages_distributions
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import HealthServicer
from typer.testing import CliRunner

from gateway.cli import app
from gateway.demo import REGISTRY_SEED, SCENARIOS
from gateway.registry import Registry
from gateway.server import with_dev_pki
from gateway.settings import REPO_ROOT, Settings
from gateway.testing import RunningGateway, running_gateway

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``gateway.toml`` whose relative ``data_dir`` is ``data`` beside it."""
    root = tmp_path_factory.mktemp("site")
    (root / "gateway.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def gw(site: Path) -> Iterator[RunningGateway]:
    """A gateway serving the site's data dir; the demo has been sent through it once."""
    with running_gateway(site / "data") as running:
        yield running


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the command from an unrelated, empty folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version_prints_the_package_version() -> None:
    """--version prints the installed version and exits 0."""
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and re.fullmatch(r"share-gateway \S+\n", res.stdout)


def test_relative_data_dir_is_relative_to_the_settings_file(site: Path, elsewhere: Path) -> None:
    """A relative data_dir in a settings file is anchored at the file, not the current folder."""
    settings = Settings.load(site / "gateway.toml", env={})
    assert settings.data_dir == site / "data"
    assert settings.pki_dir == site / "data" / "pki"


def test_health_of_a_stopped_gateway_is_one_line_and_exit_2(site: Path, elsewhere: Path) -> None:
    """health against a port nobody serves: one error line, exit 2, no traceback."""
    runner.invoke(app, ["certs", "init", "--config", str(site / "gateway.toml")])
    res = runner.invoke(
        app,
        ["health", "--config", str(site / "gateway.toml"), "--server", f"127.0.0.1:{free_port()}"],
    )
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and "not reachable (UNAVAILABLE)" in res.stderr
    assert "Traceback" not in res.output


def test_client_without_certificates_names_the_missing_file(
    tmp_path: Path, elsewhere: Path
) -> None:
    """No dev PKI yet: the error names the file and how to get one, exit 2."""
    cfg = tmp_path / "empty.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "nothing"}"\n', encoding="utf-8")
    res = runner.invoke(app, ["health", "--config", str(cfg)])
    assert res.exit_code == 2
    assert f"no CA certificate at {tmp_path / 'nothing' / 'pki' / 'ca.crt'}" in res.stderr


def test_demo_against_a_stopped_gateway_exits_2(site: Path, elsewhere: Path) -> None:
    """demo on UNAVAILABLE stops at the first request with one error line and exit 2."""
    runner.invoke(app, ["certs", "init", "--config", str(site / "gateway.toml")])
    res = runner.invoke(
        app,
        ["demo", "--config", str(site / "gateway.toml"), "--server", f"127.0.0.1:{free_port()}"],
    )
    assert res.exit_code == 2
    assert "not reachable (UNAVAILABLE)" in res.stderr and "Traceback" not in res.output


def test_health_and_demo_work_from_any_folder(
    gw: RunningGateway, site: Path, elsewhere: Path
) -> None:
    """With --config, health and demo find the gateway's PKI from an unrelated folder."""
    args = ["--config", str(site / "gateway.toml"), "--server", gw.address]
    # stdout also holds the in-process gateway's log lines, in any order: the access log line
    # of a call is written in the loop's next turn, after the answer (gateway.interceptors).
    res = runner.invoke(app, ["health", *args])
    assert res.exit_code == 0 and "SERVING" in res.stdout.splitlines()
    res = runner.invoke(app, ["demo", *args])
    assert res.exit_code == 0, res.output  # the refusals are outcomes, not failures
    assert len(re.findall(r"^# [\w-]+: ", res.stdout, re.M)) == len(SCENARIOS)
    assert '"PERMISSION_DENIED"' in res.stdout


def test_plaintext_client_reaches_a_plaintext_gateway(site: Path, elsewhere: Path) -> None:
    """--plaintext talks without TLS (to a loopback listener serving plaintext)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        res = runner.invoke(
            app,
            [
                "health",
                "--plaintext",
                "--server",
                f"127.0.0.1:{port}",
                "-c",
                str(site / "gateway.toml"),
            ],
        )
    finally:
        server.stop(None)
    assert (res.exit_code, res.stdout) == (0, "SERVING\n"), res.output


def test_demo_unknown_scenario_is_a_usage_error(site: Path) -> None:
    """An unknown scenario name is refused before anything is sent, listing the choices."""
    res = runner.invoke(app, ["demo", "nope", "--config", str(site / "gateway.toml")])
    assert res.exit_code == 2 and "ads-phone" in res.output


def test_certs_init_writes_the_pki_that_serve_uses(tmp_path: Path, elsewhere: Path) -> None:
    """certs init and serve use one folder: data_dir/pki."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text('data_dir = "d"\n', encoding="utf-8")
    res = runner.invoke(app, ["certs", "init", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    settings = Settings.load(cfg, env={})
    served = with_dev_pki(settings)
    assert served.tls.cert_file == tmp_path / "d" / "pki" / "server.crt"
    assert served.tls.cert_file.is_file()
    assert (tmp_path / "d" / "pki" / "auditor-audit-team.crt").is_file()
    assert not (elsewhere / ".data").exists()


def test_rotate_key_of_an_unknown_partner_fails_naming_it(tmp_path: Path) -> None:
    """rotate-key for a partner not in the registry fails, naming it; a known one rotates."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text('data_dir = "d"\n', encoding="utf-8")
    (tmp_path / "d").mkdir()
    registry = Registry.open(Settings.load(cfg, env={}).ledger_url)
    registry.load_seed(REGISTRY_SEED)
    registry.close()
    res = runner.invoke(app, ["certs", "rotate-key", "nosuchpartner", "--config", str(cfg)])
    assert res.exit_code == 2 and "nosuchpartner" in res.stderr
    assert not (tmp_path / "d" / "keys" / "pseudonym" / "nosuchpartner").exists()
    res = runner.invoke(app, ["certs", "rotate-key", "adco", "--config", str(cfg)])
    assert res.exit_code == 0 and res.stdout.strip()


def test_rotate_key_without_a_database_creates_none(tmp_path: Path) -> None:
    """Before the gateway ever ran there is no registry: an error, and no database file."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text('data_dir = "d"\n', encoding="utf-8")
    res = runner.invoke(app, ["certs", "rotate-key", "adco", "--config", str(cfg)])
    assert res.exit_code == 2 and "no such database" in res.stderr
    assert not (tmp_path / "d" / "gateway.db").exists()


def test_audit_query_decision_is_validated(site: Path) -> None:
    """--decision MAYBE is a usage error listing the choices (not an empty table)."""
    res = runner.invoke(
        app, ["audit", "query", "--decision", "MAYBE", "--config", str(site / "gateway.toml")]
    )
    assert res.exit_code == 2
    assert "allow" in res.output.lower() and "deny" in res.output.lower()


def test_audit_query_says_when_there_are_more_results(
    gw: RunningGateway, site: Path, elsewhere: Path
) -> None:
    """--limit truncates with a 'more results' line naming the page token; --all does not."""
    runner.invoke(app, ["demo", "--config", str(site / "gateway.toml"), "--server", gw.address])
    cfg = ["--config", str(site / "gateway.toml")]
    everything = json.loads(runner.invoke(app, ["audit", "query", "--all", "--json", *cfg]).stdout)
    assert len(everything) >= 4
    res = runner.invoke(app, ["audit", "query", "--limit", "2", "--json", *cfg])
    first = json.loads(res.stdout)
    assert [e["index"] for e in first] == [everything[0]["index"], everything[1]["index"]]
    token = str(first[-1]["index"])
    assert f"more results: use --all or --page-token {token}" in res.stderr
    res = runner.invoke(app, ["audit", "query", "--page-token", token, "--all", "--json", *cfg])
    assert json.loads(res.stdout) == everything[2:] and "more results" not in res.stderr


def test_audit_query_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    """A read-only audit command on a missing SQLite file fails and creates no file."""
    db = tmp_path / "none.db"
    res = runner.invoke(
        app, ["audit", "query", "--db", f"sqlite:///{db}", "--keys-dir", str(tmp_path / "k")]
    )
    assert res.exit_code == 2 and "no such database" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_policy_eval_of_the_sample_input_prints_the_contract_shape(elsewhere: Path) -> None:
    """docs/policy-input.json evaluates; the output has CONTRACT.md's fields and shapes."""
    res = runner.invoke(
        app, ["policy", "eval", "--input", str(REPO_ROOT / "docs/policy-input.json")]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {
        "allow",
        "reasons",
        "excluded",
        "obligations",
        "subject_obligations",
        "consents",
        "cross_border",
        "subject_ref",
    }
    assert out["allow"] is True and out["consents"] == {"0": ["c-1001-ads"]}
    assert all(set(r) == {"code", "message"} for r in out["reasons"])
    assert all(set(x) == {"ref", "code", "message"} for x in out["excluded"])
    assert set(out["obligations"]) == {"drop", "pseudonymize", "generalize"}
    assert "policy revision" in res.stderr


def _declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # Optional extras count: test fakes shipped in gateway/ (fake_opa) use the dev extra.
    names = [
        *project["dependencies"],
        *(d for ds in project["optional-dependencies"].values() for d in ds),
    ]
    return {re.split(r"[<>=\[ ;]", n, maxsplit=1)[0].lower().replace("_", "-") for n in names}


def test_every_imported_package_is_a_declared_dependency() -> None:
    """Each third-party module gateway/ and ledger/ import at module level belongs to a
    declared dependency (pydantic was not declared). Imports inside functions are optional
    extras on purpose (OPA's Go bindings, installed by the Makefile)."""
    declared = _declared()
    dists = packages_distributions()
    local = {"gateway", "ledger", "partner_gateway"}
    missing = set()
    for path in [*(REPO_ROOT / "gateway").rglob("*.py"), *(REPO_ROOT / "ledger").rglob("*.py")]:
        for m in re.finditer(r"^(?:from|import) ([a-zA-Z_]\w*)", path.read_text(), re.M):
            top = m.group(1)
            if top in sys.stdlib_module_names or top in local or top == "__future__":
                continue
            owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
            if not owners & declared:
                missing.add(f"{top} ({path.relative_to(REPO_ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_project_metadata_builds_without_warnings() -> None:
    """pyproject.toml's metadata (SPDX license) applies without setuptools warnings."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("SPDX license expressions need setuptools >= 77 (the build requirement)")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), REPO_ROOT / "pyproject.toml")
    assert [str(w.message) for w in caught] == []
