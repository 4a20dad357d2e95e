"""``share-gateway demo`` and ``share-gateway health``: talk to a running gateway.

Exit codes: 0 done (a policy refusal is a demo outcome, not a failure) / SERVING; 1 an
unexpected answer (any status other than OK or PERMISSION_DENIED) / not SERVING; 2 the
gateway cannot be reached or the options are unusable (one line on stderr).
"""

from __future__ import annotations

import json
from typing import Annotated

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gateway.cli.connection import (
    CaOpt,
    CertOpt,
    ConfigOpt,
    KeyOpt,
    PlaintextOpt,
    ServerOpt,
    TokenOpt,
    command_target,
    fail,
    reporting,
    rpc_failure,
)
from gateway.demo import SCENARIOS
from partner_gateway.v1 import share_pb2, share_pb2_grpc

SERVICE_IDENTITY = "service-checkout"
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def demo(
    ctx: typer.Context,
    scenario: Annotated[
        str | None, typer.Argument(help=f"One of {sorted(SCENARIOS)}; default: all.")
    ] = None,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
) -> None:
    """Send the demo share requests as service `checkout` and print request and response."""
    if scenario is not None and scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}",
            param_hint="SCENARIO",
        )
    target = command_target(ctx, identity=SERVICE_IDENTITY)
    stub = share_pb2_grpc.ShareServiceStub(target.channel())
    unexpected = 0
    for name in [scenario] if scenario else list(SCENARIOS):
        what, make = SCENARIOS[name]
        request = make()
        typer.echo(f"# {name}: {what}")
        typer.echo(json.dumps({"request": MessageToDict(request)}, indent=2, ensure_ascii=False))
        try:
            response = stub.Share(request, timeout=10, metadata=target.metadata)
            out = {"response": MessageToDict(response)}
        except grpc.RpcError as e:
            if e.code() in _UNREACHABLE:
                fail(rpc_failure(e, target.address))
            unexpected += e.code() != grpc.StatusCode.PERMISSION_DENIED
            out = {"error": _error_document(e)}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    if unexpected:
        typer.echo(f"error: {unexpected} request(s) failed unexpectedly (see above)", err=True)
        raise typer.Exit(1)


def _error_document(e: grpc.RpcError) -> dict[str, object]:
    status = rpc_status.from_call(e)
    details = []
    for d in status.details if status else []:
        for cls in (share_pb2.Decision, share_pb2.DisclosureReceipt):
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                details.append({cls.__name__: MessageToDict(msg)})
    return {"code": e.code().name, "message": e.details(), "details": details}


def health(
    ctx: typer.Context,
    server: ServerOpt = None,
    config: ConfigOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.", min=0.1)] = 5,
) -> None:
    """Print the gateway's gRPC health status (exit 1 unless SERVING, 2 if unreachable)."""
    target = command_target(ctx, identity=SERVICE_IDENTITY)
    stub = health_pb2_grpc.HealthStub(target.channel())
    with reporting(target):
        status = stub.Check(
            health_pb2.HealthCheckRequest(), timeout=timeout, metadata=target.metadata
        ).status
    typer.echo(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise typer.Exit(1)
