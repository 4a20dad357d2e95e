"""Server processes for benchmarks: the real gateway (``share-gateway serve``), raw echo
servers, and the fake OPA server, each in its own OS process on 127.0.0.1.

Every server is a separate process so that the load generator never shares a GIL with it;
the gateway runs exactly as operators start it (the CLI with a TOML settings file).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from gateway.security.devca import init_dev_pki
from gateway.security.tls import channel_credentials

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The console script installed beside this interpreter (``pip install -e .``).
SHARE_GATEWAY = Path(sys.executable).parent / "share-gateway"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def ensure_pki(pki: Path) -> Path:
    """Create the development CA and certificates under ``pki`` once (its parent, a data
    dir, owner-only: the gateway refuses a wider one)."""
    pki.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (pki / "server.crt").exists():
        init_dev_pki(pki)
    return pki


def client_channel(address: str, pki: Path, identity: str = "service-checkout") -> grpc.Channel:
    """A sync mTLS channel as ``identity`` (a ``<kind>-<name>`` from the dev PKI)."""
    creds = channel_credentials(
        ca=pki / "ca.crt", cert=pki / f"{identity}.crt", key=pki / f"{identity}.key"
    )
    return grpc.secure_channel(address, creds)


@dataclass
class ServerProcess:
    """A server subprocess; ``address`` is where clients connect."""

    name: str
    argv: Sequence[str]
    address: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            list(self.argv),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, pki: Path, method: str, timeout_s: float = 60.0) -> None:
        """Wait until a call to ``method`` gets any answer other than UNAVAILABLE."""
        deadline = time.monotonic() + timeout_s
        with client_channel(self.address, pki) as ch:
            call = ch.unary_unary(method)
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                try:
                    call(b"", timeout=2.0)
                    return
                except grpc.RpcError as e:
                    if e.code() not in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                    ):
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {timeout_s} s; see {self.log}")
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no ledger close (crash simulation)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


HEALTH_CHECK = "/grpc.health.v1.Health/Check"
ECHO_METHOD = "/bench.Echo/Unary"


def gateway_config(
    path: Path,
    *,
    data_dir: Path,
    port: int,
    ledger_url: str | None = None,
    opa_url: str | None = None,
    worker_threads: int = 4,
    max_concurrent_rpcs: int | None = None,
    max_pending: int | None = None,
    opa_timeout_s: float | None = None,
    log_level: str = "info",
    workers: int = 1,
) -> Path:
    """Write a gateway TOML settings file (dev PKI under ``data_dir/pki``); ``workers`` > 1
    is ``serve --workers N`` (N processes on one port, PostgreSQL only)."""
    lines = [
        f'listen = "{HOST}:{port}"',
        f'data_dir = "{data_dir}"',
        f"worker_threads = {worker_threads}",
        f"workers = {workers}",
        f'log_level = "{log_level}"',
        "grace_period_s = 2.0",
        "[policy]",
        "watch_interval_s = 0",
    ]
    if opa_url:
        lines.append(f'opa_url = "{opa_url}"')
    if opa_timeout_s is not None:
        lines.append(f"opa_timeout_s = {opa_timeout_s}")
    lines.append("[ledger]")
    if ledger_url:
        lines.append(f'url = "{ledger_url}"')
    if max_pending is not None:
        lines.append(f"max_pending = {max_pending}")
    if max_concurrent_rpcs is not None:
        lines += ["[limits]", f"max_concurrent_rpcs = {max_concurrent_rpcs}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gateway_process(
    name: str, config: Path, port: int, log: Path, *, observe: Sequence[str] | None = None
) -> ServerProcess:
    """The gateway started the way operators start it: ``share-gateway serve -c FILE``.

    With ``observe`` (``bench.observe`` options), the same CLI runs under that module, which
    records GC pauses, event-loop lag and ledger batches, or applies one tuning to measure.
    """
    serve = ["serve", "--config", str(config)]
    argv = (
        [str(SHARE_GATEWAY), *serve]
        if observe is None
        else [sys.executable, "-m", "bench.observe", *observe, "--", *serve]
    )
    return ServerProcess(
        name=name,
        argv=argv,
        address=f"{HOST}:{port}",
        log=log,
    )


def echo_process(
    name: str, *, kind: str, pki: Path, port: int, response_bytes: int, log: Path, workers: int = 16
) -> ServerProcess:
    """A raw echo server (``bench.echo``): ``kind`` is ``sync`` or ``aio``."""
    return ServerProcess(
        name=name,
        argv=[
            sys.executable,
            "-m",
            "bench.echo",
            "--kind",
            kind,
            "--pki",
            str(pki),
            "--port",
            str(port),
            "--response-bytes",
            str(response_bytes),
            "--workers",
            str(workers),
        ],
        address=f"{HOST}:{port}",
        log=log,
    )


def opa_process(name: str, port: int, log: Path) -> ServerProcess:
    """The regopy-backed fake OPA server (a stand-in, not OPA) in its own process."""
    return ServerProcess(
        name=name,
        argv=[sys.executable, "-m", "bench.echo", "--kind", "fake-opa", "--port", str(port)],
        address=f"{HOST}:{port}",
        log=log,
    )


def wait_http(port: int, timeout_s: float = 30.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {HOST}:{port}")
