"""AuthInterceptor with a method's handler wrapped once (issue 16): every call is still
authenticated from its own credentials, never from another call's."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from gateway.security.authn import Authenticator
from gateway.security.identity import Principal, Role, current_principal
from gateway.security.interceptor import AuthInterceptor
from gateway.testing import serving

METHOD = "/partner_gateway.v1.ShareService/Share"
TOKENS = {
    "t-checkout": Principal(id="service-checkout", role=Role.SERVICE),
    "t-delivery": Principal(id="service-delivery", role=Role.SERVICE),
    "t-auditor": Principal(id="auditor-alice", role=Role.AUDITOR),
}


class FakeContext:
    """The parts of a grpc.aio ``ServicerContext`` the interceptor uses (no TLS peer)."""

    def __init__(self, token: str | None) -> None:
        self._metadata = () if token is None else (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


class Details(grpc.HandlerCallDetails):
    def __init__(self) -> None:
        self.method = METHOD
        self.invocation_metadata = ()


async def who(request: bytes, context: Any) -> str:
    await asyncio.sleep(0)  # calls interleave on the loop
    return current_principal().id


def test_each_call_through_the_shared_handler_is_authenticated_from_its_own_metadata() -> None:
    """Interleaved calls of one method, each with its own bearer token, each run as their own
    principal; a call without credentials or with a role the method refuses is refused."""
    refused: list[str] = []
    interceptor = AuthInterceptor(
        authenticator=Authenticator(trust_domain="example.org", verify_token=TOKENS.get),
        on_refused=lambda principal, method, error, peer: refused.append(error.reason),
    )
    handler = grpc.unary_unary_rpc_method_handler(who)

    async def scenario() -> list[Any]:
        first = await interceptor.intercept_service(serving(handler), Details())
        second = await interceptor.intercept_service(serving(handler), Details())
        assert first is second and first is not None and first.unary_unary is not None
        behaviour = first.unary_unary
        return await asyncio.gather(
            *(behaviour(b"", FakeContext(t)) for t in ("t-checkout", "t-delivery", None)),
            behaviour(b"", FakeContext("t-auditor")),
            return_exceptions=True,
        )

    checkout, delivery, anonymous, auditor = asyncio.run(scenario())
    assert (checkout, delivery) == ("service-checkout", "service-delivery")
    assert getattr(anonymous, "reason", None) == "auth.unauthenticated"
    assert getattr(auditor, "reason", None) == "auth.role_not_allowed"
    assert sorted(refused) == ["auth.role_not_allowed", "auth.unauthenticated"]
