"""The console's only way to the ledger: the gateway's AuditService over mTLS.

Invariants:
- The console authenticates with its own *console* certificate, which by itself may call
  nothing (``gateway.security.authn``); every call carries the logged-in auditor's bearer
  token, so the gateway authorizes, and logs, each read as that auditor ``via`` the console.
- No database URL, ledger key or subject key is ever given to the console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from gateway.errors import ConfigError
from gateway.security.devca import DEFAULT_TRUST_DOMAIN, DevCA
from gateway.security.tls import channel_credentials
from gateway.settings import ConsoleSettings
from partner_gateway.v1 import audit_pb2, audit_pb2_grpc

CONSOLE_IDENTITY = "console-web"  # the dev PKI's file stem of the console certificate


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientFiles:
    """The PEM files of the console's mTLS identity towards the gateway."""

    ca: Path
    cert: Path
    key: Path


def client_files(settings: ConsoleSettings, *, pki: Path) -> ClientFiles:
    """The configured mTLS files, else the dev PKI's in ``pki`` (``Settings.pki_dir``).

    With the dev PKI, a missing console certificate is issued from the dev CA there (a PKI
    made before the console existed has none).

    Raises:
        ConfigError: naming the field, when a file is missing and cannot be made.
    """
    files = ClientFiles(
        ca=settings.ca_file or pki / "ca.crt",
        cert=settings.cert_file or pki / f"{CONSOLE_IDENTITY}.crt",
        key=settings.key_file or pki / f"{CONSOLE_IDENTITY}.key",
    )
    dev = settings.cert_file is None and settings.key_file is None
    if dev and not files.cert.exists() and (pki / "ca.key").exists():
        ca = DevCA.load(
            cert_pem=(pki / "ca.crt").read_bytes(),
            key_pem=(pki / "ca.key").read_bytes(),
            trust_domain=DEFAULT_TRUST_DOMAIN,
        )
        ca.issue_client(kind="console", name="web").write(pki, CONSOLE_IDENTITY)
    for field, path in (
        ("console.ca_file", files.ca),
        ("console.cert_file", files.cert),
        ("console.key_file", files.key),
    ):
        if not path.is_file():
            raise ConfigError(f"invalid setting {field}: {path} does not exist")
    return files


class AuditClient:
    """AuditService calls on behalf of one logged-in auditor each (``token``).

    Build with ``AuditClient.connect`` inside the event loop that will use it. Tests may
    subclass it to alter answers (a tampering console server).
    """

    def __init__(self, *, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._channel = channel
        self._stub = audit_pb2_grpc.AuditServiceStub(channel)
        self._timeout = timeout_s

    @classmethod
    def connect(cls, *, target: str, files: ClientFiles, timeout_s: float) -> AuditClient:
        """Open an mTLS channel to ``target`` with the console's certificate."""
        creds = channel_credentials(ca=files.ca, cert=files.cert, key=files.key)
        return cls(channel=grpc.aio.secure_channel(target, creds), timeout_s=timeout_s)

    async def close(self) -> None:
        await self._channel.close()

    @staticmethod
    def _auth(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    async def checkpoint(self, token: str) -> audit_pb2.Checkpoint:
        call = self._stub.GetCheckpoint(
            audit_pb2.GetCheckpointRequest(), metadata=self._auth(token), timeout=self._timeout
        )
        return await call

    async def query(
        self,
        token: str,
        flt: audit_pb2.DisclosureFilter,
        *,
        page_token: str = "",
        page_size: int = 100,
    ) -> audit_pb2.QueryDisclosuresResponse:
        req = audit_pb2.QueryDisclosuresRequest(
            filter=flt, page_token=page_token, page_size=page_size
        )
        call = self._stub.QueryDisclosures(req, metadata=self._auth(token), timeout=self._timeout)
        return await call

    async def stream(
        self, token: str, flt: audit_pb2.DisclosureFilter
    ) -> AsyncIterator[audit_pb2.LedgerEntry]:
        call = self._stub.StreamDisclosures(
            audit_pb2.StreamDisclosuresRequest(filter=flt),
            metadata=self._auth(token),
            timeout=self._timeout * 6,
        )
        async for entry in call:
            yield entry

    async def receipt(self, token: str, index: int) -> audit_pb2.Receipt:
        call = self._stub.GetReceipt(
            audit_pb2.GetReceiptRequest(index=index),
            metadata=self._auth(token),
            timeout=self._timeout,
        )
        return await call

    async def consistency(
        self, token: str, old_size: int, new_size: int
    ) -> audit_pb2.ConsistencyProof:
        call = self._stub.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(old_size=old_size, new_size=new_size),
            metadata=self._auth(token),
            timeout=self._timeout,
        )
        return await call

    async def subject_report(self, token: str, subject_id: str) -> audit_pb2.SubjectReportResponse:
        call = self._stub.SubjectReport(
            audit_pb2.SubjectReportRequest(subject_id=subject_id),
            metadata=self._auth(token),
            timeout=self._timeout,
        )
        return await call
