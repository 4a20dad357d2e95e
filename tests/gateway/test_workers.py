"""``serve --workers N``: N supervised processes on one port, PostgreSQL only (issue 13.2)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench import procs
from gateway.demo import ad_request
from partner_gateway.v1 import share_pb2_grpc


def _workers(proc: procs.ServerProcess) -> set[int]:
    """PIDs of the supervisor's worker processes (spawned interpreters)."""
    pids = set()
    for child in psutil.Process(proc.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:  # exited while we looked
            continue
    return pids


def _wait_for(predicate: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_several_workers_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    """`serve --workers 2` on the SQLite default exits 2 with one line saying why."""
    procs.ensure_pki(tmp_path / "pki")
    cfg = procs.gateway_config(tmp_path / "gateway.toml", data_dir=tmp_path, port=procs.free_port())
    out = subprocess.run(
        [str(procs.SHARE_GATEWAY), "serve", "--config", str(cfg), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "share-gateway: invalid setting workers: 2 processes need a PostgreSQL ledger "
        "(ledger.url = postgresql+psycopg://...); SQLite has one writer lock, so extra "
        "processes would only queue on it"
    ]


@pytest.fixture
def supervised(tmp_path: Path, postgres_url: str) -> Iterator[procs.ServerProcess]:
    """`share-gateway serve --workers 2` on PostgreSQL, ready to call."""
    procs.ensure_pki(tmp_path / "pki")
    port = procs.free_port()
    cfg = procs.gateway_config(
        tmp_path / "gateway.toml", data_dir=tmp_path, port=port, ledger_url=postgres_url
    )
    proc = procs.ServerProcess(
        name="supervisor",
        argv=[str(procs.SHARE_GATEWAY), "serve", "--config", str(cfg), "--workers", "2"],
        address=f"{procs.HOST}:{port}",
        log=tmp_path / "gateway.log",
    ).start()
    try:
        proc.wait_ready(tmp_path / "pki", procs.HEALTH_CHECK, timeout_s=90)
        _wait_for(lambda: len(_workers(proc)) == 2)
        yield proc
    finally:
        for pid in {proc.pid, *(_workers(proc) if proc.alive() else set())}:
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()


@pytest.mark.postgres
def test_workers_share_the_port_are_restarted_and_stop_on_sigterm(
    supervised: procs.ServerProcess, tmp_path: Path
) -> None:
    """Two workers serve one port; a killed worker is replaced; a lone gateway cannot take
    the port; SIGTERM stops everything with exit 0."""
    pki = tmp_path / "pki"
    with procs.client_channel(supervised.address, pki) as ch:
        stub = share_pb2_grpc.ShareServiceStub(ch)
        for _ in range(4):
            assert stub.Share(ad_request("adco", "u1001"), timeout=20).decision.allowed
    first = _workers(supervised)
    victim = min(first)
    psutil.Process(victim).kill()
    _wait_for(lambda: len(_workers(supervised)) == 2 and victim not in _workers(supervised))
    supervised.wait_ready(pki, procs.HEALTH_CHECK)
    with procs.client_channel(supervised.address, pki) as ch:
        stub = share_pb2_grpc.ShareServiceStub(ch)
        assert stub.Share(ad_request("adco", "u1001"), timeout=20).decision.allowed
    procs.ensure_pki(tmp_path / "lone" / "pki")  # creates the data folder owner-only
    lone_cfg = procs.gateway_config(
        tmp_path / "lone" / "gateway.toml",
        data_dir=tmp_path / "lone",
        port=int(supervised.address.rpartition(":")[2]),
    )
    lone = subprocess.run(
        [str(procs.SHARE_GATEWAY), "serve", "--config", str(lone_cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lone.returncode == 2 and "cannot listen on" in lone.stderr
    assert supervised.proc is not None
    running = _workers(supervised)
    supervised.proc.send_signal(signal.SIGTERM)
    assert supervised.proc.wait(timeout=30) == 0, supervised.log.read_text()
    assert not any(psutil.pid_exists(pid) for pid in running)
