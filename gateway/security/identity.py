"""The authenticated caller of an RPC.

The security interceptor authenticates each call (mTLS certificate or bearer token) and binds
the resulting ``Principal`` to the call with ``bind_principal``; services read it with
``current_principal``. A request field never names the caller.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gateway.errors import PermissionDeniedError, UnauthenticatedError


class Role(enum.StrEnum):
    SERVICE = "service"  # internal services: Share, Evaluate, staging
    PARTNER = "partner"  # a partner integration: Pull and Ack of its own outbox
    AUDITOR = "auditor"  # AuditService, read-only
    ADMIN = "admin"  # registry, consents, policy reload
    # The auditor web console (ADR 0008): its certificate alone may call nothing; it only
    # carries a logged-in auditor's bearer token, and the call then acts as that auditor.
    CONSOLE = "console"


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """An authenticated identity with one role.

    Attributes:
        id: Stable principal id, e.g. ``svc:checkout`` or ``partner:adco``.
        role: What the principal may do.
        partner_id: For ``Role.PARTNER``, the registered partner it acts for.
        via: The console that carried this auditor's token (``console:<name>``), if any.
    """

    id: str
    role: Role
    partner_id: str | None = None
    via: str | None = None


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


@contextmanager
def bind_principal(principal: Principal | None) -> Iterator[Principal | None]:
    """Make ``principal`` the caller for the duration of the block (``None``: nobody)."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def current_principal() -> Principal:
    """Return the authenticated caller of the current RPC.

    Raises:
        UnauthenticatedError: no principal is bound (the call was not authenticated).
    """
    principal = _current.get()
    if principal is None:
        raise UnauthenticatedError("no authenticated identity for this call")
    return principal


def require_partner(partner_id: str) -> Principal:
    """Return the caller if it is the partner ``partner_id``; services call this before
    touching a partner's outbox ("own outbox only", issue 5.2).

    The interceptor already checked the role per RPC; this checks the *object*.

    Raises:
        UnauthenticatedError: no principal is bound.
        PermissionDeniedError: the caller is not that partner (any other partner or role).
    """
    principal = current_principal()
    if principal.role is not Role.PARTNER or principal.partner_id != partner_id:
        raise PermissionDeniedError(
            "caller may only act on its own outbox", reason="auth.not_own_partner"
        )
    return principal


def principal_context(principal: Principal | None) -> contextvars.Context:
    """A copy of the current context in which ``principal`` is the caller (``None``: nobody).

    The security interceptor runs each RPC's behaviour (and each step of a response stream)
    with ``ctx.run``, so a binding can never leak into a later call on the same worker thread,
    even when a stream is cancelled half-way.
    """
    ctx = contextvars.copy_context()
    ctx.run(_current.set, principal)
    return ctx
