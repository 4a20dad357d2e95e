"""Per-RPC authorization: which roles may call which full method name (issue 5.2).

Invariants:
- Default deny: a method that is in no rule is refused, for every role (unknown RPCs denied).
- A rule is an exact full method name (``/pkg.Service/Method``) or a whole service
  (``/pkg.Service/*``); an exact rule wins over the service rule.
- ``PUBLIC`` methods need no identity at all (health, so load balancers can probe).
- The table checks the *role*; "its own outbox" (an object check) is the service's job,
  via ``gateway.security.identity.require_partner``.

To add a service, add its rules to ``DEFAULT_RULES`` (or pass ``rules=`` to
``AuthorizationTable``): nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.security.identity import Role

PKG = "partner_gateway.v1"

# Open to callers with no identity: load balancers and orchestrators probe health without
# credentials. Health reveals only SERVING/NOT_SERVING. (With tls.require_client_cert the
# TLS handshake itself still requires a client certificate.)
PUBLIC: frozenset[str] = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }
)

#: Services of standard tooling (health, reflection): they describe the server, hold no data,
#: and their calls (also refused ones) are never written to the ledger.
TOOLING_SERVICES: frozenset[str] = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)

ANY_ROLE: frozenset[Role] = frozenset(Role)

DEFAULT_RULES: Mapping[str, frozenset[Role]] = MappingProxyType(
    {
        # service: Share, Evaluate, staging (ShareStream).
        f"/{PKG}.ShareService/*": frozenset({Role.SERVICE}),
        # partner: Pull and Ack of its own outbox (ownership checked by the service).
        f"/{PKG}.PartnerService/Pull": frozenset({Role.PARTNER}),
        f"/{PKG}.PartnerService/Ack": frozenset({Role.PARTNER}),
        # auditor: read-only audit API.
        f"/{PKG}.AuditService/*": frozenset({Role.AUDITOR}),
        # admin: registry, consents, policy reload.
        f"/{PKG}.AdminService/*": frozenset({Role.ADMIN}),
        # Reflection describes the API (no data): any authenticated caller.
        "/grpc.reflection.v1.ServerReflection/*": ANY_ROLE,
        "/grpc.reflection.v1alpha.ServerReflection/*": ANY_ROLE,
    }
)


class AuthorizationTable:
    """Maps full method names to the roles allowed to call them.

    Args:
        rules: ``method or /pkg.Service/* -> roles``; default ``DEFAULT_RULES``.
        public: methods that need no identity; default ``PUBLIC``.
    """

    def __init__(
        self,
        *,
        rules: Mapping[str, frozenset[Role]] = DEFAULT_RULES,
        public: frozenset[str] = PUBLIC,
    ) -> None:
        for method in rules:
            if not method.startswith("/") or method.count("/") != 2:
                raise ValueError(
                    f"rule key must be /pkg.Service/Method or /pkg.Service/*: {method}"
                )
        self._rules = dict(rules)
        self._public = frozenset(public)

    def is_public(self, method: str) -> bool:
        return method in self._public

    @staticmethod
    def is_tooling(method: str) -> bool:
        """``method`` (``/pkg.Service/Method``) belongs to a ``TOOLING_SERVICES`` service."""
        return method.split("/")[1] in TOOLING_SERVICES if method.count("/") == 2 else False

    def allowed_roles(self, method: str) -> frozenset[Role]:
        """Roles that may call ``method``; empty for an unknown method."""
        if method in self._rules:
            return self._rules[method]
        service, _, _ = method.rpartition("/")
        return self._rules.get(f"{service}/*", frozenset())

    def allows(self, role: Role, method: str) -> bool:
        return role in self.allowed_roles(method)
