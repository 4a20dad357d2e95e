"""Binding the caller to a call."""

from __future__ import annotations

import pytest

from gateway.errors import PermissionDeniedError, UnauthenticatedError
from gateway.security.identity import (
    Principal,
    Role,
    current_principal,
    principal_context,
    require_partner,
)

ADCO = Principal(id="partner:adco", role=Role.PARTNER, partner_id="adco")


def test_principal_context_does_not_leak_into_the_thread() -> None:
    """A principal bound for one call is gone after it, even if never reset explicitly."""
    ctx = principal_context(ADCO)
    assert ctx.run(current_principal) == ADCO
    with pytest.raises(UnauthenticatedError):
        current_principal()


def test_require_partner_accepts_only_that_partner() -> None:
    """Only the partner itself passes the own-outbox check; other partners and roles do not."""
    assert principal_context(ADCO).run(require_partner, "adco") == ADCO
    for caller in (
        Principal(id="partner:logiship", role=Role.PARTNER, partner_id="logiship"),
        Principal(id="admin:adco", role=Role.ADMIN),
    ):
        with pytest.raises(PermissionDeniedError):
            principal_context(caller).run(require_partner, "adco")
    with pytest.raises(UnauthenticatedError):
        principal_context(None).run(require_partner, "adco")
