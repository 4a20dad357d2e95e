"""The gateway's one error tree.

Every failure the gateway can report is a ``GatewayError`` subclass that carries its gRPC
status code and a stable, machine-readable ``reason``. One interceptor maps them to statuses
(``gateway.interceptors``); nothing escapes as ``UNKNOWN``. Messages never contain field values
or other personal data: they name fields, categories, counts and ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import grpc


class GatewayError(Exception):
    """Root of every error the gateway reports to a caller.

    Args:
        message: Human-readable diagnostics, safe to show the caller (no personal data).
        reason: Stable machine-readable reason; defaults to the class's ``reason``.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: str = "internal"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class ConfigError(GatewayError):
    """Settings are invalid; raised at start, naming the bad field."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "config.invalid"


class AddressInUseError(ConfigError):
    """The listen address cannot be bound: another process has it (raised at start)."""

    reason = "config.address_in_use"


class InvalidRequestError(GatewayError):
    """The request is malformed: missing fields, unknown enum values, fields not in the schema."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "request.invalid"


class NotFoundError(GatewayError):
    """A named object (partner, schema, subject, ledger entry) does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"


class UnauthenticatedError(GatewayError):
    """The caller presented no valid identity."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "auth.unauthenticated"


class PermissionDeniedError(GatewayError):
    """The caller's role or identity does not allow this RPC or this object."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "auth.permission_denied"


class PolicyDeniedError(PermissionDeniedError):
    """The policy refused the share; ``reasons`` are the policy's ``(code, message)`` pairs.

    ``details`` holds protobuf messages (the decision and its ledger receipt) that the
    interceptor attaches to the status as ``google.rpc.Status`` details.
    """

    reason = "policy.denied"

    def __init__(
        self,
        message: str,
        *,
        reasons: Sequence[tuple[str, str]] = (),
        details: Sequence[object] = (),
    ) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
        self.details = tuple(details)


class ResourceExhaustedError(GatewayError):
    """A size limit was exceeded or the gateway is overloaded; retry later or send less."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "resource.exhausted"


class UnavailableError(GatewayError):
    """A dependency (policy engine, ledger store) failed; nothing was disclosed. Retryable."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "dependency.unavailable"


class PolicyEngineError(UnavailableError):
    """The policy engine failed, timed out or is unreachable (fail closed)."""

    reason = "policy.engine_unavailable"


class PolicyLoadError(GatewayError):
    """A policy bundle failed to compile; the previously loaded bundle stays active."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "policy.load_failed"
