"""``serve --workers N``: N gateway processes sharing one port, supervised (PostgreSQL only).

Why PostgreSQL only: every ledger append takes the ledger's writer lock for its transaction;
on SQLite that is one file lock, so a second writer process only queues on it (measured, see
README), while PostgreSQL serializes appends of many processes on the sequencer row.

The supervisor prepares storage once (tables, registry seed, ledger keys) so workers never
race on first use, then starts N workers (``multiprocessing``, spawn). Each binds the listen
address with ``SO_REUSEPORT`` (only here; a lone gateway refuses a busy port) and the kernel
spreads connections over them. A worker that dies is restarted (at most once a second each).
On SIGTERM/SIGINT the supervisor forwards SIGTERM to every worker, waits for their graceful
shutdown (grace period + margin) and kills stragglers.

Per worker: the probe listener shares its port like the API; ``/metrics`` of worker ``i`` is
on ``metrics_listen``'s port + ``i`` (each process has its own counters).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess

import structlog

from gateway.errors import ConfigError
from gateway.settings import Settings

_log = structlog.get_logger("gateway.workers")
#: Beyond the grace period, how long the supervisor waits for a worker's final checkpoint.
_STOP_MARGIN_S = 10.0


def check_workers(settings: Settings) -> None:
    """Refuse several workers where they cannot work.

    Raises:
        ConfigError: ``workers`` > 1 on a SQLite ledger.
    """
    if settings.workers > 1 and settings.ledger_url.startswith("sqlite"):
        raise ConfigError(
            f"invalid setting workers: {settings.workers} processes need a PostgreSQL ledger "
            "(ledger.url = postgresql+psycopg://...); SQLite has one writer lock, so extra "
            "processes would only queue on it"
        )


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: one worker, its own metrics port."""
    update: dict[str, object] = {"workers": 1}
    if settings.metrics_listen is not None:
        host, _, port = settings.metrics_listen.rpartition(":")
        update["metrics_listen"] = f"{host}:{int(port) + index}" if int(port) else None
    return settings.model_copy(update=update)


def _worker_main(settings_json: str, index: int) -> None:
    """A worker process: one gateway on the shared port, until SIGTERM."""
    import asyncio

    from gateway.logs import configure_logging
    from gateway.server import _serve

    settings = Settings.model_validate_json(settings_json)
    configure_logging(level=settings.log_level, json=settings.log_json)
    structlog.contextvars.bind_contextvars(worker=index)
    asyncio.run(_serve(settings, reuse_port=True))


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` gateway processes until SIGTERM/SIGINT; returns an exit code.

    Raises:
        ConfigError: see ``check_workers``.
        GatewayError / LedgerError: storage could not be prepared.
    """
    check_workers(settings)
    from gateway.server import Gateway

    Gateway.open(settings).close()  # tables, seed and keys exist before any worker starts
    spawn = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    def start(index: int) -> BaseProcess:
        worker = spawn.Process(
            target=_worker_main,
            args=(worker_settings(settings, index).model_dump_json(), index),
            name=f"gateway-worker-{index}",
        )
        worker.start()
        _log.info("worker.started", worker=index, pid=worker.pid)
        return worker

    workers = [start(i) for i in range(settings.workers)]
    started = [time.monotonic()] * len(workers)
    while not stopping.wait(0.5):
        for i, worker in enumerate(workers):
            if worker.is_alive() or time.monotonic() - started[i] < 1.0:
                continue
            _log.warning("worker.exited", worker=i, pid=worker.pid, exitcode=worker.exitcode)
            workers[i], started[i] = start(i), time.monotonic()
    _log.info("workers.stopping", workers=len(workers))
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.grace_period_s + _STOP_MARGIN_S
    failed = 0
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            _log.error("worker.killed", pid=worker.pid)
            worker.kill()
            worker.join()
        failed += worker.exitcode != 0
    _log.info("workers.stopped", failed=failed)
    return 1 if failed else 0
