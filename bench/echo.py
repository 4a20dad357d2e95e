"""Reference servers for the benchmark: raw gRPC echo servers and the fake OPA server.

``--kind sync``: ``grpc.server`` with a ``ThreadPoolExecutor`` — the same server kind as the
gateway (ADR 0004), the same mTLS credentials (dev PKI, client certificate required) and
the same message sizes (the request is whatever the client sends; the answer is a fixed
byte string as long as the gateway's response). No protobuf parsing, no interceptors:
what remains is the framework's own cost, so ``gateway rps / echo rps`` measures our work.

``--kind aio``: the same over ``grpc.aio`` (for reference only: the gateway is sync).

``--kind fake-opa``: ``gateway.policy.fake_opa.FakeOpa`` on ``--port`` — a regopy-backed
stand-in for an OPA server's Data API, **not OPA**.

Usage: ``python -m bench.echo --kind sync --pki DIR --port P --response-bytes N``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

SERVICE = "bench.Echo"


def _credentials(pki: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.crt").read_bytes())],
        root_certificates=(pki / "ca.crt").read_bytes(),
        require_client_auth=True,
    )


def _handler(response: bytes) -> grpc.GenericRpcHandler:
    def unary(request: bytes, context: object) -> bytes:
        return response

    return grpc.method_handlers_generic_handler(
        SERVICE, {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
    )


def run_sync(pki: Path, port: int, response: bytes, workers: int) -> None:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers),
        handlers=[_handler(response)],
        options=[("grpc.so_reuseport", 1)],
    )
    server.add_secure_port(f"127.0.0.1:{port}", _credentials(pki))
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(0.5).wait()


async def _run_aio(pki: Path, port: int, response: bytes) -> None:
    async def unary(request: bytes, context: object) -> bytes:
        return response

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE, {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
            )
        ]
    )
    server.add_secure_port(f"127.0.0.1:{port}", _credentials(pki))
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)


def run_fake_opa(port: int) -> None:
    from gateway.policy.fake_opa import FakeOpa

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeOpa(port=port).start():
        stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=["sync", "aio", "fake-opa"], required=True)
    p.add_argument("--pki", type=Path)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--response-bytes", type=int, default=1024)
    p.add_argument("--workers", type=int, default=16)
    a = p.parse_args()
    response = b"\x0a" * a.response_bytes
    if a.kind == "sync":
        run_sync(a.pki, a.port, response, a.workers)
    elif a.kind == "aio":
        asyncio.run(_run_aio(a.pki, a.port, response))
    else:
        run_fake_opa(a.port)


if __name__ == "__main__":
    main()
