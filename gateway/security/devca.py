"""A development certificate authority for the demo and the tests (issue 5.3).

Not for production: keys are EC P-256, generated in process, and written to disk with
owner-only permissions. Every client certificate carries exactly one SPIFFE-style SAN URI
``spiffe://<trust-domain>/<kind>/<name>`` (``kind`` one of ``partner``, ``service``,
``auditor``, ``admin``, ``console``); that URI, not the CN, is what the gateway authenticates
(``gateway.security.authn``). The server certificate covers ``localhost`` and ``127.0.0.1``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TRUST_DOMAIN = "share-gateway.local"
DEMO_PARTNERS: tuple[str, ...] = ("logiship", "adco", "admetrics", "shopmall", "affiliate-cloud")
DEMO_SERVICES: tuple[str, ...] = ("checkout",)
DEMO_AUDITORS: tuple[str, ...] = ("audit-team",)
DEMO_ADMINS: tuple[str, ...] = ("ops",)
# The auditor web console's certificate (``console-web``): it only carries auditors' tokens.
DEMO_CONSOLES: tuple[str, ...] = ("web",)
IDENTITY_KINDS: tuple[str, ...] = ("partner", "service", "auditor", "admin", "console")

_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedCert:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.crt`` (0644) and ``<name>.key`` (0600) into ``directory``.

        Returns:
            ``(cert_path, key_path)``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        _write(cert_path, self.cert_pem, 0o644)
        _write(key_path, self.key_pem, 0o600)
        return cert_path, key_path


def spiffe_id(kind: str, name: str, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    """The SAN URI that names ``kind``/``name`` in ``trust_domain``."""
    if kind not in IDENTITY_KINDS:
        raise ValueError(f"kind must be one of {IDENTITY_KINDS}, not {kind!r}")
    return f"spiffe://{trust_domain}/{kind}/{name}"


class DevCA:
    """A self-signed CA that issues server and client certificates.

    Build with ``DevCA.create()`` (new key) or ``DevCA.load(cert_pem=..., key_pem=...)``.
    """

    def __init__(
        self,
        *,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
    ) -> None:
        self._cert = cert
        self._key = key
        self.trust_domain = trust_domain

    @classmethod
    def create(
        cls,
        *,
        common_name: str = "share-gateway dev CA",
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        valid_days: int = 365,
    ) -> DevCA:
        """Create a CA with a fresh key."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key, trust_domain=trust_domain)

    @classmethod
    def load(
        cls, *, cert_pem: bytes, key_pem: bytes, trust_domain: str = DEFAULT_TRUST_DOMAIN
    ) -> DevCA:
        """Load a CA written earlier by ``IssuedCert.write``."""
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("dev CA key must be an EC key")
        return cls(
            cert=x509.load_pem_x509_certificate(cert_pem), key=key, trust_domain=trust_domain
        )

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def as_issued(self) -> IssuedCert:
        return IssuedCert(cert_pem=self.cert_pem, key_pem=_key_pem(self._key))

    def issue_server(
        self, *, hosts: Sequence[str] = ("localhost", "127.0.0.1"), valid_days: int = 365
    ) -> IssuedCert:
        """Issue a TLS server certificate for ``hosts`` (DNS names or IP addresses)."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        now = dt.datetime.now(dt.UTC)
        return self._issue(
            common_name=hosts[0],
            sans=sans,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            not_before=now - _ONE_DAY,
            not_after=now + dt.timedelta(days=valid_days),
        )

    def issue_client(
        self,
        *,
        kind: str,
        name: str,
        valid_days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> IssuedCert:
        """Issue a client certificate whose SAN URI is ``spiffe_id(kind, name)``.

        ``not_before``/``not_after`` override the validity window (tests mint expired certs).
        """
        now = dt.datetime.now(dt.UTC)
        uri = spiffe_id(kind, name, trust_domain=self.trust_domain)
        return self._issue(
            common_name=f"{kind}:{name}",
            sans=[x509.UniformResourceIdentifier(uri)],
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            not_before=not_before or now - _ONE_DAY,
            not_after=not_after or now + dt.timedelta(days=valid_days),
        )

    def _issue(
        self,
        *,
        common_name: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> IssuedCert:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCert(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key)
        )


def init_dev_pki(
    directory: Path,
    *,
    partners: Iterable[str] = DEMO_PARTNERS,
    services: Iterable[str] = DEMO_SERVICES,
    auditors: Iterable[str] = DEMO_AUDITORS,
    admins: Iterable[str] = DEMO_ADMINS,
    consoles: Iterable[str] = DEMO_CONSOLES,
    server_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> list[Path]:
    """Create ``ca``, ``server`` and one ``<kind>-<name>`` pair per identity in ``directory``.

    The directory is made owner-only (0700); keys are 0600. An existing CA in the directory
    is reused, so re-running adds identities without invalidating issued certificates.

    Returns:
        Every file written, certificates and keys.
    """
    # The parent is the gateway's data dir (``data_dir/pki``): created owner-only too, as the
    # gateway requires at start (issue 14.6).
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        ca = DevCA.load(
            cert_pem=ca_crt.read_bytes(), key_pem=ca_key.read_bytes(), trust_domain=trust_domain
        )
        written: list[Path] = []
    else:
        ca = DevCA.create(trust_domain=trust_domain)
        written = list(ca.as_issued().write(directory, "ca"))
    written += ca.issue_server(hosts=server_hosts).write(directory, "server")
    for kind, names in (
        ("partner", partners),
        ("service", services),
        ("auditor", auditors),
        ("admin", admins),
        ("console", consoles),
    ):
        for name in names:
            written += ca.issue_client(kind=kind, name=name).write(directory, f"{kind}-{name}")
    return written


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so a key is never briefly world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)
