"""Fixtures: a dev PKI minted once per session and real TLS servers on port 0."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.security.testing import PKI, RunningServer, mint_test_pki, serve_with_auth
from gateway.settings import Settings


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A CA, a localhost server cert and client certs (incl. expired and untrusted)."""
    return mint_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(pki: PKI) -> Iterator[RunningServer]:
    """A gateway-like server requiring client certificates from the dev CA."""
    settings = Settings.load(
        env={},
        overrides={
            "tls": {
                "cert_file": pki.dir / "server.crt",
                "key_file": pki.dir / "server.key",
                "client_ca_file": pki.dir / "ca.crt",
                "require_client_cert": True,
            }
        },
    )
    yield from serve_with_auth(settings, None)


@pytest.fixture(scope="module")
def token_server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A gateway-like server with server-side TLS; callers authenticate with bearer tokens."""
    settings = Settings.load(
        env={},
        overrides={
            "tls": {"cert_file": pki.dir / "server.crt", "key_file": pki.dir / "server.key"}
        },
    )
    yield from serve_with_auth(settings, tmp_path_factory.mktemp("tokens") / "tokens.json")
