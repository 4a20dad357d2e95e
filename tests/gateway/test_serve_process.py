"""`share-gateway serve` as a process: starts on the embedded default, serves, stops cleanly
(also with abandoned streams open), and refuses a busy port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import procs
from gateway.demo import ad_request, delivery_request
from gateway.security.tls import channel_credentials
from partner_gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)


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


@pytest.fixture
def serve_proc(tmp_path: Path) -> Iterator[procs.ServerProcess]:
    """``share-gateway serve --config`` on a free port (grace period 2 s), ready to call."""
    data = tmp_path / "gw"
    procs.ensure_pki(data / "pki")
    port = procs.free_port()
    cfg = procs.gateway_config(data / "gateway.toml", data_dir=data, port=port)
    proc = procs.gateway_process("gateway", cfg, port, data / "gateway.log").start()
    try:
        proc.wait_ready(data / "pki", procs.HEALTH_CHECK)
        yield proc
    finally:
        proc.kill()


def _config_of(proc: procs.ServerProcess) -> Path:
    return Path(proc.argv[-1])


def test_sigterm_ends_the_process_despite_abandoned_streams(
    serve_proc: procs.ServerProcess,
) -> None:
    """Stalled, cancelled and unread streams are open: SIGTERM still ends the process within
    its grace period (+ start-up slack), exit 0, and the ledger verifies afterwards."""
    pki = _config_of(serve_proc).parent / "pki"
    service = procs.client_channel(serve_proc.address, pki)
    share = share_pb2_grpc.ShareServiceStub(service)
    for _ in range(4):
        share.Share(ad_request("adco", "u1001", outbox=True), timeout=10)
    stop = threading.Event()

    def stalled() -> Iterator[share_pb2.ShareChunk]:
        yield share_pb2.ShareChunk(header=ad_request("adco", "u1001"))
        stop.wait(60)  # never sends the rest

    stalled_calls = [share.ShareStream(stalled(), timeout=60) for _ in range(20)]
    partner = partner_pb2_grpc.PartnerServiceStub(
        procs.client_channel(serve_proc.address, pki, "partner-adco")
    )
    for _ in range(8):
        call = partner.Pull(partner_pb2.PullRequest(), timeout=60)
        next(call)
        call.cancel()
    audit = audit_pb2_grpc.AuditServiceStub(
        procs.client_channel(serve_proc.address, pki, "auditor-audit-team")
    )
    unread = [
        audit.StreamDisclosures(audit_pb2.StreamDisclosuresRequest(), timeout=60) for _ in range(8)
    ]
    time.sleep(0.5)  # every stream has reached the server
    try:
        assert serve_proc.proc is not None
        start = time.monotonic()
        serve_proc.proc.send_signal(signal.SIGTERM)
        serve_proc.proc.wait(timeout=15)
        took = time.monotonic() - start
    finally:
        stop.set()
        for c in [*stalled_calls, *unread]:
            c.cancel()
    assert serve_proc.proc.returncode == 0, serve_proc.log.read_text()
    assert took < 2.0 + 5.0, f"stopped after {took:.1f} s"
    verify = subprocess.run(
        [str(procs.SHARE_GATEWAY), "ledger", "verify", "--config", str(_config_of(serve_proc))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_second_gateway_on_a_busy_port_fails_at_start(
    serve_proc: procs.ServerProcess, tmp_path: Path
) -> None:
    """A second gateway on the same address exits non-zero with one line naming the address."""
    data = tmp_path / "second"
    procs.ensure_pki(data / "pki")
    port = int(serve_proc.address.rpartition(":")[2])
    cfg = procs.gateway_config(data / "gateway.toml", data_dir=data, port=port)
    second = subprocess.run(
        [str(procs.SHARE_GATEWAY), "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    errors = [line for line in second.stderr.splitlines() if line.startswith("share-gateway:")]
    assert errors == [
        f"share-gateway: cannot listen on {serve_proc.address}: the address is in use by "
        "another process or not available on this host"
    ], second.stderr
    assert "Traceback" not in second.stderr
    assert serve_proc.alive()


def test_health_watch_sees_serving_then_not_serving_on_shutdown(
    serve_proc: procs.ServerProcess,
) -> None:
    """A Health.Watch stream gets SERVING, then NOT_SERVING as soon as SIGTERM arrives."""
    pki = _config_of(serve_proc).parent / "pki"
    with procs.client_channel(serve_proc.address, pki) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        assert serve_proc.proc is not None
        serve_proc.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
    assert serve_proc.proc.wait(timeout=15) == 0
