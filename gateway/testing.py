"""Test helpers shipped with the gateway: a real server on port 0 with the dev PKI.

Like ``structlog.testing``: used by this project's tests and usable by integrators' tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from gateway.security.tls import channel_credentials
from gateway.server import BoundServer, Gateway, create_server, with_dev_pki
from gateway.settings import Settings

_T = TypeVar("_T")


def serving(
    handler: grpc.RpcMethodHandler[Any, Any],
) -> Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]]:
    """A grpc.aio interceptor continuation that serves ``handler`` (to drive an interceptor's
    ``intercept_service`` without a server)."""

    async def continuation(_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        return handler

    return continuation


class LoopThread:
    """An asyncio event loop in a daemon thread: runs a grpc.aio server behind sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class RunningGateway:
    """A started gateway: its parts, its port and a way to open client channels."""

    gateway: Gateway
    bound: BoundServer
    pki: Path

    @property
    def server(self) -> grpc.aio.Server:
        return self.bound.server

    @property
    def port(self) -> int:
        return self.bound.port

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def channel(self, kind: str, name: str) -> grpc.Channel:
        """An mTLS channel authenticated as ``<kind>-<name>`` from the dev PKI."""
        creds = channel_credentials(
            ca=self.pki / "ca.crt",
            cert=self.pki / f"{kind}-{name}.crt",
            key=self.pki / f"{kind}-{name}.key",
        )
        return grpc.secure_channel(self.address, creds)


@contextmanager
def running_gateway(
    data_dir: Path, *, client_certs: bool = True, **overrides: Any
) -> Iterator[RunningGateway]:
    """Start a gateway on 127.0.0.1:0 with mTLS from a dev CA under ``data_dir/pki``.

    ``client_certs=False`` serves server-side TLS only (callers use bearer tokens).
    ``overrides`` are settings fields (e.g. ``ledger={"url": ...}``, ``policy={...}``).
    """
    settings = Settings.load(
        env={},
        overrides={"listen": "127.0.0.1:0", "data_dir": str(data_dir), **overrides},
    )
    settings = with_dev_pki(settings)
    if not client_certs:
        tls = settings.tls.model_copy(update={"client_ca_file": None, "require_client_cert": False})
        settings = settings.model_copy(update={"tls": tls})
    gateway = Gateway.open(settings)
    loop = LoopThread()
    try:
        bound = loop.run(create_server(gateway))
        loop.run(bound.start(gateway))
        try:
            yield RunningGateway(gateway=gateway, bound=bound, pki=data_dir / "pki")
        finally:
            loop.run(bound.stop(None))
    finally:
        loop.close()
        gateway.close()
