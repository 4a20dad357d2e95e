"""`share-gateway serve` as a process: starts on the embedded default, serves, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.demo import delivery_request
from gateway.security.tls import channel_credentials
from partner_gateway.v1 import share_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_serves_and_shuts_down_gracefully(tmp_path: Path) -> None:
    """The process answers health SERVING over mTLS, shares, and exits 0 on SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "SHARE_GATEWAY_DATA_DIR": str(tmp_path),
        "SHARE_GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SHARE_GATEWAY_POLICY__WATCH_INTERVAL_S": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pki = tmp_path / "pki"
        deadline = time.monotonic() + 60
        while not (pki / "service-checkout.key").exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        creds = channel_credentials(
            ca=pki / "ca.crt", cert=pki / "service-checkout.crt", key=pki / "service-checkout.key"
        )
        channel = grpc.secure_channel(f"localhost:{port}", creds)
        grpc.channel_ready_future(channel).result(timeout=60)
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        resp = share_pb2_grpc.ShareServiceStub(channel).Share(delivery_request(), timeout=10)
        assert resp.decision.allowed
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "gateway.stopped" in out
        assert "Li Wei" not in out  # no field value in the logs
    finally:
        if proc.poll() is None:
            proc.kill()
