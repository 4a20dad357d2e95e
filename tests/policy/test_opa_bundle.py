"""OPA bundle archives: built from the policy directory, signed, verified, served by OPA."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy import compute_revision, load_bundle, parse_decision
from gateway.policy.fake_opa import FakeOpa
from gateway.policy.opa_bundle import (
    MANIFEST,
    SIGNATURES,
    file_hash,
    read_archive,
    write_archive,
)
from gateway.policy.opa_go import OpaGoEngine, compile_modules, evaluate_opa
from gateway.policy.opa_server import OpaServerEngine

from .conftest import POLICY_DIR

CASES = json.loads((Path(__file__).parent / "golden" / "cases.json").read_text())["cases"]
ALLOWED = next(c["input"] for c in CASES if c["name"] == "vendor delivery allowed")


def _pem(key: Any) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


KEYS = {
    "RS256": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "ES256": _pem(ec.generate_private_key(ec.SECP256R1())),
    "HS256": (b"a shared secret of at least 32 bytes!", b"a shared secret of at least 32 bytes!"),
}


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _rewrite(path: Path, change: dict[str, bytes]) -> None:
    files = {**_members(path), **change}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    path.write_bytes(raw.getvalue())


def test_bundle_from_the_archive_decides_like_the_source_tree(tmp_path: Path) -> None:
    """Modules and data read back from the archive give OPA the source tree's decisions."""
    archive = write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz")
    names = set(_members(archive))
    assert "/.manifest" in names and "/params/data.json" in names
    assert "/sharing/decision.rego" in names and not any("_test.rego" in n for n in names)
    contents = read_archive(archive)
    assert contents.manifest["revision"] == compute_revision(POLICY_DIR)
    assert contents.manifest["roots"] == ["params", "sharing"]
    from_archive = compile_modules(contents.modules, contents.data)
    source = OpaGoEngine(policy_dir=POLICY_DIR)
    for case in CASES:
        got = parse_decision(evaluate_opa(from_archive, case["input"]), revision=source.revision)
        assert got == source.evaluate(case["input"]), case["name"]


def test_archive_is_reproducible(tmp_path: Path) -> None:
    """Building twice gives the same bytes (sorted entries, mtime 0)."""
    bundle = load_bundle(POLICY_DIR)
    a = write_archive(bundle, tmp_path / "a.tar.gz").read_bytes()
    assert a == write_archive(bundle, tmp_path / "b.tar.gz").read_bytes()


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_signed_bundle_verifies(tmp_path: Path, algorithm: str) -> None:
    """The JWT lists every file with its SHA-256 (OPA's format) and verifies with the key."""
    private, public = KEYS[algorithm]
    archive = write_archive(
        load_bundle(POLICY_DIR),
        tmp_path / "bundle.tar.gz",
        signing_key=private,
        algorithm=algorithm,
        key_id="ops-2026",
    )
    assert read_archive(archive, verify_key=public).signed
    members = _members(archive)
    token = json.loads(members["/" + SIGNATURES])["signatures"][0]
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = jwt.decode(token, public, algorithms=[algorithm])
    assert claims["keyid"] == "ops-2026"
    files = {f["name"]: f for f in claims["files"]}
    assert set(files) == {n.lstrip("/") for n in members} - {SIGNATURES}
    rego = members["/sharing/decision.rego"]
    assert files["sharing/decision.rego"] == {
        "name": "sharing/decision.rego",
        "hash": hashlib.sha256(rego).hexdigest(),
        "algorithm": "SHA-256",
    }


def test_json_files_hash_over_opas_canonical_form() -> None:
    """A JSON file's hash is over sorted keys without whitespace, numbers as written."""
    body = b'{"b": 1,\n "a": [1, 2.50, "\xc3\xa9"]}'
    assert (
        file_hash("x/data.json", body)
        == hashlib.sha256('{"a":[1,2.50,"é"],"b":1}'.encode()).hexdigest()
    )
    assert file_hash(MANIFEST, b'{"roots": []}') == hashlib.sha256(b'{"roots":[]}').hexdigest()


def test_tampered_or_foreign_bundle_is_refused(tmp_path: Path) -> None:
    """A changed module, an added file or another key fails verification (attacker's test)."""
    private, public = KEYS["RS256"]
    archive = write_archive(
        load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz", signing_key=private
    )
    permissive = b"package sharing\n\nimport rego.v1\n\ndefault allow := true\n"
    for change in (
        {"/sharing/decision.rego": permissive},
        {"/sharing/backdoor.rego": permissive},
    ):
        tampered = tmp_path / "tampered.tar.gz"
        tampered.write_bytes(archive.read_bytes())
        _rewrite(tampered, change)
        with pytest.raises(PolicyLoadError):
            read_archive(tampered, verify_key=public)
    with pytest.raises(PolicyLoadError):
        read_archive(archive, verify_key=KEYS["ES256"][1])
    unsigned = write_archive(load_bundle(POLICY_DIR), tmp_path / "unsigned.tar.gz")
    with pytest.raises(PolicyLoadError, match="not signed"):
        read_archive(unsigned, verify_key=public)


@pytest.mark.parametrize(
    "change",
    [
        {"/data.json": b"[1]"},
        {"/params/data.json": b"[1]"},
        {"/data.json": b'{"params": {"k_anonymity": 1}}'},
        {"/params/data.json": b"{not json"},
        {"/.manifest": b"[1]"},
    ],
)
def test_malformed_bundle_archive_is_a_load_error(tmp_path: Path, change: dict[str, bytes]) -> None:
    """Data that is no object, defined twice or not JSON, or a manifest that is no object,
    is refused as a load error (never a silent overwrite or a crash)."""
    archive = write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz")
    _rewrite(archive, change)
    with pytest.raises(PolicyLoadError):
        read_archive(archive)


def test_opa_serving_the_bundle_is_checked_and_decisions_carry_its_ids(tmp_path: Path) -> None:
    """Bundle mode: the revision OPA serves is checked; each decision has OPA's decision_id."""
    private, public = KEYS["ES256"]
    archive = write_archive(
        load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz", signing_key=private, algorithm="ES256"
    )
    with FakeOpa() as opa:
        opa.load_bundle(archive, verify_key=public)
        engine = OpaServerEngine(
            policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True
        )
        assert opa.modules and engine.revision == compute_revision(POLICY_DIR)
        first, second = engine.decide(ALLOWED), engine.decide(ALLOWED)
        assert first.allow and first.revision == engine.revision
        assert first.decision_id and first.decision_id != second.decision_id
        # OPA switches to another bundle behind the gateway's back: decisions fail closed.
        other = tmp_path / "other"
        other.mkdir()
        (other / "sharing").mkdir()
        (other / "sharing" / "decision.rego").write_text(
            "package sharing\n\nimport rego.v1\n\ndecision := {}\n"
        )
        opa.load_bundle(write_archive(load_bundle(other), tmp_path / "other.tar.gz"))
        with pytest.raises(PolicyEngineError, match="expected"):
            engine.decide(ALLOWED)
        with pytest.raises(PolicyLoadError, match="expected"):
            engine.reload()
        with pytest.raises(PolicyLoadError, match="expected"):
            OpaServerEngine(policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True)


_PERMISSIVE = "package sharing\n\nimport rego.v1\n\nbackdoor := true\n"


@pytest.mark.parametrize("tamper", ["module", "extra module", "data"])
def test_opa_serving_a_doctored_bundle_under_our_revision_is_refused(
    tmp_path: Path, tamper: str
) -> None:
    """A bundle whose manifest carries our revision but whose modules or data differ (a
    hand-made or tampered archive, or a module PUT beside it) is refused before serving."""
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz"))
        if tamper == "module":
            pid = next(p for p in opa.modules if p.endswith("sharing/decision.rego"))
            opa.modules[pid] += "\n# harmless-looking\n"
        elif tamper == "extra module":
            opa.put_policy("backdoor.rego", _PERMISSIVE)
        else:
            opa.put_data(["params", "k_anonymity"], 1)
        with pytest.raises(PolicyLoadError, match="tampered or foreign bundle"):
            OpaServerEngine(policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True)


@pytest.mark.parametrize(
    "lie", ["x", [1], {"bundles": [1]}, {"bundles": {"b": "x"}}, {"bundles": {"b": {}}}]
)
def test_lying_opa_provenance_is_an_engine_error(tmp_path: Path, lie: Any) -> None:
    """A provenance of another shape (a lying or broken OPA) fails closed as an engine error."""
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz"))
        engine = OpaServerEngine(
            policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True
        )
        real_query = opa.query

        def lying(path: list[str], input: Any, *, provenance: bool = False) -> Any:
            status, answer = real_query(path, input, provenance=provenance)
            return status, dict(answer, provenance=lie)

        opa.query = lying  # type: ignore[method-assign]
        with pytest.raises(PolicyEngineError, match="expected"):
            engine.decide(ALLOWED)


@pytest.mark.parametrize("manifest", ["x", None, [1], {"revision": 7}])
def test_lying_opa_bundle_manifest_is_refused_at_load(tmp_path: Path, manifest: Any) -> None:
    """A bundle manifest of another shape in data.system.bundles is no served revision."""
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz"))
        opa.bundles = {"bundle.tar.gz": {"manifest": manifest}}
        with pytest.raises(PolicyLoadError, match="expected"):
            OpaServerEngine(policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True)


def test_opa_with_unrelated_policies_beside_the_bundle_is_accepted(tmp_path: Path) -> None:
    """Modules of other packages (another tenant's) on the same OPA do not fail the check."""
    with FakeOpa() as opa:
        opa.load_bundle(write_archive(load_bundle(POLICY_DIR), tmp_path / "bundle.tar.gz"))
        opa.put_policy("other.rego", "package other\n\nimport rego.v1\n\nx := 1\n")
        engine = OpaServerEngine(
            policy_dir=POLICY_DIR, url=opa.url, timeout_s=5.0, bundle_mode=True
        )
        assert engine.decide(ALLOWED).allow


def test_cli_build_writes_a_signed_bundle(tmp_path: Path) -> None:
    """`policy build --signing-key` writes an archive that verifies and prints the revision."""
    from gateway.cli.policy import app

    key = tmp_path / "key.pem"
    key.write_bytes(KEYS["RS256"][0])
    out = tmp_path / "bundle.tar.gz"
    result = CliRunner().invoke(
        app, ["build", "--dir", str(POLICY_DIR), "--output", str(out), "--signing-key", str(key)]
    )
    assert result.exit_code == 0, result.output
    assert compute_revision(POLICY_DIR) in result.output
    assert read_archive(out, verify_key=KEYS["RS256"][1]).revision == compute_revision(POLICY_DIR)
    bad = CliRunner().invoke(
        app,
        [
            "build",
            "--dir",
            str(POLICY_DIR),
            "-o",
            str(out),
            "--signing-key",
            str(key),
            "--signing-alg",
            "HS999",
        ],
    )
    assert bad.exit_code == 2 and "signing algorithm" in bad.output
