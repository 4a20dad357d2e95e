"""Fault-test support: a real ``share-gateway serve`` subprocess, and receipt checks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import sqlalchemy as sa

from bench import procs
from ledger.entry import decode_entry
from ledger.merkle import leaf_hash

#: Clients reconnect quickly after a crash instead of gRPC's default 1 s+ backoff.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 300),
]


@dataclass(frozen=True)
class ReceiptSeen:
    """What a client holds after an OK Share: the receipt of its ledger entry."""

    index: int
    leaf_hash: bytes
    payload_digest: bytes


@dataclass
class GatewayProc:
    """A gateway started by its CLI with a settings file; restartable on the same port."""

    data_dir: Path
    config: Path
    port: int
    process: procs.ServerProcess | None = None
    starts: int = 0

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    @property
    def address(self) -> str:
        return f"{procs.HOST}:{self.port}"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    def start(self) -> GatewayProc:
        self.starts += 1
        self.process = procs.gateway_process(
            f"gateway-{self.starts}", self.config, self.port, self.data_dir / "gateway.log"
        ).start()
        self.process.wait_ready(self.pki, procs.HEALTH_CHECK)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def channel(self, identity: str = "service-checkout") -> grpc.Channel:
        from gateway.security.tls import channel_credentials

        creds = channel_credentials(
            ca=self.pki / "ca.crt",
            cert=self.pki / f"{identity}.crt",
            key=self.pki / f"{identity}.key",
        )
        return grpc.secure_channel(self.address, creds, options=FAST_RECONNECT)

    def verify_ledger(self) -> subprocess.CompletedProcess[str]:
        """``share-gateway ledger verify --config FILE`` (exit 0 only if everything holds)."""
        return subprocess.run(
            [str(procs.SHARE_GATEWAY), "ledger", "verify", "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=120,
        )


def missing_receipts(url: str, seen: Iterable[ReceiptSeen]) -> list[ReceiptSeen]:
    """Receipts whose entry is absent or differs (leaf hash, stored bytes, payload digest)."""
    seen = list(seen)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                int(r[0]): (bytes(r[1]), bytes(r[2]))
                for r in conn.execute(sa.text("SELECT idx, leaf_hash, data FROM ledger_entry"))
            }
    finally:
        engine.dispose()
    bad = []
    for r in seen:
        row = rows.get(r.index)
        if (
            row is None
            or row[0] != r.leaf_hash
            or leaf_hash(row[1]) != r.leaf_hash
            or decode_entry(row[1]).payload_digest != r.payload_digest
        ):
            bad.append(r)
    return bad
