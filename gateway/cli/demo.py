"""``share-gateway demo`` and ``share-gateway health``: talk to a running gateway over mTLS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gateway.demo import SCENARIOS
from gateway.security.tls import channel_credentials
from partner_gateway.v1 import share_pb2, share_pb2_grpc

Address = Annotated[str, typer.Option(help="Gateway address.")]
Pki = Annotated[Path, typer.Option(help="Dev PKI directory (share-gateway certs init).")]


def _channel(address: str, pki: Path, identity: str) -> grpc.Channel:
    creds = channel_credentials(
        ca=pki / "ca.crt", cert=pki / f"{identity}.crt", key=pki / f"{identity}.key"
    )
    return grpc.secure_channel(address, creds)


def demo(
    scenario: Annotated[
        str | None, typer.Argument(help=f"One of {sorted(SCENARIOS)}; default: all.")
    ] = None,
    address: Address = "localhost:50051",
    pki: Pki = Path(".data/pki"),
) -> None:
    """Send the demo share requests as service `checkout` and print request and response."""
    names = [scenario] if scenario else list(SCENARIOS)
    stub = share_pb2_grpc.ShareServiceStub(_channel(address, pki, "service-checkout"))
    for name in names:
        if name not in SCENARIOS:
            raise typer.BadParameter(f"unknown scenario {name!r}; choose from {sorted(SCENARIOS)}")
        what, make = SCENARIOS[name]
        request = make()
        typer.echo(f"# {name}: {what}")
        typer.echo(json.dumps({"request": MessageToDict(request)}, indent=2, ensure_ascii=False))
        try:
            response = stub.Share(request, timeout=10)
            out = {"response": MessageToDict(response)}
        except grpc.RpcError as e:
            status = rpc_status.from_call(e)
            details = []
            for d in status.details if status else []:
                for cls in (share_pb2.Decision, share_pb2.DisclosureReceipt):
                    if d.Is(cls.DESCRIPTOR):
                        msg = cls()
                        d.Unpack(msg)
                        details.append({cls.__name__: MessageToDict(msg)})
            out = {"error": {"code": e.code().name, "message": e.details(), "details": details}}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


def health(address: Address = "localhost:50051", pki: Pki = Path(".data/pki")) -> None:
    """Print the gateway's gRPC health status (exit 1 unless SERVING)."""
    stub = health_pb2_grpc.HealthStub(_channel(address, pki, "service-checkout"))
    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    typer.echo(name)
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise typer.Exit(1)
