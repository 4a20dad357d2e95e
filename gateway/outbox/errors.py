"""Outbox errors: part of the gateway's error tree (``GatewayError``)."""

from __future__ import annotations

import grpc

from gateway.errors import GatewayError


class OutboxIntegrityError(GatewayError):
    """A staged row does not decrypt or decode: altered, misplaced or keyed with a lost key."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "outbox.integrity"
