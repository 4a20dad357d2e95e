"""Identities from certificates and bearer tokens."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway.errors import ConfigError, UnauthenticatedError
from gateway.security.authn import Authenticator, principal_from_spiffe_id
from gateway.security.devca import DevCA
from gateway.security.identity import Principal, Role
from gateway.security.tokens import TokenStore, hash_token, mint_token

TD = "share-gateway.local"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            f"spiffe://{TD}/partner/adco",
            Principal(id="partner:adco", role=Role.PARTNER, partner_id="adco"),
        ),
        (f"spiffe://{TD}/service/checkout", Principal(id="svc:checkout", role=Role.SERVICE)),
        (
            f"spiffe://{TD}/auditor/audit-team",
            Principal(id="auditor:audit-team", role=Role.AUDITOR),
        ),
        (f"spiffe://{TD}/admin/ops", Principal(id="admin:ops", role=Role.ADMIN)),
    ],
)
def test_spiffe_uri_maps_to_principal_and_role(uri: str, expected: Principal) -> None:
    """Each identity kind maps to its role and principal id."""
    assert principal_from_spiffe_id(uri, trust_domain=TD) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://evil.example/partner/adco",
        f"spiffe://{TD}/root/adco",
        f"spiffe://{TD}/partner/",
        f"spiffe://{TD}/partner/adco/extra",
        f"spiffe://{TD}/partner/../admin",
        f"https://{TD}/partner/adco",
    ],
)
def test_foreign_or_malformed_uri_names_nobody(uri: str) -> None:
    """URIs outside the trust domain or with an unknown kind give no principal."""
    assert principal_from_spiffe_id(uri, trust_domain=TD) is None


def test_certificate_from_another_trust_domain_is_unauthenticated() -> None:
    """A chain-valid certificate naming another trust domain is UNAUTHENTICATED."""
    cert = DevCA.create(trust_domain="other.example").issue_client(kind="admin", name="ops")
    auth = Authenticator(trust_domain=TD)
    with pytest.raises(UnauthenticatedError):
        auth.authenticate({"x509_pem_cert": [cert.cert_pem]}, ())


def test_certificate_and_token_must_agree(tmp_path: Path) -> None:
    """A certificate and a token naming different principals are UNAUTHENTICATED."""
    tokens = tmp_path / "t.json"
    token = mint_token(tokens, principal_id="admin:ops", role=Role.ADMIN)
    cert = DevCA.create().issue_client(kind="partner", name="adco")
    auth = Authenticator(trust_domain=TD, verify_token=TokenStore.from_file(tokens).verify)
    with pytest.raises(UnauthenticatedError, match="different principals"):
        auth.authenticate(
            {"x509_pem_cert": [cert.cert_pem]}, (("authorization", f"Bearer {token}"),)
        )


def test_no_credentials_is_no_principal() -> None:
    """A caller presenting nothing is None (the interceptor decides if that is allowed)."""
    assert Authenticator(trust_domain=TD).authenticate({}, ()) is None


def test_tokens_file_stores_only_hashes_owner_only(tmp_path: Path) -> None:
    """Minting stores sha256(token) in a 0600 file; the token itself is nowhere on disk."""
    path = tmp_path / "tokens.json"
    token = mint_token(path, principal_id="svc:checkout", role=Role.SERVICE, label="demo")
    text = path.read_text()
    assert token not in text and hash_token(token).hex() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenStore.from_file(path).verify(token) == Principal(
        id="svc:checkout", role=Role.SERVICE
    )
    assert TokenStore.from_file(path).verify(token + "x") is None


def test_toml_tokens_file_is_read(tmp_path: Path) -> None:
    """A TOML tokens file with the same fields works."""
    path = tmp_path / "tokens.toml"
    digest = hash_token("sgw_t").hex()
    path.write_text(
        f'[[tokens]]\nsha256 = "{digest}"\nprincipal_id = "partner:adco"\n'
        'role = "partner"\npartner_id = "adco"\n'
    )
    principal = TokenStore.from_file(path).verify("sgw_t")
    assert principal == Principal(id="partner:adco", role=Role.PARTNER, partner_id="adco")


def test_partner_token_without_partner_id_is_refused(tmp_path: Path) -> None:
    """A partner token must name its partner, both when minting and when loading."""
    with pytest.raises(ConfigError):
        mint_token(tmp_path / "t.json", principal_id="partner:x", role=Role.PARTNER)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"tokens": [{"sha256": "00" * 32, "principal_id": "p", "role": "partner"}]})
    )
    with pytest.raises(ConfigError, match="entry 0"):
        TokenStore.from_file(bad)


def _console_auth(tmp_path: Path, role: Role, principal_id: str) -> tuple[Authenticator, str]:
    tokens = tmp_path / "t.json"
    token = mint_token(tokens, principal_id=principal_id, role=role)
    return Authenticator(trust_domain=TD, verify_token=TokenStore.from_file(tokens).verify), token


def test_console_certificate_acts_as_the_auditor_whose_token_it_carries(tmp_path: Path) -> None:
    """A console certificate with an auditor's token is that auditor, marked via the console."""
    auth, token = _console_auth(tmp_path, Role.AUDITOR, "auditor:alice")
    cert = DevCA.create().issue_client(kind="console", name="web")
    principal = auth.authenticate(
        {"x509_pem_cert": [cert.cert_pem]}, (("authorization", f"Bearer {token}"),)
    )
    assert principal == Principal(id="auditor:alice", role=Role.AUDITOR, via="console:web")


def test_console_certificate_alone_authenticates_nobody() -> None:
    """Without a logged-in auditor's token a console certificate is UNAUTHENTICATED."""
    cert = DevCA.create().issue_client(kind="console", name="web")
    with pytest.raises(UnauthenticatedError) as info:
        Authenticator(trust_domain=TD).authenticate({"x509_pem_cert": [cert.cert_pem]}, ())
    assert info.value.reason == "auth.console_without_token"


@pytest.mark.parametrize(
    ("role", "principal_id"), [(Role.SERVICE, "svc:checkout"), (Role.ADMIN, "admin:ops")]
)
def test_console_cannot_carry_a_non_auditor_token(
    tmp_path: Path, role: Role, principal_id: str
) -> None:
    """A console carrying a service or admin token is refused: it is for auditors only."""
    auth, token = _console_auth(tmp_path, role, principal_id)
    cert = DevCA.create().issue_client(kind="console", name="web")
    with pytest.raises(UnauthenticatedError) as info:
        auth.authenticate(
            {"x509_pem_cert": [cert.cert_pem]}, (("authorization", f"Bearer {token}"),)
        )
    assert info.value.reason == "auth.console_non_auditor_token"


def test_console_role_tokens_are_never_minted_nor_loaded(tmp_path: Path) -> None:
    """The console role exists only as a certificate: no token can claim it."""
    with pytest.raises(ConfigError):
        mint_token(tmp_path / "t.json", principal_id="console:web", role=Role.CONSOLE)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"tokens": [{"sha256": "00" * 32, "principal_id": "c", "role": "console"}]})
    )
    with pytest.raises(ConfigError, match="entry 0"):
        TokenStore.from_file(bad)
