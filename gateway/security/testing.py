"""Test helpers for the security layer, shipped beside the code (like ``structlog.testing``).

``mint_test_pki`` mints a dev PKI (including an expired certificate and one from an untrusted
CA); ``serve_with_auth`` runs a real TLS server on port 0 with the real ``CallInterceptor`` and
``AuthInterceptor`` in front of a tiny servicer: ShareService and AdminService from the
generated code, health, and raw-bytes handlers for ``PartnerService/Pull`` and
``AuditService/GetEntry``. The Pull handler applies the service-side ownership check
``require_partner``: its request bytes name the partner whose outbox is pulled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health

from gateway.errors import GatewayError
from gateway.interceptors import CallInterceptor
from gateway.introspection import add_tooling
from gateway.security.authn import Authenticator
from gateway.security.devca import DevCA, IssuedCert
from gateway.security.identity import Principal, Role, current_principal, require_partner
from gateway.security.interceptor import AuthInterceptor
from gateway.security.tls import channel_credentials, server_credentials
from gateway.security.tokens import TokenStore, mint_token
from gateway.settings import Settings
from gateway.testing import LoopThread
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2, share_pb2_grpc

REGISTERED_PARTNERS = frozenset({"logiship", "adco"})
PULL = "/partner_gateway.v1.PartnerService/Pull"
AUDIT_GET = "/partner_gateway.v1.AuditService/GetEntry"


@dataclass(frozen=True, kw_only=True)
class PKI:
    """Certificates for the tests, all minted in memory once."""

    dir: Path
    ca: DevCA
    server: IssuedCert
    clients: dict[str, IssuedCert]
    expired: IssuedCert
    untrusted: IssuedCert


def mint_test_pki(d: Path) -> PKI:
    """A CA, a localhost server cert and client certs (incl. expired and untrusted) in ``d``."""
    ca = DevCA.create()
    server = ca.issue_server()
    clients = {
        "partner-adco": ca.issue_client(kind="partner", name="adco"),
        "partner-logiship": ca.issue_client(kind="partner", name="logiship"),
        "partner-unregistered": ca.issue_client(kind="partner", name="ghost"),
        "service-checkout": ca.issue_client(kind="service", name="checkout"),
        "auditor-audit-team": ca.issue_client(kind="auditor", name="audit-team"),
        "admin-ops": ca.issue_client(kind="admin", name="ops"),
    }
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_client(
        kind="partner",
        name="adco",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    untrusted = DevCA.create(common_name="rogue CA").issue_client(kind="partner", name="adco")
    ca.as_issued().write(d, "ca")
    server.write(d, "server")
    return PKI(dir=d, ca=ca, server=server, clients=clients, expired=expired, untrusted=untrusted)


@dataclass
class Refusals:
    """Collects ``on_refused`` calls."""

    calls: list[tuple[Principal | None, str, GatewayError]] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)

    def __call__(
        self, principal: Principal | None, method: str, error: GatewayError, peer: str
    ) -> None:
        self.calls.append((principal, method, error))
        self.peers.append(peer)


class _Share(share_pb2_grpc.ShareServiceServicer):
    def Share(self, request: Any, context: Any) -> Any:
        return share_pb2.ShareResponse(request_id=current_principal().id)

    async def ShareStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        async for _ in request_iterator:
            yield share_pb2.ShareStreamResponse(
                summary=share_pb2.ShareResponse(request_id=current_principal().id)
            )


class _Admin(admin_pb2_grpc.AdminServiceServicer):
    def ReloadPolicy(self, request: Any, context: Any) -> Any:
        return admin_pb2.ReloadPolicyResponse(policy_revision=current_principal().id)


def _pull(request: bytes, context: Any) -> bytes:
    """Raw Pull: the request bytes name the partner whose outbox is pulled."""
    return require_partner(request.decode()).id.encode()


def _audit_get(request: bytes, context: Any) -> bytes:
    return current_principal().id.encode()


@dataclass(frozen=True)
class RunningServer:
    port: int
    refusals: Refusals
    tokens: dict[str, str]

    def channel(
        self, *, pki: PKI, client: IssuedCert | None = None, ca: bytes | None = None
    ) -> grpc.Channel:
        creds = channel_credentials(
            ca=ca or pki.ca.cert_pem,
            cert=client.cert_pem if client else None,
            key=client.key_pem if client else None,
        )
        return grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            creds,
            options=[("grpc.ssl_target_name_override", "localhost")],
        )


def serve_with_auth(settings: Settings, tokens_file: Path | None) -> Iterator[RunningServer]:
    """Run the test server on 127.0.0.1:0 with ``settings.tls``; mint one token per role
    into ``tokens_file`` when given."""
    refusals = Refusals()
    tokens: dict[str, str] = {}
    verify: Callable[[str], Principal | None] | None = None
    if tokens_file is not None:
        for principal_id, role, partner in (
            ("svc:checkout", Role.SERVICE, None),
            ("partner:adco", Role.PARTNER, "adco"),
            ("auditor:audit-team", Role.AUDITOR, None),
            ("admin:ops", Role.ADMIN, None),
        ):
            tokens[role.value] = mint_token(
                tokens_file, principal_id=principal_id, role=role, partner_id=partner
            )
        verify = TokenStore.from_file(tokens_file).verify
    auth = AuthInterceptor(
        authenticator=Authenticator(
            trust_domain="share-gateway.local",
            verify_token=verify,
            partner_exists=REGISTERED_PARTNERS.__contains__,
        ),
        on_refused=refusals,
    )
    loop = LoopThread()
    try:
        yield from _serve(loop, auth, settings, refusals, tokens)
    finally:
        loop.close()


def _serve(
    loop: LoopThread,
    auth: AuthInterceptor,
    settings: Settings,
    refusals: Refusals,
    tokens: dict[str, str],
) -> Iterator[RunningServer]:
    server = loop.run(_server(auth))
    add_tooling(server, health.aio.HealthServicer(), [])
    # The other methods keep the generated UNIMPLEMENTED defaults.
    share_pb2_grpc.add_ShareServiceServicer_to_server(_Share(), server)  # type: ignore[abstract]
    admin_pb2_grpc.add_AdminServiceServicer_to_server(_Admin(), server)  # type: ignore[abstract]
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "partner_gateway.v1.PartnerService",
                {"Pull": grpc.unary_unary_rpc_method_handler(_pull)},
            ),
            grpc.method_handlers_generic_handler(
                "partner_gateway.v1.AuditService",
                {"GetEntry": grpc.unary_unary_rpc_method_handler(_audit_get)},
            ),
        )
    )
    creds = server_credentials(settings)
    assert creds is not None
    port = server.add_secure_port("127.0.0.1:0", creds)
    loop.run(server.start())
    try:
        yield RunningServer(port=port, refusals=refusals, tokens=tokens)
    finally:
        loop.run(server.stop(None))


async def _server(auth: AuthInterceptor) -> grpc.aio.Server:
    """The same server kind as the gateway's: grpc.aio, sync behaviours in a thread pool."""
    return grpc.aio.server(
        migration_thread_pool=futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[CallInterceptor(), auth],
    )
