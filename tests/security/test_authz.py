"""The per-RPC authorization table."""

from __future__ import annotations

import pytest

from gateway.security.authz import AuthorizationTable
from gateway.security.identity import Role

P = "/partner_gateway.v1."
TABLE = AuthorizationTable()


@pytest.mark.parametrize(
    ("method", "roles"),
    [
        (P + "ShareService/Share", {Role.SERVICE}),
        (P + "ShareService/Evaluate", {Role.SERVICE}),
        (P + "ShareService/ShareStream", {Role.SERVICE}),
        (P + "PartnerService/Pull", {Role.PARTNER}),
        (P + "PartnerService/Ack", {Role.PARTNER}),
        (P + "AuditService/GetCheckpoint", {Role.AUDITOR}),
        (P + "AdminService/ReloadPolicy", {Role.ADMIN}),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", set(Role)),
    ],
)
def test_each_rpc_allows_exactly_its_roles(method: str, roles: set[Role]) -> None:
    """Every known RPC allows its role(s) and no other."""
    assert {r for r in Role if TABLE.allows(r, method)} == roles


@pytest.mark.parametrize(
    "method",
    [P + "PartnerService/DeleteOutbox", P + "Unknown/Thing", "/x/y", P + "ShareService"],
)
def test_unknown_rpc_allows_nobody(method: str) -> None:
    """Methods not in the table are denied for every role."""
    assert not any(TABLE.allows(r, method) for r in Role)


def test_health_is_public_and_nothing_else() -> None:
    """Only health checks need no identity."""
    assert TABLE.is_public("/grpc.health.v1.Health/Check")
    assert not TABLE.is_public(P + "ShareService/Share")


def test_table_extends_with_new_rules() -> None:
    """A new service is one more rule; an exact rule wins over its service's wildcard."""
    table = AuthorizationTable(
        rules={P + "X/*": frozenset({Role.AUDITOR}), P + "X/Write": frozenset({Role.ADMIN})}
    )
    assert table.allows(Role.AUDITOR, P + "X/Read")
    assert not table.allows(Role.AUDITOR, P + "X/Write")


def test_malformed_rule_is_refused() -> None:
    """A rule key that is not a full method name is a programming error."""
    with pytest.raises(ValueError):
        AuthorizationTable(rules={"ShareService/*": frozenset({Role.SERVICE})})
