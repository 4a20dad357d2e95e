"""The dev CA and ``share-gateway certs``."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from gateway.cli.certs import app as certs_app
from gateway.security.devca import DEMO_PARTNERS, init_dev_pki
from gateway.security.tokens import TokenStore


def test_init_writes_demo_identities_with_private_keys(tmp_path: Path) -> None:
    """certs init writes CA, server and every demo identity; keys 0600, directory 0700."""
    out = tmp_path / "certs"
    result = CliRunner().invoke(certs_app, ["init", "--dir", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    for partner in DEMO_PARTNERS:
        assert {f"partner-{partner}.crt", f"partner-{partner}.key"} <= names
    assert {"ca.crt", "server.crt", "service-checkout.crt", "auditor-audit-team.crt"} <= names
    assert "admin-ops.crt" in names
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.glob("*.key"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_client_certificate_carries_one_spiffe_uri(tmp_path: Path) -> None:
    """A partner certificate names itself by a SAN URI in the trust domain."""
    init_dev_pki(tmp_path, partners=["adco"], services=[], auditors=[], admins=[])
    cert = x509.load_pem_x509_certificate((tmp_path / "partner-adco.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://share-gateway.local/partner/adco"]


def test_rerun_reuses_the_ca(tmp_path: Path) -> None:
    """Running init twice keeps the CA, so certificates issued earlier stay valid."""
    init_dev_pki(tmp_path, partners=[], services=[], auditors=[], admins=[])
    ca = (tmp_path / "ca.crt").read_bytes()
    init_dev_pki(tmp_path, partners=["new-partner"], services=[], auditors=[], admins=[])
    assert (tmp_path / "ca.crt").read_bytes() == ca


def test_mint_token_prints_token_once_and_stores_hash(tmp_path: Path) -> None:
    """certs mint-token prints a token that verifies against the file."""
    tokens = tmp_path / "tokens.json"
    args = ["mint-token", "svc:checkout", "--role", "service", "--tokens-file", str(tokens)]
    result = CliRunner().invoke(certs_app, args)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token not in tokens.read_text()
    principal = TokenStore.from_file(tokens).verify(token)
    assert principal is not None and principal.id == "svc:checkout"


def test_rotate_key_command_moves_current_key(tmp_path: Path) -> None:
    """certs rotate-key prints the new key id and the ring's current key follows it."""
    from gateway.demo import REGISTRY_SEED
    from gateway.registry import Registry
    from gateway.security.keys import PseudonymKeys

    registry = Registry.open(f"sqlite:///{tmp_path / 'gateway.db'}")  # adco is registered
    registry.load_seed(REGISTRY_SEED)
    registry.close()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    keys = PseudonymKeys(directory=tmp_path / "keys" / "pseudonym")
    first, _ = keys.current("adco")
    result = CliRunner().invoke(certs_app, ["rotate-key", "adco", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == keys.current("adco")[0] != first
