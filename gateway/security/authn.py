"""Authentication: who is calling (issue 5.1).

Two methods, checked in this order:

1. **mTLS client certificate.** The TLS stack has already verified the chain against the
   configured client CA and the validity period; here the certificate's SAN URI
   ``spiffe://<trust-domain>/<kind>/<name>`` names the principal. Exactly one such URI in the
   configured trust domain must be present. The CN is *not* used: it carries no role and is
   easy to collide.
2. **Bearer token** in ``authorization: Bearer <token>`` metadata, checked against stored
   hashes (``gateway.security.tokens``).

If both are presented they must name the same principal, with one exception: a *console*
certificate (``spiffe://<trust-domain>/console/<name>``, the auditor web console, ADR 0008)
authenticates nothing by itself; it must carry an auditor's bearer token, and the call acts
as that auditor with ``via = console:<name>``. A compromised console thus holds no standing
read access: it can read only while an auditor's token is in its hands.

A partner principal must be a registered partner (``partner_exists``), otherwise the caller
is unknown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509

from gateway.errors import UnauthenticatedError
from gateway.security.identity import Principal, Role

# ``context.auth_context()``: property name -> list of values (bytes).
AuthContext = Mapping[str, Any]
Metadata = Sequence[tuple[str, str | bytes]]

_KIND_ROLE: Mapping[str, tuple[Role, str]] = {
    "partner": (Role.PARTNER, "partner"),
    "service": (Role.SERVICE, "svc"),
    "auditor": (Role.AUDITOR, "auditor"),
    "admin": (Role.ADMIN, "admin"),
    "console": (Role.CONSOLE, "console"),
}
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def principal_from_spiffe_id(uri: str, *, trust_domain: str) -> Principal | None:
    """Map ``spiffe://<trust_domain>/<kind>/<name>`` to a principal; ``None`` if it does not fit.

    Principal ids are ``partner:<id>``, ``svc:<name>``, ``auditor:<name>``, ``admin:<name>``.
    """
    prefix = f"spiffe://{trust_domain}/"
    if not uri.startswith(prefix):
        return None
    kind, sep, name = uri[len(prefix) :].partition("/")
    if not sep or kind not in _KIND_ROLE or not _NAME.fullmatch(name):
        return None
    role, id_prefix = _KIND_ROLE[kind]
    return Principal(
        id=f"{id_prefix}:{name}",
        role=role,
        partner_id=name if role is Role.PARTNER else None,
    )


def _delegated(*, console: Principal, token: Principal | None) -> Principal:
    """The auditor whose token the console carries, marked as coming ``via`` the console.

    Raises:
        UnauthenticatedError: no token, or a token of another role than auditor.
    """
    if token is None:
        raise UnauthenticatedError(
            "a console certificate must carry an auditor's bearer token",
            reason="auth.console_without_token",
        )
    if token.role is not Role.AUDITOR:
        raise UnauthenticatedError(
            "a console may carry only an auditor's bearer token",
            reason="auth.console_non_auditor_token",
        )
    return Principal(id=token.id, role=Role.AUDITOR, via=console.id)


@functools.lru_cache(maxsize=1024)
def _san_uris(pem: bytes) -> tuple[str, ...]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.UniformResourceIdentifier))


class Authenticator:
    """Turns a call's TLS auth context and metadata into a ``Principal``.

    Args:
        trust_domain: The SPIFFE trust domain client certificates must be in.
        verify_token: ``token -> Principal | None`` (``TokenStore.verify``); ``None`` disables
            bearer tokens.
        partner_exists: ``partner_id -> bool``; a partner principal that is not registered
            is refused. Defaults to accepting every partner (tests, no registry yet).
    """

    def __init__(
        self,
        *,
        trust_domain: str,
        verify_token: Callable[[str], Principal | None] | None = None,
        partner_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self._trust_domain = trust_domain
        self._verify_token = verify_token
        self._partner_exists = partner_exists or (lambda _id: True)

    def authenticate(self, auth_context: AuthContext, metadata: Metadata) -> Principal | None:
        """Return the caller, or ``None`` if it presented no credentials at all.

        Raises:
            UnauthenticatedError: credentials were presented but are not valid.
        """
        from_cert = self._from_certificate(auth_context)
        from_token = self._from_token(metadata)
        if from_cert is not None and from_cert.role is Role.CONSOLE:
            return _delegated(console=from_cert, token=from_token)
        if from_cert is not None and from_token is not None and from_cert != from_token:
            raise UnauthenticatedError(
                "certificate and bearer token name different principals",
                reason="auth.conflicting_credentials",
            )
        principal = from_cert or from_token
        if (
            principal is not None
            and principal.role is Role.PARTNER
            and not self._partner_exists(principal.partner_id or "")
        ):
            raise UnauthenticatedError(
                f"partner {principal.partner_id} is not registered", reason="auth.unknown_partner"
            )
        return principal

    def _from_certificate(self, auth_context: AuthContext) -> Principal | None:
        pems = auth_context.get("x509_pem_cert")
        if not pems:
            return None
        try:
            uris = _san_uris(bytes(pems[0]))
        except ValueError as e:
            raise UnauthenticatedError(
                "client certificate cannot be parsed", reason="auth.bad_certificate"
            ) from e
        found = {
            p
            for uri in uris
            if (p := principal_from_spiffe_id(uri, trust_domain=self._trust_domain)) is not None
        }
        if len(found) != 1:
            raise UnauthenticatedError(
                "client certificate must carry exactly one gateway identity URI "
                f"in trust domain {self._trust_domain}",
                reason="auth.no_certificate_identity",
            )
        return found.pop()

    def _from_token(self, metadata: Metadata) -> Principal | None:
        values = [v for k, v in metadata if k.lower() == "authorization"]
        if not values:
            return None
        if len(values) > 1:
            raise UnauthenticatedError(
                "more than one authorization header", reason="auth.bad_token"
            )
        value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError(
                "authorization must be 'Bearer <token>'", reason="auth.bad_token"
            )
        if self._verify_token is None:
            raise UnauthenticatedError(
                "bearer tokens are not enabled on this listener", reason="auth.bad_token"
            )
        principal = self._verify_token(token.strip())
        if principal is None:
            raise UnauthenticatedError("bearer token is not valid", reason="auth.bad_token")
        return principal
