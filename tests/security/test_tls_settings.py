"""Which listeners may start, and with which credentials."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from gateway.errors import ConfigError
from gateway.security.testing import PKI
from gateway.security.tls import channel_credentials, is_loopback, server_credentials
from gateway.settings import Settings


def _settings(**overrides: object) -> Settings:
    return Settings.load(env={}, overrides=overrides)


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "localhost:1", "[::1]:50051"])
def test_plaintext_is_allowed_on_loopback(listen: str) -> None:
    """plaintext = true on a loopback address gives no credentials (insecure port)."""
    assert server_credentials(_settings(listen=listen, plaintext=True)) is None


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "10.1.2.3:50051", "gateway.example:443"])
def test_plaintext_on_a_routable_address_is_refused(listen: str) -> None:
    """plaintext on anything but loopback is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="plaintext"):
        server_credentials(_settings(listen=listen, plaintext=True))


def test_tls_without_certificate_is_refused() -> None:
    """Without plaintext, a missing tls.cert_file is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"tls\.cert_file"):
        server_credentials(_settings())


def test_unreadable_key_file_is_refused(pki: PKI, tmp_path: Path) -> None:
    """A key file that cannot be read is a ConfigError naming tls.key_file."""
    with pytest.raises(ConfigError, match=r"tls\.key_file"):
        server_credentials(
            _settings(tls={"cert_file": pki.dir / "server.crt", "key_file": tmp_path / "nope"})
        )


def test_client_ca_without_require_is_refused(pki: PKI) -> None:
    """A client CA with require_client_cert=false would be silently ignored, so it is refused."""
    tls = {
        "cert_file": pki.dir / "server.crt",
        "key_file": pki.dir / "server.key",
        "client_ca_file": pki.dir / "ca.crt",
    }
    with pytest.raises(ConfigError, match=r"tls\.require_client_cert"):
        server_credentials(_settings(tls=tls))


def test_plaintext_with_tls_files_is_refused(pki: PKI) -> None:
    """plaintext and TLS files together are ambiguous and refused."""
    with pytest.raises(ConfigError, match="plaintext"):
        server_credentials(_settings(plaintext=True, tls={"cert_file": pki.dir / "server.crt"}))


def test_mtls_settings_give_server_credentials(pki: PKI) -> None:
    """Complete mTLS settings build server credentials."""
    tls = {
        "cert_file": pki.dir / "server.crt",
        "key_file": pki.dir / "server.key",
        "client_ca_file": pki.dir / "ca.crt",
        "require_client_cert": True,
    }
    assert isinstance(server_credentials(_settings(tls=tls)), grpc.ServerCredentials)


def test_loopback_detection_is_strict() -> None:
    """Only localhost and loopback literals count as loopback."""
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("localhost.example")


def test_channel_credentials_need_cert_and_key_together(pki: PKI) -> None:
    """A client certificate without its key is a programming error."""
    with pytest.raises(ValueError):
        channel_credentials(ca=pki.ca.cert_pem, cert=pki.server.cert_pem)
