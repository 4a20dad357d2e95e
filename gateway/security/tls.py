"""Transport security of the listener and of test/CLI clients (issue 5.1).

Invariants:
- Every listener is TLS, except one bound to a loopback address with ``plaintext = true``
  set explicitly; any other plaintext request is a ``ConfigError`` naming the field.
- ``tls.client_ca_file`` set => mTLS: the client certificate is requested, verified against
  that CA (chain and validity period) by the TLS stack, and *required*. gRPC Python cannot
  request a client certificate optionally (``require_client_auth=False`` never asks for one),
  so a client CA without ``tls.require_client_cert = true`` is refused as misconfigured
  rather than silently ignored. Without a client CA the listener is server-side TLS and
  callers authenticate with bearer tokens.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc

from gateway.errors import ConfigError
from gateway.settings import Settings


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``[::1]``)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for ``server.add_secure_port``, or ``None`` for an allowed plaintext listener.

    Raises:
        ConfigError: naming the field: plaintext on a non-loopback ``listen``, plaintext
            combined with TLS files, a missing or unreadable ``tls.cert_file``/``tls.key_file``,
            or a ``tls.client_ca_file`` without ``tls.require_client_cert``.
    """
    tls = settings.tls
    host = settings.listen.rpartition(":")[0]
    if settings.plaintext:
        if not is_loopback(host):
            raise ConfigError(
                f"invalid setting plaintext: allowed only when listen is a loopback address, "
                f"not {host}"
            )
        if tls.cert_file or tls.key_file or tls.client_ca_file:
            raise ConfigError(
                "invalid setting plaintext: cannot be combined with tls.cert_file, "
                "tls.key_file or tls.client_ca_file"
            )
        return None
    cert = _read(tls.cert_file, "tls.cert_file")
    key = _read(tls.key_file, "tls.key_file")
    if tls.client_ca_file is None:
        if tls.require_client_cert:
            raise ConfigError(
                "invalid setting tls.client_ca_file: required when tls.require_client_cert is set"
            )
        return grpc.ssl_server_credentials([(key, cert)])
    if not tls.require_client_cert:
        raise ConfigError(
            "invalid setting tls.require_client_cert: must be true when tls.client_ca_file is "
            "set (gRPC cannot request a client certificate optionally)"
        )
    ca = _read(tls.client_ca_file, "tls.client_ca_file")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def probe_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials of the probe listener (``probe_listen``): plaintext on a loopback address,
    otherwise server TLS with the gateway's certificate and no client certificate.

    Raises:
        ConfigError: a non-loopback ``probe_listen`` without ``tls.cert_file``/``tls.key_file``.
    """
    assert settings.probe_listen is not None
    host = settings.probe_listen.rpartition(":")[0]
    if is_loopback(host):
        return None
    if settings.tls.cert_file is None or settings.tls.key_file is None:
        raise ConfigError(
            f"invalid setting probe_listen: {host} is not a loopback address, so the probe "
            "listener needs server TLS (tls.cert_file and tls.key_file)"
        )
    cert = _read(settings.tls.cert_file, "tls.cert_file")
    key = _read(settings.tls.key_file, "tls.key_file")
    return grpc.ssl_server_credentials([(key, cert)])


def channel_credentials(
    *,
    ca: bytes | Path,
    cert: bytes | Path | None = None,
    key: bytes | Path | None = None,
) -> grpc.ChannelCredentials:
    """Client credentials trusting ``ca``, optionally presenting a client certificate (mTLS)."""

    def pem(v: bytes | Path | None) -> bytes | None:
        return v.read_bytes() if isinstance(v, Path) else v

    if (cert is None) != (key is None):
        raise ValueError("cert and key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=pem(ca), private_key=pem(key), certificate_chain=pem(cert)
    )


def _read(path: Path | None, field: str) -> bytes:
    if path is None:
        raise ConfigError(f"invalid setting {field}: required unless plaintext is set")
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"invalid setting {field}: cannot read {path}: {e.strerror}") from e
