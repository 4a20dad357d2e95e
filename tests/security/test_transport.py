"""Authentication and authorization over a real TLS channel with real certificates."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.errors import PermissionDeniedError, UnauthenticatedError
from gateway.security.testing import AUDIT_GET, PKI, PULL, RunningServer
from partner_gateway.v1 import admin_pb2, share_pb2

SHARE = "/partner_gateway.v1.ShareService/Share"
SHARE_STREAM = "/partner_gateway.v1.ShareService/ShareStream"
RELOAD = "/partner_gateway.v1.AdminService/ReloadPolicy"
TIMEOUT = 5


def _share(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    stub = channel.unary_unary(
        SHARE,
        request_serializer=share_pb2.ShareRequest.SerializeToString,
        response_deserializer=share_pb2.ShareResponse.FromString,
    )
    return str(stub(share_pb2.ShareRequest(), timeout=TIMEOUT, metadata=metadata).request_id)


def _raw(channel: grpc.Channel, method: str, body: bytes = b"", metadata: tuple = ()) -> bytes:
    return bytes(channel.unary_unary(method)(body, timeout=TIMEOUT, metadata=metadata))


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[no-any-return]


# --- mTLS ------------------------------------------------------------------------------


def test_service_certificate_can_share(pki: PKI, mtls_server: RunningServer) -> None:
    """A service's client certificate authenticates it as svc:<name> and allows Share."""
    with mtls_server.channel(pki=pki, client=pki.clients["service-checkout"]) as ch:
        assert _share(ch) == "svc:checkout"


def test_principal_stays_bound_through_a_response_stream(
    pki: PKI, mtls_server: RunningServer
) -> None:
    """Every message of a bidirectional stream is produced with the caller bound."""
    with mtls_server.channel(pki=pki, client=pki.clients["service-checkout"]) as ch:
        stub = ch.stream_stream(
            SHARE_STREAM,
            request_serializer=share_pb2.ShareChunk.SerializeToString,
            response_deserializer=share_pb2.ShareStreamResponse.FromString,
        )
        out = list(stub(iter([share_pb2.ShareChunk()] * 3), timeout=TIMEOUT))
    assert [r.summary.request_id for r in out] == ["svc:checkout"] * 3


def test_partner_can_pull_its_own_outbox(pki: PKI, mtls_server: RunningServer) -> None:
    """A partner certificate may Pull its own outbox."""
    with mtls_server.channel(pki=pki, client=pki.clients["partner-adco"]) as ch:
        assert _raw(ch, PULL, b"adco") == b"partner:adco"


def test_partner_cannot_pull_another_partners_outbox(pki: PKI, mtls_server: RunningServer) -> None:
    """adco pulling logiship's outbox is PERMISSION_DENIED."""
    with mtls_server.channel(pki=pki, client=pki.clients["partner-adco"]) as ch:
        assert _code(lambda: _raw(ch, PULL, b"logiship")) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", [SHARE, AUDIT_GET, RELOAD])
def test_partner_cannot_call_share_audit_or_admin(
    pki: PKI, mtls_server: RunningServer, method: str
) -> None:
    """A partner certificate is refused ShareService, AuditService and AdminService."""
    with mtls_server.channel(pki=pki, client=pki.clients["partner-logiship"]) as ch:
        assert _code(lambda: _raw(ch, method)) == grpc.StatusCode.PERMISSION_DENIED


def test_auditor_cannot_share(pki: PKI, mtls_server: RunningServer) -> None:
    """An auditor may read AuditService but not Share."""
    with mtls_server.channel(pki=pki, client=pki.clients["auditor-audit-team"]) as ch:
        assert _raw(ch, AUDIT_GET) == b"auditor:audit-team"
        assert _code(lambda: _share(ch)) == grpc.StatusCode.PERMISSION_DENIED


def test_admin_can_reload_but_not_share(pki: PKI, mtls_server: RunningServer) -> None:
    """The admin role reaches AdminService only."""
    with mtls_server.channel(pki=pki, client=pki.clients["admin-ops"]) as ch:
        assert _raw(ch, RELOAD, admin_pb2.ReloadPolicyRequest().SerializeToString())
        assert _code(lambda: _share(ch)) == grpc.StatusCode.PERMISSION_DENIED


def test_unknown_rpc_is_unimplemented_and_not_recorded(
    pki: PKI, mtls_server: RunningServer
) -> None:
    """A method the server does not serve is UNIMPLEMENTED (grpcurl's fallback), unrecorded."""
    before = len(mtls_server.refusals.calls)
    with mtls_server.channel(pki=pki, client=pki.clients["admin-ops"]) as ch:
        code = _code(lambda: _raw(ch, "/partner_gateway.v1.AdminService/DropEverything"))
        assert code == grpc.StatusCode.UNIMPLEMENTED
        code = _code(lambda: _raw(ch, "/partner_gateway.v1.ShadowService/Share"))
        assert code == grpc.StatusCode.UNIMPLEMENTED
    assert len(mtls_server.refusals.calls) == before


def test_unregistered_partner_certificate_is_unauthenticated(
    pki: PKI, mtls_server: RunningServer
) -> None:
    """A valid certificate for a partner the registry does not know is UNAUTHENTICATED."""
    with mtls_server.channel(pki=pki, client=pki.clients["partner-unregistered"]) as ch:
        assert _code(lambda: _raw(ch, PULL, b"ghost")) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("which", ["expired", "untrusted"])
def test_expired_or_untrusted_client_certificate_is_rejected(
    pki: PKI, mtls_server: RunningServer, which: str
) -> None:
    """The TLS handshake fails for an expired or foreign-CA certificate: no RPC runs."""
    before = len(mtls_server.refusals.calls)
    with mtls_server.channel(pki=pki, client=getattr(pki, which)) as ch:
        assert _code(lambda: _share(ch)) == grpc.StatusCode.UNAVAILABLE
    assert len(mtls_server.refusals.calls) == before


def test_client_without_certificate_is_rejected_by_mtls_listener(
    pki: PKI, mtls_server: RunningServer
) -> None:
    """An mTLS listener refuses a TLS client that presents no certificate."""
    with mtls_server.channel(pki=pki) as ch:
        assert _code(lambda: _share(ch)) == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_rejected_by_tls_listener(mtls_server: RunningServer) -> None:
    """A plaintext client cannot talk to a TLS listener."""
    with grpc.insecure_channel(f"127.0.0.1:{mtls_server.port}") as ch:
        assert _code(lambda: _share(ch)) == grpc.StatusCode.UNAVAILABLE


def test_refusals_reach_on_refused(pki: PKI, mtls_server: RunningServer) -> None:
    """A refused call is reported with the principal, the method and the error."""
    with mtls_server.channel(pki=pki, client=pki.clients["auditor-audit-team"]) as ch:
        _code(lambda: _share(ch))
    principal, method, error = mtls_server.refusals.calls[-1]
    assert principal is not None and principal.id == "auditor:audit-team"
    assert method == SHARE
    assert isinstance(error, PermissionDeniedError)


# --- bearer tokens over server-side TLS --------------------------------------------------


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def test_service_token_can_share(pki: PKI, token_server: RunningServer) -> None:
    """A service token authenticates svc:checkout for Share."""
    with token_server.channel(pki=pki) as ch:
        assert _share(ch, _bearer(token_server.tokens["service"])) == "svc:checkout"


@pytest.mark.parametrize(
    ("role", "method"),
    [
        ("partner", SHARE),
        ("auditor", SHARE),
        ("service", AUDIT_GET),
        ("service", RELOAD),
        ("admin", PULL),
        ("auditor", RELOAD),
    ],
)
def test_token_for_one_role_cannot_call_another_roles_rpc(
    pki: PKI, token_server: RunningServer, role: str, method: str
) -> None:
    """A valid token is PERMISSION_DENIED outside its role's RPCs."""
    with token_server.channel(pki=pki) as ch:
        call = lambda: _raw(ch, method, b"adco", _bearer(token_server.tokens[role]))  # noqa: E731
        assert _code(call) == grpc.StatusCode.PERMISSION_DENIED


def test_partner_token_cannot_pull_another_partners_outbox(
    pki: PKI, token_server: RunningServer
) -> None:
    """The partner-ownership check applies to token callers too."""
    with token_server.channel(pki=pki) as ch:
        meta = _bearer(token_server.tokens["partner"])
        assert _raw(ch, PULL, b"adco", meta) == b"partner:adco"
        assert _code(lambda: _raw(ch, PULL, b"logiship", meta)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )


@pytest.mark.parametrize("header", ["Bearer sgw_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_bad_token_is_unauthenticated(pki: PKI, token_server: RunningServer, header: str) -> None:
    """An unknown token or a malformed authorization header is UNAUTHENTICATED."""
    with token_server.channel(pki=pki) as ch:
        call = lambda: _share(ch, (("authorization", header),))  # noqa: E731
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED


def test_no_identity_is_unauthenticated_and_reported(pki: PKI, token_server: RunningServer) -> None:
    """A TLS caller with neither certificate nor token is UNAUTHENTICATED and reported."""
    with token_server.channel(pki=pki) as ch:
        assert _code(lambda: _share(ch)) == grpc.StatusCode.UNAUTHENTICATED
    principal, method, error = token_server.refusals.calls[-1]
    assert principal is None and method == SHARE
    assert isinstance(error, UnauthenticatedError)


def test_health_is_open_without_identity(pki: PKI, token_server: RunningServer) -> None:
    """Load balancers can probe health without credentials."""
    with token_server.channel(pki=pki) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        response = stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_refused_reflection_call_is_not_recorded(pki: PKI, token_server: RunningServer) -> None:
    """Reflection without a token is UNAUTHENTICATED, and tooling refusals write no entry."""
    before = len(token_server.refusals.calls)
    with token_server.channel(pki=pki) as ch:
        for method in (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ):
            call = ch.stream_stream(method)
            assert _code(lambda c=call: list(c(iter([b""]), timeout=TIMEOUT))) == (  # type: ignore[misc]
                grpc.StatusCode.UNAUTHENTICATED
            )
        assert _code(lambda: _share(ch)) == grpc.StatusCode.UNAUTHENTICATED
    assert [m for _, m, _ in token_server.refusals.calls[before:]] == [SHARE]
