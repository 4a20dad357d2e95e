"""Test helpers shipped with the gateway: a real server on port 0 with the dev PKI.

Like ``structlog.testing``: used by this project's tests and usable by integrators' tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gateway.security.tls import channel_credentials
from gateway.server import Gateway, create_server, with_dev_pki
from gateway.settings import Settings


@dataclass
class RunningGateway:
    """A started gateway: its parts, its port and a way to open client channels."""

    gateway: Gateway
    server: grpc.Server
    port: int
    pki: Path

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
def running_gateway(data_dir: Path, **overrides: Any) -> Iterator[RunningGateway]:
    """Start a gateway on 127.0.0.1:0 with mTLS from a dev CA under ``data_dir/pki``.

    ``overrides`` are settings fields (e.g. ``ledger={"url": ...}``, ``policy={...}``).
    """
    settings = Settings.load(
        env={},
        overrides={"listen": "127.0.0.1:0", "data_dir": str(data_dir), **overrides},
    )
    settings = with_dev_pki(settings)
    gateway = Gateway.open(settings)
    server, port, _health = create_server(gateway)
    server.start()
    try:
        yield RunningGateway(gateway=gateway, server=server, port=port, pki=data_dir / "pki")
    finally:
        server.stop(None).wait()
        gateway.close()
